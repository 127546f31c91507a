package netlink

import (
	"context"
	"errors"
	"testing"

	"github.com/braid-router/braid/internal/plantest"
	"github.com/braid-router/braid/reconcile/plan"
)

type ipLink struct {
	Name  string   `json:"ifname"`
	Flags []string `json:"flags"`
	MTU   int      `json:"mtu"`
}

func (r *rig) link(name string) ipLink {
	r.t.Helper()
	l := jsonOut[[]ipLink](r.t, r.ip("-j", "link", "show", "dev", name))
	if len(l) != 1 {
		r.t.Fatalf("link %s: %d entries", name, len(l))
	}
	return l[0]
}

func (l ipLink) up() bool {
	for _, f := range l.Flags {
		if f == "UP" {
			return true
		}
	}
	return false
}

func TestLinkConvergeAndRestore(t *testing.T) {
	r := newRig(t)
	r.veth("wan0", "wan0p")
	r.ip("link", "set", "dev", "wan0", "mtu", "1500")
	mac := r.mac("wan0")

	want := resources(Link{Name: "wan0", Up: true, MTU: 1400}, Link{Name: "wan0p", Up: true})
	var changes []plan.Change
	n := r.wrote(func() { changes = r.converge(want) })
	plantest.WantActions(t, changes, "~link[wan0]", "~link[wan0p]")
	if n != 3 { // wan0: mtu and up; wan0p: up
		t.Errorf("writes = %d, want 3", n)
	}
	if l := r.link("wan0"); !l.up() || l.MTU != 1400 {
		t.Fatalf("wan0 after apply: %+v", l)
	}
	if l := r.link("wan0p"); !l.up() || l.MTU != 1500 {
		t.Fatalf("wan0p after apply: %+v (mtu must be left alone)", l)
	}
	var prev linkState
	if ok, _ := r.rec.Get(KindLink, "wan0", &prev); !ok || prev != (linkState{Up: false, MTU: 1500, MAC: mac}) {
		t.Fatalf("recorded previous state of wan0 = %+v, %v", prev, ok)
	}
	r.settled(want)

	// A second change keeps the first previous state.
	want = resources(Link{Name: "wan0", Up: true, MTU: 1300}, Link{Name: "wan0p", Up: true})
	plantest.WantActions(t, r.converge(want), "~link[wan0]")
	if l := r.link("wan0"); l.MTU != 1300 {
		t.Fatalf("wan0 mtu = %d, want 1300", l.MTU)
	}
	r.settled(want)

	// Someone takes it down: drift.
	r.ip("link", "set", "dev", "wan0", "down")
	plantest.WantActions(t, r.converge(want), "~link[wan0]")
	r.settled(want)

	// No longer desired: put back as found.
	changes = r.converge(nil)
	plantest.WantActions(t, changes, "-link[wan0]", "-link[wan0p]")
	if l := r.link("wan0"); l.up() || l.MTU != 1500 {
		t.Fatalf("wan0 after delete: %+v, want down with mtu 1500", l)
	}
	if l := r.link("wan0p"); l.up() {
		t.Fatalf("wan0p after delete: %+v, want down", l)
	}
	if !r.rec.Empty() {
		t.Fatalf("record not empty after delete: %v", r.rec.Keys(KindLink))
	}
	r.settled(nil)
}

func TestLinkMissingIsAnError(t *testing.T) {
	r := newRig(t)
	_, err := r.d.Observe(context.Background(), resources(Link{Name: "wan1", Up: true}))
	if err == nil || err.Error() != "link wan1: no such interface" || !errors.Is(err, ErrNoLink) {
		t.Fatalf("observe missing link: %v", err)
	}
}

func TestLinkRecordedButGoneIsPruned(t *testing.T) {
	r := newRig(t)
	r.veth("wan0", "wan0p")
	r.converge(resources(Link{Name: "wan0", Up: true}))
	r.ip("link", "del", "dev", "wan0")

	if live := r.observe(nil); len(live) != 0 {
		t.Fatalf("observe reported a gone link: %v", live)
	}
	if !r.rec.Has(KindLink, "wan0") {
		t.Fatal("observe wrote the record (a plan must be read-only)")
	}
	if err := r.d.PruneRecord(); err != nil {
		t.Fatal(err)
	}
	if !r.rec.Empty() {
		t.Fatalf("record not pruned: %v", r.rec.Keys(KindLink))
	}
}

func TestLinkApplyIsIdempotent(t *testing.T) {
	r := newRig(t)
	r.veth("wan0", "wan0p")
	c := plan.Change{Action: plan.Update, Before: Link{Name: "wan0"}, After: Link{Name: "wan0", Up: true, MTU: 1400}}
	if n := r.wrote(func() {
		if err := r.apply(c); err != nil {
			t.Fatal(err)
		}
	}); n != 2 {
		t.Fatalf("first apply: %d writes, want 2", n)
	}
	if n := r.wrote(func() {
		if err := r.apply(c); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Fatalf("second apply: %d writes, want 0", n)
	}
	del := plan.Change{Action: plan.Delete, Before: c.After}
	for range 2 {
		if err := r.apply(del); err != nil {
			t.Fatal(err)
		}
	}
	if l := r.link("wan0"); l.up() || l.MTU != 1500 {
		t.Fatalf("wan0 after delete: %+v", l)
	}
}

// mac returns a link's MAC address as ip shows it.
func (r *rig) mac(name string) string {
	r.t.Helper()
	l := jsonOut[[]struct {
		Address string `json:"address"`
	}](r.t, r.ip("-j", "link", "show", "dev", name))
	if len(l) != 1 {
		r.t.Fatalf("link %s: %d entries", name, len(l))
	}
	return l[0].Address
}

func TestLinkMACConvergeAndRestore(t *testing.T) {
	r := newRig(t)
	r.veth("wan0", "wan0p")
	orig := r.mac("wan0")
	const mac1, mac2 = "02:00:5e:10:00:01", "02:00:5e:10:00:02"

	want := resources(Link{Name: "wan0", Up: true, MAC: mac1})
	var changes []plan.Change
	n := r.wrote(func() { changes = r.converge(want) })
	plantest.WantActions(t, changes, "~link[wan0]")
	if n != 2 { // address, up
		t.Errorf("writes = %d, want 2", n)
	}
	if got := changes[0].Before.(Link); got.MAC != orig {
		t.Errorf("plan before = %+v, want the live address %s", got, orig)
	}
	if l := r.link("wan0"); !l.up() || r.mac("wan0") != mac1 {
		t.Fatalf("wan0 after apply: %+v %s, want up with %s", l, r.mac("wan0"), mac1)
	}
	var prev linkState
	if ok, _ := r.rec.Get(KindLink, "wan0", &prev); !ok || prev != (linkState{Up: false, MTU: 1500, MAC: orig}) {
		t.Fatalf("recorded previous state of wan0 = %+v, %v; want down, 1500, %s", prev, ok, orig)
	}
	r.settled(want)

	// A new address on a link that is up (veth takes it live); the
	// recorded one stays the first.
	want = resources(Link{Name: "wan0", Up: true, MAC: mac2})
	n = r.wrote(func() { changes = r.converge(want) })
	plantest.WantActions(t, changes, "~link[wan0]")
	if n != 1 || r.mac("wan0") != mac2 {
		t.Fatalf("after the change: %d writes, address %s; want 1, %s", n, r.mac("wan0"), mac2)
	}
	if ok, _ := r.rec.Get(KindLink, "wan0", &prev); !ok || prev.MAC != orig {
		t.Fatalf("recorded address = %q, want the original %s", prev.MAC, orig)
	}
	r.settled(want)

	// Someone changes it: drift.
	r.ip("link", "set", "dev", "wan0", "address", "02:00:5e:10:00:99")
	plantest.WantActions(t, r.converge(want), "~link[wan0]")
	if r.mac("wan0") != mac2 {
		t.Fatalf("drift not repaired: %s", r.mac("wan0"))
	}
	r.settled(want)

	// A link that does not set its address leaves it: no change.
	if changes, _ := r.plan(resources(Link{Name: "wan0", Up: true})); len(changes) != 0 {
		t.Fatalf("a link without MAC plans %s", plantest.Describe(changes))
	}

	// No longer desired: put back as found, address included.
	changes = r.converge(nil)
	plantest.WantActions(t, changes, "-link[wan0]")
	if l := r.link("wan0"); l.up() || r.mac("wan0") != orig {
		t.Fatalf("wan0 after delete: %+v %s, want down with %s", l, r.mac("wan0"), orig)
	}
	if !r.rec.Empty() {
		t.Fatalf("record not empty after delete: %v", r.rec.Keys(KindLink))
	}
	r.settled(nil)
}

// TestLinkMACOldRecord checks a link recorded by a braid that did not
// manage MAC addresses: its record has none, gains the live one before
// braid first changes it, and the delete puts that back.
func TestLinkMACOldRecord(t *testing.T) {
	r := newRig(t)
	r.veth("wan0", "wan0p")
	orig := r.mac("wan0")
	if err := r.rec.Put(KindLink, "wan0", map[string]any{"up": false, "mtu": 1500}); err != nil {
		t.Fatal(err)
	}
	r.ip("link", "set", "dev", "wan0", "up")

	// Without an address wanted, the old record is left as it is.
	r.converge(resources(Link{Name: "wan0", Up: true}))
	var prev linkState
	if ok, _ := r.rec.Get(KindLink, "wan0", &prev); !ok || prev != (linkState{MTU: 1500}) {
		t.Fatalf("record = %+v, %v; want it untouched", prev, ok)
	}

	want := resources(Link{Name: "wan0", Up: true, MAC: "02:00:5e:10:00:01"})
	plantest.WantActions(t, r.converge(want), "~link[wan0]")
	if ok, _ := r.rec.Get(KindLink, "wan0", &prev); !ok || prev != (linkState{MTU: 1500, MAC: orig}) {
		t.Fatalf("record = %+v, %v; want the old one with the address %s", prev, ok, orig)
	}
	r.settled(want)

	plantest.WantActions(t, r.converge(nil), "-link[wan0]")
	if l := r.link("wan0"); l.up() || r.mac("wan0") != orig {
		t.Fatalf("wan0 after delete: %+v %s, want down with %s", l, r.mac("wan0"), orig)
	}
}

// TestLinkMACRestoredWithoutRecordedAddress checks that a record without
// an address (braid never changed it) restores the rest and leaves the
// address alone.
func TestLinkMACRestoredWithoutRecordedAddress(t *testing.T) {
	r := newRig(t)
	r.veth("wan0", "wan0p")
	r.converge(resources(Link{Name: "wan0", Up: true}))
	if err := r.rec.Put(KindLink, "wan0", map[string]any{"up": false, "mtu": 1500}); err != nil {
		t.Fatal(err)
	}
	r.ip("link", "set", "dev", "wan0", "address", "02:00:5e:10:00:07")
	plantest.WantActions(t, r.converge(nil), "-link[wan0]")
	if l := r.link("wan0"); l.up() || r.mac("wan0") != "02:00:5e:10:00:07" {
		t.Fatalf("wan0 after delete: %+v %s, want down with its address left alone", l, r.mac("wan0"))
	}
}
