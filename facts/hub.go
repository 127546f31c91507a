package facts

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"time"

	"github.com/braid-router/braid/internal/atomicfile"
)

// FileName is the facts' file in the state directory.
const FileName = "facts.json"

// Hub holds the current facts. Sessions publish into their own slot; the
// hub versions every change, persists what survives a restart, drops
// facts as they expire, and tells every subscriber (the daemon, and
// sessions that depend on other sessions' facts) that the facts changed.
// A slow subscriber never blocks a session: notifications coalesce, and a
// subscriber reads the newest facts with Set.
type Hub struct {
	path string
	log  *slog.Logger
	now  func() time.Time

	mu      sync.Mutex
	set     Set
	durable []byte // what was persisted last
	subs    map[int]chan struct{}
	nextSub int
	timer   *time.Timer
	closed  bool
}

// Options configure a Hub.
type Options struct {
	// Dir is the state directory facts persist in; "" keeps them in memory.
	Dir string
	// Log receives warnings (a corrupt facts file); nil discards.
	Log *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Open loads the facts persisted in opts.Dir, without those that have
// expired or were bound to the process that wrote them, and returns the
// hub. A corrupt file is dropped with a warning: facts are relearnt.
func Open(opts Options) (*Hub, error) {
	h := &Hub{log: opts.Log, now: opts.Now, subs: map[int]chan struct{}{}}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	if h.now == nil {
		h.now = time.Now
	}
	if opts.Dir != "" {
		h.path = filepath.Join(opts.Dir, FileName)
		set, warn, err := load(h.path, h.now())
		if err != nil {
			return nil, err
		}
		if warn != nil {
			h.log.Warn("dropping the persisted facts; sessions will learn them again", "err", warn)
		}
		h.set = set
	}
	h.armLocked()
	return h, nil
}

// Load reads the facts persisted in dir as a CLI plan compiles with them:
// without expired facts and without those bound to a process. None is not
// an error; a corrupt file is reported as warn and counts as none.
func Load(dir string, now time.Time) (set Set, warn error, err error) {
	return load(filepath.Join(dir, FileName), now)
}

func load(path string, now time.Time) (Set, error, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return Set{}, nil, nil
	}
	if err != nil {
		return Set{}, nil, fmt.Errorf("read facts: %w", err)
	}
	var s Set
	if err := json.Unmarshal(b, &s); err != nil {
		return Set{}, fmt.Errorf("facts file %s is corrupt (%v)", path, err), nil
	}
	if err := s.check(); err != nil {
		return Set{}, fmt.Errorf("facts file %s: %v", path, err), nil
	}
	s, _ = s.Pruned(now, true)
	return s, nil, nil
}

// check rejects facts that are not exactly one kind.
func (s Set) check() error {
	for o, sl := range s.Slots {
		for i, f := range sl.Facts {
			n := 0
			for _, set := range []bool{f.Lease4 != nil, f.SLAAC != nil, f.Router6 != nil, f.Health != nil, f.Peer != nil, f.Link != nil, f.Prefix != nil, f.Interface != nil} {
				if set {
					n++
				}
			}
			if n != 1 {
				return fmt.Errorf("slot %q fact %d: want exactly one kind of fact, got %d", o, i, n)
			}
		}
	}
	return nil
}

// Set returns the current facts.
func (h *Hub) Set() Set {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.pruneLocked()
	return h.set.Clone()
}

// Subscribe returns a channel that receives a value after facts change
// (several changes may arrive as one), and a function that ends the
// subscription.
func (h *Hub) Subscribe() (<-chan struct{}, func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	ch := make(chan struct{}, 1)
	id := h.nextSub
	h.nextSub++
	h.subs[id] = ch
	return ch, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		delete(h.subs, id)
	}
}

// Publish replaces owner's facts with fs (none removes the slot). A
// change bumps the version, is persisted when it touches facts that
// survive a restart, and is announced to every subscriber; publishing
// what is already there does nothing.
func (h *Hub) Publish(owner string, fs []Fact) error {
	if err := (Set{Slots: map[string]Slot{owner: {Facts: fs}}}).check(); err != nil {
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return errors.New("facts hub is closed")
	}
	h.pruneLocked()
	old, had := h.set.Slots[owner]
	if (len(fs) == 0 && !had) || (had && reflect.DeepEqual(old.Facts, fs)) {
		return nil
	}
	next := h.set.Clone()
	if len(fs) == 0 {
		delete(next.Slots, owner)
	} else {
		if next.Slots == nil {
			next.Slots = map[string]Slot{}
		}
		next.Slots[owner] = Slot{Facts: cloneFacts(fs)}
	}
	return h.commitLocked(next)
}

// commitLocked makes next the current facts: version, persist, notify.
func (h *Hub) commitLocked(next Set) error {
	next.Version = h.set.Version + 1
	h.set = next
	h.notifyLocked()
	h.armLocked()
	return h.persistLocked()
}

func (h *Hub) notifyLocked() {
	for _, ch := range h.subs {
		select {
		case ch <- struct{}{}:
		default: // one undelivered notification is enough
		}
	}
}

// persistLocked writes the durable facts, if they changed since the last
// write; the version is left out of the comparison, so that process-bound
// changes (health verdicts) cost no disk write.
func (h *Hub) persistLocked() error {
	if h.path == "" {
		return nil
	}
	d := h.set.Durable()
	d.Version = 0
	cmp, err := json.Marshal(d)
	if err != nil {
		return fmt.Errorf("persist facts: %w", err)
	}
	if bytes.Equal(cmp, h.durable) {
		return nil
	}
	d.Version = h.set.Version
	b, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		return fmt.Errorf("persist facts: %w", err)
	}
	if err := atomicfile.Write(h.path, b, 0o600); err != nil {
		return fmt.Errorf("persist facts: %w", err)
	}
	h.durable = cmp
	return nil
}

// pruneLocked drops expired facts, as a change.
func (h *Hub) pruneLocked() {
	next, dropped := h.set.Pruned(h.now(), false)
	if !dropped {
		return
	}
	next.Version = h.set.Version
	if err := h.commitLocked(next); err != nil {
		h.log.Warn("facts expired but could not be persisted", "err", err)
	}
}

// armLocked sets the timer for the next expiry, so that an expired fact
// is dropped (and a pass runs) even when nobody asks.
func (h *Hub) armLocked() {
	if h.timer != nil {
		h.timer.Stop()
		h.timer = nil
	}
	next := h.set.NextExpiry()
	if next.IsZero() || h.closed {
		return
	}
	h.timer = time.AfterFunc(max(next.Sub(h.now()), 0), func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		if !h.closed {
			h.pruneLocked()
		}
	})
}

// Close stops the expiry timer; later publishes fail.
func (h *Hub) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	if h.timer != nil {
		h.timer.Stop()
	}
}

// Wait blocks until the facts' version is at least v or ctx ends (tests
// and the CLI's wait for a session's first report).
func (h *Hub) Wait(ctx context.Context, v uint64) (Set, error) {
	ch, cancel := h.Subscribe()
	defer cancel()
	for {
		if s := h.Set(); s.Version >= v {
			return s, nil
		}
		select {
		case <-ctx.Done():
			return Set{}, ctx.Err()
		case <-ch:
		}
	}
}
