package main

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/braid-router/braid/api"
	"github.com/braid-router/braid/compile"
	nft "github.com/braid-router/braid/drivers/nftables"
	"github.com/braid-router/braid/facts"
	"github.com/braid-router/braid/reconcile/plan"
	"github.com/braid-router/braid/sessions/peer"
	"github.com/braid-router/braid/sessions/proxy"
)

// The box's spec is valid, runs the proxy to braid's peer with the
// cipher, and bypasses the ss and plain paths' server addresses but not
// braid's: otherwise braid's proxy would carry the others' flows.
func TestProxyBoxSpec(t *testing.T) {
	var b strings.Builder
	if err := writeProxyBoxSpec(&b, "aes-128-gcm"); err != nil {
		t.Fatal(err)
	}
	doc, err := api.Parse("proxy-box.yaml", []byte(b.String()))
	if err != nil {
		t.Fatalf("generated spec is invalid: %v\n%s", err, b.String())
	}
	// The steering waits for the proxy's verdict that the peer is up.
	up := facts.Set{Slots: map[string]facts.Slot{"proxy/aggregation": {Facts: []facts.Fact{
		{Peer: &facts.Peer{Address: pxPeerWAN + ":8388", Healthy: true, Uplinks: []string{"up"}}, Process: true}}}}}
	d, err := compile.Compile(doc, up)
	if err != nil {
		t.Fatal(err)
	}
	var cfg *proxy.Config
	for _, s := range d.Sessions {
		if c, ok := s.Config.(proxy.Config); ok && s.Kind == proxy.Kind {
			cfg = &c
		}
	}
	if cfg == nil || cfg.Peer != "10.250.2.2:8388" || cfg.Cipher != "aes-128-gcm" {
		t.Fatalf("proxy session config %+v, want peer %s:%d with aes-128-gcm", cfg, pxPeerWAN, pxBraidPort)
	}
	var bypass *nft.Set
	for _, r := range d.Resources {
		if pb, ok := r.(plan.ProcessBound); ok {
			if s, ok := pb.Resource.(nft.Set); ok && s.Name == "proxy_bypass_v4" {
				bypass = &s
			}
		}
	}
	if bypass == nil {
		t.Fatal("no proxy_bypass_v4 set")
	}
	in := func(a string) bool {
		addr := netip.MustParseAddr(a)
		for _, r := range bypass.Elements {
			if r.First.Compare(addr) <= 0 && addr.Compare(r.End) < 0 {
				return true
			}
		}
		return false
	}
	for _, c := range []struct {
		addr   string
		bypass bool
	}{{pxServerSS, true}, {pxServerPlain, true}, {pxServerBraid, false}} {
		if in(c.addr) != c.bypass {
			t.Errorf("%s in the bypass set %v: %v, want %v", c.addr, bypass.Elements, !c.bypass, c.bypass)
		}
	}
}

// braid's peer's spec is valid and listens where the box dials.
func TestProxyPeerSpec(t *testing.T) {
	var b strings.Builder
	if err := writeProxyPeerSpec(&b, "chacha20-ietf-poly1305"); err != nil {
		t.Fatal(err)
	}
	doc, err := api.Parse("proxy-peer.yaml", []byte(b.String()))
	if err != nil {
		t.Fatalf("generated spec is invalid: %v\n%s", err, b.String())
	}
	d, err := compile.Compile(doc, facts.Set{})
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Sessions) != 1 {
		t.Fatalf("sessions %+v, want the peer's", d.Sessions)
	}
	c, ok := d.Sessions[0].Config.(peer.Config)
	if !ok || c.Listen != "10.250.2.2:8388" || c.Cipher != "chacha20-ietf-poly1305" {
		t.Errorf("peer session config %+v", d.Sessions[0].Config)
	}
}

func TestParseNftCounters(t *testing.T) {
	// nft -j list counters table inet bench_paths, as nft 1.0 prints it.
	out := `{"nftables": [{"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}},` +
		`{"counter": {"family": "inet", "name": "braid", "table": "bench_paths", "handle": 1, "packets": 12, "bytes": 3456}},` +
		`{"counter": {"family": "inet", "name": "ss", "table": "bench_paths", "handle": 2, "packets": 0, "bytes": 0}},` +
		`{"counter": {"family": "inet", "name": "plain", "table": "bench_paths", "handle": 3, "packets": 1, "bytes": 60}}]}`
	got, err := parseNftCounters([]byte(out))
	if err != nil {
		t.Fatal(err)
	}
	if got["braid"] != 3456 || got["ss"] != 0 || got["plain"] != 60 || len(got) != 3 {
		t.Errorf("counters %v", got)
	}
	if _, err := parseNftCounters([]byte("Error: No such file or directory")); err == nil {
		t.Error("nft's error text parsed as counters")
	}
}

// A flow counts as through a path only if the peer counted at least its
// bytes there and next to nothing on the others.
func TestCheckCounters(t *testing.T) {
	before := map[string]uint64{"braid": 1000, "ss": 500, "plain": 0}
	for _, c := range []struct {
		path  string
		after map[string]uint64
		ok    bool
	}{
		{pathBraid, map[string]uint64{"braid": 1000 + 1_100_000, "ss": 500, "plain": 0}, true},
		{pathBraid, map[string]uint64{"braid": 1000 + 900_000, "ss": 500, "plain": 0}, false},               // fewer bytes than the flow moved
		{pathBraid, map[string]uint64{"braid": 1000 + 1_100_000, "ss": 500 + 1_100_000, "plain": 0}, false}, // the other proxy carried it too
		{pathSS, map[string]uint64{"braid": 1000, "ss": 500 + 1_000_000, "plain": 120}, true},
		{pathPlain, map[string]uint64{"braid": 1000, "ss": 500, "plain": 2_000_000}, true},
		{pathPlain, map[string]uint64{"braid": 1000 + 1_100_000, "ss": 500, "plain": 60}, false}, // braid proxied it
	} {
		err := checkCounters(c.path, before, c.after, 1_000_000)
		if (err == nil) != c.ok {
			t.Errorf("%s path, counters %v: %v, want ok %v", c.path, c.after, err, c.ok)
		}
	}
}

func TestCheckIperfServer(t *testing.T) {
	report := func(control, data string) string {
		return `{"start": {"connected": [{"socket": 5, "local_host": "10.250.10.1", "local_port": 5201, "remote_host": "` + data +
			`", "remote_port": 40000}], "accepted_connection": {"host": "` + control + `", "port": 39998}}, "end": {}}`
	}
	for _, c := range []struct {
		json string
		ok   bool
	}{
		{report(pxPeerSrv, pxPeerSrv), true},
		{report(pxPeerSrv, pxBoxWAN), false}, // the data connection was not proxied
		{report(pxBoxWAN, pxPeerSrv), false},
		{report("::ffff:"+pxPeerSrv, "::ffff:"+pxPeerSrv), true}, // a dual-stack server's view
		{`{"start": {"accepted_connection": {"host": "10.250.3.1"}}, "end": {}}`, false},
		{`{"error": "unable to start listener for connections: Address already in use"}`, false},
		{"", false},
	} {
		err := checkIperfServer([]byte(c.json), pxPeerSrv)
		if (err == nil) != c.ok {
			t.Errorf("%s: %v, want ok %v", c.json, err, c.ok)
		}
	}
}

func TestParseIperfClient(t *testing.T) {
	c, err := parseIperfClient([]byte(`{"end": {"sum_received": {"bytes": 1250000000, "bits_per_second": 1e9}}}`))
	if err != nil || c.End.Received.Bytes != 1250000000 || c.End.Received.BPS != 1e9 {
		t.Errorf("%+v, %v", c, err)
	}
	for _, bad := range []string{`{"error": "unable to connect to server: Connection refused"}`, `{"end": {}}`, "iperf3: error"} {
		if _, err := parseIperfClient([]byte(bad)); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
}

func TestCountEstablished(t *testing.T) {
	// ss -MnH in the peer: MPTCP sockets, the listeners among them.
	out := `LISTEN 0      1024       10.250.2.2:8389      0.0.0.0:*
LISTEN 0      4096       10.250.2.2:8388      0.0.0.0:*
ESTAB  0      0          10.250.2.2:8388   10.250.2.1:41000
ESTAB  0      0          10.250.2.2:8388   10.250.2.1:41002
ESTAB  0      0          10.250.2.2:8389   10.250.2.1:41004
ESTAB  0      0          10.250.2.2:48388  10.250.2.1:8388
`
	if n := countEstablished(out, 8388); n != 2 {
		t.Errorf("port 8388: %d, want 2", n)
	}
	if n := countEstablished(out, 8389); n != 1 {
		t.Errorf("port 8389: %d, want 1", n)
	}
	if n := countEstablished("", 8388); n != 0 {
		t.Errorf("nothing: %d", n)
	}
}

// The one-flow goal is braid's median at least shadowsocks-libev's, in
// each cipher and direction; the connections' rows have no goal.
func TestProxyTableVerdicts(t *testing.T) {
	flows := func(cipher string, braidUp, ssUp float64) *pxFlows {
		f := &pxFlows{cipher: cipher, bps: map[string]map[string][]float64{}, boxCPU: map[string]map[string][]float64{}, peerCPU: map[string]map[string][]float64{}}
		for _, d := range pxDirections {
			f.bps[d] = map[string][]float64{pathBraid: {2e9, 2e9}, pathSS: {1e9, 1e9}, pathPlain: {10e9, 12e9}}
			f.boxCPU[d] = map[string][]float64{pathBraid: {0.5}, pathSS: {0.8}}
			f.peerCPU[d] = map[string][]float64{pathBraid: {0.4}, pathSS: {0.7}}
		}
		f.bps["upload"][pathBraid] = []float64{braidUp, braidUp}
		f.bps["upload"][pathSS] = []float64{ssUp, ssUp}
		return f
	}
	load := &pxLoad{idle: 1000, busy: 100, rate: 1e6, window: 10 * time.Second, sides: map[string][]pxLoadSample{
		pathBraid: {{baseBox: 20 << 10, idleBox: 30 << 10, busyBox: 32 << 10, basePeer: 18 << 10, idlePeer: 28 << 10, busyPeer: 30 << 10,
			idleCPUBox: 100 * time.Millisecond, busyCPUBox: time.Second, busyCPUPeer: 2 * time.Second, carried: 100e6}},
		pathSS: {{baseBox: 4 << 10, idleBox: 8 << 10, busyBox: 16 << 10, basePeer: 4 << 10, idlePeer: 8 << 10, busyPeer: 8 << 10,
			busyCPUBox: time.Second, busyCPUPeer: 500 * time.Millisecond, carried: 71e6}},
	}}
	r := &pxResult{flows: []*pxFlows{flows("chacha20-ietf-poly1305", 3e9, 1e9), flows("aes-128-gcm", 0.9e9, 1e9)}, load: load}
	var b strings.Builder
	missed := writeProxyTable(&b, r)
	if len(missed) != 1 || !strings.Contains(missed[0], "aes-128-gcm") || !strings.Contains(missed[0], "upload") {
		t.Errorf("missed %q, want aes-128-gcm's upload alone\n%s", missed, b.String())
	}
	for _, want := range []string{
		"| 3.00 Gbit/s (min 3.00) `braid's box + braid's peer` | 1.00 Gbit/s (min 1.00) `ss-redir + ss-server --mptcp --no-delay` | 3.00 | ≥ shadowsocks-libev | met |",
		"| 0.90 Gbit/s (min 0.90) `braid's box + braid's peer` | 1.00 Gbit/s (min 1.00) `ss-redir + ss-server --mptcp --no-delay` | 0.90 | ≥ shadowsocks-libev | **missed** |",
		"throughput against plain forwarding | 2.00 Gbit/s (min 2.00) `braid's box + braid's peer` | 11.00 Gbit/s (min 10.00) `kernel forwarding, no proxy` | 0.18 |",
		"| box 50%, peer 40% `braid run` | box 80%, peer 70% `ss-redir, ss-server` |",
		"proxy: 1,000 idle connections: RSS of the box's proxy process | 30.0 MiB (20.0 MiB before) `braid run` | 8.0 MiB (4.0 MiB before) `ss-redir` | 3.75 |",
		"proxy: 1,000 idle + 100 busy connections (1.0 Mbit/s each, server → LAN host): RSS of the peer's proxy process | 30.0 MiB (18.0 MiB before) `braid run` | 8.0 MiB (4.0 MiB before) `ss-server` | 3.75 |",
		"busy connections (1.0 Mbit/s each, server → LAN host): CPU over 10s | box 1000 ms (10.0% of a core), peer 2000 ms (20.0%) `braid run` | box 1000 ms (10.0% of a core), peer 500 ms (5.0%) `ss-redir, ss-server` | 2.00 |",
		"received by the busy connections | 100.0 Mbit/s (min 100.0 Mbit/s) `braid run` | 71.0 Mbit/s (min 71.0 Mbit/s) `ss-redir, ss-server` | — | — | **short** (< 90% of the offered load in a round) |",
		"idle connections: CPU over 10s | box 100 ms (1.0% of a core), peer 0.0 ms (0.0%) `braid run` | box 0.0 ms (0.0% of a core), peer 0.0 ms (0.0%) `ss-redir, ss-server` | — |",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, b.String())
		}
	}
}
