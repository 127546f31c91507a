package netlink

import (
	"errors"
	"os/exec"
	"strings"
	"testing"

	"github.com/braid-router/braid/internal/nstest"
	"github.com/braid-router/braid/internal/plantest"
	"github.com/braid-router/braid/reconcile/plan"
)

type ipAddrInfo struct {
	Family        string `json:"family"`
	Local         string `json:"local"`
	Prefixlen     int    `json:"prefixlen"`
	NoPrefixRoute bool   `json:"noprefixroute"`
	NoDAD         bool   `json:"nodad"`
	Tentative     bool   `json:"tentative"`
}

func (r *rig) addrs(dev string) map[string]ipAddrInfo {
	r.t.Helper()
	l := jsonOut[[]struct {
		AddrInfo []ipAddrInfo `json:"addr_info"`
	}](r.t, r.ip("-j", "addr", "show", "dev", dev))
	m := map[string]ipAddrInfo{}
	for _, a := range l[0].AddrInfo {
		m[a.Local] = a
	}
	return m
}

// pair gives the rig a link wan0 whose other end, wan0p, is in a second
// namespace with 10.0.0.2/24 and fd00::2/64.
func (r *rig) pair() (peerNS string) {
	r.t.Helper()
	peerNS = nstest.New(r.t)
	r.veth("wan0", "wan0p")
	r.ip("link", "set", "dev", "wan0p", "netns", peerNS)
	nstest.In(r.t, peerNS, "ip", "addr", "add", "10.0.0.2/24", "dev", "wan0p")
	nstest.In(r.t, peerNS, "ip", "addr", "add", "fd00::2/64", "dev", "wan0p", "nodad")
	nstest.In(r.t, peerNS, "ip", "link", "set", "dev", "wan0p", "up")
	return peerNS
}

func (r *rig) ping(dst string) error {
	out, err := exec.Command("ip", "netns", "exec", r.ns, "ping", "-c1", "-W2", dst).CombinedOutput()
	if err != nil {
		return errors.New(strings.TrimSpace(string(out)))
	}
	return nil
}

func TestAddrNoPrefixRouteAndBraidPrefixRoutes(t *testing.T) {
	r := newRig(t)
	r.pair()
	link := Link{Name: "wan0", Up: true}
	a4 := Addr{Link: "wan0", Prefix: pfx("10.0.0.1/24")}
	a6 := Addr{Link: "wan0", Prefix: pfx("fd00::1/64")}
	want := resources[plan.Resource](link, a4, a6)
	plantest.WantActions(t, r.converge(want), "~link[wan0]", "+address[wan0 10.0.0.1/24]", "+address[wan0 fd00::1/64]")
	r.settled(want)

	got := r.addrs("wan0")
	for _, a := range []string{"10.0.0.1", "fd00::1"} {
		if !got[a].NoPrefixRoute {
			t.Errorf("%s: no noprefixroute: %+v", a, got[a])
		}
	}
	if !got["fd00::1"].NoDAD || got["fd00::1"].Tentative {
		t.Errorf("fd00::1: want nodad and not tentative: %+v", got["fd00::1"])
	}
	for _, args := range [][]string{{"-4", "route", "show", "table", "all"}, {"-6", "route", "show", "table", "main"}} {
		out := r.ip(args...)
		if strings.Contains(out, "10.0.0.0/24") || strings.Contains(out, "fd00::/64") {
			t.Fatalf("a kernel prefix route exists:\n%s", out)
		}
	}
	if r.ping("10.0.0.2") == nil {
		t.Fatal("10.0.0.2 reachable without a prefix route")
	}

	// braid's prefix routes, with the new addresses as sources: installable
	// at once (IPv6 is not tentative) and working.
	p4 := Route{Table: TableMain, Dst: pfx("10.0.0.0/24"), Link: "wan0", Src: ip("10.0.0.1")}
	p6 := Route{Table: TableMain, Dst: pfx("fd00::/64"), Metric: 256, Link: "wan0", Src: ip("fd00::1")}
	want = append(want, p4, p6)
	plantest.WantActions(t, r.converge(want), "+"+p4.Address(), "+"+p6.Address())
	r.settled(want)
	for _, dst := range []string{"10.0.0.2", "fd00::2"} {
		if err := r.ping(dst); err != nil {
			t.Errorf("ping %s over braid's prefix route: %v", dst, err)
		}
	}

	// A prefix route deleted by hand is drift.
	r.ip("route", "del", "10.0.0.0/24", "dev", "wan0")
	plantest.WantActions(t, r.converge(want), "+"+p4.Address())
	r.settled(want)

	// An address deleted by hand is drift too. (IPv6 keeps the routes
	// that used it as their source, without the source.)
	r.ip("addr", "del", "fd00::1/64", "dev", "wan0")
	plantest.WantActions(t, r.converge(want), "+"+a6.Address(), "~"+p6.Address())
	r.settled(want)

	// Delete: routes and addresses go, the record forgets them.
	want = resources[plan.Resource](link)
	var deleted []plan.Change
	n := r.wrote(func() { deleted = r.converge(want) })
	plantest.WantActions(t, deleted, "-"+a4.Address(), "-"+a6.Address(), "-"+p4.Address(), "-"+p6.Address())
	// Deletes run in reverse observe order: routes, then addresses.
	if n != 4 {
		t.Errorf("delete writes = %d, want 4:%s", n, plantest.Describe(deleted))
	}
	if got := r.addrs("wan0"); got["10.0.0.1"].Local != "" || got["fd00::1"].Local != "" {
		t.Fatalf("addresses left: %+v", got)
	}
	if keys := r.rec.Keys(KindAddress); len(keys) != 0 {
		t.Fatalf("record still has %v", keys)
	}
	r.settled(want)
}

func TestAddrForeignIsAConflict(t *testing.T) {
	r := newRig(t)
	r.veth("wan0", "wan0p")
	r.ip("addr", "add", "10.0.0.1/24", "dev", "wan0")
	r.ip("addr", "add", "fd00::1/64", "dev", "wan0", "nodad")
	a4 := Addr{Link: "wan0", Prefix: pfx("10.0.0.1/24")}
	a6 := Addr{Link: "wan0", Prefix: pfx("fd00::1/64")}
	want := resources(a4, a6)

	changes, conflicts := r.plan(want)
	if len(changes) != 0 || len(conflicts) != 2 {
		t.Fatalf("changes %s, conflicts %v", plantest.Describe(changes), conflicts)
	}
	for i, a := range []Addr{a4, a6} {
		if c := conflicts[i]; c.Address != a.Address() || !strings.Contains(c.Foreign, a.Prefix.String()) {
			t.Errorf("conflict %d: %v, want one at %s describing the foreign %s", i, c, a.Address(), a.Prefix)
		}
	}
	// Applied anyway (the engine would not), the create is refused as a
	// conflict and braid does not claim the address.
	for _, a := range []Addr{a4, a6} {
		err := r.apply(planCreate(a))
		if !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), a.Address()) {
			t.Fatalf("create over a foreign address: %v", err)
		}
	}
	if !r.rec.Empty() {
		t.Fatalf("record claims a foreign address: %v", r.rec.Keys(KindAddress))
	}
	// And nothing plans its removal.
	if changes := r.converge(nil); len(changes) != 0 {
		t.Fatalf("changes with nothing desired: %s", plantest.Describe(changes))
	}
	if got := r.addrs("wan0"); got["10.0.0.1"].Local == "" || got["fd00::1"].Local == "" {
		t.Fatalf("foreign addresses touched: %+v", got)
	}
}

func TestAddrApplyIsIdempotent(t *testing.T) {
	r := newRig(t)
	r.veth("wan0", "wan0p")
	for _, a := range []Addr{{Link: "wan0", Prefix: pfx("10.0.0.1/24")}, {Link: "wan0", Prefix: pfx("fd00::1/64")}} {
		if n := r.wrote(func() { must(t, r.apply(planCreate(a))) }); n != 1 {
			t.Fatalf("create %s: %d writes", a.Address(), n)
		}
		if n := r.wrote(func() { must(t, r.apply(planCreate(a))) }); n != 0 {
			t.Fatalf("create %s again: %d writes", a.Address(), n)
		}
		if n := r.wrote(func() { must(t, r.apply(planDelete(a))) }); n != 1 {
			t.Fatalf("delete %s: %d writes", a.Address(), n)
		}
		if n := r.wrote(func() { must(t, r.apply(planDelete(a))) }); n != 0 {
			t.Fatalf("delete %s again: %d writes", a.Address(), n)
		}
	}
	// On a link that is gone, a delete is already so, a create an error
	// naming the link.
	gone := Addr{Link: "wan9", Prefix: pfx("10.9.0.1/24")}
	must(t, r.apply(planDelete(gone)))
	if err := r.apply(planCreate(gone)); !errors.Is(err, ErrNoLink) || !strings.Contains(err.Error(), "link wan9: no such interface") {
		t.Fatalf("create on a missing link: %v", err)
	}
	if !r.rec.Empty() {
		t.Fatalf("record not empty: %v", r.rec.Keys(KindAddress))
	}
}

func TestAddrRecordedButGoneIsNotReported(t *testing.T) {
	r := newRig(t)
	r.veth("wan0", "wan0p")
	a := Addr{Link: "wan0", Prefix: pfx("10.0.0.1/24")}
	r.converge(resources(a))
	r.ip("addr", "del", "10.0.0.1/24", "dev", "wan0")
	if changes := r.converge(nil); len(changes) != 0 {
		t.Fatalf("changes for a gone address: %s", plantest.Describe(changes))
	}
	if !r.rec.Has(KindAddress, a.recordKey()) {
		t.Fatal("observe wrote the record")
	}
	must(t, r.d.PruneRecord())
	if !r.rec.Empty() {
		t.Fatalf("not pruned: %v", r.rec.Keys(KindAddress))
	}
}

// NODAD: an IPv6 address braid adds is a valid route source in the same
// pass, even on a link without carrier, where DAD would keep it tentative.
func TestAddrIPv6UsableAsSourceAtOnce(t *testing.T) {
	r := newRig(t)
	r.veth("wan0", "wan0p") // wan0p stays down: no carrier on wan0
	want := resources[plan.Resource](
		Link{Name: "wan0", Up: true},
		Addr{Link: "wan0", Prefix: pfx("fd00::1/64")},
		Route{Table: TableSteer, Dst: pfx("2001:db8::/48"), Link: "wan0", Src: ip("fd00::1")},
	)
	if changes := r.converge(want); len(changes) != 3 {
		t.Fatalf("changes:%s", plantest.Describe(changes))
	}
	r.settled(want)
}
