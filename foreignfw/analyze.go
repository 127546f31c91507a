// Package foreignfw finds what another firewall on the box drops of what
// braid's own table lets through.
//
// nftables evaluates every base chain on a hook, table after table, in
// priority order: an accept ends only its own chain's say, a drop
// anywhere ends the packet. braid's accept in `table inet braid` does not
// outvote Docker's `policy drop` in `table ip filter`. So braid runs its
// own flows through everyone else's chains, the way kube-proxy's tests
// trace packets through a ruleset, and reports what they drop.
//
// The analysis is pure: a function of braid's intents (Intents, derived
// from the spec as braid's firewall rules are) and the foreign ruleset
// (read from the kernel elsewhere, as braid reads its own table). Each
// intent stands for packets in both directions (a connection's first
// packet and its replies, ICMP errors included); each packet walks the
// base chains of every hook on its path (Walk), following jumps, gotos,
// returns and verdict maps, down to the chain's policy.
//
// Values are abstract (see Value): a packet from "any LAN host to any
// port" is one packet whose fields are ranges. A match that holds for
// some of those and not others, or that braid does not model (an xt
// match it cannot read, a field it does not track), is Maybe: the walk
// follows both sides, and a drop on either is reported as one that may
// happen, with why. Nothing braid does not understand ever counts as an
// accept.
package foreignfw

import (
	"fmt"
	"slices"
	"strings"
)

// Env is what the analysis knows of the namespace beside the rulesets.
type Env struct {
	// Ifindex maps interface names to their indexes (for meta iif and
	// oif); a name missing leaves its index unknown.
	Ifindex map[string]uint32
}

// Finding is one intent of braid that a foreign chain drops, for some or
// all of its packets.
type Finding struct {
	// Intent is braid's intent: its ID and what it is for.
	IntentID string
	What     string
	// Table ("ip filter"), Chain, Hook and Priority name the base chain
	// whose evaluation drops it.
	Table    string
	Chain    string
	Hook     string
	Priority int
	// By says what drops it: "policy drop", or the rule, with the chain
	// that holds it when the base chain jumped there.
	By string
	// Certain is false when the drop depends on what braid does not model
	// or on which of the intent's packets it is; Because says what.
	Certain bool
	Because []string
	// Unknown is set when a statement braid does not model decides (a
	// queue, a redirection) rather than a drop.
	Unknown bool
	// Packets describe the packets dropped.
	Packets []string
	// Firewall names the program the table belongs to ("Docker",
	// "ufw", "OpenWrt fw4", "iptables-nft", "nftables"), and Fix is its
	// usual fix.
	Firewall string
	Fix      string
}

// Key identifies a finding across passes: the intent, the chain and what
// drops it.
func (f *Finding) Key() string {
	return f.IntentID + "|" + f.Table + " " + f.Chain + "|" + f.By
}

// Summary is the finding on one line.
func (f *Finding) Summary() string {
	verb := "drops"
	switch {
	case f.Unknown:
		verb = "may not let through"
	case !f.Certain:
		verb = "may drop"
	}
	return fmt.Sprintf("table %s, chain %s (hook %s, priority %d) %s %s: %s", f.Table, f.Chain, f.Hook, f.Priority, verb, f.What, f.By)
}

// Analyze runs every intent's packets through rs and returns what a
// foreign chain drops, grouped by intent and by what drops it, in the
// intents' order.
func Analyze(rs *Ruleset, intents []Intent, env Env) []Finding {
	var out []Finding
	for i := range intents {
		in := &intents[i]
		byKey := map[string]int{}
		var mine []Finding
		for _, p := range in.Packets {
			p.iifIndex, p.oifIndex = env.Ifindex[p.IIF], env.Ifindex[p.OIF]
			l, ok := worst(Walk(rs, &p))
			if !ok {
				continue
			}
			f := finding(in, &l)
			k := f.Key()
			if j, ok := byKey[k]; ok {
				mine[j].Packets = appendNew(mine[j].Packets, p.String())
				for _, b := range f.Because {
					mine[j].Because = appendNew(mine[j].Because, b)
				}
				continue
			}
			f.Packets = []string{p.String()}
			byKey[k] = len(mine)
			mine = append(mine, f)
		}
		out = append(out, mine...)
	}
	return out
}

func appendNew(ss []string, s string) []string {
	if slices.Contains(ss, s) {
		return ss
	}
	return append(ss, s)
}

// worst picks the leaf to report of a packet's walk: a certain drop, else
// any drop, else any other end that is not an accept; false when every
// end is an accept.
func worst(leaves []Leaf) (Leaf, bool) {
	best, found := Leaf{}, false
	rank := func(l *Leaf) int {
		switch {
		case l.Outcome == Dropped && l.Certain():
			return 3
		case l.Outcome == Dropped:
			return 2
		case l.Outcome == Unknown:
			return 1
		}
		return 0
	}
	for i := range leaves {
		if r := rank(&leaves[i]); r > 0 && (!found || r > rank(&best)) {
			best, found = leaves[i], true
		}
	}
	// A leaf that assumed nothing lies on a walk that never forked: it is
	// the only one, so a certain drop is certain.
	return best, found
}

// finding describes a leaf.
func finding(in *Intent, l *Leaf) Finding {
	f := Finding{IntentID: in.ID, What: in.What, Table: l.Table.Label(), Chain: l.Base.Name, Hook: l.Hook,
		Priority: l.Base.Priority, Certain: l.Certain(), Unknown: l.Outcome == Unknown}
	switch {
	case l.Rule == nil:
		f.By = "policy " + l.Base.Policy
	default:
		verb := "drops"
		switch {
		case l.Reject:
			verb = "rejects"
		case l.Outcome == Unknown:
			verb = "decides"
		}
		where := ""
		if l.Chain != l.Base {
			where = " in chain " + l.Chain.Name
		}
		f.By = fmt.Sprintf("rule %q (handle %d)%s %s", l.Rule.Text, l.Rule.Handle, where, verb)
	}
	for _, b := range l.Because {
		f.Because = appendNew(f.Because, b)
	}
	if l.Outcome == Unknown && l.Why != "" {
		f.Because = appendNew(f.Because, l.Why)
	}
	if !f.Certain && len(f.Because) == 0 && !f.Unknown {
		f.Because = []string{"it depends on which of these packets it is"}
	}
	f.Firewall, f.Fix = fix(l.Table, l.Base, in)
	return f
}

// String writes the finding for a person, on a few lines.
func (f *Finding) String() string {
	var b strings.Builder
	b.WriteString(f.Summary())
	if len(f.Because) > 0 {
		b.WriteString("\n  braid cannot tell for sure: " + strings.Join(f.Because, "; "))
	}
	b.WriteString("\n  packets: " + strings.Join(f.Packets, "; "))
	if f.Fix != "" {
		b.WriteString("\n  usual fix (" + f.Firewall + "): " + f.Fix)
	}
	return b.String()
}

// Unanalysed lists the base chains that see braid's packets but that the
// analysis does not walk: the ingress hooks (netdev, and inet since Linux
// 5.10), which run before prerouting, when they hold rules or a drop
// policy. What they do is not known, so it is said.
func Unanalysed(rs *Ruleset) []string {
	var out []string
	for i := range rs.Tables {
		t := &rs.Tables[i]
		if t.Dormant || (t.Family != FamilyNetdev && t.Family != FamilyINet) {
			continue
		}
		for _, c := range t.Chains {
			if c.Hook != "ingress" || (len(c.Rules) == 0 && c.Policy != "drop") {
				continue
			}
			out = append(out, fmt.Sprintf("table %s, chain %s (hook ingress, priority %d, policy %s, %d rule(s))", t.Label(), c.Name, c.Priority, c.Policy, len(c.Rules)))
		}
	}
	return out
}
