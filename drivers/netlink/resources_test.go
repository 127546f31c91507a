package netlink

import (
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
	for _, tt := range []struct {
		r    plan.Resource
		want string
	}{
		{Route{Table: TableMain, Dst: pfx("0.0.0.0/0"), Metric: 10}, "route[main 0.0.0.0/0 metric 10]"},
		{Route{Table: 7100, Dst: pfx("2001:db8::/32"), Metric: 1024}, "route[7100 2001:db8::/32 metric 1024]"},
		{Route{Table: 0, Dst: netip.Prefix{}, Metric: -1}, "route[0 invalid Prefix metric -1]"},
		{Rule{Priority: 7000}, "rule[inet pref 7000]"},
		{Rule{Priority: 7000, IPv6: true}, "rule[inet6 pref 7000]"},
		{Rule{Priority: 7100, From: pfx("10.0.0.1/32")}, "rule[inet pref 7100 from 10.0.0.1/32]"},
		{Rule{Priority: 7300, From: pfx("fd00::/64"), To: pfx("2001:db8::/32")}, "rule[inet6 pref 7300 from fd00::/64 to 2001:db8::/32]"},
		{Rule{Priority: 0, To: pfx("198.51.100.0/24")}, "rule[inet pref 0 to 198.51.100.0/24]"},
	} {
		if got := tt.r.Address(); got != tt.want {
			t.Errorf("Address() = %q, want %q", got, tt.want)
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
		{Route{Type: Unreachable, Link: "lo"}, "type=unreachable dev=lo"},
		{Route{Type: routeTypeOf(unix.RTN_BLACKHOLE)}, "type=blackhole dev="},
		{Route{Type: routeTypeOf(unix.RTN_UNICAST), Link: "wan0"}, "dev=wan0"},
		{Route{Type: RouteType(200)}, "type=200 dev="},
	} {
		if got := plan.Describe(c.r); got != c.want {
			t.Errorf("%+v reads %q, want %q", c.r, got, c.want)
		}
	}
}
