package netlink

import (
	"fmt"
	"net/netip"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/braid-router/braid/reconcile/plan"
)

type other struct{}

func (other) Address() string      { return "other" }
func (other) Fields() []plan.Field { return nil }

// The hand-built addresses read exactly as the fmt renderings they replace.
func TestAddressRendering(t *testing.T) {
	for _, r := range []Route{
		{Table: TableMain, Dst: pfx("0.0.0.0/0"), Metric: 10},
		{Table: 7100, Dst: pfx("2001:db8::/32"), Metric: 1024},
		{Table: 0, Dst: netip.Prefix{}, Metric: -1},
	} {
		want := fmt.Sprintf("route[%s %s metric %d]", TableName(r.Table), r.Dst, r.Metric)
		if got := r.Address(); got != want {
			t.Errorf("Route.Address() = %q, want %q", got, want)
		}
	}
	for _, r := range []Rule{
		{Priority: 7000},
		{Priority: 7000, IPv6: true},
		{Priority: 7100, From: pfx("10.0.0.1/32")},
		{Priority: 7300, From: pfx("fd00::/64"), To: pfx("2001:db8::/32")},
		{Priority: 0, To: pfx("198.51.100.0/24")},
	} {
		want := fmt.Sprintf("rule[%s pref %d", r.Family(), r.Priority)
		if r.From.IsValid() {
			want += " from " + r.From.String()
		}
		if r.To.IsValid() {
			want += " to " + r.To.String()
		}
		want += "]"
		if got := r.Address(); got != want {
			t.Errorf("Rule.Address() = %q, want %q", got, want)
		}
	}
}

func TestOwnsAndName(t *testing.T) {
	d := &Driver{}
	if d.Name() != "netlink" {
		t.Fatal(d.Name())
	}
	for _, r := range []plan.Resource{Link{}, Sysctl{}, Addr{}, Route{}, Rule{}} {
		if !d.Owns(r) {
			t.Errorf("does not own %T", r)
		}
	}
	if d.Owns(plan.Resource(other{})) {
		t.Error("owns a foreign resource type")
	}
}

// A route's type reads as iproute2 names it, and only when it is not
// unicast.
func TestRouteTypeRendering(t *testing.T) {
	for _, c := range []struct {
		r    Route
		want string
	}{
		{Route{Link: "wan0"}, "dev=wan0"},
		{Route{Type: Local, Link: "lo"}, "type=local dev=lo"},
		{Route{Type: routeTypeOf(unix.RTN_BLACKHOLE)}, "type=blackhole dev="},
		{Route{Type: routeTypeOf(unix.RTN_UNICAST), Link: "wan0"}, "dev=wan0"},
		{Route{Type: RouteType(200)}, "type=200 dev="},
	} {
		if got := plan.Describe(c.r); got != c.want {
			t.Errorf("%+v reads %q, want %q", c.r, got, c.want)
		}
	}
}
