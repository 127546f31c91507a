package reconcile

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/braid-router/braid/reconcile/plan"
)

// Session is a protocol session the daemon runs inside the braid process
// (DHCP, L2TP/PPP, DHCPv6, proxy, DNS, RA, health tracking). All share one
// contract: start with a configuration, update it in place, stop; report
// facts through the hub and status on request.
type Session interface {
	// Name identifies the session in status ("dhcp4/sfr").
	Name() string
	// Start runs the session in the background until ctx ends or Stop is
	// called. It reports what it learns with facts.Update.
	Start(ctx context.Context, config any, facts *FactsHub) error
	// Update applies a new configuration without a restart.
	Update(config any) error
	// Stop ends the session and waits for it.
	Stop() error
	// Status says how the session is doing.
	Status() SessionStatus
	// Resources are the objects the session needs while it runs (a rule
	// steering traffic into its listener, its TUN device). They are
	// withdrawn when the daemon stops, so traffic falls back to plain
	// routing instead of a black hole.
	Resources() []plan.Resource
}

// SessionStatus is a session's state for `braid status`.
type SessionStatus struct {
	Name   string    `json:"name"`
	State  string    `json:"state"`
	Detail string    `json:"detail,omitempty"`
	Since  time.Time `json:"since"`
}

// FactsHub holds the current facts: sessions update them, the hub
// versions and persists every change and hands the newest to the daemon.
// A slow daemon never blocks a session: it gets the latest facts, not every
// intermediate one.
type FactsHub struct {
	path string

	mu    sync.Mutex
	facts Facts
	out   chan Facts
}

// FactsFile is the facts' file in the state directory.
const FactsFile = "facts.json"

// NewFactsHub loads the facts persisted in dir ("" keeps them in memory
// only) and returns the hub.
func NewFactsHub(dir string) (*FactsHub, error) {
	h := &FactsHub{out: make(chan Facts, 1)}
	if dir != "" {
		h.path = filepath.Join(dir, FactsFile)
		f, err := LoadFacts(dir)
		if err != nil {
			return nil, err
		}
		h.facts = f
	}
	return h, nil
}

// LoadFacts reads the facts persisted in dir; none is not an error.
func LoadFacts(dir string) (Facts, error) {
	var f Facts
	b, err := os.ReadFile(filepath.Join(dir, FactsFile))
	if errors.Is(err, fs.ErrNotExist) {
		return f, nil
	}
	if err != nil {
		return f, fmt.Errorf("read facts: %w", err)
	}
	if err := json.Unmarshal(b, &f); err != nil {
		return f, fmt.Errorf("facts %s: %w", filepath.Join(dir, FactsFile), err)
	}
	return f, nil
}

// Facts returns the current facts.
func (h *FactsHub) Facts() Facts {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.facts.clone()
}

// C delivers the newest facts after each change.
func (h *FactsHub) C() <-chan Facts { return h.out }

// Update changes the facts with fn. A change bumps the version, is
// persisted and is delivered on C; an fn that changes nothing does
// nothing.
func (h *FactsHub) Update(fn func(*Facts)) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	next := h.facts.clone()
	fn(&next)
	next.Version = h.facts.Version
	before, _ := json.Marshal(h.facts)
	after, _ := json.Marshal(next)
	if string(before) == string(after) {
		return nil
	}
	next.Version++
	h.facts = next
	select {
	case <-h.out: // drop the older undelivered facts
	default:
	}
	h.out <- next.clone()
	if h.path == "" {
		return nil
	}
	b, err := json.MarshalIndent(next, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(h.path), 0o700); err != nil {
		return fmt.Errorf("persist facts: %w", err)
	}
	tmp := h.path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("persist facts: %w", err)
	}
	if err := os.Rename(tmp, h.path); err != nil {
		return fmt.Errorf("persist facts: %w", err)
	}
	return nil
}

func (f Facts) clone() Facts {
	c := f
	if f.Uplinks != nil {
		c.Uplinks = make(map[string]UplinkFacts, len(f.Uplinks))
		for k, v := range f.Uplinks {
			if v.Healthy != nil {
				h := *v.Healthy
				v.Healthy = &h
			}
			c.Uplinks[k] = v
		}
	}
	return c
}
