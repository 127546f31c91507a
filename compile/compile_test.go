package compile

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/braid-router/braid/api"
	nl "github.com/braid-router/braid/drivers/netlink"
	nft "github.com/braid-router/braid/drivers/nftables"
	"github.com/braid-router/braid/facts"
	"github.com/braid-router/braid/reconcile"
	"github.com/braid-router/braid/reconcile/plan"
)

// twoUplinks is the lab's shape: a LAN and two static uplinks.
func twoUplinks() *api.RouterSpec {
	return &api.RouterSpec{
		LAN: &api.LAN{Interface: "lan0", Addresses: []string{"192.168.50.1/24", "2001:db8:50::1/64"}},
		Uplinks: []api.Uplink{
			{Name: "isp1", Interface: "wan1", Priority: 10, Table: 7101,
				IPv4: &api.UplinkIPv4{Static: &api.Static{Address: "10.101.0.2/24", Gateway: "10.101.0.1"}},
				IPv6: &api.UplinkIPv6{Static: &api.Static{Address: "2001:db8:101::2/64", Gateway: "2001:db8:101::1"}}},
			{Name: "isp2", Interface: "wan2", Priority: 20, Table: 7102, MTU: 1492,
				IPv4: &api.UplinkIPv4{Static: &api.Static{Address: "10.102.0.2/24", Gateway: "10.102.0.1"}}},
		},
	}
}

// compileLab compiles specs/lab.yaml with no facts.
func compileLab(t *testing.T) reconcile.Desired {
	t.Helper()
	doc, err := api.Load("../specs/lab.yaml")
	if err != nil {
		t.Fatal(err)
	}
	d, err := Router(doc.Router, facts.Set{})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// compileOrWantErr compiles spec with no facts. With wantErr set, it checks
// that compiling fails with an error containing wantErr and returns false.
func compileOrWantErr(t *testing.T, spec *api.RouterSpec, wantErr string) (reconcile.Desired, bool) {
	t.Helper()
	d, err := Router(spec, facts.Set{})
	if wantErr != "" {
		if err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Fatalf("err = %v, want %q", err, wantErr)
		}
		return d, false
	}
	if err != nil {
		t.Fatal(err)
	}
	return d, true
}

// wantInAndNot checks that got contains each of want and none of absent.
func wantInAndNot(t *testing.T, got string, want, absent []string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(got, w) {
			t.Errorf("missing %q in\n%s", w, got)
		}
	}
	for _, a := range absent {
		if strings.Contains(got, a) {
			t.Errorf("unexpected %q in\n%s", a, got)
		}
	}
}

func addresses(rs []plan.Resource) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.Address()+" "+plan.Describe(r))
	}
	return out
}

func TestCompileTwoUplinks(t *testing.T) {
	d, err := Router(twoUplinks(), facts.Set{})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"link[lan0] up=true",
		"link[wan1] up=true",
		"link[wan2] up=true mtu=1492",
		"sysctl[net.ipv4.ip_forward] value=1",
		"sysctl[net.ipv6.conf.all.forwarding] value=1",
		"sysctl[net.ipv4.conf.lan0.promote_secondaries] value=1",
		"sysctl[net.ipv4.conf.wan1.rp_filter] value=2",
		"sysctl[net.ipv4.conf.wan1.ignore_routes_with_linkdown] value=1",
		"sysctl[net.ipv6.conf.wan1.ignore_routes_with_linkdown] value=1",
		"sysctl[net.ipv4.conf.wan1.promote_secondaries] value=1",
		"sysctl[net.ipv4.conf.wan2.rp_filter] value=2",
		"sysctl[net.ipv4.conf.wan2.ignore_routes_with_linkdown] value=1",
		"sysctl[net.ipv6.conf.wan2.ignore_routes_with_linkdown] value=1",
		"sysctl[net.ipv4.conf.wan2.promote_secondaries] value=1",
		"address[lan0 192.168.50.1/24] link=lan0 prefix=192.168.50.1/24",
		"address[lan0 2001:db8:50::1/64] link=lan0 prefix=2001:db8:50::1/64",
		"address[wan1 10.101.0.2/24] link=wan1 prefix=10.101.0.2/24",
		"address[wan1 2001:db8:101::2/64] link=wan1 prefix=2001:db8:101::2/64",
		"address[wan2 10.102.0.2/24] link=wan2 prefix=10.102.0.2/24",
		"route[main 192.168.50.0/24 metric 0] dev=lan0 src=192.168.50.1",
		"route[main 2001:db8:50::/64 metric 256] dev=lan0",
		"route[main 10.101.0.0/24 metric 0] dev=wan1 src=10.101.0.2",
		"route[7101 10.101.0.0/24 metric 0] dev=wan1 src=10.101.0.2",
		"route[main 2001:db8:101::/64 metric 256] dev=wan1",
		"route[7101 2001:db8:101::/64 metric 256] dev=wan1",
		"route[main 10.102.0.0/24 metric 0] dev=wan2 src=10.102.0.2",
		"route[7102 10.102.0.0/24 metric 0] dev=wan2 src=10.102.0.2",
		"route[7101 0.0.0.0/0 metric 0] via=10.101.0.1 dev=wan1",
		"route[main 0.0.0.0/0 metric 10] via=10.101.0.1 dev=wan1",
		"route[7101 ::/0 metric 1024] via=2001:db8:101::1 dev=wan1",
		"route[main ::/0 metric 10] via=2001:db8:101::1 dev=wan1",
		"route[7102 0.0.0.0/0 metric 0] via=10.102.0.1 dev=wan2",
		"route[main 0.0.0.0/0 metric 20] via=10.102.0.1 dev=wan2",
		"rule[inet pref 7050 fwmark 0x1bbd] lookup=7101",
		"rule[inet6 pref 7050 fwmark 0x1bbd] lookup=7101",
		"rule[inet pref 7200 from 10.101.0.2/32] lookup=7101",
		"rule[inet6 pref 7200 from 2001:db8:101::2/128] lookup=7101",
		"rule[inet pref 7050 fwmark 0x1bbe] lookup=7102",
		"rule[inet6 pref 7050 fwmark 0x1bbe] lookup=7102",
		"rule[inet pref 7200 from 10.102.0.2/32] lookup=7102",
		"rule[inet pref 7000] lookup=main suppress_prefixlength=0",
		"rule[inet6 pref 7000] lookup=main suppress_prefixlength=0",
	}
	var got []string
	for _, line := range addresses(d.Resources) {
		if !strings.HasPrefix(line, "nft.") { // braid's table: compile_firewall_test.go
			got = append(got, line)
		}
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("desired state:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if len(d.Notes) != 0 {
		t.Errorf("notes = %v, want none for a spec this version converges", d.Notes)
	}
}

func TestCompileRoutes(t *testing.T) {
	tests := []struct {
		name   string
		routes []api.RouteRule
		want   []string // resources that must be present
		absent []string // addresses that must not be
		err    string
	}{
		{
			name:   "to prefixes go to the steering table, one lookup rule per family",
			routes: []api.RouteRule{{To: []string{"203.0.113.0/24", "2001:db8:ffff::/48"}, Via: "isp1"}},
			want: []string{
				"route[7100 203.0.113.0/24 metric 0] via=10.101.0.1 dev=wan1",
				"route[7100 2001:db8:ffff::/48 metric 1024] via=2001:db8:101::1 dev=wan1",
				"rule[inet pref 7300] lookup=7100",
				"rule[inet6 pref 7300] lookup=7100",
			},
		},
		{
			name:   "from prefixes are rules to the uplink table, before steering",
			routes: []api.RouteRule{{From: []string{"192.168.50.50/32"}, Via: "isp2"}},
			want:   []string{"rule[inet pref 7100 from 192.168.50.50/32] lookup=7102"},
			absent: []string{"rule[inet pref 7300]"},
		},
		{
			name:   "only IPv4 steering: no IPv6 lookup rule",
			routes: []api.RouteRule{{To: []string{"198.51.100.128/25"}, Via: "isp2"}},
			want:   []string{"route[7100 198.51.100.128/25 metric 0] via=10.102.0.1 dev=wan2", "rule[inet pref 7300] lookup=7100"},
			absent: []string{"rule[inet6 pref 7300]"},
		},
		{
			name:   "IPv6 destination via an uplink without IPv6",
			routes: []api.RouteRule{{To: []string{"2001:db8:ffff::/48"}, Via: "isp2"}},
			err:    "routes[0].to: 2001:db8:ffff::/48 via isp2: the uplink has no IPv6 gateway",
		},
		{
			name:   "unknown uplink",
			routes: []api.RouteRule{{To: []string{"203.0.113.0/24"}, Via: "lte"}},
			err:    `routes[0].via: no uplink "lte"`,
		},
		{
			name: "the same destination twice via two uplinks",
			routes: []api.RouteRule{
				{To: []string{"203.0.113.0/24"}, Via: "isp1"},
				{To: []string{"203.0.113.0/24"}, Via: "isp2"},
			},
			err: "route[7100 203.0.113.0/24 metric 0] is wanted twice",
		},
		{
			name: "the same destination twice via the same uplink is one route",
			routes: []api.RouteRule{
				{To: []string{"203.0.113.0/24"}, Via: "isp1"},
				{To: []string{"203.0.113.0/24"}, Via: "isp1"},
			},
			want: []string{"route[7100 203.0.113.0/24 metric 0] via=10.101.0.1 dev=wan1"},
		},
		{
			name:   "host bits of a destination are masked",
			routes: []api.RouteRule{{To: []string{"203.0.113.9/24"}, Via: "isp1"}},
			want:   []string{"route[7100 203.0.113.0/24 metric 0] via=10.101.0.1 dev=wan1"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := twoUplinks()
			spec.Routes = tt.routes
			d, ok := compileOrWantErr(t, spec, tt.err)
			if !ok {
				return
			}
			got := strings.Join(addresses(d.Resources), "\n")
			wantInAndNot(t, got, tt.want, tt.absent)
			for _, w := range tt.want {
				if strings.Count(got, w) > 1 {
					t.Errorf("%q appears twice", w)
				}
			}
		})
	}
}

func TestCompileOrder(t *testing.T) {
	spec := twoUplinks()
	spec.Routes = []api.RouteRule{{To: []string{"203.0.113.0/24"}, Via: "isp2"}, {From: []string{"192.168.50.7/32"}, Via: "isp1"}}
	d, err := Router(spec, facts.Set{})
	if err != nil {
		t.Fatal(err)
	}
	rank := func(r plan.Resource) int {
		switch r := r.(type) {
		case nl.Link:
			return 0
		case nl.Sysctl:
			return 1
		case nl.Addr:
			return 2
		case nl.Route:
			if r.Gateway.IsValid() {
				return 4
			}
			return 3
		case nl.Rule:
			return 5
		case nft.Table, nft.Chain, nft.Set, nft.Rule:
			return 6
		}
		t.Fatalf("unexpected resource %T", r)
		return 0
	}
	for i := 1; i < len(d.Resources); i++ {
		if rank(d.Resources[i-1]) > rank(d.Resources[i]) {
			t.Errorf("%s comes after %s: links, sysctls, addresses, connected routes, gateway routes, rules", d.Resources[i].Address(), d.Resources[i-1].Address())
		}
	}
}

func TestCompileNotes(t *testing.T) {
	spec := twoUplinks()
	spec.Management = &api.Management{Allow: []string{"192.168.50.0/24"}, Probes: []api.Probe{{TCP: "192.168.50.10:22"}}}
	spec.Uplinks[0].MPTCP = &api.MPTCP{Mode: api.MPTCPSubflow}
	spec.Uplinks[1].MPTCP = &api.MPTCP{Mode: api.MPTCPOff}
	spec.Uplinks[1].Health = &api.Health{Interval: "1s", Timeout: "1s"}
	spec.Firewall = &api.Firewall{Open: []api.OpenPort{{Port: 22}}}
	spec.Routes = []api.RouteRule{{To: []string{"203.0.113.0/24"}, Via: "isp1"}, {Domains: []string{"netflix.com"}, Via: "isp2"}, {Domains: []string{"nflxvideo.net"}, Via: "isp2"}}
	spec.Tunnels = []api.Tunnel{sixpe("isp1")}
	spec.Aggregation = &api.Aggregation{}
	spec.DNS = &api.DNS{}
	spec.LAN.IPv6 = &api.LANIPv6{FromTunnel: "sixpe", Advertise: true}
	d, err := Router(spec, facts.Set{})
	if err != nil {
		t.Fatal(err)
	}
	var sections []string
	for _, n := range d.Notes {
		sections = append(sections, n.Section)
		if !n.Waiting && !strings.Contains(n.Message, "not converged") {
			t.Errorf("note %s does not say it is not converged: %q", n.Section, n.Message)
		}
		if n.Waiting && !strings.Contains(n.Message, "waiting for the prefix delegated for tunnel/sixpe") {
			t.Errorf("note %s: %q", n.Section, n.Message)
		}
	}
	// The delegated prefix converges, and waits for its fact; so do dns
	// and routes[].domains.
	want := "lan.ipv6.fromTunnel"
	if got := strings.Join(sections, " "); got != want {
		t.Errorf("notes for %q, want %q", got, want)
	}
	// A DHCP uplink converges (no note); without a lease it contributes
	// its link and rp_filter only.
	spec = twoUplinks()
	spec.Uplinks[1].IPv4 = &api.UplinkIPv4{DHCP: &api.DHCPv4{VendorClass: "neufbox_braid"}}
	d, err = Router(spec, facts.Set{})
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Notes) != 0 {
		t.Errorf("notes = %v, want none", d.Notes)
	}
	for _, r := range d.Resources {
		if rt, ok := r.(nl.Route); ok && rt.Link == "wan2" {
			t.Errorf("route %s for a DHCP uplink without a lease", r.Address())
		}
	}
	// routes: via a DHCP uplink wait for its lease: a note, not an error.
	spec.Routes = []api.RouteRule{{To: []string{"203.0.113.0/24"}, Via: "isp2"}}
	d, err = Router(spec, facts.Set{})
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Notes) != 1 || d.Notes[0].Section != "routes[0].to" || !strings.Contains(d.Notes[0].Message, "wait for the uplink's DHCP lease") {
		t.Errorf("notes = %v", d.Notes)
	}
	// An uplink whose IPv6 comes from router advertisements is converged,
	// and so is its DHCPv6 prefix delegation; IPv6 destinations via it
	// wait for the adverts.
	spec = twoUplinks()
	spec.Uplinks[1].IPv6 = &api.UplinkIPv6{RA: &api.RA{DHCPv6: &api.DHCPv6{PrefixDelegation: true}}}
	spec.Routes = []api.RouteRule{{To: []string{"2001:db8:ffff::/48", "203.0.113.0/24"}, Via: "isp2"}}
	d, err = Router(spec, facts.Set{})
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Notes) != 1 || d.Notes[0].Section != "routes[0].to" || !strings.Contains(d.Notes[0].Message, "IPv6 destinations via isp2 wait for the uplink's router advertisements") {
		t.Errorf("notes = %v", d.Notes)
	}
	spec.Uplinks[1].IPv6.RA.DHCPv6 = nil
	if d, _ = Router(spec, facts.Set{}); len(d.Notes) != 1 || d.Notes[0].Section != "routes[0].to" {
		t.Errorf("notes = %v, want the routes' wait only: ra: {} is converged", d.Notes)
	}
	got := strings.Join(addresses(d.Resources), "\n")
	wantInAndNot(t, got, []string{"route[7100 203.0.113.0/24 metric 0] via=10.102.0.1 dev=wan2"}, []string{"2001:db8:ffff::/48"})
}

func TestCompileEmpty(t *testing.T) {
	d, err := Router(nil, facts.Set{})
	if err != nil || len(d.Resources) != 0 || len(d.Notes) != 0 {
		t.Fatalf("Router(nil) = %v, %v; want nothing", d, err)
	}
	// A router with a LAN only has no uplink rules.
	d, err = Router(&api.RouterSpec{LAN: &api.LAN{Interface: "br-lan", Addresses: []string{"192.168.1.1/24"}}}, facts.Set{})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range d.Resources {
		if _, ok := r.(nl.Rule); ok {
			t.Errorf("unexpected rule %s without uplinks", r.Address())
		}
	}
}

func TestCompileDotInInterfaceName(t *testing.T) {
	spec := &api.RouterSpec{Uplinks: []api.Uplink{{Name: "vlan", Interface: "eth0.100", Table: 7101,
		IPv4: &api.UplinkIPv4{Static: &api.Static{Address: "10.0.0.2/24", Gateway: "10.0.0.1"}}}}}
	d, err := Router(spec, facts.Set{})
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(addresses(d.Resources), "\n")
	if !strings.Contains(got, "sysctl[net.ipv4.conf.eth0/100.rp_filter]") {
		t.Errorf("want the sysctl(8) form eth0/100 for eth0.100:\n%s", got)
	}
}

func TestCompileIsDeterministic(t *testing.T) {
	a, errA := Router(twoUplinks(), facts.Set{})
	b, errB := Router(twoUplinks(), facts.Set{})
	if errA != nil || errB != nil {
		t.Fatal(errA, errB)
	}
	if len(a.Resources) < 20 {
		t.Fatalf("only %d resources: the comparison would prove little", len(a.Resources))
	}
	if strings.Join(addresses(a.Resources), "\n") != strings.Join(addresses(b.Resources), "\n") {
		t.Fatal("two compiles of the same spec differ")
	}
}

// Every example spec users start from compiles.
func TestCompileExampleSpecs(t *testing.T) {
	paths, _ := filepath.Glob("../specs/*.yaml")
	fleet, _ := filepath.Glob("../specs/fleet/boxes/*.yaml")
	paths = append(paths, fleet...)
	if len(paths) < 3 {
		t.Fatalf("found only %d specs in ../specs", len(paths))
	}
	for _, p := range paths {
		doc, err := api.Load(p)
		if err != nil {
			t.Errorf("%s: %v", p, err)
			continue
		}
		if doc.Kind != api.KindRouter {
			continue
		}
		if _, err := Router(doc.Router, facts.Set{}); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
}

func TestCompileUplinkHealthFacts(t *testing.T) {
	verdict := func(uplink string, healthy bool) facts.Set {
		return facts.Set{Slots: map[string]facts.Slot{"health/" + uplink: {Facts: []facts.Fact{{Health: &facts.Health{Uplink: uplink, Healthy: healthy}, Process: true}}}}}
	}
	for _, tt := range []struct {
		name  string
		facts facts.Set
		isp2  bool // isp2's main default route present
	}{
		{"no facts: waiting, the uplink is used", facts.Set{}, true},
		{"healthy", verdict("isp2", true), true},
		{"unhealthy: its default route leaves the main table", verdict("isp2", false), false},
		{"another uplink's fact", verdict("isp1", false), true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d, err := Router(twoUplinks(), tt.facts)
			if err != nil {
				t.Fatal(err)
			}
			got := strings.Join(addresses(d.Resources), "\n")
			if has := strings.Contains(got, "route[main 0.0.0.0/0 metric 20]"); has != tt.isp2 {
				t.Errorf("isp2 main default route present = %v, want %v", has, tt.isp2)
			}
			// The uplink's own table stays either way.
			if !strings.Contains(got, "route[7102 0.0.0.0/0 metric 0]") {
				t.Error("isp2's table lost its default route")
			}
		})
	}
}

// An uplink's macAddress is its link's MAC, which the netlink driver
// converges (and restores) like its MTU.
func TestCompileMACAddress(t *testing.T) {
	spec := twoUplinks()
	spec.Uplinks[1].MACAddress = "00:24:d4:aa:bb:cc"
	d, err := Router(spec, facts.Set{})
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(addresses(d.Resources), "\n")
	wantInAndNot(t, got, []string{"link[wan1] up=true\n", "link[wan2] up=true mtu=1492 mac=00:24:d4:aa:bb:cc"}, nil)
	if len(d.Notes) != 0 {
		t.Errorf("notes = %v: macAddress is converged", d.Notes)
	}
	spec.Uplinks[1].MACAddress = "not a mac"
	if _, err := Router(spec, facts.Set{}); err == nil || !strings.Contains(err.Error(), "uplinks[isp2]: macAddress:") {
		t.Errorf("a malformed MAC: err = %v", err)
	}
}

// The example specs' notes: what each says this version does not
// converge yet, section by section.
func TestCompileExampleSpecNotes(t *testing.T) {
	for file, want := range map[string][]string{
		"lab.yaml":          nil,
		"lab-dhcp.yaml":     nil,
		"lab-ra.yaml":       {"routes[0].to"},        // the IPv6 destination waits for isp2's router
		"lab-pd.yaml":       {"lan.ipv6.fromUplink"}, // the LAN waits for the delegated prefix
		"lab-6pe.yaml":      {"lan.ipv6.fromTunnel"}, // waits for the delegated prefix
		"dual-wan-lte.yaml": nil,
		"lab-dns.yaml":      nil,
		"sfr-6pe.yaml":      {"lan.ipv6.fromTunnel", "aggregation"}, // the first waits for the delegated prefix, the last for the peer proven up
	} {
		doc, err := api.Load(filepath.Join("../specs", file))
		if err != nil {
			t.Fatal(err)
		}
		d, err := Router(doc.Router, facts.Set{})
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		var got []string
		for _, n := range d.Notes {
			got = append(got, n.Section)
		}
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("%s: notes for %q, want %q", file, got, want)
		}
	}
}

// Two LAN addresses in one subnet: both addresses, and one route to the
// subnet, from the first (a second route, from the other, made every
// pass fail with "wanted twice").
func TestCompileTwoAddressesInOneSubnet(t *testing.T) {
	spec := twoUplinks()
	spec.LAN = &api.LAN{Interface: "lan0", Addresses: []string{"10.251.1.1/24", "10.251.1.2/24", "2001:db8:5::1/64", "2001:db8:5::2/64"}}
	d, _ := compileOrWantErr(t, spec, "")
	var routes []string
	for _, a := range addresses(d.Resources) {
		if strings.HasPrefix(a, "route[main 10.251.1.0/24") || strings.HasPrefix(a, "route[main 2001:db8:5::/64") {
			routes = append(routes, a)
		}
	}
	got := strings.Join(addresses(d.Resources), "\n")
	wantInAndNot(t, got, []string{"address[lan0 10.251.1.1/24]", "address[lan0 10.251.1.2/24]", "address[lan0 2001:db8:5::2/64]"}, nil)
	if len(routes) != 2 || !strings.Contains(routes[0]+routes[1], "src=10.251.1.1") {
		t.Errorf("want one route to each subnet, the IPv4 one from the first address; got %q", routes)
	}
}
