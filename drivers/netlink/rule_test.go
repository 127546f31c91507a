package netlink

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/braid-router/braid/internal/plantest"
	"github.com/braid-router/braid/reconcile/plan"
)

// braidRules lists braid's rules as ip(8) shows them.
func (r *rig) braidRules() string {
	r.t.Helper()
	var b strings.Builder
	for _, fam := range []string{"-4", "-6"} {
		for _, l := range strings.Split(r.ip(fam, "rule", "show"), "\n") {
			if strings.Contains(l, "proto 98") {
				b.WriteString(fam + " " + strings.Join(strings.Fields(l), " ") + "\n")
			}
		}
	}
	return b.String()
}

func testRules() []Rule {
	return []Rule{
		{Priority: PrioMain, Table: TableMain, SuppressPrefixlen: 0},
		{Priority: PrioMain, IPv6: true, Table: TableMain, SuppressPrefixlen: 0},
		{Priority: PrioFrom, From: pfx("192.168.1.50/32"), Table: 7101, SuppressPrefixlen: -1},
		{Priority: PrioUplink, From: pfx("10.0.0.1/32"), Table: 7101, SuppressPrefixlen: -1},
		{Priority: PrioUplink, From: pfx("fd00::1/128"), Table: 7101, SuppressPrefixlen: -1},
		{Priority: PrioSteer, Table: TableSteer, SuppressPrefixlen: -1},
		{Priority: PrioSteer, IPv6: true, Table: TableSteer, SuppressPrefixlen: -1},
		{Priority: PrioSteer + 1, To: pfx("2001:db8::/32"), Table: TableSteer, SuppressPrefixlen: -1},
	}
}

func TestRuleConvergeUpdateDelete(t *testing.T) {
	r := newRig(t)
	rules := testRules()
	want := resources(rules...)
	var changes []plan.Change
	n := r.wrote(func() { changes = r.converge(want) })
	if len(changes) != len(rules) || n != int64(len(rules)) {
		t.Fatalf("%d changes, %d writes:%s", len(changes), n, plantest.Describe(changes))
	}
	r.settled(want)
	got := r.braidRules()
	for _, s := range []string{
		"-4 7000: from all lookup main suppress_prefixlength 0 proto 98",
		"-6 7000: from all lookup main suppress_prefixlength 0 proto 98",
		"-4 7100: from 192.168.1.50 lookup 7101 proto 98",
		"-4 7200: from 10.0.0.1 lookup 7101 proto 98",
		"-6 7200: from fd00::1 lookup 7101 proto 98",
		"-4 7300: from all lookup 7100 proto 98",
		"-6 7300: from all lookup 7100 proto 98",
		"-6 7301: from all to 2001:db8::/32 lookup 7100 proto 98",
	} {
		if !strings.Contains(got, s+"\n") {
			t.Errorf("missing %q in:\n%s", s, got)
		}
	}
	if live := r.observe(nil); len(live) != len(rules) {
		t.Fatalf("observed %d rules, want braid's %d: %v", len(live), len(rules), live)
	}

	// Update: another table, and suppress_prefixlength dropped. The new
	// rule is added before the old one goes.
	rules[3].Table = 7102
	rules[1].SuppressPrefixlen = -1
	want = resources(rules...)
	n = r.wrote(func() { changes = r.converge(want) })
	plantest.WantActions(t, changes, "~"+rules[3].Address(), "~"+rules[1].Address())
	if n != 4 {
		t.Errorf("update writes = %d, want 4 (add and delete each)", n)
	}
	r.settled(want)
	got = r.braidRules()
	if strings.Contains(got, "from 10.0.0.1 lookup 7101") || !strings.Contains(got, "-4 7200: from 10.0.0.1 lookup 7102 proto 98\n") ||
		strings.Contains(got, "-6 7000: from all lookup main suppress_prefixlength 0") || !strings.Contains(got, "-6 7000: from all lookup main proto 98\n") {
		t.Fatalf("after update:\n%s", got)
	}

	// Drift.
	r.ip("-6", "rule", "del", "pref", "7301")
	plantest.WantActions(t, r.converge(want), "+"+rules[7].Address())
	r.settled(want)

	// Delete.
	n = r.wrote(func() { changes = r.converge(nil) })
	if len(changes) != len(rules) || n != int64(len(rules)) {
		t.Fatalf("delete: %d changes, %d writes:%s", len(changes), n, plantest.Describe(changes))
	}
	if got := r.braidRules(); got != "" {
		t.Fatalf("rules left:\n%s", got)
	}
	r.settled(nil)
}

func TestRuleApplyIsIdempotent(t *testing.T) {
	r := newRig(t)
	for _, rl := range testRules() {
		if n := r.wrote(func() { must(t, r.apply(planCreate(rl))) }); n != 1 {
			t.Fatalf("create %s: %d writes", rl.Address(), n)
		}
		if n := r.wrote(func() { must(t, r.apply(planCreate(rl))) }); n != 0 {
			t.Fatalf("create %s again: %d writes", rl.Address(), n)
		}
		if n := r.wrote(func() { must(t, r.apply(planDelete(rl))) }); n != 1 {
			t.Fatalf("delete %s: %d writes", rl.Address(), n)
		}
		if n := r.wrote(func() { must(t, r.apply(planDelete(rl))) }); n != 0 {
			t.Fatalf("delete %s again: %d writes", rl.Address(), n)
		}
	}
}

func TestRuleForeignIsAConflict(t *testing.T) {
	r := newRig(t)
	r.ip("rule", "add", "pref", "7200", "from", "10.0.0.1", "lookup", "100")
	r.ip("-6", "rule", "add", "pref", "7300", "lookup", "7100", "proto", "static")
	r.ip("rule", "add", "pref", "7000", "lookup", "main", "suppress_prefixlength", "0")
	before := r.ip("rule", "show") + r.ip("-6", "rule", "show")

	mine := []Rule{
		{Priority: PrioUplink, From: pfx("10.0.0.1/32"), Table: 7101, SuppressPrefixlen: -1},
		{Priority: PrioSteer, IPv6: true, Table: TableSteer, SuppressPrefixlen: -1},
		{Priority: PrioMain, Table: TableMain, SuppressPrefixlen: 0},
	}
	other := Rule{Priority: PrioUplink, From: pfx("10.0.0.2/32"), Table: 7101, SuppressPrefixlen: -1}
	changes, conflicts := r.plan(resources(append(mine, other)...))
	plantest.WantActions(t, changes, "+"+other.Address())
	if len(conflicts) != 3 {
		t.Fatalf("conflicts: %v", conflicts)
	}
	// Each conflict is at the address braid wants and describes the
	// foreign rule that holds it (its table, not braid's).
	for i, want := range []struct{ addr, foreign string }{
		{mine[0].Address(), "lookup=100"},
		{mine[1].Address(), "lookup=7100 proto=static"},
		{mine[2].Address(), "lookup=main"},
	} {
		if c := conflicts[i]; c.Address != want.addr || !strings.Contains(c.Foreign, want.foreign) {
			t.Errorf("conflict %d: %v, want one at %s with %s", i, c, want.addr, want.foreign)
		}
	}
	for _, c := range changes {
		must(t, r.apply(c))
	}
	must(t, r.apply(planDelete(other)))
	// A delete of braid's rule never takes a foreign one with it.
	for _, rl := range mine {
		must(t, r.apply(planDelete(rl)))
	}
	if after := r.ip("rule", "show") + r.ip("-6", "rule", "show"); after != before {
		t.Fatalf("foreign rules changed:\n%s\n---\n%s", before, after)
	}
	if changes := r.converge(nil); len(changes) != 0 {
		t.Fatalf("changes: %s", plantest.Describe(changes))
	}
}

func TestRuleSuppressNeedsSmallTable(t *testing.T) {
	r := newRig(t)
	err := r.apply(planCreate(Rule{Priority: 7400, Table: 7100, SuppressPrefixlen: 0}))
	if err == nil || !strings.Contains(err.Error(), "add rule rule[inet pref 7400]") {
		t.Fatalf("suppress_prefixlength with table 7100: %v", err)
	}
	if errors.Is(err, ErrConflict) {
		t.Fatal("not a conflict")
	}
}

func TestRuleUnmaskedSelectorsConverge(t *testing.T) {
	r := newRig(t)
	rl := Rule{Priority: 7100, From: netip.PrefixFrom(ip("192.168.1.77"), 24), Table: 7101, SuppressPrefixlen: -1}
	want := resources(rl)
	r.converge(want)
	r.settled(want)
}
