package nftables

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/braid-router/braid/drivers/failpoint"
	"github.com/braid-router/braid/internal/nstest"
	"github.com/braid-router/braid/internal/plantest"
	"github.com/braid-router/braid/reconcile/plan"
)

// rig is a driver in a throwaway namespace, with a write counter. The
// test's goroutine is locked into the namespace for the rest of the test
// (as in drivers/netlink), so the driver's sockets open there.
type rig struct {
	t      *testing.T
	ns     string
	d      *Driver
	writes *failpoint.Counter
}

func newRig(t *testing.T) *rig {
	t.Helper()
	ns := nstest.New(t)
	nstest.Enter(t, ns)
	writes := &failpoint.Counter{}
	d := New(Options{Writes: writes, Log: nstest.Logger(t)})
	if d.err != nil {
		t.Fatal(d.err)
	}
	t.Cleanup(func() { d.Close() })
	return &rig{t: t, ns: ns, d: d, writes: writes}
}

// nft runs nft(8) in the rig's namespace.
func (r *rig) nft(args ...string) string {
	r.t.Helper()
	return nstest.In(r.t, r.ns, "nft", args...)
}

func (r *rig) plan(want []plan.Resource) []plan.Change {
	r.t.Helper()
	live, err := r.d.Observe(context.Background(), want)
	if err != nil {
		r.t.Fatalf("observe: %v", err)
	}
	changes, conflicts := plan.Diff(want, live)
	if len(conflicts) > 0 {
		r.t.Fatalf("conflicts in braid's own table: %v", conflicts)
	}
	return changes
}

// converge plans and applies the changes as one batch, as the engine does
// (creates and updates, then deletes in reverse), and returns them.
func (r *rig) converge(want []plan.Resource) []plan.Change {
	r.t.Helper()
	changes := r.plan(want)
	if len(changes) == 0 {
		return nil
	}
	n, err := r.d.ApplyBatch(context.Background(), changes)
	if err != nil || n != len(changes) {
		r.t.Fatalf("apply %d changes: %d applied: %v%s", len(changes), n, err, plantest.Describe(changes))
	}
	return changes
}

// settled checks that a second plan is empty.
func (r *rig) settled(want []plan.Resource) {
	r.t.Helper()
	if changes := r.plan(want); len(changes) != 0 {
		r.t.Fatalf("plan after apply is not empty:%s", plantest.Describe(changes))
	}
}

// listed is one rule as `nft -a list table inet braid` shows it.
type listed struct {
	chain, text, id string
	handle          string
}

var (
	chainLine   = regexp.MustCompile(`^\tchain (\S+) \{`)
	ruleLine    = regexp.MustCompile(`^\t\t(.*?)(?: comment "([^"]*)")? # handle (\d+)$`)
	counterVals = regexp.MustCompile(`counter packets \d+ bytes \d+`)
)

// nftRules lists braid's rules as nft prints them: the independent oracle
// for the text braid renders. Counters' values are dropped.
func (r *rig) nftRules() []listed {
	r.t.Helper()
	var out []listed
	chain := ""
	for _, line := range strings.Split(r.nft("-a", "list", "table", "inet", TableName), "\n") {
		if m := chainLine.FindStringSubmatch(line); m != nil {
			chain = m[1]
			continue
		}
		m := ruleLine.FindStringSubmatch(line)
		if m == nil || chain == "" || strings.HasPrefix(m[1], "type ") {
			continue
		}
		out = append(out, listed{chain: chain, text: counterVals.ReplaceAllString(m[1], "counter"), id: m[2], handle: m[3]})
	}
	return out
}

// nftJSON returns `nft -j list table FAMILY NAME`, or "" if it does not
// exist.
func (r *rig) nftJSON(family, name string) string {
	r.t.Helper()
	return nstest.NftTable(r.t, r.ns, family, name)
}

// nftDoc decodes nft's JSON output into its objects, by kind.
func nftDoc(t *testing.T, s string) map[string][]map[string]any {
	t.Helper()
	var doc struct {
		Nftables []map[string]map[string]any `json:"nftables"`
	}
	if err := json.Unmarshal([]byte(s), &doc); err != nil {
		t.Fatalf("decode nft -j: %v\n%s", err, s)
	}
	out := map[string][]map[string]any{}
	for _, o := range doc.Nftables {
		for kind, v := range o {
			out[kind] = append(out[kind], v)
		}
	}
	return out
}

// monitor runs `nft monitor` in the namespace: the test marks a point
// (m.Mark(t)) and reads what was written since (m.Since(t, mark)).
func (r *rig) monitor() *nstest.Monitor {
	r.t.Helper()
	poke, token := nstest.NftMarker(r.t, r.ns)
	return nstest.NewMonitor(r.t, poke, token, "ip", "netns", "exec", r.ns, "nft", "monitor")
}

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }

func pfxs(ss ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		out[i] = pfx(s)
	}
	return out
}

// resources builds a ruleset and fails the test on an error.
func resources(t *testing.T, rs *Ruleset) []plan.Resource {
	t.Helper()
	out, err := rs.Resources()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// config varies the sample ruleset.
type config struct {
	// dnat is the port forward's target; allow4 the allow_v4 set.
	dnat   string
	allow4 []netip.Prefix
	// input adds rules at the end of the input chain, before its drop.
	input func(rs *Ruleset)
}

// sample is a ruleset shaped like the lab box's: every kind of statement
// braid uses, in every chain.
func sample(t *testing.T) []plan.Resource {
	t.Helper()
	return sampleWith(t, config{})
}

func sampleWith(t *testing.T, cfg config) []plan.Resource {
	t.Helper()
	if cfg.dnat == "" {
		cfg.dnat = "192.168.50.10:80"
	}
	if cfg.allow4 == nil {
		cfg.allow4 = pfxs("192.168.50.0/24")
	}
	rs := NewRuleset()
	rs.AddSet("allow_v4", false, cfg.allow4)
	rs.AddSet("allow_v6", true, pfxs("2001:db8:50::/64"))
	rs.AddTimeoutSet("egress_isp1_v4", false)
	rs.AddTimeoutSet("egress_isp1_v6", true)
	rs.Add(ChainMangle, "restore-isp1", CtMark(7101), RestoreMark())
	rs.Add(ChainMangle, "egress-isp1-v4", CtState(CtNew), DstInSet("egress_isp1_v4", false), SetMark(7101), SetCtMark(7101))
	rs.Add(ChainMangle, "egress-isp1-v6", CtState(CtNew), DstInSet("egress_isp1_v6", true), SetMark(7101), SetCtMark(7101))
	rs.AddSet("proxy_bypass_v4", false, pfxs("192.168.0.0/16"))
	rs.AddSet("proxy_bypass_v6", true, pfxs("2001:db8:99::/48"))
	rs.Add(ChainTProxy, "not-lan", IIFNameNot("lan0"), Return())
	rs.Add(ChainTProxy, "marked", Marked(), Return())
	rs.Add(ChainTProxy, "local", DstLocal(), Return())
	rs.Add(ChainTProxy, "bypass-v4", DstInSet("proxy_bypass_v4", false), Return())
	rs.Add(ChainTProxy, "bypass-v6", DstInSet("proxy_bypass_v6", true), Return())
	rs.Add(ChainTProxy, "peer", DstPrefix(pfx("203.0.113.7/32")), Return())
	rs.Add(ChainTProxy, "tcp-v4", IIFName("lan0"), TProxy("tcp", false, 7190), SetMark(7190))
	rs.Add(ChainTProxy, "tcp-v6", IIFName("lan0"), TProxy("tcp", true, 7190), SetMark(7190))
	rs.Add(ChainTProxy, "quic", IIFName("lan0"), DPort("udp", 443), RejectPortUnreachable())
	rs.Add(ChainTProxy, "not-unicast", L4Proto("udp"), DstNotUnicast(), Return())
	rs.Add(ChainTProxy, "udp-v4", IIFName("lan0"), TProxy("udp", false, 7190), SetMark(7190))
	rs.Add(ChainTProxy, "udp-v6", IIFName("lan0"), TProxy("udp", true, 7190), SetMark(7190))
	rs.Add(ChainDNAT, "forward-tcp-8080-wan1", IIFName("wan1"), DPort("tcp", 8080), DNAT(netip.MustParseAddrPort(cfg.dnat)))
	rs.Add(ChainInput, "established", CtState(CtEstablished|CtRelated), Accept())
	rs.Add(ChainInput, "invalid", CtState(CtInvalid), Drop())
	rs.Add(ChainInput, "loopback", IIFName("lo"), Accept())
	rs.Add(ChainInput, "lan", IIFName("lan0"), Accept())
	rs.Add(ChainInput, "allow-v4", SrcInSet("allow_v4", false), Accept())
	rs.Add(ChainInput, "allow-v6", SrcInSet("allow_v6", true), Accept())
	rs.Add(ChainInput, "icmp-echo-request", ICMP(ICMPEchoRequest), Accept())
	rs.Add(ChainInput, "icmpv6-nd-neighbor-solicit", ICMPv6(ICMPv6NeighborSolicit), Accept())
	rs.Add(ChainInput, "mld-listener-query", SrcPrefix(pfx("fe80::/10")), ICMPv6(ICMPv6MLDQuery), Accept())
	rs.Add(ChainInput, "dhcpv6-wan1", IIFName("wan1"), SrcPrefix(pfx("fe80::/10")), DPort("udp", 546), Accept())
	rs.Add(ChainInput, "open-tcp-22-wan1-from-198.51.100.0/24", IIFName("wan1"), SrcPrefix(pfx("198.51.100.0/24")), DPort("tcp", 22), Accept())
	if cfg.input != nil {
		cfg.input(rs)
	}
	rs.Add(ChainInput, "drop-wan1", IIFName("wan1"), Drop())
	rs.Add(ChainForward, "mss-sixpe-out", OIFName("sixpe"), TCPSyn(), SetMSS(1400))
	rs.Add(ChainForward, "established", CtState(CtEstablished|CtRelated), Accept())
	rs.Add(ChainForward, "lan-wan1", IIFName("lan0"), OIFName("wan1"), Accept())
	rs.Add(ChainForward, "dnat", CtStatusDNAT(), Accept())
	rs.Add(ChainForward, "forward6-tcp-8080-wan1", IIFName("wan1"), DstPrefix(pfx("2001:db8:50::10/128")), DPort("tcp", 8080), Accept())
	rs.Add(ChainForward, "drop-wan1", IIFName("wan1"), Drop())
	rs.Add(ChainSNAT, "masquerade-wan1-192.168.50.0/24", OIFName("wan1"), SrcPrefix(pfx("192.168.50.0/24")), Masquerade())
	return resources(t, rs)
}

func ruleTexts(rs []plan.Resource) map[string]string {
	out := map[string]string{}
	for _, r := range rs {
		if r, ok := r.(Rule); ok {
			out[r.Chain+":"+r.ID] = r.Text()
		}
	}
	return out
}

func fmtMap(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "  %s: %s\n", k, m[k])
	}
	return b.String()
}
