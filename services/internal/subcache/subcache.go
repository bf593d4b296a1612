// Package subcache keeps an in-memory copy of every subscription, so the
// hot paths of fanout, delivery and the scheduler do not query the store
// per message.
//
// The store stays the source of truth: the cache reloads everything every
// refresh interval, and a service that writes a subscription puts the new
// version into its own cache at once. Another replica sees the change
// within one refresh interval.
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

// Cache is a periodically refreshed snapshot of all subscriptions. It is
// safe for concurrent use. Returned subscriptions are shared: callers must
// not modify them.
type Cache struct {
	st      store.Store
	refresh time.Duration
	logger  *slog.Logger

	mu       sync.RWMutex
	byID     map[string]*store.Subscription
	byTenant map[string][]*store.Subscription
	loaded   bool
	// seq counts local writes; touched records the seq of each id's last
	// one, so a reload that started before a local write does not undo it.
	seq     uint64
	touched map[string]uint64
}

// New returns a cache over st, refreshed every refresh by Run.
func New(st store.Store, refresh time.Duration, logger *slog.Logger) *Cache {
	if logger == nil {
		logger = slog.Default()
	}
	if refresh <= 0 {
		refresh = time.Second
	}
	return &Cache{st: st, refresh: refresh, logger: logger, byID: map[string]*store.Subscription{}, byTenant: map[string][]*store.Subscription{}, touched: map[string]uint64{}}
}

// Run loads the cache unless it is loaded already, then reloads it every
// refresh interval until ctx is cancelled. It returns nil on cancellation;
// failed reloads are logged and retried at the next interval, keeping the
// last good snapshot.
func (c *Cache) Run(ctx context.Context) error {
	if !c.Loaded() {
		c.refreshLogged(ctx)
	}
	t := time.NewTicker(c.refresh)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			c.refreshLogged(ctx)
		}
	}
}

func (c *Cache) refreshLogged(ctx context.Context) {
	if err := c.Refresh(ctx); err != nil && ctx.Err() == nil {
		c.logger.Warn("subscription cache refresh failed", "err", err)
	}
}

// Refresh reloads every subscription from the store.
func (c *Cache) Refresh(ctx context.Context) error {
	c.mu.RLock()
	startSeq, size := c.seq, len(c.byID)
	c.mu.RUnlock()
	byID := make(map[string]*store.Subscription, size)
	token := ""
	for {
		page, next, err := c.st.ListSubscriptions(ctx, store.SubscriptionFilter{Limit: 1000, PageToken: token})
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
	c.byID, c.byTenant, c.loaded = byID, byTenant, true
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
	s, err := c.st.GetSubscription(ctx, "", id)
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
