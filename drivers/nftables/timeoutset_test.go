package nftables

import (
	"slices"
	"strings"
	"testing"

	"github.com/braid-router/braid/internal/plantest"
	"github.com/braid-router/braid/reconcile/plan"
)

// TestTimeoutSetIsConverged: a timeout set is created with nft's "flags
// timeout" and nothing else, reads back the same (a second pass plans
// nothing), and a session's elements in it are left alone by every pass:
// not planned, not removed, not reported, even by a pass that changes the
// set's neighbours.
func TestTimeoutSetIsConverged(t *testing.T) {
	r := newRig(t)
	want := sample(t)
	r.converge(want)
	r.settled(want)
	doc := nftDoc(t, r.nft("-j", "list", "set", "inet", TableName, "egress_isp1_v4"))
	s := doc["set"][0]
	if flags, _ := s["flags"].([]any); s["type"] != "ipv4_addr" || len(flags) != 1 || flags[0] != "timeout" {
		t.Fatalf("nft lists set egress_isp1_v4 as %v, want type ipv4_addr flags timeout", s)
	}
	if _, ok := s["timeout"]; ok {
		t.Errorf("set egress_isp1_v4 has a default timeout: %v", s)
	}

	// A session's elements: invisible to the plan.
	r.nft("add", "element", "inet", TableName, "egress_isp1_v4", "{ 192.0.2.7 timeout 1h, 192.0.2.8 timeout 1h }")
	r.nft("add", "element", "inet", TableName, "egress_isp1_v6", "{ 2001:db8::7 timeout 1h }")
	r.settled(want)
	// A pass that changes the table around them keeps them.
	changed := sampleWith(t, config{allow4: pfxs("192.168.51.0/24")})
	plantest.WantActions(t, r.converge(changed), "~nft.set[inet braid allow_v4]")
	r.settled(changed)
	for set, want := range map[string][]string{
		"egress_isp1_v4": {"192.0.2.7", "192.0.2.8"},
		"egress_isp1_v6": {"2001:db8::7"},
	} {
		if got := setAddrs(t, r, set); !slices.Equal(got, want) {
			t.Errorf("set %s holds %v after two passes, want the session's %v", set, got, want)
		}
	}
	// Its description shows whose elements they are, never a count that
	// would differ from the desired one.
	found := false
	for _, o := range r.plan(nil) {
		if s, ok := o.Before.(Set); ok && s.Name == "egress_isp1_v4" {
			found = true
			if got := plan.Describe(s); got != "type=ipv4_addr flags=timeout elements=session-owned" {
				t.Errorf("observed timeout set: %s", got)
			}
		}
	}
	if !found {
		t.Error("set egress_isp1_v4 is not observed")
	}

	// Not wanted any more, it goes, elements and all, with its rules.
	rs := NewRuleset()
	rs.Add(ChainInput, "lan", IIFName("lan0"), Accept())
	less := resources(t, rs)
	r.converge(less)
	r.settled(less)
	doc = nftDoc(t, r.nftJSON("inet", TableName))
	for _, s := range doc["set"] {
		t.Errorf("set %v is left", s["name"])
	}
}

// TestIntervalSetBecomesTimeoutSet: a box converged by a braid whose
// egress sets were interval sets gets the timeout sets in one apply, the
// rules that look them up with them, and a second pass plans nothing.
func TestIntervalSetBecomesTimeoutSet(t *testing.T) {
	r := newRig(t)
	old := NewRuleset()
	old.AddSet("egress_isp1_v4", false, nil)
	old.AddSet("egress_isp1_v6", true, nil)
	old.Add(ChainMangle, "egress-isp1-v4", DstInSet("egress_isp1_v4", false), SetMark(7101))
	old.Add(ChainMangle, "egress-isp1-v6", DstInSet("egress_isp1_v6", true), SetMark(7101))
	r.converge(resources(t, old))

	want := sample(t)
	changes := r.plan(want)
	var sets []string
	for _, c := range changes {
		if s, ok := c.Resource().(Set); ok && strings.HasPrefix(s.Name, "egress_") {
			sets = append(sets, string(c.Action)+" "+plan.Describe(c.Before)+" -> "+plan.Describe(c.After))
		}
	}
	slices.Sort(sets)
	if wantSets := []string{
		"update type=ipv4_addr flags=interval elements=0 -> type=ipv4_addr flags=timeout elements=session-owned",
		"update type=ipv6_addr flags=interval elements=0 -> type=ipv6_addr flags=timeout elements=session-owned",
	}; !slices.Equal(sets, wantSets) {
		t.Errorf("egress set changes:\n%s\nwant:\n%s", strings.Join(sets, "\n"), strings.Join(wantSets, "\n"))
	}
	r.converge(want)
	r.settled(want)
	doc := nftDoc(t, r.nft("-j", "list", "table", "inet", TableName))
	for _, s := range doc["set"] {
		if name := s["name"].(string); strings.HasPrefix(name, "egress_") {
			if flags, _ := s["flags"].([]any); len(flags) != 1 || flags[0] != "timeout" {
				t.Errorf("set %s after the upgrade: %v", name, s)
			}
		}
	}
	if got, wantTexts := ruleTextsOf(r.nftRules()), ruleTexts(want); fmtMap(got) != fmtMap(wantTexts) {
		t.Errorf("nft lists:\n%s\nwant:\n%s", fmtMap(got), fmtMap(wantTexts))
	}
}

// setAddrs lists the addresses nft shows in one of braid's sets, sorted.
func setAddrs(t *testing.T, r *rig, set string) []string {
	t.Helper()
	doc := nftDoc(t, r.nft("-j", "list", "set", "inet", TableName, set))
	var out []string
	for _, e := range doc["set"][0]["elem"].([]any) {
		switch e := e.(type) {
		case string:
			out = append(out, e)
		case map[string]any:
			if el, ok := e["elem"].(map[string]any); ok {
				if v, ok := el["val"].(string); ok {
					out = append(out, v)
				}
			}
		}
	}
	slices.Sort(out)
	return out
}
