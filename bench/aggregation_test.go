package main

import (
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/braid-router/braid/api"
	"github.com/braid-router/braid/compile"
	nft "github.com/braid-router/braid/drivers/nftables"
	"github.com/braid-router/braid/facts"
	"github.com/braid-router/braid/lab"
	"github.com/braid-router/braid/reconcile/plan"
	"github.com/braid-router/braid/sessions/proxy"
)

// ssOutput is `ss -tinH state established dst 10.203.0.2` in the lab's box
// during a download through braid's proxy, as the benchmark logged it:
// two MPTCP subflows to the peer (the one the kernel added bound to its
// uplink's device); and a plain TCP connection to another port.
const ssOutput = `0      0           10.101.0.2:58720 10.203.0.2:8390
	 bbr wscale:10,10 rto:204 rtt:0.086/0.036 ato:40 mss:1448 pmtu:1500 rcvmss:1420 advmss:1448 cwnd:11 bytes_sent:73 bytes_acked:74 bytes_received:40529341 segs_out:5003 segs_in:28794 data_segs_out:1 data_segs_in:28792 bbr:(bw:152420464bps,mrtt:0.076,pacing_gain:2.88672,cwnd_gain:2.88672) send 1481674419bps lastsnd:12028 lastrcv:4 lastack:4 pacing_rate 3761970256bps delivery_rate 152421048bps delivered:2 app_limited rcv_rtt:56.848 rcv_space:670240 rcv_ssthresh:26001899 minrtt:0.076 rcv_ooopack:7005 snd_wnd:64512 tcp-ulp-mptcp flags:Mmecv token:0000(id:0)/d906f6e9(id:0) seq:91810c94427c2aef sfseq:269ab9a ssnoff:9b785451 maplen:ff28
0      0      10.102.0.2%wan2:51089 10.203.0.2:8390
	 bbr wscale:10,10 rto:248 rtt:46.65/23.325 ato:40 mss:1448 pmtu:1500 rcvmss:1420 advmss:1448 cwnd:10 bytes_acked:1 bytes_received:27410547 segs_out:4141 segs_in:19586 data_segs_in:19584 bbr:(bw:0bps,mrtt:46.65,pacing_gain:1,cwnd_gain:1) send 2483173bps lastsnd:11980 lastrcv:4 lastack:4 pacing_rate 7095744bps delivered:1 app_limited rcv_rtt:58.913 rcv_space:670240 rcv_ssthresh:25821184 minrtt:46.65 rcv_ooopack:4587 snd_wnd:64512 tcp-ulp-mptcp flags:Jjec token:6b020c01(id:0)/d906f6e9(id:3) seq:91810c94429120eb sfseq:1a23fec ssnoff:3bc5db6c maplen:88
0      0        10.101.0.2:33100     10.203.0.2:22
	 cubic wscale:7,7 rto:204 rtt:0.4/0.2 mss:1448 bytes_received:5000 segs_in:9
`

func TestParseSS(t *testing.T) {
	got := parseSS(ssOutput)
	want := []subflow{
		{netip.MustParseAddrPort("10.101.0.2:58720"), netip.MustParseAddrPort("10.203.0.2:8390"), true, 40529341},
		{netip.MustParseAddrPort("10.102.0.2:51089"), netip.MustParseAddrPort("10.203.0.2:8390"), true, 27410547},
		{netip.MustParseAddrPort("10.101.0.2:33100"), netip.MustParseAddrPort("10.203.0.2:22"), false, 5000},
	}
	if len(got) != len(want) {
		t.Fatalf("parseSS: %d sockets %+v, want %d", len(got), got, len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("socket %d: %+v, want %+v", i, got[i], want[i])
		}
	}
	if got := parseSS(""); len(got) != 0 {
		t.Errorf("parseSS of nothing: %+v", got)
	}
}

func TestParseSSAddr(t *testing.T) {
	for in, want := range map[string]string{
		"10.102.0.2%wan2:40941": "10.102.0.2:40941",
		"[2001:db8::2]:80":      "[2001:db8::2]:80",
		"[2001:db8::2%wan1]:80": "[2001:db8::2]:80",
		"[::ffff:10.0.0.1]:80":  "10.0.0.1:80",
	} {
		got, err := parseSSAddr(in)
		if err != nil || got.String() != want {
			t.Errorf("parseSSAddr(%q) = %v, %v; want %s", in, got, err, want)
		}
	}
	for _, in := range []string{"*:*", "10.0.0.1", "10.0.0.1:http", "[::1]:99999"} {
		if got, err := parseSSAddr(in); err == nil {
			t.Errorf("parseSSAddr(%q) = %v, want an error", in, got)
		}
	}
}

// A download counts as aggregated only with an MPTCP subflow from each
// uplink to the peer's port; plain TCP and other ports do not count.
func TestCheckSubflows(t *testing.T) {
	all := parseSS(ssOutput)
	by, err := checkSubflows(all, 8390)
	if err != nil {
		t.Fatalf("two subflows: %v", err)
	}
	if by[lab.BoxWAN1V4] != 40529341 || by[lab.BoxWAN2V4] != 27410547 || len(by) != 2 {
		t.Errorf("bytes by uplink: %v", by)
	}
	for name, sfs := range map[string][]subflow{
		"one subflow":    all[:1],
		"the other port": all,
		"nothing":        nil,
		// An earlier download's connection, lingering, idle since the
		// listing before this one: its subflows do not count.
		"an earlier connection":          since(all, all),
		"isp1's subflow carried nothing": {{all[0].local, all[0].peer, true, 0}, all[1]},
		"plain TCP from isp1":            {{all[0].local, all[0].peer, false, 1 << 20}, all[1]},
		"isp2's subflow alone":           all[1:2],
		"both, another port 22":          {all[2]},
	} {
		port := 8390
		if name == "the other port" || name == "both, another port 22" {
			port = 8388
		}
		if _, err := checkSubflows(sfs, port); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestCarriedSince(t *testing.T) {
	ap := netip.MustParseAddrPort
	peer := ap("10.203.0.2:8390")
	base := []subflow{
		{ap("10.101.0.2:1000"), peer, true, 5000},
		{ap("10.102.0.2:1001"), peer, true, 9000},
	}
	now := []subflow{
		{ap("10.101.0.2:1000"), peer, true, 6000},  // grew 1000
		{ap("10.101.0.2:1002"), peer, true, 70000}, // new: all of it
		{ap("10.102.0.2:1001"), peer, true, 99000}, // isp2's: not counted
		{ap("10.101.0.2:1003"), ap("10.203.0.2:22"), false, 1 << 30},
	}
	if got := carriedSince(base, now, 8390, lab.BoxWAN1V4); got != 71000 {
		t.Errorf("carriedSince = %d, want 71000", got)
	}
	if got := carriedSince(now, base, 8390, lab.BoxWAN1V4); got != 0 {
		t.Errorf("a subflow gone or shrunk carried %d, want 0", got)
	}
}

func TestBytesBetween(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ms := func(m int) time.Time { return t0.Add(time.Duration(m) * time.Millisecond) }
	times := []time.Time{ms(100), ms(200), ms(200), ms(300), ms(400)}
	total := []int64{10, 30, 60, 100, 150}
	for _, c := range []struct {
		from, to int
		want     int64
	}{
		{0, 1000, 150},
		{100, 400, 140}, // after the read at 100, up to and including 400
		{150, 250, 50},  // both reads at 200
		{200, 300, 40},
		{500, 600, 0},
		{0, 50, 0},
	} {
		if got := bytesBetween(times, total, ms(c.from), ms(c.to)); got != c.want {
			t.Errorf("bytesBetween(%d ms, %d ms) = %d, want %d", c.from, c.to, got, c.want)
		}
	}
}

// The server's view decides whether a download went the way it is
// reported under: one connection, to the path's address, from the
// address that path leaves by.
func TestDownloadsCheck(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	a := netip.MustParseAddr
	for _, c := range []struct {
		name string
		seen []accepted
		p    aggPath
		ok   bool
	}{
		{"through braid's peer", []accepted{{t0, a(lab.ServerV4), a(lab.PeerV4)}}, aggViaBraid, true},
		{"an earlier connection is not counted", []accepted{{t0.Add(-time.Second), a(lab.ServerV4), a(lab.BoxWAN1V4)}, {t0, a(lab.ServerV4), a(lab.PeerV4)}}, aggViaBraid, true},
		{"direct, not through the proxy", []accepted{{t0, a(lab.ServerV4), a(lab.BoxWAN1V4)}}, aggViaBraid, false},
		{"isp1 alone left by isp2", []accepted{{t0, a(aggDirect1), a(lab.BoxWAN2V4)}}, aggViaISP1, false},
		{"isp1 alone", []accepted{{t0, a(aggDirect1), a(lab.BoxWAN1V4)}}, aggViaISP1, true},
		{"another address", []accepted{{t0, a(aggLibev), a(lab.PeerV4)}}, aggViaBraid, false},
		{"two connections", []accepted{{t0, a(lab.ServerV4), a(lab.PeerV4)}, {t0, a(lab.ServerV4), a(lab.PeerV4)}}, aggViaBraid, false},
		{"none", nil, aggViaLibev, false},
	} {
		s := &source{seen: c.seen}
		err := s.check(c.p, t0)
		if (err == nil) != c.ok {
			t.Errorf("%s: check = %v, want ok %v", c.name, err, c.ok)
		}
		// The error names what the server saw.
		if err != nil && len(c.seen) > 0 && !strings.Contains(err.Error(), "from "+c.seen[len(c.seen)-1].from.String()) {
			t.Errorf("%s: the error does not say where the connection came from: %v", c.name, err)
		}
	}
}

// The verdicts: braid's median against 95% of the sum of the uplinks'
// medians, and above shadowsocks-libev's median.
func TestAggregationVerdict(t *testing.T) {
	for _, c := range []struct {
		braid, libev   []float64
		sumMet, libMet bool
		ofSum          float64
	}{
		{[]float64{48e6, 49e6, 20e6}, []float64{46e6}, true, true, 0.96},
		{[]float64{45e6, 45e6, 60e6}, []float64{44e6}, false, true, 0.9},
		{[]float64{48e6}, []float64{48e6}, true, false, 0.96},
	} {
		cond := &aggCondition{name: "no added delay", goodput: map[string][]float64{
			"isp1": {29e6, 30e6, 31e6}, "isp2": {19e6, 20e6, 22e6}, "braid": c.braid, "libev": c.libev}}
		v := cond.verdict()
		if v.sumMet != c.sumMet || v.libevMet != c.libMet || v.ofSum < c.ofSum-0.001 || v.ofSum > c.ofSum+0.001 {
			t.Errorf("braid %v, libev %v: %+v, want sum met %v (%.2f), libev met %v", c.braid, c.libev, v, c.sumMet, c.ofSum, c.libMet)
		}
		var b strings.Builder
		missed := writeAggregationTable(&b, &aggResult{window: 10 * time.Second, conds: []*aggCondition{cond}})
		if want := btoi(!c.sumMet) + btoi(!c.libMet); len(missed) != want {
			t.Errorf("braid %v: missed %v, want %d goals missed\n%s", c.braid, missed, want, b.String())
		}
	}
	// No download through braid: nothing is met.
	cond := &aggCondition{goodput: map[string][]float64{"isp1": {1}, "isp2": {1}}}
	if v := cond.verdict(); v.sumMet || v.libevMet {
		t.Errorf("without braid's downloads: %+v", v)
	}
}

// The failover goal: every download survives, the longest stall of all at
// most a second.
func TestAggregationFailoverVerdict(t *testing.T) {
	for _, c := range []struct {
		f      aggFailover
		missed int
	}{
		{aggFailover{n: 2, survived: 2, stall: []time.Duration{900 * time.Millisecond, time.Second}}, 0},
		{aggFailover{n: 2, survived: 2, stall: []time.Duration{900 * time.Millisecond, 1100 * time.Millisecond}}, 1},
		{aggFailover{n: 2, survived: 1, stall: []time.Duration{900 * time.Millisecond}}, 2},
	} {
		var b strings.Builder
		missed := writeAggregationTable(&b, &aggResult{fail: map[string]*aggFailover{"braid": &c.f}})
		if len(missed) != c.missed {
			t.Errorf("%+v: missed %v, want %d\n%s", c.f, missed, c.missed, b.String())
		}
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// The box's spec compiles to the proxy session with the benchmark's
// cipher, shadowsocks-libev's address in the bypass set and the two
// direct addresses in the routes set (both go direct, the second each
// by its uplink); the peer's spec parses.
func TestAggregationSpecs(t *testing.T) {
	doc, err := api.Parse("aggregation-box.yaml", []byte(aggBoxSpec("aes-256-gcm", "/run/key")))
	if err != nil {
		t.Fatalf("the box's spec is invalid: %v", err)
	}
	// The proxy's verdict that the peer is up: without it, braid steers
	// nothing into the proxy.
	peer := net.JoinHostPort(lab.PeerV4, strconv.Itoa(aggPeerPort))
	up := facts.Set{Slots: map[string]facts.Slot{"proxy/aggregation": {Facts: []facts.Fact{
		{Peer: &facts.Peer{Address: peer, Healthy: true}, Process: true}}}}}
	d, err := compile.Compile(doc, up)
	if err != nil {
		t.Fatal(err)
	}
	var proxyCfg *proxy.Config
	for _, s := range d.Sessions {
		if c, ok := s.Config.(proxy.Config); ok {
			proxyCfg = &c
		}
	}
	if proxyCfg == nil || proxyCfg.Cipher != "aes-256-gcm" || proxyCfg.Peer != "10.203.0.2:8390" {
		t.Errorf("the proxy session's config: %+v", proxyCfg)
	}
	sets := map[string]string{}
	for _, r := range d.Resources {
		if s, ok := plan.Unbound(r).(nft.Set); ok {
			var els []string
			for _, e := range s.Elements {
				els = append(els, e.String())
			}
			sets[s.Name] = strings.Join(els, " ")
		}
	}
	if got, want := sets["proxy_bypass_v4"], aggLibev; got != want {
		t.Errorf("bypass set %q, want %q (all sets: %v)", got, want, sets)
	}
	// Adjacent, the two /32s make one range.
	if got, want := sets["proxy_routes_v4"], aggDirect1+"-"+aggDirect2; got != want {
		t.Errorf("routes set %q, want %q", got, want)
	}
	if _, err := api.Parse("aggregation-peer.yaml", []byte(aggPeerSpec("aes-256-gcm", "/run/key"))); err != nil {
		t.Errorf("the peer's spec is invalid: %v", err)
	}
}
