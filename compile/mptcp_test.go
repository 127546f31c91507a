package compile

import (
	"fmt"
	"strings"
	"testing"

	"github.com/braid-router/braid/api"
	"github.com/braid-router/braid/drivers/mptcp"
	nl "github.com/braid-router/braid/drivers/netlink"
	nft "github.com/braid-router/braid/drivers/nftables"
	"github.com/braid-router/braid/facts"
	"github.com/braid-router/braid/reconcile"
	"github.com/braid-router/braid/reconcile/plan"
)

// mptcpLines lists the MPTCP driver's resources and the net.mptcp.*
// sysctls of a desired state, as "ADDRESS fields".
func mptcpLines(d reconcile.Desired) []string {
	var out []string
	for _, r := range d.Resources {
		switch r := r.(type) {
		case mptcp.Endpoint, mptcp.Limits:
			out = append(out, r.Address()+" "+plan.Describe(r))
		case nl.Sysctl:
			if strings.HasPrefix(r.Name, "net.mptcp.") {
				out = append(out, r.Address()+" "+plan.Describe(r))
			}
		}
	}
	return out
}

func TestCompileMPTCP(t *testing.T) {
	off := &api.MPTCP{Mode: api.MPTCPOff}
	tests := []struct {
		name  string
		modes []*api.MPTCP // per uplink of twoUplinks
		want  []string
	}{
		{
			name:  "subflow on both: an endpoint per address, bound to the uplink",
			modes: []*api.MPTCP{{Mode: api.MPTCPSubflow}, {Mode: api.MPTCPSubflow}},
			want: []string{
				"sysctl[net.mptcp.enabled] value=1",
				"sysctl[net.mptcp.pm_type] value=0",
				"mptcp.limits subflows=3 add_addr_accepted=2",
				"mptcp.endpoint[10.101.0.2] dev=wan1 flags=subflow",
				"mptcp.endpoint[2001:db8:101::2] dev=wan1 flags=subflow",
				"mptcp.endpoint[10.102.0.2] dev=wan2 flags=subflow",
			},
		},
		{
			name:  "backup, and fullmesh which takes subflows to the maximum",
			modes: []*api.MPTCP{{Mode: api.MPTCPSubflow, Fullmesh: true}, {Mode: api.MPTCPBackup}},
			want: []string{
				"sysctl[net.mptcp.enabled] value=1",
				"sysctl[net.mptcp.pm_type] value=0",
				"mptcp.limits subflows=8 add_addr_accepted=2",
				"mptcp.endpoint[10.101.0.2] dev=wan1 flags=subflow fullmesh",
				"mptcp.endpoint[2001:db8:101::2] dev=wan1 flags=subflow fullmesh",
				"mptcp.endpoint[10.102.0.2] dev=wan2 flags=subflow backup",
			},
		},
		{
			name:  "backup fullmesh",
			modes: []*api.MPTCP{off, {Mode: api.MPTCPBackup, Fullmesh: true}},
			want: []string{
				"sysctl[net.mptcp.enabled] value=1",
				"sysctl[net.mptcp.pm_type] value=0",
				"mptcp.limits subflows=8 add_addr_accepted=1",
				"mptcp.endpoint[10.102.0.2] dev=wan2 flags=subflow backup fullmesh",
			},
		},
		{
			name:  "an uplink that is off has no endpoint and does not count",
			modes: []*api.MPTCP{off, {Mode: api.MPTCPSubflow}},
			want: []string{
				"sysctl[net.mptcp.enabled] value=1",
				"sysctl[net.mptcp.pm_type] value=0",
				"mptcp.limits subflows=1 add_addr_accepted=1",
				"mptcp.endpoint[10.102.0.2] dev=wan2 flags=subflow",
			},
		},
		{
			name:  "no MPTCP uplink: nothing, so braid restores what it changed",
			modes: []*api.MPTCP{off, off},
		},
		{
			name:  "no mptcp at all (a spec without defaults) is off",
			modes: []*api.MPTCP{nil, nil},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := twoUplinks()
			for i, m := range tt.modes {
				spec.Uplinks[i].MPTCP = m
			}
			d, err := Router(spec, facts.Set{})
			if err != nil {
				t.Fatal(err)
			}
			if got := mptcpLines(d); strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
			for _, n := range d.Notes {
				if n.Section == "uplinks[].mptcp" {
					t.Errorf("note %v: MPTCP is converged now", n)
				}
			}
		})
	}
}

// The api's default (mode subflow for every uplink) gives the lab's box
// MPTCP on both uplinks; the MPTCP resources come after the netlink
// driver's, limits first.
func TestCompileMPTCPDefaultsAndOrder(t *testing.T) {
	d := compileLab(t)
	want := []string{
		"sysctl[net.mptcp.enabled] value=1",
		"sysctl[net.mptcp.pm_type] value=0",
		"mptcp.limits subflows=3 add_addr_accepted=2",
		"mptcp.endpoint[10.101.0.2] dev=wan1 flags=subflow",
		"mptcp.endpoint[2001:db8:101::2] dev=wan1 flags=subflow",
		"mptcp.endpoint[10.102.0.2] dev=wan2 flags=subflow",
		"mptcp.endpoint[2001:db8:102::2] dev=wan2 flags=subflow",
	}
	if got := mptcpLines(d); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	first := -1
	for i, r := range d.Resources {
		switch r.(type) {
		case mptcp.Endpoint, mptcp.Limits:
			if first < 0 {
				first = i
				if _, ok := r.(mptcp.Limits); !ok {
					t.Errorf("the first MPTCP resource is %s, want the limits", r.Address())
				}
			}
		case nft.Table, nft.Chain, nft.Set, nft.Rule:
			// nftables comes after MPTCP in apply order.
		default:
			if first >= 0 {
				t.Errorf("%s comes after the MPTCP resources", r.Address())
			}
		}
	}
}

func TestMPTCPLimitsFormula(t *testing.T) {
	for _, tt := range []struct {
		n        int
		fullmesh bool
		subflows uint32
		accepted uint32
	}{
		{1, false, 1, 1},
		{2, false, 3, 2},
		{3, false, 5, 3},
		{4, false, 7, 4},
		{5, false, 8, 5},
		{8, false, 8, 8},
		{9, false, 8, 8},
		{1, true, 8, 1},
		{3, true, 8, 3},
	} {
		t.Run(fmt.Sprintf("%d uplinks fullmesh=%v", tt.n, tt.fullmesh), func(t *testing.T) {
			want := mptcp.Limits{Subflows: tt.subflows, AddAddrAccepted: tt.accepted}
			if got := mptcpLimits(tt.n, tt.fullmesh); got != want {
				t.Errorf("mptcpLimits(%d, %v) = %+v, want %+v", tt.n, tt.fullmesh, got, want)
			}
		})
	}
}

func TestCompileMPTCPErrors(t *testing.T) {
	// Five dual-stack uplinks want ten endpoints: the kernel holds eight.
	spec := &api.RouterSpec{}
	for i := range 5 {
		spec.Uplinks = append(spec.Uplinks, api.Uplink{
			Name: fmt.Sprintf("u%d", i), Interface: fmt.Sprintf("wan%d", i), Table: 7101 + i, Priority: 10 * (i + 1),
			IPv4:  &api.UplinkIPv4{Static: &api.Static{Address: fmt.Sprintf("10.%d.0.2/24", i), Gateway: fmt.Sprintf("10.%d.0.1", i)}},
			IPv6:  &api.UplinkIPv6{Static: &api.Static{Address: fmt.Sprintf("2001:db8:%d::2/64", i), Gateway: fmt.Sprintf("2001:db8:%d::1", i)}},
			MPTCP: &api.MPTCP{Mode: api.MPTCPSubflow},
		})
	}
	if _, err := Router(spec, facts.Set{}); err == nil || !strings.Contains(err.Error(), "10 MPTCP endpoints, more than the kernel's maximum of 8") {
		t.Errorf("ten endpoints: err = %v", err)
	}
	spec.Uplinks[4].MPTCP.Mode = api.MPTCPOff
	if _, err := Router(spec, facts.Set{}); err != nil {
		t.Errorf("eight endpoints: %v", err)
	}
	spec.Uplinks[0].MPTCP.Mode = "sometimes"
	if _, err := Router(spec, facts.Set{}); err == nil || !strings.Contains(err.Error(), `uplinks[u0].mptcp.mode: unknown mode "sometimes"`) {
		t.Errorf("unknown mode: err = %v", err)
	}
}

// A DHCP uplink counts for the limits, which so do not change when its
// lease comes, and has no endpoint until then.
func TestCompileMPTCPDHCPUplink(t *testing.T) {
	spec := twoUplinks()
	spec.Uplinks[1].IPv4 = &api.UplinkIPv4{DHCP: &api.DHCPv4{}}
	spec.Uplinks[0].MPTCP = &api.MPTCP{Mode: api.MPTCPSubflow}
	spec.Uplinks[1].MPTCP = &api.MPTCP{Mode: api.MPTCPBackup}
	d, err := Router(spec, facts.Set{})
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(mptcpLines(d), "\n")
	if !strings.Contains(got, "mptcp.limits subflows=3 add_addr_accepted=2") || strings.Contains(got, "wan2") {
		t.Errorf("got:\n%s", got)
	}
}

// A static address that changes moves its endpoint: the plan creates the
// new one and deletes the old one.
func TestCompileMPTCPAddressChangeMovesTheEndpoint(t *testing.T) {
	spec := twoUplinks()
	spec.Uplinks[1].MPTCP = &api.MPTCP{Mode: api.MPTCPSubflow}
	before, err := Router(spec, facts.Set{})
	if err != nil {
		t.Fatal(err)
	}
	spec.Uplinks[1].IPv4.Static.Address = "10.102.0.3/24"
	after, err := Router(spec, facts.Set{})
	if err != nil {
		t.Fatal(err)
	}
	var live []plan.Observed
	for _, r := range before.Resources {
		if _, ok := r.(mptcp.Endpoint); ok {
			live = append(live, plan.Observed{Resource: r})
		}
	}
	var want []plan.Resource
	for _, r := range after.Resources {
		if _, ok := r.(mptcp.Endpoint); ok {
			want = append(want, r)
		}
	}
	changes, _ := plan.Diff(want, live)
	var got []string
	for _, c := range changes {
		got = append(got, c.Action.Symbol()+" "+c.Address())
	}
	if w := "+ mptcp.endpoint[10.102.0.3]\n- mptcp.endpoint[10.102.0.2]"; strings.Join(got, "\n") != w {
		t.Errorf("changes:\n%s\nwant:\n%s", strings.Join(got, "\n"), w)
	}
}
