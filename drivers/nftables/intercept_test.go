package nftables

import "testing"

// The DNS forwarder's intercept rules (the LAN's DNS to any address but
// the box's own, handed by tproxy to the forwarder's transparent sockets,
// marked, then out of the chain) go to the kernel as written: nft lists
// what braid wants, and the plan that follows is empty.
func TestInterceptRules(t *testing.T) {
	r := newRig(t)
	rs := NewRuleset()
	for _, v6 := range []bool{false, true} {
		fam := "v4"
		if v6 {
			fam = "v6"
		}
		for _, proto := range []string{"udp", "tcp"} {
			rs.Add(ChainTProxy, "dns-intercept-"+proto+"-"+fam, IIFName("lan0"), DstNotLocal(), DPort(proto, 53),
				TProxy(proto, v6, 7153), SetMark(7190), Return())
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
