// Package subcache keeps an in-memory copy of every subscription, so the
// hot paths of fanout, delivery and the scheduler do not query the store
// per message.
//
// The store stays the source of truth. Every subscription write increments
// the store's subscription revision in the same transaction; the cache
// remembers the revision of the snapshot it loaded and reloads only when
// the revision moved. Sync makes that check on demand: once Sync returns,
// the cache reflects every subscription write committed before Sync was
// called. Fanout calls it once per batch of events, before matching them,
// so an event accepted after a subscription was created always reaches it,
// whichever replica created the subscription. Concurrent Sync calls share
// one revision read. Run checks the revision every refresh interval too,
// so other readers (which do not call Sync) see changes within one
// interval. A service that writes a subscription also puts the new
// version into its own cache at once.
package subcache

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/hookline/hookline/pkg/eventtype"
	"github.com/hookline/hookline/pkg/store"
)

// Source is what the cache reads: the subscriptions and their revision.
// Every store.Store is one.
type Source interface {
	ListSubscriptions(ctx context.Context, f store.SubscriptionFilter) ([]store.Subscription, string, error)
	GetSubscription(ctx context.Context, scope store.Scope, id string) (*store.Subscription, error)
	SubscriptionsRevision(ctx context.Context) (int64, error)
}

var _ Source = store.Store(nil)

// syncTimeout bounds one shared revision check (and the reload it may
// trigger), whatever the contexts of the callers waiting for it.
const syncTimeout = 30 * time.Second

// Cache is a snapshot of all subscriptions, reloaded when the store's
// subscription revision moves. It is safe for concurrent use. Returned
// subscriptions are shared: callers must not modify them.
type Cache struct {
	st      Source
	refresh time.Duration
	logger  *slog.Logger

	mu       sync.RWMutex
	byID     map[string]*store.Subscription
	byTenant map[string][]*store.Subscription
	loaded   bool
	rev      int64 // the store revision the snapshot was loaded at
	// seq counts local writes; touched records the seq of each id's last
	// one, so a reload that started before a local write does not undo it.
	seq     uint64
	touched map[string]uint64

	// syncMu guards the shared revision checks: syncing says whether a
	// checker goroutine runs; waiters are the Sync calls that arrived
	// since its current check began, served by its next one.
	syncMu  sync.Mutex
	syncing bool
	waiters []chan error
}

// New returns a cache over st, checked every refresh by Run.
func New(st Source, refresh time.Duration, logger *slog.Logger) *Cache {
	if logger == nil {
		logger = slog.Default()
	}
	if refresh <= 0 {
		refresh = time.Second
	}
	return &Cache{st: st, refresh: refresh, logger: logger, byID: map[string]*store.Subscription{}, byTenant: map[string][]*store.Subscription{}, touched: map[string]uint64{}}
}

// Run loads the cache unless it is loaded already, then checks the store's
// subscription revision every refresh interval, reloading when it moved,
// until ctx is cancelled. It returns nil on cancellation; failures are
// logged and retried at the next interval, keeping the last good snapshot.
func (c *Cache) Run(ctx context.Context) error {
	if !c.Loaded() {
		if err := c.Refresh(ctx); err != nil && ctx.Err() == nil {
			c.logger.Warn("subscription cache load failed", "err", err)
		}
	}
	t := time.NewTicker(c.refresh)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if err := c.check(ctx); err != nil && ctx.Err() == nil {
				c.logger.Warn("subscription cache refresh failed", "err", err)
			}
		}
	}
}

// Sync returns once the cache reflects every subscription write committed
// before Sync was called: it waits for a revision check that began after
// the call (shared with every other caller waiting for the same one), and
// that check reloads the snapshot if the revision moved. It returns the
// check's error, or ctx's if ctx ends first.
func (c *Cache) Sync(ctx context.Context) error {
	done := make(chan error, 1)
	c.syncMu.Lock()
	c.waiters = append(c.waiters, done)
	if !c.syncing {
		c.syncing = true
		go c.syncLoop()
	}
	c.syncMu.Unlock()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// syncLoop runs revision checks back to back while Sync calls wait, each
// check serving the calls that arrived before it began, and exits when
// none are left.
func (c *Cache) syncLoop() {
	for {
		c.syncMu.Lock()
		batch := c.waiters
		c.waiters = nil
		if len(batch) == 0 {
			c.syncing = false
			c.syncMu.Unlock()
			return
		}
		c.syncMu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), syncTimeout)
		err := c.check(ctx)
		cancel()
		for _, w := range batch {
			w <- err
		}
	}
}

// check reloads the snapshot unless it is loaded at the store's current
// subscription revision.
func (c *Cache) check(ctx context.Context) error {
	rev, err := c.st.SubscriptionsRevision(ctx)
	if err != nil {
		return fmt.Errorf("read subscription revision: %w", err)
	}
	c.mu.RLock()
	current := c.loaded && c.rev == rev
	c.mu.RUnlock()
	if current {
		return nil
	}
	return c.Refresh(ctx)
}

// Refresh reloads every subscription from the store.
func (c *Cache) Refresh(ctx context.Context) error {
	// The revision is read before the listing, so a write that lands in
	// between is at worst reloaded once more by the next check.
	rev, err := c.st.SubscriptionsRevision(ctx)
	if err != nil {
		return fmt.Errorf("read subscription revision: %w", err)
	}
	c.mu.RLock()
	startSeq, size := c.seq, len(c.byID)
	c.mu.RUnlock()
	byID := make(map[string]*store.Subscription, size)
	token := ""
	for {
		page, next, err := c.st.ListSubscriptions(ctx, store.SubscriptionFilter{Scope: store.AllTenants(), Limit: 1000, PageToken: token})
		if err != nil {
			return fmt.Errorf("list subscriptions: %w", err)
		}
		for i := range page {
			s := page[i]
			byID[s.ID] = &s
		}
		if next == "" {
			break
		}
		token = next
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.loaded && rev < c.rev {
		return nil // a concurrent reload already installed a newer snapshot
	}
	for id, seq := range c.touched {
		if seq <= startSeq {
			delete(c.touched, id) // the reload saw this write
			continue
		}
		if cur, ok := c.byID[id]; ok {
			byID[id] = cur
		} else {
			delete(byID, id)
		}
	}
	byTenant := make(map[string][]*store.Subscription)
	for _, s := range byID {
		byTenant[s.Tenant] = append(byTenant[s.Tenant], s)
	}
	c.byID, c.byTenant, c.loaded, c.rev = byID, byTenant, true, rev
	return nil
}

// Loaded reports whether a first snapshot has been loaded.
func (c *Cache) Loaded() bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.loaded
}

// Get returns the subscription with id from the cache, or else from the
// store (caching it). store.ErrNotFound passes through.
func (c *Cache) Get(ctx context.Context, id string) (*store.Subscription, error) {
	c.mu.RLock()
	s, ok := c.byID[id]
	c.mu.RUnlock()
	if ok {
		return s, nil
	}
	s, err := c.st.GetSubscription(ctx, store.AllTenants(), id)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, err
		}
		return nil, fmt.Errorf("get subscription %s: %w", id, err)
	}
	c.Put(s)
	return s, nil
}

// Put stores s in the cache, replacing an older version, after the caller
// wrote it to the store. A nil s is ignored.
func (c *Cache) Put(s *store.Subscription) {
	if s == nil {
		return
	}
	cp := *s
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	c.touched[cp.ID] = c.seq
	c.byID[cp.ID] = &cp
	list := c.byTenant[cp.Tenant]
	out := make([]*store.Subscription, 0, len(list)+1)
	for _, o := range list {
		if o.ID != cp.ID {
			out = append(out, o)
		}
	}
	c.byTenant[cp.Tenant] = append(out, &cp)
}

// Remove drops subscription id from the cache after the caller deleted it.
func (c *Cache) Remove(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	c.touched[id] = c.seq
	s, ok := c.byID[id]
	if !ok {
		return
	}
	delete(c.byID, id)
	list := c.byTenant[s.Tenant]
	out := make([]*store.Subscription, 0, len(list))
	for _, o := range list {
		if o.ID != id {
			out = append(out, o)
		}
	}
	c.byTenant[s.Tenant] = out
}

// Matching returns the tenant's subscriptions, enabled or not, whose
// patterns select eventType. Disabled subscriptions are included because
// their deliveries are parked, not dropped.
func (c *Cache) Matching(tenant, eventType string) []*store.Subscription {
	c.mu.RLock()
	defer c.mu.RUnlock()
	var out []*store.Subscription
	for _, s := range c.byTenant[tenant] {
		if eventtype.MatchAny(s.EventTypes, eventType) {
			out = append(out, s)
		}
	}
	return out
}
