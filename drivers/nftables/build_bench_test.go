package nftables

import (
	"net/netip"
	"testing"

	"github.com/braid-router/braid/reconcile/plan"
)

// BenchmarkBuildFromEmpty measures building the transaction of a table of
// 1,000 rules and a 10,000-element set from empty (no kernel involved).
func BenchmarkBuildFromEmpty(b *testing.B) {
	rs := NewRuleset()
	var allow []netip.Prefix
	for i := range 10000 {
		n := 0x0a000001 + 2*uint32(i)
		allow = append(allow, netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}), 32))
	}
	rs.AddSet("allow_v4", false, allow)
	for i := range 1000 {
		rs.Add(ChainInput, "open-"+string(rune('a'+i%26))+"-"+netip.AddrFrom4([4]byte{byte(i >> 8), byte(i), 0, 0}).String(),
			IIFName("wan1"), DPort("tcp", 20000+i), Accept())
	}
	want, err := rs.Resources()
	if err != nil {
		b.Fatal(err)
	}
	changes, _ := plan.Diff(want, nil)
	b.ReportAllocs()
	for b.Loop() {
		t, err := build(changes, &live{})
		if err != nil || len(t.msgs) < 1000 {
			b.Fatalf("%v, %d messages", err, len(t.msgs))
		}
	}
}
