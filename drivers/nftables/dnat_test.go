package nftables

import (
	"net/netip"
	"testing"
)

// A DNAT of each family (the DNS forwarder's intercept: the LAN's DNS to
// any address but the box's own, to the forwarder's address of the
// packet's family) goes to the kernel as written: nft lists what braid
// wants, and the plan that follows is empty.
func TestDNATBothFamilies(t *testing.T) {
	r := newRig(t)
	rs := NewRuleset()
	rs.Add(ChainDNAT, "dns-intercept-local", IIFName("lan0"), DstLocal(), Return())
	for _, to := range []string{"192.168.50.1:53", "[2001:db8:50::1]:53"} {
		ap := netip.MustParseAddrPort(to)
		every := netip.PrefixFrom(netip.IPv4Unspecified(), 0)
		fam := "v4"
		if ap.Addr().Is6() {
			every, fam = netip.PrefixFrom(netip.IPv6Unspecified(), 0), "v6"
		}
		for _, proto := range []string{"udp", "tcp"} {
			rs.Add(ChainDNAT, "dns-intercept-"+proto+"-"+fam, IIFName("lan0"), DstPrefix(every), DPort(proto, 53), DNAT(ap))
		}
	}
	want, err := rs.Resources()
	if err != nil {
		t.Fatal(err)
	}
	r.converge(want)
	got := map[string]string{}
	for _, l := range r.nftRules() {
		got[l.chain+":"+l.id] = l.text
	}
	if fmtMap(got) != fmtMap(ruleTexts(want)) {
		t.Errorf("nft lists:\n%s\nbraid wants:\n%s", fmtMap(got), fmtMap(ruleTexts(want)))
	}
	r.settled(want)
}
