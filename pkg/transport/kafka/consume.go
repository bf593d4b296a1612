package kafka

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/hookline/hookline/pkg/transport"
)

// readerMaxWait bounds one fetch request of a partition reader, and so how
// long a reader takes to notice the end of its generation.
const readerMaxWait = 500 * time.Millisecond

// claimGrace is how long claiming the partitions of a generation may fail,
// with the brokers reachable, before it is logged as a warning.
const claimGrace = 5 * time.Second

// Consume joins the consumer group cfg.Group on stream's topic and calls h
// from at most cfg.Concurrency goroutines until ctx is cancelled.
//
// Partitions: the group's members share the topic's partitions (a
// stickyBalancer keeps a partition whose messages are in a member's
// handlers at that member across rebalances). Each assigned partition is
// read by its own reader, and its messages are handed to the shared
// handlers as they come: messages of one partition are processed
// concurrently, and a slow message never holds the others.
//
// Offsets: a message is taken from its partition when it gets one of
// cfg.MaxAckPending slots (shared by the partitions of this call) and
// stays pending until acknowledged. The committed offset of a partition is
// its lowest pending offset (or, with none pending, one past the last
// taken message), committed every Config.CommitInterval, so a crash never
// skips an unacknowledged message; the messages after it that were
// acknowledged are then delivered again.
//
// Redelivery: a message not acknowledged within cfg.AckWait of being
// handed out (InProgress restarts that time) is handed out again by this
// member, with NumDelivered one higher; an Ack from any of its handlers
// settles it. Nak(delay) hands it out again after delay, by a timer of this
// member: the message stays pending meanwhile (its slot held), so the
// partition's other messages go on, and a crash before the delay ends
// leaves it uncommitted, so the partition's next owner delivers it.
//
// NumDelivered: 1 for a first delivery, +1 for each redelivery by this
// member; a message read after an assignment is at least 2 if the
// partition may have handed it out before: when the partition's last
// commit was an orderly release (metadata "released"), the messages from
// the committed offset up to the released hand-out position; otherwise
// (an owner that crashed or was cut off, or offsets committed by other
// software) every message from the committed offset up to the log end at
// assignment. A group that never committed on the partition has handed
// nothing out.
//
// Stop: when ctx ends, Consume stops reading, still hands a message
// already taken to h (with ctx done), hands nothing out again, waits for
// running handlers, commits the offsets with a "released" record, and
// leaves the group so that its partitions move at once. Messages not
// acknowledged by then (a Nak at this point included) are delivered by
// the partition's next owner.
//
// Consume returns nil once ctx ends (also if it has already ended), and
// an error for invalid arguments or a closed Transport.
func (t *Transport) Consume(ctx context.Context, stream transport.Stream, cfg transport.ConsumerConfig, h transport.Handler) error {
	if t.closed.Load() {
		return transport.ErrClosed
	}
	topic, err := topicOf(stream)
	if err != nil {
		return err
	}
	if err := cfg.Check(h); err != nil {
		return fmt.Errorf("kafka: consume: %w", err)
	}
	if ctx.Err() != nil {
		return nil
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 1
	}
	if cfg.AckWait <= 0 {
		cfg.AckWait = DefaultAckWait
	}
	if cfg.MaxAckPending <= 0 {
		cfg.MaxAckPending = DefaultMaxAckPending
	}
	var tok [8]byte
	_, _ = rand.Read(tok[:])
	c := &consumer{
		t:         t,
		topic:     topic,
		cfg:       cfg,
		h:         h,
		ctx:       ctx,
		log:       t.log.With("topic", topic, "group", cfg.Group),
		token:     hex.EncodeToString(tok[:]),
		slots:     make(chan struct{}, cfg.MaxAckPending),
		fresh:     make(chan *delivery),
		again:     make(chan *delivery, cfg.MaxAckPending+cfg.Concurrency),
		parts:     map[int]*partition{},
		warnClaim: throttle{every: unreachableRepeat},
	}
	group, err := kafkago.NewConsumerGroup(kafkago.ConsumerGroupConfig{
		ID:                cfg.Group,
		Brokers:           t.cfg.Brokers,
		Dialer:            t.dialer,
		Topics:            []string{topic},
		GroupBalancers:    []kafkago.GroupBalancer{&stickyBalancer{busy: c.busy}},
		HeartbeatInterval: t.cfg.HeartbeatInterval,
		SessionTimeout:    t.cfg.SessionTimeout,
		RebalanceTimeout:  t.cfg.RebalanceTimeout,
		JoinGroupBackoff:  250 * time.Millisecond,
		StartOffset:       kafkago.FirstOffset,
		Timeout:           t.cfg.RequestTimeout,
		ErrorLogger:       kafkago.LoggerFunc(func(f string, a ...any) { c.log.Debug("kafka-go group: " + fmt.Sprintf(f, a...)) }),
	})
	if err != nil {
		return fmt.Errorf("kafka: consume %s on %s: %w", cfg.Group, topic, err)
	}
	for range cfg.Concurrency {
		c.workers.Go(c.work)
	}
	for ctx.Err() == nil {
		gen, err := group.Next(ctx)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, kafkago.ErrGroupClosed) {
				break
			}
			c.log.Debug("kafka: consumer group error; retrying", "err", err)
			continue
		}
		done := make(chan struct{})
		gen.Start(func(gctx context.Context) {
			defer close(done)
			c.generation(gctx, gen)
		})
		<-done
	}
	c.shutdown()
	if err := group.Close(); err != nil {
		c.log.Debug("kafka: leave group", "err", err)
	}
	return nil
}

// consumer is one Consume call.
type consumer struct {
	t     *Transport
	topic string
	cfg   transport.ConsumerConfig
	h     transport.Handler
	ctx   context.Context
	log   *slog.Logger
	token string // identifies this call in commit metadata

	warnClaim throttle // failed claims logged at warning level

	slots      chan struct{}  // MaxAckPending: one per pending message
	fresh      chan *delivery // first deliveries, from the partition readers
	again      chan *delivery // redeliveries, from timers and Nak
	workers    sync.WaitGroup
	freshOnce  sync.Once
	shutdownMu sync.Mutex

	mu       sync.Mutex
	stopping bool
	seq      int64              // commit metadata sequence
	parts    map[int]*partition // partition states, owned or kept from the last generation
}

// partition is the state of one partition; guarded by consumer.mu.
type partition struct {
	id       int
	live     bool // false once dropped: its messages are no one's
	owned    bool // claimed in the current generation
	lookback bool // fill ids from before pos before reading
	pos      int64
	handed   int64 // one past the highest offset handed out
	suspect  int64 // offsets below this (read after assignment) may have been handed out before
	pending  map[int64]*entry

	committedOff int64
	lastSeq      int64
	lastPos      int64
	lastState    string

	ids   map[string]time.Time // consumer-side duplicate window
	order []idAt
}

// commitOffset is the offset to commit: the lowest pending one, or pos.
func (p *partition) commitOffset() int64 {
	off := p.pos
	for o := range p.pending {
		off = min(off, o)
	}
	return off
}

// entry is one pending message.
type entry struct {
	p       *partition
	off     int64
	msg     transport.Message
	ts      time.Time
	nd      int
	attempt int // the current delivery; settles from older ones are ignored (but Ack)
	timer   *time.Timer
	idle    bool // neither queued, handed out nor timed: to hand out when owned again
}

// busy returns the partitions with pending messages, for stickyBalancer.
func (c *consumer) busy() []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []int
	for id, p := range c.parts {
		if p.live && len(p.pending) > 0 {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}

// generation consumes the partitions assigned in gen until it ends or
// Consume's ctx does.
func (c *consumer) generation(gctx context.Context, gen *kafkago.Generation) {
	lctx, cancel := context.WithCancel(gctx)
	defer cancel()
	stop := context.AfterFunc(c.ctx, cancel)
	defer stop()

	var assigned []int
	for _, a := range gen.Assignments[c.topic] {
		assigned = append(assigned, a.ID)
	}
	slices.Sort(assigned)
	wait := 50 * time.Millisecond
	var failing time.Time // since when claiming fails
	for {
		err := c.setup(lctx, gen, assigned)
		if err == nil {
			break
		}
		if lctx.Err() != nil {
			return
		}
		// An outage is reported once by the Transport, and a failure
		// that passes (a connection the broker closed) is no news: a
		// warning only if claiming fails for claimGrace with the brokers
		// reachable, then once per unreachableRepeat.
		if failing.IsZero() {
			failing = time.Now()
		}
		if !c.t.reach.isDown() && time.Since(failing) >= claimGrace && c.warnClaim.allow() {
			c.log.Warn("kafka: claim of assigned partitions failed; retrying", "for", time.Since(failing).Round(time.Second), "err", err)
		} else {
			c.log.Debug("kafka: claim of assigned partitions failed; retrying", "err", err)
		}
		if sleepCtx(lctx, wait) != nil {
			return
		}
		wait = min(2*wait, time.Second)
	}
	c.log.Debug("kafka: generation", "id", gen.ID, "member", gen.MemberID, "partitions", assigned)

	var loops sync.WaitGroup
	c.mu.Lock()
	for _, id := range assigned {
		p := c.parts[id]
		loops.Go(func() { c.read(lctx, p) })
	}
	c.mu.Unlock()
	loops.Go(func() { c.commitLoop(lctx, gen) })
	<-lctx.Done()
	loops.Wait()
	if c.ctx.Err() != nil {
		c.shutdown()
	}
	cctx, ccancel := context.WithTimeout(context.Background(), c.t.cfg.RequestTimeout)
	defer ccancel()
	if err := c.commit(cctx, gen, stateReleased); err != nil {
		c.log.Debug("kafka: release commit failed", "err", err)
	}
	c.mu.Lock()
	for _, p := range c.parts {
		p.owned = false
	}
	c.mu.Unlock()
}

// setup builds (or keeps) the states of the assigned partitions and
// claims them with a "held" commit before anything is read.
func (c *consumer) setup(ctx context.Context, gen *kafkago.Generation, assigned []int) error {
	if len(assigned) == 0 {
		c.mu.Lock()
		for _, p := range c.parts {
			c.dropLocked(p)
		}
		clear(c.parts)
		c.mu.Unlock()
		return nil
	}
	committed, err := c.t.fetchCommitted(ctx, c.cfg.Group, c.topic, assigned)
	if err != nil {
		return err
	}
	first, last, err := c.t.partitionOffsets(ctx, c.topic, assigned)
	if err != nil {
		return err
	}
	c.mu.Lock()
	parts := make(map[int]*partition, len(assigned))
	for _, id := range assigned {
		co := committed[id]
		p := c.parts[id]
		md, ok := parseMeta(co.metadata)
		keep := p != nil && p.live && ok && md.token == c.token && md.seq == p.lastSeq && co.offset == p.committedOff
		if !keep {
			if p != nil {
				c.dropLocked(p)
			}
			start := max(co.offset, first[id])
			p = &partition{
				id: id, live: true, lookback: true,
				pos: start, handed: start, committedOff: -2,
				suspect: suspectEnd(co.offset, co.metadata, last[id]),
				pending: map[int64]*entry{}, ids: map[string]time.Time{},
			}
		}
		parts[id] = p
	}
	for id, p := range c.parts {
		if parts[id] != p {
			c.dropLocked(p)
		}
	}
	c.parts = parts
	for _, p := range parts {
		p.owned = true
	}
	c.mu.Unlock()
	if err := c.commit(ctx, gen, stateHeld); err != nil {
		c.mu.Lock()
		for _, p := range parts {
			p.owned = false
		}
		c.mu.Unlock()
		return err
	}
	// Messages of a kept partition that waited for it are handed out again.
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range parts {
		for _, e := range p.pending {
			if e.idle {
				e.idle = false
				e.attempt++
				e.nd++
				c.queueLocked(&delivery{c: c, e: e, attempt: e.attempt, nd: e.nd, msg: e.msg})
			}
		}
	}
	return nil
}

// dropLocked forgets p: its pending messages release their slots, their
// timers stop, and settling them later does nothing.
func (c *consumer) dropLocked(p *partition) {
	if !p.live {
		return
	}
	p.live, p.owned = false, false
	for off, e := range p.pending {
		if e.timer != nil {
			e.timer.Stop()
		}
		delete(p.pending, off)
		<-c.slots
	}
}

// commit commits the offsets of the owned partitions with state: "held"
// ones only when something changed, "released" ones always.
func (c *consumer) commit(ctx context.Context, gen *kafkago.Generation, state string) error {
	type sent struct {
		p   *partition
		off int64
		md  commitMeta
	}
	var list []sent
	var req []kafkago.OffsetCommit
	c.mu.Lock()
	for _, p := range c.parts {
		if !p.owned || !p.live {
			continue
		}
		off := p.commitOffset()
		pos := p.pos
		if state == stateReleased {
			pos = max(p.handed, off)
		}
		if state == stateHeld && p.lastState == stateHeld && off == p.committedOff && pos == p.lastPos {
			continue
		}
		c.seq++
		md := commitMeta{state: state, token: c.token, seq: c.seq, pos: pos}
		list = append(list, sent{p, off, md})
		req = append(req, kafkago.OffsetCommit{Partition: p.id, Offset: off, Metadata: md.String()})
	}
	c.mu.Unlock()
	if len(req) == 0 {
		return nil
	}
	resp, err := c.t.client.OffsetCommit(ctx, &kafkago.OffsetCommitRequest{
		GroupID:      c.cfg.Group,
		GenerationID: int(gen.ID),
		MemberID:     gen.MemberID,
		Topics:       map[string][]kafkago.OffsetCommit{c.topic: req},
	})
	if err != nil {
		return fmt.Errorf("commit offsets of %s for %s: %w", c.topic, c.cfg.Group, err)
	}
	failed := map[int]error{}
	for _, pr := range resp.Topics[c.topic] {
		if pr.Error != nil {
			failed[pr.Partition] = pr.Error
		}
	}
	c.mu.Lock()
	for _, s := range list {
		if failed[s.p.id] == nil {
			s.p.committedOff, s.p.lastSeq, s.p.lastPos, s.p.lastState = s.off, s.md.seq, s.md.pos, s.md.state
		}
	}
	c.mu.Unlock()
	for id, err := range failed {
		return fmt.Errorf("commit offset of %s/%d for %s: %w", c.topic, id, c.cfg.Group, err)
	}
	return nil
}

// commitLoop commits changed offsets every Config.CommitInterval.
func (c *consumer) commitLoop(ctx context.Context, gen *kafkago.Generation) {
	tk := time.NewTicker(c.t.cfg.CommitInterval)
	defer tk.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tk.C:
		}
		cctx, cancel := context.WithTimeout(ctx, c.t.cfg.RequestTimeout)
		if err := c.commit(cctx, gen, stateHeld); err != nil && ctx.Err() == nil {
			c.log.Debug("kafka: commit failed", "err", err)
		}
		cancel()
	}
}

// read takes the messages of p in order and hands them to the workers
// until ctx ends.
func (c *consumer) read(ctx context.Context, p *partition) {
	c.mu.Lock()
	start, lookback := p.pos, p.lookback
	p.lookback = false
	c.mu.Unlock()
	r := kafkago.NewReader(kafkago.ReaderConfig{
		Brokers:        c.t.cfg.Brokers,
		Topic:          c.topic,
		Partition:      p.id,
		Dialer:         c.t.dialer,
		MinBytes:       1,
		MaxBytes:       16 << 20,
		MaxWait:        readerMaxWait,
		QueueCapacity:  64,
		ReadBackoffMin: 50 * time.Millisecond,
		ReadBackoffMax: time.Second,
		ErrorLogger:    kafkago.LoggerFunc(func(f string, a ...any) { c.log.Debug("kafka-go reader: " + fmt.Sprintf(f, a...)) }),
	})
	defer r.Close()
	if lookback {
		c.lookback(ctx, r, p, start)
	}
	if err := r.SetOffset(start); err != nil {
		c.log.Warn("kafka: set reader offset", "partition", p.id, "err", err)
		return
	}
	for {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			c.log.Debug("kafka: fetch failed", "partition", p.id, "err", err)
			if sleepCtx(ctx, 100*time.Millisecond) != nil {
				return
			}
			continue
		}
		if !c.take(ctx, p, &m) {
			return
		}
	}
}

// take makes m pending and hands it to a worker. It reports false when
// the reader must stop.
func (c *consumer) take(ctx context.Context, p *partition, m *kafkago.Message) bool {
	msg := fromRecord(m)
	c.mu.Lock()
	if !p.live || !p.owned {
		c.mu.Unlock()
		return false
	}
	if c.seenLocked(p, msg.ID, m.Time) {
		// A copy of a message this partition already carried: skip it.
		p.pos = max(p.pos, m.Offset+1)
		c.mu.Unlock()
		return true
	}
	c.mu.Unlock()
	select {
	case c.slots <- struct{}{}:
	case <-ctx.Done():
		return false
	}
	c.mu.Lock()
	if !p.live || !p.owned {
		<-c.slots
		c.mu.Unlock()
		return false
	}
	nd := 1
	if m.Offset < p.suspect {
		nd = 2
	}
	e := &entry{p: p, off: m.Offset, msg: msg, ts: m.Time, nd: nd, attempt: 1}
	p.pending[m.Offset] = e
	prevPos := p.pos
	p.pos = m.Offset + 1
	c.recordLocked(p, msg.ID, m.Time)
	c.mu.Unlock()
	d := &delivery{c: c, e: e, attempt: 1, nd: nd, fresh: true, msg: msg}
	select {
	case c.fresh <- d:
		return true
	case <-ctx.Done():
	}
	if c.ctx.Err() != nil {
		// Consume is stopping: a message taken is still handed out.
		c.fresh <- d
		return false
	}
	// The generation ended: give the message back untouched.
	c.mu.Lock()
	if p.pending[m.Offset] == e {
		delete(p.pending, m.Offset)
		<-c.slots
		if p.pos == m.Offset+1 {
			p.pos = prevPos
		}
		if at, ok := p.ids[msg.ID]; ok && at.Equal(m.Time) {
			delete(p.ids, msg.ID)
		}
	}
	c.mu.Unlock()
	return false
}

// lookback fills p's duplicate window with the IDs of the messages of the
// last DuplicateWindow before start.
func (c *consumer) lookback(ctx context.Context, r *kafkago.Reader, p *partition, start int64) {
	if err := r.SetOffsetAt(ctx, time.Now().Add(-c.t.cfg.DuplicateWindow)); err != nil {
		c.log.Debug("kafka: duplicate window lookback", "partition", p.id, "err", err)
		return
	}
	for r.Offset() >= 0 && r.Offset() < start {
		m, err := r.FetchMessage(ctx)
		if err != nil || m.Offset >= start {
			return
		}
		id := fromRecord(&m).ID
		c.mu.Lock()
		c.recordLocked(p, id, m.Time)
		c.mu.Unlock()
	}
}

// seenLocked reports whether p carried id within the duplicate window
// before ts.
func (c *consumer) seenLocked(p *partition, id string, ts time.Time) bool {
	at, ok := p.ids[id]
	return ok && ts.Sub(at) < c.t.cfg.DuplicateWindow
}

// recordLocked adds id at ts to p's duplicate window, forgetting IDs
// older than the window.
func (c *consumer) recordLocked(p *partition, id string, ts time.Time) {
	p.ids[id] = ts
	p.order = append(p.order, idAt{id, ts})
	n := 0
	for n < len(p.order) && ts.Sub(p.order[n].at) >= c.t.cfg.DuplicateWindow {
		if p.ids[p.order[n].id].Equal(p.order[n].at) {
			delete(p.ids, p.order[n].id)
		}
		n++
	}
	if n > len(p.order)/2 {
		p.order = append(p.order[:0:0], p.order[n:]...)
	} else if n > 0 {
		p.order = p.order[n:]
	}
}

// work runs handlers until the fresh channel closes.
func (c *consumer) work() {
	for {
		select {
		case d, ok := <-c.fresh:
			if !ok {
				return
			}
			c.hand(d)
		case d := <-c.again:
			c.hand(d)
		}
	}
}

// hand calls the handler with d unless d is stale.
func (c *consumer) hand(d *delivery) {
	e := d.e
	p := e.p
	c.mu.Lock()
	if !p.live || p.pending[e.off] != e || e.attempt != d.attempt {
		c.mu.Unlock()
		return
	}
	if !d.fresh && (c.stopping || c.ctx.Err() != nil || !p.owned) {
		e.idle = true
		c.mu.Unlock()
		return
	}
	p.handed = max(p.handed, e.off+1)
	e.idle = false
	attempt := d.attempt
	e.timer = time.AfterFunc(c.cfg.AckWait, func() { c.expire(e, attempt) })
	c.mu.Unlock()
	c.h(c.ctx, d)
}

// expire hands e out again once AckWait passed without a settle.
func (c *consumer) expire(e *entry, attempt int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopping || !e.p.live || e.p.pending[e.off] != e || e.attempt != attempt {
		return
	}
	e.attempt++
	e.nd++
	c.queueLocked(&delivery{c: c, e: e, attempt: e.attempt, nd: e.nd, msg: e.msg})
}

// queueLocked queues a redelivery; the queue has room for every pending
// message, so it never blocks.
func (c *consumer) queueLocked(d *delivery) {
	select {
	case c.again <- d:
	default:
		d.e.idle = true
	}
}

// shutdown stops redeliveries, lets the workers finish and waits for them.
func (c *consumer) shutdown() {
	c.shutdownMu.Lock()
	defer c.shutdownMu.Unlock()
	c.mu.Lock()
	c.stopping = true
	for _, p := range c.parts {
		for _, e := range p.pending {
			if e.timer != nil {
				e.timer.Stop()
			}
		}
	}
	c.mu.Unlock()
	c.freshOnce.Do(func() { close(c.fresh) })
	c.workers.Wait()
}

// delivery is one hand-out of a pending message: transport.Received.
type delivery struct {
	c       *consumer
	e       *entry
	attempt int
	nd      int
	fresh   bool
	msg     transport.Message
}

// Message returns the message as published.
func (d *delivery) Message() *transport.Message { return &d.msg }

// NumDelivered is 1 on a first delivery, higher on a redelivery or when
// the message may have been handed out before (see Transport.Consume).
func (d *delivery) NumDelivered() int { return d.nd }

// Ack settles the message: it is no longer pending, and its offset may be
// committed. It never fails; an Ack after the partition moved to another
// member does nothing (that member delivers the message again). ctx is not
// consulted.
func (d *delivery) Ack(context.Context) error {
	c, e := d.c, d.e
	c.mu.Lock()
	defer c.mu.Unlock()
	if e.p.live && e.p.pending[e.off] == e {
		if e.timer != nil {
			e.timer.Stop()
		}
		delete(e.p.pending, e.off)
		<-c.slots
	}
	return nil
}

// Nak hands the message out again after delay (at once if delay <= 0),
// keeping it pending meanwhile. Once Consume is stopping it only hands the
// message back: the partition's next owner delivers it. A Nak from a
// delivery the message has since been handed out again after does
// nothing. ctx is not consulted.
func (d *delivery) Nak(_ context.Context, delay time.Duration) error {
	c, e := d.c, d.e
	c.mu.Lock()
	defer c.mu.Unlock()
	if !e.p.live || e.p.pending[e.off] != e || e.attempt != d.attempt {
		return nil
	}
	if e.timer != nil {
		e.timer.Stop()
	}
	e.attempt++
	attempt := e.attempt
	switch {
	case c.stopping || c.ctx.Err() != nil:
		e.idle = true
	case delay <= 0:
		e.nd++
		c.queueLocked(&delivery{c: c, e: e, attempt: attempt, nd: e.nd, msg: e.msg})
	default:
		e.timer = time.AfterFunc(delay, func() {
			c.mu.Lock()
			defer c.mu.Unlock()
			if c.stopping || !e.p.live || e.p.pending[e.off] != e || e.attempt != attempt {
				return
			}
			e.nd++
			c.queueLocked(&delivery{c: c, e: e, attempt: attempt, nd: e.nd, msg: e.msg})
		})
	}
	return nil
}

// InProgress restarts the message's AckWait. ctx is not consulted.
func (d *delivery) InProgress(context.Context) error {
	c, e := d.c, d.e
	c.mu.Lock()
	defer c.mu.Unlock()
	if e.p.live && e.p.pending[e.off] == e && e.attempt == d.attempt && e.timer != nil {
		e.timer.Reset(c.cfg.AckWait)
	}
	return nil
}
