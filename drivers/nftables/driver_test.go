package nftables

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/braid-router/braid/internal/nstest"
	"github.com/braid-router/braid/internal/plantest"
	"github.com/braid-router/braid/reconcile/plan"
)

// TestConvergeAgreesWithNft converges a ruleset from empty and checks it
// with nft itself: every rule braid wants is in nft's listing, in order,
// with its ID as comment and the very text braid's plan shows; the chains
// have their hooks and policies; a second pass has nothing to do.
func TestConvergeAgreesWithNft(t *testing.T) {
	r := newRig(t)
	want := sample(t)
	changes := r.converge(want)
	if len(changes) != len(want) {
		t.Fatalf("%d changes for %d resources", len(changes), len(want))
	}
	if n := r.writes.Count(); n != int64(len(changes)) {
		t.Errorf("counted %d writes for %d changes", n, len(changes))
	}
	got := map[string]string{}
	var order []string
	for _, l := range r.nftRules() {
		got[l.chain+":"+l.id] = l.text
		order = append(order, l.chain+":"+l.id)
	}
	wantTexts := ruleTexts(want)
	if fmtMap(got) != fmtMap(wantTexts) {
		t.Errorf("nft lists:\n%s\nbraid wants:\n%s", fmtMap(got), fmtMap(wantTexts))
	}
	var wantOrder []string
	for _, res := range want {
		if rule, ok := res.(Rule); ok {
			wantOrder = append(wantOrder, rule.Chain+":"+rule.ID)
		}
	}
	if got, want := order, wantOrder; len(got) != len(want) {
		t.Errorf("order: %q, want %q", got, want)
	} else {
		// nft lists chains in creation order, as braid creates them.
		for i := range got {
			if got[i] != want[i] {
				t.Errorf("rule %d is %s, want %s", i, got[i], want[i])
			}
		}
	}
	doc := nftDoc(t, r.nftJSON("inet", TableName))
	chains := map[string]map[string]any{}
	for _, c := range doc["chain"] {
		chains[c["name"].(string)] = c
	}
	for name, want := range map[string]struct {
		typ, hook, policy string
		prio              float64
	}{
		ChainInput:   {"filter", "input", "accept", 0},
		ChainForward: {"filter", "forward", "accept", 0},
		ChainDNAT:    {"nat", "prerouting", "accept", -100},
		ChainSNAT:    {"nat", "postrouting", "accept", 100},
		ChainMangle:  {"filter", "prerouting", "accept", -150},
		// After the marks of prerouting_mangle, before dstnat.
		ChainTProxy: {"filter", "prerouting", "accept", -149},
	} {
		c := chains[name]
		if c == nil || c["type"] != want.typ || c["hook"] != want.hook || c["policy"] != want.policy || c["prio"] != want.prio {
			t.Errorf("chain %s: %v, want type %s hook %s priority %v policy %s", name, c, want.typ, want.hook, want.prio, want.policy)
		}
	}
	// The chains' priorities as nft names them.
	listed := map[string]string{}
	chain := ""
	for _, l := range strings.Split(r.nft("list", "table", "inet", TableName), "\n") {
		if m := chainLine.FindStringSubmatch(l); m != nil {
			chain = m[1]
		}
		if _, prio, ok := strings.Cut(l, " priority "); ok && chain != "" {
			listed[chain], _, _ = strings.Cut(prio, ";")
		}
	}
	for _, res := range want {
		c, ok := res.(Chain)
		if !ok {
			continue
		}
		if got := plan.Describe(c); !strings.Contains(got, "priority="+listed[c.Name]+" ") {
			t.Errorf("nft lists chain %s with priority %q; braid describes it as %s", c.Name, listed[c.Name], got)
		}
	}
	sets := map[string]map[string]any{}
	for _, s := range doc["set"] {
		sets[s["name"].(string)] = s
	}
	if s := sets["allow_v4"]; s == nil || s["type"] != "ipv4_addr" || len(s["elem"].([]any)) != 1 {
		t.Errorf("set allow_v4: %v", s)
	}
	r.settled(want)
}

// TestUpdateOneRule changes one rule's content: the plan names that rule
// and nothing else, the transaction touches only its chain, and the other
// rules keep their handles.
func TestUpdateOneRule(t *testing.T) {
	r := newRig(t)
	r.converge(sample(t))
	handles := map[string]string{}
	for _, l := range r.nftRules() {
		handles[l.chain+":"+l.id] = l.handle
	}
	want := sampleWith(t, config{dnat: "192.168.50.20:8080"})
	changes := r.plan(want)
	plantest.WantActions(t, changes, "~nft.rule[inet braid prerouting_nat:forward-tcp-8080-wan1]")
	if got := plan.Describe(changes[0].Before) + " -> " + plan.Describe(changes[0].After); got !=
		`rule=iifname "wan1" tcp dport 8080 dnat ip to 192.168.50.10:80 -> rule=iifname "wan1" tcp dport 8080 dnat ip to 192.168.50.20:8080` {
		t.Errorf("change: %s", got)
	}
	m := r.monitor()
	mark := m.Mark(t)
	r.converge(want)
	events := m.Since(t, mark)
	for _, line := range strings.Split(strings.TrimSpace(events), "\n") {
		if !strings.Contains(line, "prerouting_nat") {
			t.Errorf("the update wrote outside its chain: %q", line)
		}
	}
	if !strings.Contains(events, "192.168.50.20:8080") {
		t.Errorf("nft monitor did not see the new rule:\n%s", events)
	}
	for _, l := range r.nftRules() {
		key := l.chain + ":" + l.id
		if key != ChainDNAT+":forward-tcp-8080-wan1" && handles[key] != l.handle {
			t.Errorf("%s: handle %s -> %s, but it did not change", key, handles[key], l.handle)
		}
	}
	r.settled(want)
}

// TestSetChangesByElementDifference changes one element in and one out of
// a set of a thousand: the plan says so, and nft monitor sees exactly one
// element added and one deleted, nothing else.
func TestSetChangesByElementDifference(t *testing.T) {
	r := newRig(t)
	var thousand []netip.Prefix
	for i := range 1000 {
		// Every other address: adjacent ones would merge into ranges.
		thousand = append(thousand, netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 0, byte(i / 100), byte(2*(i%100) + 1)}), 32))
	}
	r.converge(sampleWith(t, config{allow4: thousand}))
	changed := append(slices.Clone(thousand[1:]), pfx("10.9.9.9/32"))
	want := sampleWith(t, config{allow4: changed})
	changes := r.plan(want)
	plantest.WantActions(t, changes, "~nft.set[inet braid allow_v4]")
	if got := plan.Describe(changes[0].Before); got != "type=ipv4_addr flags=interval elements=1000 (+10.9.9.9 -10.0.0.1)" {
		t.Errorf("observed set: %s", got)
	}
	if got := plan.Describe(changes[0].After); got != "type=ipv4_addr flags=interval elements=1000" {
		t.Errorf("desired set: %s", got)
	}
	m := r.monitor()
	mark := m.Mark(t)
	r.converge(want)
	events := strings.Split(strings.TrimSpace(m.Since(t, mark)), "\n")
	slices.Sort(events)
	if wantEvents := []string{
		"add element inet braid allow_v4 { 10.9.9.9 }",
		"delete element inet braid allow_v4 { 10.0.0.1 }",
	}; !slices.Equal(events, wantEvents) {
		t.Errorf("nft monitor saw:\n%s\nwant only:\n%s", strings.Join(events, "\n"), strings.Join(wantEvents, "\n"))
	}
	r.settled(want)

	// Ten thousand elements go in messages the kernel accepts.
	var big []netip.Prefix
	for i := range 10000 {
		big = append(big, netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 1, byte(i / 100), byte(2*(i%100) + 1)}), 32))
	}
	want = sampleWith(t, config{allow4: big})
	r.converge(want)
	r.settled(want)
	doc := nftDoc(t, r.nft("-j", "list", "set", "inet", TableName, "allow_v4"))
	if n := len(doc["set"][0]["elem"].([]any)); n != 10000 {
		t.Errorf("nft lists %d elements, want 10000", n)
	}
}

// TestNoOpWritesNothing: on a converged table the plan is empty, a change
// that is already so builds nothing, and nft monitor stays silent (it did
// see our own probe, so silence means something).
func TestNoOpWritesNothing(t *testing.T) {
	r := newRig(t)
	want := sample(t)
	r.converge(want)
	m := r.monitor()
	mark := m.Mark(t)
	before := r.writes.Count()
	if changes := r.plan(want); len(changes) != 0 {
		t.Fatalf("plan on a converged table:%s", plantest.Describe(changes))
	}
	gone := Rule{Chain: ChainInput, ID: "gone"}
	if n, err := r.d.ApplyBatch(context.Background(), []plan.Change{{Action: plan.Delete, Before: gone}}); n != 1 || err != nil {
		t.Fatalf("deleting a rule that is gone: %d, %v", n, err)
	}
	if extra := m.Since(t, mark); extra != "" {
		t.Errorf("a no-op pass wrote:\n%s", extra)
	}
	if n := r.writes.Count() - before; n != 0 {
		t.Errorf("a no-op pass counted %d writes", n)
	}
}

// TestRefusedTransactionChangesNothing: one bad rule among good changes;
// the kernel refuses the transaction, the error names that rule, and the
// table is exactly as before.
func TestRefusedTransactionChangesNothing(t *testing.T) {
	r := newRig(t)
	r.converge(sample(t))
	before := r.nftJSON("inet", TableName)
	writes := r.writes.Count()
	want := sampleWith(t, config{dnat: "192.168.50.20:80", allow4: pfxs("192.168.60.0/24"), input: func(rs *Ruleset) {
		rs.Add(ChainInput, "good", DPort("tcp", 80), Accept())
		rs.Add(ChainInput, "bad", SrcInSet("no_such_set", false), Accept())
	}})
	changes := r.plan(want)
	n, err := r.d.ApplyBatch(context.Background(), changes)
	var refused *RefusedError
	if n != 0 || !errors.As(err, &refused) {
		t.Fatalf("apply: %d applied, error %v; want 0 and a refusal", n, err)
	}
	if len(refused.Changes) != 1 || refused.Changes[0].Change.Address() != "nft.rule[inet braid input:bad]" ||
		!errors.Is(err, unix.ENOENT) || !strings.Contains(err.Error(), "nft.rule[inet braid input:bad]") {
		t.Errorf("refusal does not name the bad rule and the kernel's ENOENT: %v", err)
	}
	t.Log(err)
	if after := r.nftJSON("inet", TableName); after != before {
		t.Errorf("a refused transaction changed the table:\n%s\n%s", before, after)
	}
	if r.writes.Count() != writes {
		t.Errorf("a refused transaction counted writes")
	}
	if again := r.plan(want); len(again) != len(changes) {
		t.Errorf("plan after the refusal has %d changes, before %d", len(again), len(changes))
	}

	// A NAT statement in a filter chain is refused too.
	want = sampleWith(t, config{input: func(rs *Ruleset) {
		rs.Add(ChainInput, "nat-in-filter", DNAT(netip.MustParseAddrPort("192.168.50.10:80")))
	}})
	n, err = r.d.ApplyBatch(context.Background(), r.plan(want))
	if n != 0 || err == nil {
		t.Fatalf("apply a NAT statement in a filter chain: %d, %v", n, err)
	}
	t.Log(err)
	if after := r.nftJSON("inet", TableName); after != before {
		t.Errorf("a refused transaction changed the table")
	}
}

// TestForeignTablesUntouched: another program's tables are identical after
// braid converges its own and after braid deletes it, and Observe returns
// nothing of theirs.
func TestForeignTablesUntouched(t *testing.T) {
	r := newRig(t)
	snapshot := nstest.LoadForeignNftables(t, r.ns)
	before := snapshot()
	want := sample(t)
	r.converge(want)
	if got := snapshot(); got != before {
		t.Errorf("converging touched foreign tables:\n%s\n%s", before, got)
	}
	live, err := r.d.Observe(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range live {
		if !strings.HasPrefix(o.Address(), "nft.") || !strings.Contains(o.Address(), "[inet braid") || o.Foreign {
			t.Errorf("observed %s (foreign %v)", o.Address(), o.Foreign)
		}
	}
	// Destroy: nothing desired.
	changes := r.converge(nil)
	if len(changes) != len(want) {
		t.Errorf("destroy: %d changes for %d resources", len(changes), len(want))
	}
	if got := r.nftJSON("inet", TableName); got != "" {
		t.Errorf("table inet braid survived destroy:\n%s", got)
	}
	if got := snapshot(); got != before {
		t.Errorf("destroy touched foreign tables:\n%s\n%s", before, got)
	}
	r.settled(nil)
}

// TestDriftIsRepaired tampers with braid's table by hand, every way at
// once; the plan names each difference and one pass repairs them all.
func TestDriftIsRepaired(t *testing.T) {
	r := newRig(t)
	want := sample(t)
	r.converge(want)
	handle := map[string]string{}
	for _, l := range r.nftRules() {
		handle[l.chain+":"+l.id] = l.handle
	}
	r.nft("delete", "rule", "inet", TableName, ChainInput, "handle", handle["input:lan"])
	r.nft("add", "rule", "inet", TableName, ChainInput, "tcp", "dport", "9999", "accept")
	r.nft("add", "rule", "inet", TableName, ChainInput, "iifname", "lo", "accept", "comment", `"loopback"`)
	r.nft("add", "rule", "inet", TableName, ChainForward, "tcp", "dport", "23", "accept", "comment", `"dnat"`)
	r.nft("delete", "rule", "inet", TableName, ChainForward, "handle", handle["forward:dnat"])
	r.nft("chain", "inet", TableName, ChainForward, "{ policy drop; }")
	r.nft("add", "element", "inet", TableName, "allow_v4", "{ 10.0.0.0/8 }")
	r.nft("add", "table", "inet", TableName, "{ flags dormant; }")
	changes := r.plan(want)
	var stray, dup string
	for _, l := range r.nftRules() {
		switch {
		case l.chain == ChainInput && l.id == "":
			stray = "handle-" + l.handle
		case l.chain == ChainInput && l.id == "loopback" && l.handle != handle["input:loopback"]:
			dup = "loopback#" + l.handle
		}
	}
	plantest.WantActions(t, changes,
		"~nft.table[inet braid]",
		"~nft.chain[inet braid forward]",
		"~nft.set[inet braid allow_v4]",
		"+nft.rule[inet braid input:lan]",
		"~nft.rule[inet braid forward:dnat]",
		"-nft.rule[inet braid input:"+stray+"]",
		"-nft.rule[inet braid input:"+dup+"]",
	)
	t.Log(plantest.Describe(changes))
	r.converge(want)
	r.settled(want)
	var got []string
	for _, l := range r.nftRules() {
		got = append(got, l.chain+":"+l.id+" "+l.text)
	}
	var wantRules []string
	for _, res := range want {
		if rule, ok := res.(Rule); ok {
			wantRules = append(wantRules, rule.Chain+":"+rule.ID+" "+rule.Text())
		}
	}
	if !slices.Equal(got, wantRules) {
		t.Errorf("after repair nft lists:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(wantRules, "\n"))
	}
}

// TestOrder: a rule moved by hand is put back in place, and a new rule in
// the middle of a chain lands where the spec wants it.
func TestOrder(t *testing.T) {
	r := newRig(t)
	want := sample(t)
	r.converge(want)
	order := func() []string {
		var ids []string
		for _, l := range r.nftRules() {
			if l.chain == ChainInput {
				ids = append(ids, l.id)
			}
		}
		return ids
	}
	wantOrder := order()
	// Move "lan" to the end of the chain.
	for _, l := range r.nftRules() {
		if l.chain == ChainInput && l.id == "lan" {
			r.nft("delete", "rule", "inet", TableName, ChainInput, "handle", l.handle)
		}
	}
	r.nft("add", "rule", "inet", TableName, ChainInput, "iifname", "lan0", "accept", "comment", `"lan"`)
	changes := r.plan(want)
	plantest.WantActions(t, changes, "~nft.rule[inet braid input:lan]")
	if got := plan.Describe(changes[0].Before); !strings.Contains(got, "position=out of order") {
		t.Errorf("moved rule: %s", got)
	}
	r.converge(want)
	r.settled(want)
	if got := order(); !slices.Equal(got, wantOrder) {
		t.Errorf("order after repair: %q, want %q", got, wantOrder)
	}
	// Two new rules in the middle, one at the end before the drop.
	want = sampleWith(t, config{input: func(rs *Ruleset) {
		rs.Add(ChainInput, "open-udp-53-wan1", IIFName("wan1"), DPort("udp", 53), Accept())
		rs.Add(ChainInput, "open-tcp-80-wan1", IIFName("wan1"), DPort("tcp", 80), Accept())
	}})
	plantest.WantActions(t, r.converge(want), "+nft.rule[inet braid input:open-udp-53-wan1]", "+nft.rule[inet braid input:open-tcp-80-wan1]")
	r.settled(want)
	got := order()
	if n := len(got); n < 3 || got[n-3] != "open-udp-53-wan1" || got[n-2] != "open-tcp-80-wan1" || got[n-1] != "drop-wan1" {
		t.Errorf("order: %q", got)
	}
}

// TestReplacedChainAndSet: a chain braid wants on another hook, and a set of
// another type, cannot be changed in place: they are replaced, with the
// rules that go with them, in one transaction.
func TestReplacedChainAndSet(t *testing.T) {
	r := newRig(t)
	want := sample(t)
	r.converge(want)
	r.nft("flush", "chain", "inet", TableName, ChainForward)
	r.nft("delete", "chain", "inet", TableName, ChainForward)
	r.nft("add", "chain", "inet", TableName, ChainForward, "{ type filter hook input priority 5; policy accept; }")
	r.nft("add", "rule", "inet", TableName, ChainForward, "ct", "state", "established", "accept", "comment", `"established"`)
	for _, l := range r.nftRules() {
		if l.id == "egress-isp1-v4" {
			r.nft("delete", "rule", "inet", TableName, l.chain, "handle", l.handle)
		}
	}
	r.nft("delete", "set", "inet", TableName, "egress_isp1_v4")
	r.nft("add", "set", "inet", TableName, "egress_isp1_v4", "{ type inet_service; }")
	r.nft("add", "rule", "inet", TableName, ChainMangle, "tcp", "dport", "@egress_isp1_v4", "accept", "comment", `"egress-isp1-v4"`)
	changes := r.plan(want)
	plantest.WantActions(t, changes,
		"~nft.chain[inet braid forward]",
		"~nft.set[inet braid egress_isp1_v4]",
		"+nft.rule[inet braid prerouting_mangle:egress-isp1-v4]",
		"+nft.rule[inet braid forward:mss-sixpe-out]",
		"+nft.rule[inet braid forward:established]",
		"+nft.rule[inet braid forward:lan-wan1]",
		"+nft.rule[inet braid forward:dnat]",
		"+nft.rule[inet braid forward:forward6-tcp-8080-wan1]",
		"+nft.rule[inet braid forward:drop-wan1]",
	)
	r.converge(want)
	r.settled(want)
	if got, wantTexts := ruleTextsOf(r.nftRules()), ruleTexts(want); fmtMap(got) != fmtMap(wantTexts) {
		t.Errorf("nft lists:\n%s\nwant:\n%s", fmtMap(got), fmtMap(wantTexts))
	}
}

func ruleTextsOf(ls []listed) map[string]string {
	out := map[string]string{}
	for _, l := range ls {
		out[l.chain+":"+l.id] = l.text
	}
	return out
}
