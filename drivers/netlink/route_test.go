package netlink

import (
	"errors"
	"os/exec"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/braid-router/braid/internal/nstest"
	"github.com/braid-router/braid/internal/plantest"
	"github.com/braid-router/braid/reconcile/plan"
)

// uplink gives the rig an up link wan0 with 10.0.0.1/24 and fd00::1/64
// (kernel prefix routes, so that gateways are reachable).
func (r *rig) uplink() {
	r.t.Helper()
	addUplink(r.t, r.ns)
}

// addUplink gives namespace ns the uplink of rig.uplink.
func addUplink(t testing.TB, ns string) {
	t.Helper()
	for _, args := range [][]string{
		{"link", "add", "name", "wan0", "type", "veth", "peer", "name", "wan0p"},
		{"link", "set", "dev", "wan0", "up"},
		{"link", "set", "dev", "wan0p", "up"},
		{"addr", "add", "10.0.0.1/24", "dev", "wan0"},
		{"addr", "add", "fd00::1/64", "dev", "wan0", "nodad"},
	} {
		nstest.In(t, ns, "ip", args...)
	}
}

// braidRoutes lists braid's routes as ip(8) shows them.
func (r *rig) braidRoutes() string {
	r.t.Helper()
	return r.ip("-4", "route", "show", "table", "all", "proto", "98") +
		r.ip("-6", "route", "show", "table", "all", "proto", "98")
}

func testRoutes() []Route {
	return []Route{
		{Table: TableMain, Dst: pfx("0.0.0.0/0"), Metric: 10, Gateway: ip("10.0.0.254"), Link: "wan0"},
		{Table: 7101, Dst: pfx("0.0.0.0/0"), Gateway: ip("10.0.0.254"), Link: "wan0", Src: ip("10.0.0.1")},
		{Table: TableSteer, Dst: pfx("198.51.100.0/24"), Link: "wan0"},
		{Table: TableMain, Dst: pfx("::/0"), Metric: 10, Gateway: ip("fd00::fe"), Link: "wan0"},
		// Metric 0: the kernel stores 1024 for IPv6.
		{Table: 7101, Dst: pfx("::/0"), Gateway: ip("fd00::fe"), Link: "wan0", Src: ip("fd00::1")},
		{Table: TableSteer, Dst: pfx("2001:db8:1::/48"), Link: "wan0"},
	}
}

func TestRouteConvergeUpdateDelete(t *testing.T) { bothWays(t, testRouteConvergeUpdateDelete) }

func testRouteConvergeUpdateDelete(t *testing.T, r *rig) {
	r.uplink()
	routes := testRoutes()
	want := resources(routes...)

	var changes []plan.Change
	n := r.wrote(func() { changes = r.converge(want) })
	if len(changes) != 6 || n != 6 {
		t.Fatalf("%d changes, %d writes:%s", len(changes), n, plantest.Describe(changes))
	}
	for _, c := range changes {
		if c.Action != plan.Create {
			t.Fatalf("not a create: %s %s", c.Action, c.Address())
		}
	}
	r.settled(want)
	got := r.braidRoutes()
	for _, s := range []string{
		"default via 10.0.0.254 dev wan0 metric 10",
		"default via 10.0.0.254 dev wan0 table 7101 src 10.0.0.1",
		"198.51.100.0/24 dev wan0 table 7100 scope link",
		"default via fd00::fe dev wan0 metric 10",
		"default via fd00::fe dev wan0 table 7101 src fd00::1 metric 1024",
		"2001:db8:1::/48 dev wan0 table 7100 metric 1024",
	} {
		if !strings.Contains(got, s) {
			t.Errorf("missing %q in:\n%s", s, got)
		}
	}
	// Only braid's routes are observed: the kernel's own (prefix, local,
	// multicast, fe80::/64) are not.
	live := r.observe(nil)
	if len(live) != 6 {
		t.Fatalf("observed %d routes, want braid's 6: %v", len(live), live)
	}
	// Link-scope routes come first, so deletes remove gateway routes first.
	for i, o := range live {
		if gw := o.Resource.(Route).Gateway.IsValid(); gw != (i >= 2) {
			t.Fatalf("observe order: %v", live)
		}
	}

	// Update: a new gateway replaces the route in place (no second route).
	routes[0].Gateway = ip("10.0.0.253")
	routes[3].Gateway = ip("fd00::fd")
	want = resources(routes...)
	n = r.wrote(func() { changes = r.converge(want) })
	plantest.WantActions(t, changes, "~"+routes[0].Address(), "~"+routes[3].Address())
	if n != 2 {
		t.Errorf("update writes = %d", n)
	}
	r.settled(want)
	got = r.braidRoutes()
	if strings.Contains(got, "10.0.0.254 dev wan0 metric 10") || strings.Contains(got, "fd00::fe dev wan0 metric 10") ||
		!strings.Contains(got, "default via 10.0.0.253 dev wan0 metric 10") || !strings.Contains(got, "default via fd00::fd dev wan0 metric 10") {
		t.Fatalf("after update:\n%s", got)
	}

	// Drift: a braid route deleted by hand comes back.
	r.ip("-6", "route", "del", "2001:db8:1::/48", "table", "7100")
	plantest.WantActions(t, r.converge(want), "+"+routes[5].Address())
	r.settled(want)

	// Delete all but one.
	want = resources(routes[0])
	n = r.wrote(func() { changes = r.converge(want) })
	if len(changes) != 5 || n != 5 {
		t.Fatalf("delete: %d changes, %d writes:%s", len(changes), n, plantest.Describe(changes))
	}
	r.settled(want)
	if got := strings.TrimSpace(r.braidRoutes()); got != "default via 10.0.0.253 dev wan0 metric 10" {
		t.Fatalf("after delete:\n%s", got)
	}
}

func TestRouteApplyIsIdempotent(t *testing.T) { bothWays(t, testRouteApplyIsIdempotent) }

func testRouteApplyIsIdempotent(t *testing.T, r *rig) {
	r.uplink()
	for _, rt := range testRoutes() {
		if n := r.wrote(func() { must(t, r.apply(planCreate(rt))) }); n != 1 {
			t.Fatalf("create %s: %d writes", rt.Address(), n)
		}
		// EEXIST from braid's own equal route: already so.
		if n := r.wrote(func() { must(t, r.apply(planCreate(rt))) }); n != 0 {
			t.Fatalf("create %s again: %d writes", rt.Address(), n)
		}
		// EEXIST from braid's own route that differs: brought in line.
		moved := rt
		moved.Link = "wan0"
		if rt.Dst.Addr().Is4() {
			moved.Src = ip("10.0.0.1")
		} else {
			moved.Src = ip("fd00::1")
		}
		if moved.Src != rt.Src {
			if n := r.wrote(func() { must(t, r.apply(planCreate(moved))) }); n != 1 {
				t.Fatalf("create %s with another source: %d writes", rt.Address(), n)
			}
		}
		if n := r.wrote(func() { must(t, r.apply(planDelete(rt))) }); n != 1 {
			t.Fatalf("delete %s: %d writes", rt.Address(), n)
		}
		// ESRCH/ENOENT: already so.
		if n := r.wrote(func() { must(t, r.apply(planDelete(rt))) }); n != 0 {
			t.Fatalf("delete %s again: %d writes", rt.Address(), n)
		}
	}
	if got := r.braidRoutes(); got != "" {
		t.Fatalf("routes left:\n%s", got)
	}
}

func TestRouteForeignIsAConflict(t *testing.T) { bothWays(t, testRouteForeignIsAConflict) }

func testRouteForeignIsAConflict(t *testing.T, r *rig) {
	r.uplink()
	r.ip("route", "add", "203.0.113.0/24", "via", "10.0.0.254", "dev", "wan0", "metric", "5", "proto", "static")
	r.ip("-6", "route", "add", "2001:db8:5::/48", "via", "fd00::fe", "dev", "wan0", "metric", "5")
	r.ip("route", "add", "default", "via", "10.0.0.254", "table", "7100")
	before := r.ip("-d", "route", "show", "table", "all") + r.ip("-d", "-6", "route", "show", "table", "all")

	mine := []Route{
		{Table: TableMain, Dst: pfx("203.0.113.0/24"), Metric: 5, Gateway: ip("10.0.0.253"), Link: "wan0"},
		{Table: TableMain, Dst: pfx("2001:db8:5::/48"), Metric: 5, Gateway: ip("fd00::fd"), Link: "wan0"},
		{Table: TableSteer, Dst: pfx("0.0.0.0/0"), Gateway: ip("10.0.0.253"), Link: "wan0"},
	}
	other := Route{Table: TableMain, Dst: pfx("203.0.113.0/24"), Metric: 6, Gateway: ip("10.0.0.253"), Link: "wan0"}
	want := resources(append(mine, other)...)
	changes, conflicts := r.plan(want)
	plantest.WantActions(t, changes, "+"+other.Address())
	if len(conflicts) != 3 {
		t.Fatalf("conflicts: %v", conflicts)
	}
	for _, c := range conflicts {
		t.Log(c)
		if !strings.Contains(c.Foreign, "proto=") {
			t.Errorf("conflict does not name the foreign protocol: %v", c)
		}
	}
	for _, c := range changes {
		must(t, r.apply(c))
	}
	// Applied anyway (the engine would not), a create is refused as a
	// conflict.
	for _, rt := range mine {
		err := r.apply(planCreate(rt))
		if !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "add route "+rt.Address()) {
			t.Fatalf("create over a foreign route: %v", err)
		}
	}
	r.ip("route", "del", "203.0.113.0/24", "metric", "6")
	after := r.ip("-d", "route", "show", "table", "all") + r.ip("-d", "-6", "route", "show", "table", "all")
	if before != after {
		t.Fatalf("foreign routes changed:\n%s\n---\n%s", before, after)
	}
	// Nothing desired: the foreign routes are not braid's to delete.
	if changes := r.converge(nil); len(changes) != 0 {
		t.Fatalf("changes: %s", plantest.Describe(changes))
	}
}

func TestRouteUnreachableGatewayIsRefused(t *testing.T) {
	bothWays(t, testRouteUnreachableGatewayIsRefused)
}

func testRouteUnreachableGatewayIsRefused(t *testing.T, r *rig) {
	r.uplink()
	for _, rt := range []Route{
		{Table: TableMain, Dst: pfx("0.0.0.0/0"), Gateway: ip("192.0.2.1"), Link: "wan0"},
		{Table: TableSteer, Dst: pfx("::/0"), Gateway: ip("2001:db8:ff::1"), Link: "wan0"},
	} {
		var err error
		if n := r.wrote(func() { err = r.apply(planCreate(rt)) }); n != 0 {
			t.Errorf("refused write counted")
		}
		if err == nil {
			t.Fatalf("route via %s accepted", rt.Gateway)
		}
		t.Log(err)
		prefix := "add route " + rt.Address() + ": gateway " + rt.Gateway.String() + " is not reachable on wan0: "
		if !strings.HasPrefix(err.Error(), prefix) || !(errors.Is(err, unix.ENETUNREACH) || errors.Is(err, unix.EHOSTUNREACH)) {
			t.Fatalf("error %q (%#v), want prefix %q and ENETUNREACH", err, errors.Unwrap(err), prefix)
		}
	}
	// A missing link is named too.
	err := r.apply(planCreate(Route{Table: TableMain, Dst: pfx("0.0.0.0/0"), Link: "wan7"}))
	if !errors.Is(err, ErrNoLink) || !strings.Contains(err.Error(), "link wan7: no such interface") {
		t.Fatalf("route on a missing link: %v", err)
	}
}

// A link recreated under the same name gets a new index: the cached one is
// refreshed instead of failing.
func TestRouteLinkRecreated(t *testing.T) { bothWays(t, testRouteLinkRecreated) }

func testRouteLinkRecreated(t *testing.T, r *rig) {
	r.uplink()
	rt := Route{Table: TableSteer, Dst: pfx("198.51.100.0/24"), Link: "wan0"}
	r.converge(resources(rt))
	r.ip("link", "del", "dev", "wan0")
	r.uplink()
	must(t, r.apply(planCreate(rt)))
	if got := r.braidRoutes(); !strings.Contains(got, "198.51.100.0/24 dev wan0") {
		t.Fatalf("routes:\n%s", got)
	}
}

// Local routes (the proxy table's "local default dev lo") converge like
// the others, with their type shown; with the fwmark rule they deliver
// marked packets to the box itself, whatever their destination. A change
// of type is an update of the same route, and a foreign local route where
// braid wants one is a conflict.
func TestRouteLocal(t *testing.T) { bothWays(t, testRouteLocal) }

func testRouteLocal(t *testing.T, r *rig) {
	r.uplink()
	r.ip("link", "set", "dev", "lo", "up")
	local := []Route{
		{Table: TableProxy, Dst: pfx("0.0.0.0/0"), Type: Local, Link: "lo"},
		{Table: TableProxy, Dst: pfx("::/0"), Metric: 1024, Type: Local, Link: "lo"},
	}
	rules := []Rule{
		{Priority: PrioProxy, Mark: TableProxy, Table: TableProxy, SuppressPrefixlen: -1},
		{Priority: PrioProxy, IPv6: true, Mark: TableProxy, Table: TableProxy, SuppressPrefixlen: -1},
	}
	want := append(resources(local...), resources(rules...)...)
	changes := r.converge(want)
	plantest.WantActions(t, changes, "+route[7190 0.0.0.0/0 metric 0]", "+route[7190 ::/0 metric 1024]",
		"+rule[inet pref 6900 fwmark 0x1c16]", "+rule[inet6 pref 6900 fwmark 0x1c16]")
	if got := plan.Describe(local[0]); got != "type=local dev=lo" {
		t.Errorf("a local route reads %q", got)
	}
	r.settled(want)
	got := r.braidRoutes()
	for _, s := range []string{
		"local default dev lo table 7190 scope host",
		"local default dev lo table 7190 metric 1024",
	} {
		if !strings.Contains(got, s) {
			t.Errorf("missing %q in:\n%s", s, got)
		}
	}
	// Marked, any destination is the box's; unmarked, it is routed.
	for _, c := range []struct{ dst, mark, want string }{
		{"198.51.100.7", "7190", "local 198.51.100.7 dev lo table 7190"},
		{"2001:db8:7::1", "7190", "local 2001:db8:7::1 from :: dev lo table 7190"},
		{"10.0.0.7", "0", "10.0.0.7 dev wan0"},
	} {
		if got := r.ip("route", "get", c.dst, "mark", c.mark); !strings.Contains(got, c.want) {
			t.Errorf("ip route get %s mark %s: %q, want %q", c.dst, c.mark, got, c.want)
		}
	}
	// The type changes in place.
	unicast := local[0]
	unicast.Type, unicast.Link, unicast.Gateway = Unicast, "wan0", ip("10.0.0.254")
	want = append(resources(unicast, local[1]), resources(rules...)...)
	changes, _ = r.plan(want)
	plantest.WantActions(t, changes, "~route[7190 0.0.0.0/0 metric 0]")
	if got := plan.Describe(changes[0].Before) + " -> " + plan.Describe(changes[0].After); got != "type=local dev=lo -> via=10.0.0.254 dev=wan0" {
		t.Errorf("change of type: %s", got)
	}
	r.converge(want)
	if got := r.braidRoutes(); !strings.Contains(got, "default via 10.0.0.254 dev wan0 table 7190") || strings.Contains(got, "local default dev lo table 7190 scope host") {
		t.Errorf("after the change of type:\n%s", got)
	}
	// Nothing desired: braid's local routes go, the kernel's stay.
	r.converge(nil)
	if got := r.braidRoutes(); got != "" {
		t.Errorf("routes left:\n%s", got)
	}
	if got := r.ip("route", "show", "table", "local"); !strings.Contains(got, "local 10.0.0.1 dev wan0") {
		t.Errorf("the kernel's local routes:\n%s", got)
	}
	// Someone else's local route where braid wants one.
	r.ip("route", "add", "local", "default", "dev", "lo", "table", "7190")
	_, conflicts := r.plan(resources(local[0]))
	if len(conflicts) != 1 || conflicts[0].Address != local[0].Address() || !strings.Contains(conflicts[0].Foreign, "type=local") {
		t.Errorf("conflicts: %v", conflicts)
	}
}

// Unreachable routes (the unused rest of a delegated IPv6 prefix)
// converge like the others: the kernel answers what they match with
// ICMPv6 destination unreachable, a more specific route (the LAN's /64)
// still wins, and a second plan is empty (the kernel reports the route on
// lo, as braid asks for it).
func TestRouteUnreachable(t *testing.T) { bothWays(t, testRouteUnreachable) }

func testRouteUnreachable(t *testing.T, r *rig) {
	r.uplink()
	r.ip("link", "set", "dev", "lo", "up")
	rest := Route{Table: TableMain, Dst: pfx("2001:db8:f100::/56"), Metric: 1024, Type: Unreachable, Link: "lo"}
	lan := Route{Table: TableMain, Dst: pfx("2001:db8:f100:1::/64"), Metric: 256, Link: "wan0"}
	want := resources(rest, lan)
	changes := r.converge(want)
	plantest.WantActions(t, changes, "+route[main 2001:db8:f100::/56 metric 1024]", "+route[main 2001:db8:f100:1::/64 metric 256]")
	if got := plan.Describe(rest); got != "type=unreachable dev=lo" {
		t.Errorf("an unreachable route reads %q", got)
	}
	r.settled(want)
	if got := r.braidRoutes(); !strings.Contains(got, "unreachable 2001:db8:f100::/56 dev lo") {
		t.Errorf("routes:\n%s", got)
	}
	out, err := exec.Command("ip", "-n", r.ns, "-6", "route", "get", "2001:db8:f100:2::1").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "No route to host") {
		t.Errorf("ip route get into the rest of the prefix: %v %q, want No route to host", err, out)
	}
	if got := r.ip("-6", "route", "get", "2001:db8:f100:1::1"); !strings.Contains(got, "dev wan0") {
		t.Errorf("ip route get into the LAN's /64: %q, want dev wan0", got)
	}
	r.converge(nil)
	if got := r.braidRoutes(); got != "" {
		t.Errorf("routes left:\n%s", got)
	}
}
