package compile

import (
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/braid-router/braid/api"
	"github.com/braid-router/braid/drivers/mptcp"
	nl "github.com/braid-router/braid/drivers/netlink"
	"github.com/braid-router/braid/facts"
	"github.com/braid-router/braid/reconcile"
	"github.com/braid-router/braid/reconcile/plan"
	"github.com/braid-router/braid/sessions/dhcp4"
	"github.com/braid-router/braid/sessions/health"
)

// linkFacts observes the named links: present ones first, then missing
// ones, as a link watcher would report them.
func linkFacts(present []string, missing ...string) facts.Set {
	var fs []facts.Fact
	for i, n := range present {
		fs = append(fs, facts.Fact{Interface: &facts.Interface{Name: n, Present: true, Index: i + 2}, Process: true})
	}
	for _, n := range missing {
		fs = append(fs, facts.Fact{Interface: &facts.Interface{Name: n}, Process: true})
	}
	return facts.Set{}.With("kernel/links", fs)
}

// lineOf returns the 1-based line of path's first line containing s.
func lineOf(t *testing.T, path, s string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for i, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, s) {
			return i + 1
		}
	}
	t.Fatalf("%s has no line with %q", path, s)
	return 0
}

func compileDoc(t *testing.T, doc *api.Document, f facts.Set) reconcile.Desired {
	t.Helper()
	d, err := Compile(doc, f)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// An uplink whose link is missing waits, naming the spec line; nothing is
// configured on the link, and everything else is as with every link
// present: the other uplink, the LAN, NAT and the firewall (whose rules
// match the missing link by name, so they hold the moment it appears).
func TestCompileMissingUplinkLink(t *testing.T) {
	const path = "../specs/lab.yaml"
	doc, err := api.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	all := compileDoc(t, doc, facts.Set{})
	// Links observed present compile as links nobody observed.
	if present := compileDoc(t, doc, linkFacts([]string{"lan0", "wan1", "wan2"})); !slices.Equal(addresses(present.Resources), addresses(all.Resources)) || len(present.Notes) != len(all.Notes) {
		t.Errorf("with every link observed present, the desired state differs from the spec's:\n%s", strings.Join(addresses(present.Resources), "\n"))
	}

	d := compileDoc(t, doc, linkFacts([]string{"lan0", "wan1"}, "wan2"))
	onWAN2 := func(r plan.Resource) bool {
		switch r := plan.Unbound(r).(type) {
		case nl.Link:
			return r.Name == "wan2"
		case nl.Sysctl:
			return strings.Contains(r.Name, ".wan2.")
		case nl.Addr:
			return r.Link == "wan2"
		case nl.Route:
			return r.Link == "wan2"
		case nl.Rule:
			return r.Priority == nl.PrioUplink && (r.From.Addr().String() == "10.102.0.2" || r.From.Addr().String() == "2001:db8:102::2")
		case mptcp.Endpoint:
			return r.Dev == "wan2"
		}
		return false
	}
	var kept []string
	for _, r := range all.Resources {
		if !onWAN2(r) {
			kept = append(kept, r.Address()+" "+plan.Describe(r))
		}
	}
	if got := addresses(d.Resources); !slices.Equal(got, kept) {
		t.Errorf("desired state without wan2:\n%s\nwant everything but what is on wan2:\n%s", strings.Join(got, "\n"), strings.Join(kept, "\n"))
	}
	got := strings.Join(addresses(d.Resources), "\n")
	wantInAndNot(t, got, []string{
		"route[main 0.0.0.0/0 metric 10] via=10.101.0.1 dev=wan1",
		"rule[inet pref 7050 fwmark 0x1bbe] lookup=7102",
		"mptcp.limits subflows=3 add_addr_accepted=2",
		"nft.rule[inet braid input:drop-isp2]",
		"nft.rule[inet braid postrouting_nat:masquerade-isp2-192.168.50.0/24]",
		"nft.rule[inet braid postrouting_nat:masquerade-isp1-192.168.50.0/24]",
		"link[lan0] up=true",
	}, []string{"link[wan2]", "10.102.0.", "2001:db8:102::"})

	line := strconv.Itoa(lineOf(t, path, "interface: wan2"))
	var waits []string
	for _, n := range d.Notes {
		if n.Waiting {
			waits = append(waits, n.String())
		}
	}
	want := []string{
		"uplinks[1]: waiting: link wan2 (" + path + ":" + line + "): uplink isp2 is configured when the link appears",
		"routes[0].to: waiting: link wan2 (" + path + ":" + line + "): the destinations via isp2 are routed when the link appears",
	}
	if !slices.Equal(waits, want) {
		t.Errorf("waiting notes:\n%s\nwant\n%s", strings.Join(waits, "\n"), strings.Join(want, "\n"))
	}
	// The waiting notes name no line for a spec built in Go.
	r, err := Router(doc.Router, linkFacts([]string{"lan0", "wan1"}, "wan2"))
	if err != nil {
		t.Fatal(err)
	}
	if n := r.Notes[len(r.Notes)-2]; n.Message != "waiting: link wan2: uplink isp2 is configured when the link appears" {
		t.Errorf("note of a spec without positions: %q", n.Message)
	}
}

// A missing LAN link waits too: the uplinks, NAT and the firewall
// converge without it.
func TestCompileMissingLANLink(t *testing.T) {
	doc, err := api.Load("../specs/lab.yaml")
	if err != nil {
		t.Fatal(err)
	}
	d := compileDoc(t, doc, linkFacts([]string{"wan1", "wan2"}, "lan0"))
	got := strings.Join(addresses(d.Resources), "\n")
	wantInAndNot(t, got, []string{
		"route[main 0.0.0.0/0 metric 10] via=10.101.0.1 dev=wan1",
		"route[main 0.0.0.0/0 metric 20] via=10.102.0.1 dev=wan2",
		"nft.rule[inet braid input:lan]",
		"nft.rule[inet braid postrouting_nat:masquerade-isp1-192.168.50.0/24]",
	}, []string{"link[lan0]", "address[lan0", "dev=lan0", "lan0.promote_secondaries"})
	if i := slices.IndexFunc(d.Notes, func(n plan.Note) bool { return n.Section == "lan" }); i < 0 || !d.Notes[i].Waiting ||
		!strings.HasPrefix(d.Notes[i].Message, "waiting: link lan0 (../specs/lab.yaml:") {
		t.Errorf("notes %v: want a waiting note for lan naming the spec line", d.Notes)
	}
}

// An uplink's sessions wait for its link; routes: from: via it keep their
// rule (its table is empty meanwhile) and say so.
func TestCompileSessionsWaitForTheLink(t *testing.T) {
	doc, err := api.Parse("t.yaml", []byte(`apiVersion: braid/v1alpha1
kind: Router
metadata: {name: t}
spec:
  uplinks:
  - {name: a, interface: eth1, ipv4: {static: {address: 192.0.2.2/24, gateway: 192.0.2.1}}}
  - name: lte
    interface: wwan0
    ipv4: {dhcp: {}}
    health: {probes: [{icmp: 192.0.2.1}]}
  - name: b
    interface: eth2
    ipv4: {static: {address: 198.51.100.2/24, gateway: 198.51.100.1}}
    health: {probes: [{icmp: 198.51.100.1}]}
  routes:
  - {from: [10.0.0.50/32], via: b}
`))
	if err != nil {
		t.Fatal(err)
	}
	// A lease held from before the link went: nothing is made of it.
	f := linkFacts([]string{"eth1"}, "wwan0", "eth2").With("dhcp4/lte", []facts.Fact{{Lease4: &facts.Lease4{Uplink: "lte",
		Address: netip.MustParsePrefix("10.64.0.2/30"), Gateway: netip.MustParseAddr("10.64.0.1")}}})
	d := compileDoc(t, doc, f)
	waits := map[string]string{}
	for _, s := range d.Sessions {
		waits[s.ID()] = s.Wait
	}
	want := map[string]string{dhcp4.Kind + "/lte": "link wwan0", health.Kind + "/lte": "link wwan0", health.Kind + "/b": "link eth2"}
	for id, w := range want {
		if waits[id] != w {
			t.Errorf("session %s waits for %q, want %q", id, waits[id], w)
		}
	}
	got := strings.Join(addresses(d.Resources), "\n")
	wantInAndNot(t, got, []string{"rule[inet pref 7100 from 10.0.0.50/32] lookup=7103", "mptcp.limits subflows=5 add_addr_accepted=3"},
		[]string{"10.64.0.", "link[wwan0]", "link[eth2]", "dev=wwan0", "dev=eth2", "198.51.100."})
	if !slices.ContainsFunc(d.Notes, func(n plan.Note) bool {
		return n.Section == "routes[0].from" && n.Waiting && strings.HasPrefix(n.Message, "waiting: link eth2 (t.yaml:12)")
	}) {
		t.Errorf("notes %v: want routes[0].from waiting for eth2 at t.yaml:12", d.Notes)
	}
	// The firewall still drops what arrives on the missing links.
	if !strings.Contains(got, "nft.rule[inet braid input:drop-lte]") {
		t.Errorf("no input drop for the missing uplink:\n%s", got)
	}
}
