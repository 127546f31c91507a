package main

import (
	"context"
	"encoding/json"
	"net/netip"
	"os"
	"sync"
	"time"

	nl "github.com/braid-router/braid/drivers/netlink"
	"github.com/braid-router/braid/reconcile"
	"github.com/braid-router/braid/reconcile/plan"
)

// testSessionEnv enables the test-only session in `braid run`: it
// publishes the facts written to the file this variable names, and needs
// one process-bound object while it runs. The real sessions (DHCP, health,
// L2TP, proxy, DNS) come with later versions; this one exercises their
// contract end to end.
const testSessionEnv = "BRAID_TEST_SESSION"

// testSession reads facts from a file, as a real session learns them from
// the network.
type testSession struct {
	path   string
	cancel context.CancelFunc
	done   chan struct{}

	mu     sync.Mutex
	state  string
	since  time.Time
	detail string
}

func newTestSession(path string) *testSession { return &testSession{path: path} }

func (s *testSession) Name() string { return "test" }

func (s *testSession) Start(ctx context.Context, _ any, hub *reconcile.FactsHub) error {
	ctx, s.cancel = context.WithCancel(ctx)
	s.done = make(chan struct{})
	s.set("running", "")
	go func() {
		defer close(s.done)
		var last []byte
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			if b, err := os.ReadFile(s.path); err == nil && string(b) != string(last) {
				last = b
				var f reconcile.Facts
				if err := json.Unmarshal(b, &f); err != nil {
					s.set("error", err.Error())
				} else if hub != nil {
					hub.Update(func(cur *reconcile.Facts) { cur.Uplinks = f.Uplinks })
					s.set("running", "facts from "+s.path)
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return nil
}

func (s *testSession) set(state, detail string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state != state {
		s.since = time.Now()
	}
	s.state, s.detail = state, detail
}

func (s *testSession) Update(any) error { return nil }

func (s *testSession) Stop() error {
	if s.cancel != nil {
		s.cancel()
		<-s.done
	}
	s.set("stopped", "")
	return nil
}

func (s *testSession) Status() reconcile.SessionStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	return reconcile.SessionStatus{Name: "test", State: s.state, Detail: s.detail, Since: s.since}
}

// Resources: a rule standing for "steer traffic into braid's listener",
// which must not outlive the process.
func (s *testSession) Resources() []plan.Resource {
	return []plan.Resource{nl.Rule{Priority: 7990, To: netip.MustParsePrefix("192.0.2.99/32"), Table: nl.TableMax, SuppressPrefixlen: -1}}
}
