package nftables

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/google/nftables/expr"
	"github.com/google/nftables/xt"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/braid-router/braid/foreignfw"
	"github.com/braid-router/braid/internal/nstest"
)

// dockerRules are the commands Docker 20.10 (Debian's docker.io) runs
// through iptables-nft for its default bridge, without a container.
var dockerRules = [][]string{
	{"-N", "DOCKER"}, {"-N", "DOCKER-ISOLATION-STAGE-1"}, {"-N", "DOCKER-ISOLATION-STAGE-2"}, {"-N", "DOCKER-USER"},
	{"-P", "FORWARD", "DROP"},
	{"-A", "FORWARD", "-j", "DOCKER-USER"},
	{"-A", "FORWARD", "-j", "DOCKER-ISOLATION-STAGE-1"},
	{"-A", "FORWARD", "-o", "docker0", "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT"},
	{"-A", "FORWARD", "-o", "docker0", "-j", "DOCKER"},
	{"-A", "FORWARD", "-i", "docker0", "!", "-o", "docker0", "-j", "ACCEPT"},
	{"-A", "FORWARD", "-i", "docker0", "-o", "docker0", "-j", "ACCEPT"},
	{"-A", "DOCKER-ISOLATION-STAGE-1", "-i", "docker0", "!", "-o", "docker0", "-j", "DOCKER-ISOLATION-STAGE-2"},
	{"-A", "DOCKER-ISOLATION-STAGE-1", "-j", "RETURN"},
	{"-A", "DOCKER-ISOLATION-STAGE-2", "-o", "docker0", "-j", "DROP"},
	{"-A", "DOCKER-ISOLATION-STAGE-2", "-j", "RETURN"},
	{"-A", "DOCKER-USER", "-j", "RETURN"},
	{"-t", "nat", "-N", "DOCKER"},
	{"-t", "nat", "-A", "PREROUTING", "-m", "addrtype", "--dst-type", "LOCAL", "-j", "DOCKER"},
	{"-t", "nat", "-A", "OUTPUT", "!", "-d", "127.0.0.0/8", "-m", "addrtype", "--dst-type", "LOCAL", "-j", "DOCKER"},
	{"-t", "nat", "-A", "POSTROUTING", "-s", "172.17.0.0/16", "!", "-o", "docker0", "-j", "MASQUERADE"},
	{"-t", "nat", "-A", "DOCKER", "-i", "docker0", "-j", "RETURN"},
}

// hardened is a ruleset with sets and maps of each kind the reader must
// pair up: an interval set, a verdict map, a concatenation.
const hardened = `table inet hard {
	set bogons { type ipv4_addr; flags interval; elements = { 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16 } }
	chain forward {
		type filter hook forward priority filter; policy drop;
		ct state established,related accept
		iifname vmap { "lan0" : accept, "wan9" : drop }
		icmpv6 type . icmpv6 code { packet-too-big . no-route, parameter-problem . no-route } accept
		ip saddr @bogons iifname "wan1" drop
	}
}
`

// TestReadForeign reads Docker's tables, made by the real iptables-nft,
// and a hand-written ruleset beside braid's own table: every table but
// braid's, xt matches decoded with their table's family, interval sets as
// ranges, maps with their verdicts. The analysis then finds the drops.
func TestReadForeign(t *testing.T) {
	nstest.RequireBinary(t, "iptables-nft")
	r := newRig(t)
	r.converge(sample(t))
	for _, args := range dockerRules {
		nstest.In(t, r.ns, "iptables-nft", args...)
	}
	nstest.NftLoad(t, r.ns, hardened)
	rs, err := r.d.ReadForeign()
	if err != nil {
		t.Fatal(err)
	}
	var labels []string
	for _, tb := range rs.Tables {
		labels = append(labels, tb.Label())
	}
	slices.Sort(labels)
	if want := []string{"inet hard", "ip filter", "ip nat"}; !slices.Equal(labels, want) {
		t.Fatalf("tables %v, want %v", labels, want)
	}
	table := func(label string) *foreignfw.Table {
		for i := range rs.Tables {
			if rs.Tables[i].Label() == label {
				return &rs.Tables[i]
			}
		}
		t.Fatalf("no table %s", label)
		return nil
	}
	chain := func(tb *foreignfw.Table, name string) *foreignfw.Chain {
		for i := range tb.Chains {
			if tb.Chains[i].Name == name {
				return &tb.Chains[i]
			}
		}
		t.Fatalf("no chain %s in %s", name, tb.Label())
		return nil
	}
	fwd := chain(table("ip filter"), "FORWARD")
	if fwd.Hook != foreignfw.HookForward || fwd.Policy != "drop" || fwd.Priority != 0 || len(fwd.Rules) != 6 {
		t.Fatalf("FORWARD: %+v", fwd)
	}
	m, ok := fwd.Rules[2].Exprs[2].(*expr.Match)
	if !ok {
		t.Fatalf("rule 3 of FORWARD: %T, %s", fwd.Rules[2].Exprs[2], fwd.Rules[2].Text)
	}
	if info, ok := m.Info.(*xt.ConntrackMtinfo3); !ok || info.StateMask != 2|4 {
		t.Errorf("the conntrack match is read as %#v", m.Info)
	}
	if pre := chain(table("ip nat"), "PREROUTING"); pre.Type != "nat" || pre.Priority != -100 || len(pre.Rules) != 1 {
		t.Errorf("nat PREROUTING: %+v", pre)
	}
	hard := table("inet hard")
	var bogons *foreignfw.Set
	for i := range hard.Sets {
		if hard.Sets[i].Name == "bogons" {
			bogons = &hard.Sets[i]
		}
	}
	if bogons == nil || len(bogons.Elements) != 3 {
		t.Fatalf("set bogons: %+v", bogons)
	}
	for _, e := range bogons.Elements {
		lo, _ := netip.AddrFromSlice(e.Key)
		hi, _ := netip.AddrFromSlice(e.KeyEnd)
		if got := lo.String() + "-" + hi.String(); got != "10.0.0.0-10.255.255.255" && got != "172.16.0.0-172.31.255.255" && got != "192.168.0.0-192.168.255.255" {
			t.Errorf("bogons element %s", got)
		}
	}
	vmaps := 0
	for _, s := range hard.Sets {
		if s.VerdictMap {
			vmaps++
			if len(s.Elements) != 2 || s.Elements[0].Verdict == nil {
				t.Errorf("verdict map %+v", s)
			}
		}
	}
	if vmaps != 1 {
		t.Errorf("%d verdict maps", vmaps)
	}

	site := foreignfw.Site{LAN: "lan0", LANPrefixes: []netip.Prefix{netip.MustParsePrefix("192.168.50.0/24")},
		LANAddrs: []netip.Addr{netip.MustParseAddr("192.168.50.1")},
		Uplinks:  []foreignfw.Uplink{{Name: "isp1", Link: "wan1", V4: true, Addr4: netip.MustParseAddr("10.101.0.2")}}}
	var got []string
	for _, f := range foreignfw.Analyze(rs, foreignfw.Intents(site, foreignfw.Firewall{}), foreignfw.Env{}) {
		got = append(got, f.IntentID+" "+f.Table+" "+f.Chain+" "+f.By)
	}
	want := []string{"lan-isp1 ip filter FORWARD policy drop"}
	if !slices.Equal(got, want) {
		t.Errorf("findings:\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

// FuzzParseForeignRule feeds the rule message decoder anything: it must
// never panic.
func FuzzParseForeignRule(f *testing.F) {
	var exprs []netlink.Attribute
	for _, e := range []expr.Any{
		&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte("lan0\x00")},
		&expr.Match{Name: "conntrack", Rev: 3, Info: &xt.ConntrackMtinfo3{}},
		&expr.Verdict{Kind: expr.VerdictAccept},
	} {
		b, err := expr.Marshal(unix.NFPROTO_IPV4, e)
		if err != nil {
			f.Fatal(err)
		}
		exprs = append(exprs, netlink.Attribute{Type: unix.NFTA_LIST_ELEM | unix.NLA_F_NESTED, Data: b})
	}
	list, err := netlink.MarshalAttributes(exprs)
	if err != nil {
		f.Fatal(err)
	}
	attrs, err := netlink.MarshalAttributes([]netlink.Attribute{
		{Type: unix.NFTA_RULE_TABLE, Data: []byte("filter\x00")},
		{Type: unix.NFTA_RULE_CHAIN, Data: []byte("FORWARD\x00")},
		{Type: unix.NFTA_RULE_HANDLE, Data: []byte{0, 0, 0, 0, 0, 0, 0, 7}},
		{Type: unix.NFTA_RULE_EXPRESSIONS | unix.NLA_F_NESTED, Data: list},
	})
	if err != nil {
		f.Fatal(err)
	}
	seed := append([]byte{unix.NFPROTO_IPV4, 0, 0, 0}, attrs...)
	if r, err := parseForeignRule(seed); err != nil || r.chain != "FORWARD" || len(r.rule.Exprs) != 4 {
		f.Fatalf("the seed reads as %+v, %v", r, err)
	}
	f.Add(seed)
	f.Fuzz(func(t *testing.T, b []byte) {
		parseForeignRule(b)
	})
}

// FuzzVerdictData feeds the decoder of a verdict map element's data
// anything: it must never panic, and reads a jump's chain.
func FuzzVerdictData(f *testing.F) {
	jump, err := netlink.MarshalAttributes([]netlink.Attribute{
		{Type: unix.NFTA_VERDICT_CODE, Data: []byte{0xff, 0xff, 0xff, 0xfd}},
		{Type: unix.NFTA_VERDICT_CHAIN, Data: []byte("input_wan\x00")},
	})
	if err != nil {
		f.Fatal(err)
	}
	if v, ok := verdictData(jump); !ok || v.Kind != expr.VerdictJump || v.Chain != "input_wan" {
		f.Fatalf("the seed reads as %+v, %v", v, ok)
	}
	f.Add(jump)
	f.Add([]byte{8, 0, 1, 0, 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		verdictData(b)
	})
}
