package compile

import (
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/braid-router/braid/api"
	nl "github.com/braid-router/braid/drivers/netlink"
	"github.com/braid-router/braid/facts"
	"github.com/braid-router/braid/reconcile/plan"
	"github.com/braid-router/braid/session"
	"github.com/braid-router/braid/sessions/health"
	"github.com/braid-router/braid/sessions/ra"
)

var (
	slaacAddr = netip.MustParsePrefix("2001:db8:102:0:1234:5678:9abc:def0/64")
	routerLL  = netip.MustParseAddr("fe80::1")
)

// raFacts is what the RA session of isp2 publishes: the address and,
// with router set, the default router.
func raFacts(link string, address, router bool) facts.Set {
	var fs []facts.Fact
	if address {
		fs = append(fs, facts.Fact{SLAAC: &facts.SLAAC{Uplink: "isp2", Link: link, Address: slaacAddr},
			Expires: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)})
	}
	if router {
		fs = append(fs, facts.Fact{Router6: &facts.Router6{Uplink: "isp2", Router: routerLL, Link: link},
			Expires: time.Date(2029, 1, 1, 0, 0, 0, 0, time.UTC)})
	}
	return facts.Set{Slots: map[string]facts.Slot{"ra/isp2": {Facts: fs}}}
}

// raSpec is the lab's shape with isp2's IPv6 either static (the address
// and router of raFacts) or from router advertisements; isp2 is an MPTCP
// path, tracked, and the destination of a routes: entry.
func raSpec(fromRA bool) *api.RouterSpec {
	spec := twoUplinks()
	u := &spec.Uplinks[1]
	u.IPv6 = &api.UplinkIPv6{Static: &api.Static{Address: slaacAddr.String(), Gateway: routerLL.String()}}
	if fromRA {
		u.IPv6 = &api.UplinkIPv6{RA: &api.RA{}}
	}
	u.MPTCP = &api.MPTCP{Mode: api.MPTCPSubflow}
	u.Health = &api.Health{Probes: []api.Probe{{ICMP: "2001:db8:ffff::80"}}, Interval: "1s", Timeout: "1s", FailAfter: 3, RecoverAfter: 5}
	spec.Routes = []api.RouteRule{{To: []string{"2001:db8:ffff:1::/64"}, Via: "isp2"}}
	return spec
}

// An address and a router learnt from adverts compile to exactly what the
// same static address and gateway compile to: the address, its connected
// routes in the main table and the uplink's, the default routes in the
// uplink's table and, by priority, the main one (via the router's
// link-local address on the uplink's link), the source rule, the MPTCP
// endpoint, the routes: entries, the tracker's source. Only the kernel's
// accept_ra, off, and the RA session are added.
func TestCompileRAIsAStaticAddress(t *testing.T) {
	static, err := Router(raSpec(false), facts.Set{})
	if err != nil {
		t.Fatal(err)
	}
	fromRA, err := Router(raSpec(true), raFacts("wan2", true, true))
	if err != nil {
		t.Fatal(err)
	}
	want := addresses(static.Resources)
	acceptRA := "sysctl[net.ipv6.conf.wan2.accept_ra] value=0"
	got := slices.DeleteFunc(addresses(fromRA.Resources), func(s string) bool { return s == acceptRA })
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("from adverts:\n%s\nstatic:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if len(got) != len(fromRA.Resources)-1 {
		t.Errorf("no %s", acceptRA)
	}
	all := strings.Join(addresses(fromRA.Resources), "\n")
	wantInAndNot(t, all, []string{
		"address[wan2 2001:db8:102:0:1234:5678:9abc:def0/64]",
		"route[main 2001:db8:102::/64 metric 256] dev=wan2",
		"route[7102 2001:db8:102::/64 metric 256] dev=wan2",
		"route[7102 ::/0 metric 1024] via=fe80::1 dev=wan2",
		"route[main ::/0 metric 20] via=fe80::1 dev=wan2",
		"route[7100 2001:db8:ffff:1::/64 metric 1024] via=fe80::1 dev=wan2",
		"rule[inet6 pref 7200 from 2001:db8:102:0:1234:5678:9abc:def0/128] lookup=7102",
		"mptcp.endpoint[2001:db8:102:0:1234:5678:9abc:def0] dev=wan2",
	}, nil)
	if !reflect.DeepEqual(fromRA.Notes, static.Notes) {
		t.Errorf("notes = %v, want the static spec's %v: none about the adverts once they are learnt", fromRA.Notes, static.Notes)
	}
	var sessions []string
	for _, s := range fromRA.Sessions {
		sessions = append(sessions, s.Address()+" "+plan.Describe(s))
		if s.Kind == health.Kind && s.Name == "isp2" {
			if c := s.Config.(health.Config); !slices.Contains(c.Sources, slaacAddr.Addr()) || s.Wait != "" {
				t.Errorf("isp2's tracker: sources %v, wait %q; want the SLAAC address as its IPv6 source", c.Sources, s.Wait)
			}
		}
	}
	if !slices.ContainsFunc(fromRA.Sessions, func(s session.Spec) bool {
		return reflect.DeepEqual(s, session.Spec{Kind: ra.Kind, Name: "isp2", Config: ra.Config{Uplink: "isp2", Interface: "wan2"}})
	}) {
		t.Errorf("sessions %q, want session[ra/isp2] on wan2", sessions)
	}
}

// What is compiled while the adverts are partly learnt, or learnt on
// another link.
func TestCompileRAPartialFacts(t *testing.T) {
	tests := []struct {
		name        string
		facts       facts.Set
		addr, route bool // isp2's SLAAC address; its IPv6 default routes
	}{
		{"nothing learnt: waiting", facts.Set{}, false, false},
		{"address and router", raFacts("wan2", true, true), true, true},
		{"the router only: no source to leave from", raFacts("wan2", false, true), false, false},
		{"the address only (a router lifetime of zero): no default routes", raFacts("wan2", true, false), true, false},
		{"learnt on another link (the spec moved the uplink)", raFacts("eth9", true, true), false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := Router(raSpec(true), tt.facts)
			if err != nil {
				t.Fatal(err)
			}
			got := strings.Join(addresses(d.Resources), "\n")
			if has := strings.Contains(got, "address[wan2 2001:db8:102:"); has != tt.addr {
				t.Errorf("address present = %v, want %v", has, tt.addr)
			}
			for _, r := range []string{"route[7102 ::/0 metric 1024]", "route[main ::/0 metric 20]", "route[7100 2001:db8:ffff:1::/64"} {
				if has := strings.Contains(got, r); has != tt.route {
					t.Errorf("%s present = %v, want %v", r, has, tt.route)
				}
			}
			if !strings.Contains(got, "sysctl[net.ipv6.conf.wan2.accept_ra] value=0") {
				t.Error("accept_ra is not off on the RA uplink")
			}
			waits := false
			for _, n := range d.Notes {
				waits = waits || strings.Contains(n.Message, "wait for the uplink's router advertisements")
			}
			if waits == tt.route {
				t.Errorf("notes %v: the routes: entry waits = %v, want %v", d.Notes, waits, !tt.route)
			}
		})
	}
	// An unhealthy uplink's IPv6 default route leaves the main table too.
	f := raFacts("wan2", true, true)
	f.Slots["health/isp2"] = facts.Slot{Facts: []facts.Fact{{Health: &facts.Health{Uplink: "isp2"}, Process: true}}}
	d, err := Router(raSpec(true), f)
	if err != nil {
		t.Fatal(err)
	}
	wantInAndNot(t, strings.Join(addresses(d.Resources), "\n"), []string{"route[7102 ::/0 metric 1024] via=fe80::1"}, []string{"route[main ::/0 metric 20]"})
	// accept_ra is only for RA uplinks.
	for _, r := range d.Resources {
		if s, ok := r.(nl.Sysctl); ok && strings.HasSuffix(s.Name, ".accept_ra") && s.Name != "net.ipv6.conf.wan2.accept_ra" {
			t.Errorf("%s on a static uplink", s.Address())
		}
	}
	if got := d.Sessions; !reflect.DeepEqual(got[0], session.Spec{Kind: ra.Kind, Name: "isp2", Config: ra.Config{Uplink: "isp2", Interface: "wan2"}}) {
		t.Errorf("first session %+v", got[0])
	}
}
