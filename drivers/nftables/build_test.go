package nftables

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/braid-router/braid/reconcile/plan"
)

func TestRulesetResources(t *testing.T) {
	rs := NewRuleset()
	rs.AddSet("allow_v4", false, pfxs("10.0.0.0/8"))
	rs.Add(ChainSNAT, "masq", OIFName("wan1"), Masquerade())
	rs.Add(ChainInput, "lan", IIFName("lan0"), Accept())
	rs.Add(ChainInput, "lan", IIFName("lan0"), Accept()) // the same twice is one
	rs.Add(ChainInput, "lo", IIFName("lo"), Accept())
	got, err := rs.Resources()
	if err != nil {
		t.Fatal(err)
	}
	var addrs []string
	for _, r := range got {
		addrs = append(addrs, r.Address())
	}
	want := []string{
		"nft.table[inet braid]",
		"nft.set[inet braid allow_v4]",
		"nft.chain[inet braid input]",
		"nft.chain[inet braid postrouting_nat]",
		"nft.rule[inet braid input:lan]",
		"nft.rule[inet braid input:lo]",
		"nft.rule[inet braid postrouting_nat:masq]",
	}
	if !slices.Equal(addrs, want) {
		t.Errorf("resources:\n%s\nwant:\n%s", strings.Join(addrs, "\n"), strings.Join(want, "\n"))
	}
	// Each rule knows its chain's order, for inserts.
	lo := got[5].(Rule)
	if lo.seq == nil || !slices.Equal(lo.seq.ids, []string{"lan", "lo"}) || lo.idx != 1 {
		t.Errorf("rule lo: seq %v idx %d", lo.seq, lo.idx)
	}
	if !plan.Same(got[4], got[4]) {
		t.Error("a rule is not the same as itself")
	}
}

func TestRulesetErrors(t *testing.T) {
	rs := NewRuleset()
	rs.Add("nochain", "x", Accept())
	rs.Add(ChainInput, "bad id", Accept())
	rs.Add(ChainInput, "a", IIFName("lan0"), Accept())
	rs.Add(ChainInput, "a", IIFName("lan1"), Accept())
	rs.Add(ChainInput, "b", DPort("sctp", 1), Accept())
	rs.Add(ChainInput, "c", DPort("tcp", 0), Accept())
	rs.Add(ChainInput, "d", IIFName("averyveryverylongname"), Accept())
	rs.Add(ChainDNAT, "e", DNAT(netip.MustParseAddrPort("[::ffff:192.0.2.1]:80")))
	rs.Add(ChainDNAT, "e6", DNAT(netip.MustParseAddrPort("[2001:db8::1]:80")))
	rs.AddSet("s", false, pfxs("2001:db8::/32"))
	rs.AddSet("s2", true, nil)
	rs.AddSet("s2", true, nil)
	_, err := rs.Resources()
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{
		`no chain "nochain"`,
		"input:bad id: invalid ID",
		`input:a is wanted twice: "iifname \"lan0\" accept" and "iifname \"lan1\" accept"`,
		`unknown protocol "sctp"`,
		"invalid port 0",
		`invalid interface name "averyveryverylongname"`,
		"dnat to [::ffff:192.0.2.1]:80: want an IPv4 ADDRESS:PORT",
		"dnat to [2001:db8::1]:80: want an IPv4 ADDRESS:PORT",
		"element 2001:db8::/32 is not of its family",
		"set s2 declared twice",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

func TestLongestIncreasing(t *testing.T) {
	for _, tt := range []struct {
		in   []int
		want []bool
	}{
		{nil, []bool{}},
		{[]int{0, 1, 2}, []bool{true, true, true}},
		{[]int{1, 0}, []bool{false, true}},
		{[]int{0, 3, 1, 2}, []bool{true, false, true, true}},
		{[]int{4, 0, 1, 2, 3}, []bool{false, true, true, true, true}},
	} {
		if got := longestIncreasing(tt.in); !slices.Equal(got, tt.want) {
			t.Errorf("longestIncreasing(%v) = %v, want %v", tt.in, got, tt.want)
		}
	}
}
