package links

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/braid-router/braid/facts"
	"github.com/braid-router/braid/internal/nstest"
)

// iface returns the interface fact of name in fs.
func iface(t *testing.T, fs []facts.Fact, name string) facts.Interface {
	t.Helper()
	for _, f := range fs {
		if f.Interface != nil && f.Interface.Name == name {
			if !f.Process {
				t.Errorf("the fact about %s survives a restart", name)
			}
			return *f.Interface
		}
	}
	t.Fatalf("no fact about %s in %+v", name, fs)
	return facts.Interface{}
}

func TestObserve(t *testing.T) {
	ns, far := nstest.New(t), nstest.New(t)
	nstest.Run(t, "ip", "-n", ns, "link", "add", "wan1", "address", "02:00:00:00:00:01", "type", "veth", "peer", "name", "p1", "netns", far)
	var fs []facts.Fact
	observe := func() {
		t.Helper()
		nstest.Do(t, ns, func() (err error) { fs, err = Observe([]string{"wan1", "wwan0"}); return err })
	}
	observe()
	if len(fs) != 2 || fs[0].Interface.Name != "wan1" || fs[1].Interface.Name != "wwan0" {
		t.Fatalf("Observe = %+v, want wan1 then wwan0", fs)
	}
	w := iface(t, fs, "wan1")
	if !w.Present || w.Index == 0 || w.MAC != "02:00:00:00:00:01" || w.Carrier {
		t.Errorf("wan1, down = %+v; want present, an index, its MAC, no carrier", w)
	}
	if m := iface(t, fs, "wwan0"); m != (facts.Interface{Name: "wwan0"}) {
		t.Errorf("wwan0 = %+v, want observed missing", m)
	}
	// Carrier: both ends up.
	nstest.Run(t, "ip", "-n", ns, "link", "set", "wan1", "up")
	nstest.Run(t, "ip", "-n", far, "link", "set", "p1", "up")
	observe()
	if w := iface(t, fs, "wan1"); !w.Carrier {
		t.Errorf("wan1 with both ends up = %+v, want a carrier", w)
	}
	if fs, err := Observe(nil); err != nil || fs != nil {
		t.Errorf("Observe(nil) = %v, %v", fs, err)
	}
}

// The watcher publishes the links it watches at once, and again when the
// kernel says one changed: created, its carrier lost, removed, created
// again under the same name with a new index.
func TestWatcherPublishesLinkChanges(t *testing.T) {
	ns, far := nstest.New(t), nstest.New(t)
	hub, err := facts.Open(facts.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer hub.Close()
	var w *Watcher
	nstest.Do(t, ns, func() (err error) { w, err = Open(hub, nil); return err })
	defer w.Close()
	if err := w.Watch([]string{"wan9"}); err != nil {
		t.Fatal(err)
	}
	if i, ok := hub.Set().Interface("wan9"); !ok || i.Present {
		t.Fatalf("before the link exists: %+v %v, want observed missing", i, ok)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil && ctx.Err() == nil {
			t.Errorf("Run: %v", err)
		}
	}()
	until := func(what string, cond func(facts.Interface) bool) facts.Interface {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			i, _ := hub.Set().Interface("wan9")
			if cond(i) {
				return i
			}
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s; wan9 is %+v", what, i)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	plug := func() {
		nstest.Run(t, "ip", "-n", ns, "link", "add", "wan9", "type", "veth", "peer", "name", "p9", "netns", far)
		nstest.Run(t, "ip", "-n", far, "link", "set", "p9", "up")
	}
	plug()
	first := until("wan9 plugged in", func(i facts.Interface) bool { return i.Present })
	nstest.Run(t, "ip", "-n", ns, "link", "set", "wan9", "up")
	until("a carrier", func(i facts.Interface) bool { return i.Carrier })
	nstest.Run(t, "ip", "-n", far, "link", "set", "p9", "down")
	until("the carrier lost", func(i facts.Interface) bool { return i.Present && !i.Carrier })
	nstest.Run(t, "ip", "-n", ns, "link", "del", "wan9")
	until("wan9 unplugged", func(i facts.Interface) bool { return !i.Present })
	plug()
	again := until("wan9 plugged in again", func(i facts.Interface) bool { return i.Present })
	if again.Index == first.Index {
		t.Errorf("the new wan9 has the old one's index %d", first.Index)
	}
	// Links it does not watch are none of its business.
	if err := w.Watch(nil); err != nil {
		t.Fatal(err)
	}
	if got := hub.Set().Slots[Owner].Facts; len(got) != 0 {
		t.Errorf("watching nothing, the hub holds %+v", got)
	}
	if _, err := Open(nil, nil); err == nil || !strings.Contains(err.Error(), "no facts hub") {
		t.Errorf("Open without a hub: %v", err)
	}
}
