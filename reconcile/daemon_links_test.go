package reconcile_test

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/braid-router/braid/compile"
	"github.com/braid-router/braid/facts"
	"github.com/braid-router/braid/reconcile"
)

// fakeLinks is a link watcher over links the test plugs and unplugs.
type fakeLinks struct {
	hub *facts.Hub

	mu      sync.Mutex
	present map[string]bool
	carrier map[string]bool
	watched []string
}

func (f *fakeLinks) Watch(names []string) error {
	f.mu.Lock()
	f.watched = slices.Clone(names)
	f.mu.Unlock()
	return f.publish()
}

func (f *fakeLinks) Run(ctx context.Context) error { <-ctx.Done(); return nil }

// set changes a link and publishes, as the kernel's notification would
// make the real watcher do.
func (f *fakeLinks) set(name string, present, carrier bool) {
	f.setQuietly(name, present, carrier)
	if err := f.publish(); err != nil {
		panic(err)
	}
}

// setQuietly changes a link without publishing: the next Watch sees it,
// as a pass the kernel's own notification triggered first does.
func (f *fakeLinks) setQuietly(name string, present, carrier bool) {
	f.mu.Lock()
	f.present[name], f.carrier[name] = present, carrier
	f.mu.Unlock()
}

func (f *fakeLinks) publish() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	var fs []facts.Fact
	for _, n := range f.watched {
		fs = append(fs, facts.Fact{Interface: &facts.Interface{Name: n, Present: f.present[n], Carrier: f.carrier[n]}, Process: true})
	}
	return f.hub.Publish("kernel/links", fs)
}

const twoLinkSpec = `apiVersion: braid/v1alpha1
kind: Router
metadata: {name: d}
spec:
  uplinks:
  - name: isp1
    interface: wan1
    ipv4: {static: {address: 10.101.0.2/24, gateway: 10.101.0.1}}
  - name: lte
    interface: wwan0
    ipv4: {static: {address: 10.64.0.2/30, gateway: 10.64.0.1}}
`

// The daemon asks its link watcher for the spec's links before it
// compiles: a missing one waits, naming its line, and the rest converges;
// its appearance is a facts pass that configures it. A change of the
// facts that does not move the desired state (a carrier lost) does not
// explain the changes of its pass: they are drift repaired.
func TestDaemonWaitsForMissingLinks(t *testing.T) {
	drv := reconcile.NewLockedDriver()
	hub, err := facts.Open(facts.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer hub.Close()
	lw := &fakeLinks{hub: hub, present: map[string]bool{"wan1": true}, carrier: map[string]bool{"wan1": true}}
	d := &reconcile.Daemon{Compile: compile.Compile, Engine: &reconcile.Engine{Drivers: []reconcile.Driver{drv}},
		Source: reconcile.NewMemSource(twoLinkSpec), Interval: time.Hour, Facts: hub, Links: lw}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go d.Run(ctx)
	reconcile.WaitFor(t, "the first pass", func() bool { return d.Status().Passes >= 1 })
	st := d.Status()
	if st.LastPass.Result != reconcile.ResultConverged {
		t.Fatalf("first pass: %+v", st.LastPass)
	}
	lw.mu.Lock()
	watched := lw.watched
	lw.mu.Unlock()
	if !slices.Equal(watched, []string{"wan1", "wwan0"}) {
		t.Errorf("the watcher was asked for %v, want the spec's links wan1, wwan0", watched)
	}
	if !drv.Has("route[main 0.0.0.0/0 metric 10]") || drv.Has("route[main 0.0.0.0/0 metric 20]") || drv.Has("link[wwan0]") {
		t.Errorf("with wwan0 missing, the fake kernel holds the wrong default routes or the link")
	}
	var wait string
	for _, n := range st.Notes {
		if n.Waiting {
			wait = n.String()
		}
	}
	if wait != "uplinks[1]: waiting: link wwan0 (mem.yaml:10): uplink lte is configured when the link appears" {
		t.Errorf("waiting note %q", wait)
	}

	// The modem is plugged in.
	applying := st.Applying
	lw.set("wwan0", true, false)
	reconcile.WaitFor(t, "wwan0 configured", func() bool { return drv.Has("route[main 0.0.0.0/0 metric 20]") && d.Status().Applying > applying })
	st = d.Status()
	if st.Repairs != 0 || !slices.Contains(st.LastPass.Triggers, "facts") {
		t.Errorf("the pass that configured wwan0: triggers %v, repairs %d", st.LastPass.Triggers, st.Repairs)
	}
	for _, n := range st.Notes {
		if n.Waiting {
			t.Errorf("a waiting note once every link is there: %s", n)
		}
	}

	// Someone deletes a route as the carrier comes: the pass that follows
	// repairs drift, whatever its triggers.
	drv.Drift()
	lw.set("wwan0", true, true)
	reconcile.WaitFor(t, "the repair", func() bool { return d.Status().Repairs == 1 })
	if tr := d.Status().LastPass.Triggers; !slices.Contains(tr, "facts") {
		t.Errorf("the repair's triggers %v lack facts", tr)
	}

	// Unplugged, and the kernel's notification triggers the pass before
	// the watcher publishes: the pass's own look at the links sees it, and
	// what was on it leaves the desired state, which is no repair.
	lw.setQuietly("wwan0", false, false)
	d.Trigger("kernel")
	// The driver holds the pass's changes before the pass's status is
	// published: wait for both.
	reconcile.WaitFor(t, "wwan0 forgotten", func() bool {
		if drv.Has("route[main 0.0.0.0/0 metric 20]") {
			return false
		}
		st = d.Status()
		return len(st.Notes) > 0 && strings.Contains(st.Notes[len(st.Notes)-1].Message, "waiting: link wwan0")
	})
	if st.Repairs != 1 {
		t.Errorf("after the unplug: notes %v, repairs %d", st.Notes, st.Repairs)
	}
	if !slices.Equal(st.LastPass.Triggers, []string{"facts", "kernel"}) {
		t.Errorf("the unplug's pass has triggers %v, want [facts kernel]", st.LastPass.Triggers)
	}
}
