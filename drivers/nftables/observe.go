package nftables

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"

	gnft "github.com/google/nftables"
	"golang.org/x/sys/unix"

	"github.com/braid-router/braid/reconcile/plan"
)

// live is braid's table as read from the kernel.
type live struct {
	exists bool
	table  Table
	chains []Chain
	sets   []Set
	// rules are each chain's rules in the kernel's order, with their IDs
	// (from their user data) and handles.
	rules map[string][]Rule
}

func (l *live) chain(name string) (Chain, bool) {
	for _, c := range l.chains {
		if c.Name == name {
			return c, true
		}
	}
	return Chain{}, false
}

func (l *live) set(name string) (Set, bool) {
	for _, s := range l.sets {
		if s.Name == name {
			return s, true
		}
	}
	return Set{}, false
}

// braidTable is braid's table as google/nftables names it.
func braidTable() *gnft.Table { return &gnft.Table{Name: TableName, Family: gnft.TableFamilyINet} }

// hookNames maps the kernel's inet hook numbers to nft's names.
var hookNames = map[gnft.ChainHook]string{
	unix.NF_INET_PRE_ROUTING:  hookPrerouting,
	unix.NF_INET_LOCAL_IN:     hookInput,
	unix.NF_INET_FORWARD:      hookForward,
	unix.NF_INET_LOCAL_OUT:    hookOutput,
	unix.NF_INET_POST_ROUTING: hookPostrouting,
}

// read reads braid's table: the table itself (a get by name), the chains
// of the inet family keeping only braid's (the kernel cannot dump the
// chains of one table), the table's sets and rules (dumps the kernel
// filters by table and chain), and the elements of the address sets
// elements selects (on the driver's own socket: see dumpConn). Nothing of
// another table is kept.
//
// The read takes several requests, so it is checked against the ruleset's
// generation (see consistent): a transaction committed in the middle of
// it (another program deleting the table, say) would otherwise show a
// table that never was, such as one whose last chain has no rules.
func (d *Driver) read(elements func(set string) bool) (*live, error) {
	return consistent(d.dump.generation, func() (*live, error) { return d.readOnce(elements) })
}

// readAttempts bounds the reads of a table that keeps changing.
const readAttempts = 5

// consistent runs read between two readings of the ruleset's generation,
// and again while they differ: its result is then the table as it was at
// one moment. A read that failed while the generation changed is run again
// too (it may have met an object deleted meanwhile).
func consistent(generation func() (uint32, error), read func() (*live, error)) (*live, error) {
	for range readAttempts {
		before, err := generation()
		if err != nil {
			return nil, err
		}
		l, rerr := read()
		after, err := generation()
		if err != nil {
			return nil, err
		}
		if after == before {
			return l, rerr
		}
	}
	return nil, fmt.Errorf("the ruleset changed during each of %d reads", readAttempts)
}

// readOnce is one read of the table (see read).
func (d *Driver) readOnce(elements func(set string) bool) (*live, error) {
	t, err := d.conn.ListTableOfFamily(TableName, gnft.TableFamilyINet)
	if errors.Is(err, unix.ENOENT) {
		return &live{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read table inet %s: %w", TableName, err)
	}
	l := &live{exists: true, table: Table{Dormant: tableFlags(t)&unix.NFT_TABLE_F_DORMANT != 0}, rules: map[string][]Rule{}}
	chains, err := d.conn.ListChainsOfTableFamily(gnft.TableFamilyINet)
	if err != nil {
		return nil, fmt.Errorf("read the chains of table inet %s: %w", TableName, err)
	}
	for _, c := range chains {
		if c.Table == nil || c.Table.Name != TableName {
			continue
		}
		l.chains = append(l.chains, chainFrom(c))
	}
	sets, err := d.conn.GetSets(braidTable())
	if err != nil {
		return nil, fmt.Errorf("read the sets of table inet %s: %w", TableName, err)
	}
	for _, s := range sets {
		if s.Anonymous {
			continue // a rule's own set: it goes with the rule
		}
		set := setFrom(s)
		// A timeout set's elements are a session's: not read.
		if keyLen := set.keyLen(); keyLen > 0 && !set.Timeout && elements(s.Name) {
			elems, err := d.dump.setElements(s.Name, keyLen)
			if err != nil {
				return nil, fmt.Errorf("read the elements of set %s: %w", s.Name, err)
			}
			set.Elements = rangesFromElements(elems)
		}
		l.sets = append(l.sets, set)
	}
	for _, c := range l.chains {
		rules, err := d.tx.rules(c.Name)
		if err != nil {
			return nil, fmt.Errorf("read the rules of chain %s: %w", c.Name, err)
		}
		l.rules[c.Name] = rulesFrom(c.Name, rules)
	}
	return l, nil
}

// tableFlags returns a table's flags. google/nftables v0.3.0 decodes
// NFTA_TABLE_FLAGS in host byte order, but the kernel sends it in network
// byte order: turn the bytes back. (TestDriftIsRepaired fails if a new
// version of the library decodes it right and this is not removed.)
func tableFlags(t *gnft.Table) uint32 {
	return binary.BigEndian.Uint32(binary.NativeEndian.AppendUint32(nil, t.Flags))
}

func chainFrom(c *gnft.Chain) Chain {
	out := Chain{Name: c.Name, Type: string(c.Type)}
	if c.Hooknum == nil {
		return out
	}
	out.Hook = hookNames[*c.Hooknum]
	if out.Hook == "" {
		out.Hook = "hook" + strconv.Itoa(int(*c.Hooknum))
	}
	if c.Priority != nil {
		out.Priority = int(*c.Priority)
	}
	out.Policy = "accept"
	if c.Policy != nil && *c.Policy == gnft.ChainPolicyDrop {
		out.Policy = "drop"
	}
	return out
}

func setFrom(s *gnft.Set) Set {
	out := Set{Name: s.Name, Type: s.KeyType.Name, Interval: s.Interval, Timeout: s.HasTimeout}
	var other []string
	for _, f := range []struct {
		on   bool
		name string
	}{{s.Constant, "constant"}, {s.IsMap, "map"}, {s.Timeout != 0, "timeout " + s.Timeout.String()}, {s.Dynamic, "dynamic"}, {s.Concatenation, "concat"}} {
		if f.on {
			other = append(other, f.name)
		}
	}
	if len(other) > 0 {
		out.Type += " (" + strings.Join(other, ",") + ")"
	}
	return out
}

// keyLen is the length of the keys of an address set, 0 for a set of
// another type: those are not braid's, their elements are not read (the
// set is replaced).
func (s Set) keyLen() int {
	switch s.Type {
	case typeIPv4:
		return 4
	case typeIPv6:
		return 16
	}
	return 0
}

// rulesFrom identifies a chain's rules by their user data. A rule without
// a braid ID is named after its handle, and a second rule with an ID
// already seen gets the handle appended: neither is desired, so both are
// deleted.
func rulesFrom(chain string, rs []*gnft.Rule) []Rule {
	out := make([]Rule, 0, len(rs))
	seen := make(map[string]bool, len(rs))
	for _, r := range rs {
		id, err := decodeID(r.UserData)
		switch {
		case err != nil:
			id = "handle-" + strconv.FormatUint(r.Handle, 10)
		case seen[id]:
			id += "#" + strconv.FormatUint(r.Handle, 10)
		}
		seen[id] = true
		out = append(out, Rule{Chain: chain, ID: id, exprs: r.Exprs, text: render(r.Exprs), handle: r.Handle})
	}
	seq := &sequence{ids: make([]string, len(out))}
	for i := range out {
		seq.ids[i] = out[i].ID
		out[i].seq, out[i].idx = seq, i
	}
	return out
}

// wanted is the desired state split by kind.
type wanted struct {
	chains map[string]Chain
	sets   map[string]Set
	// order maps each chain's rule IDs to their desired positions.
	order map[string]map[string]int
}

func split(rs []plan.Resource) wanted {
	w := wanted{chains: map[string]Chain{}, sets: map[string]Set{}, order: map[string]map[string]int{}}
	for _, r := range rs {
		switch r := r.(type) {
		case Chain:
			w.chains[r.Name] = r
		case Set:
			w.sets[r.Name] = r
		case Rule:
			if w.order[r.Chain] == nil {
				w.order[r.Chain] = map[string]int{}
			}
			w.order[r.Chain][r.ID] = len(w.order[r.Chain])
		}
	}
	return w
}

// observe turns what was read into observed resources, in apply order
// (table, chains, sets, rules), against the desired state:
//   - a chain whose hook, type or priority differs from the desired one is
//     replaced by a new one, and a set of another type or flags likewise;
//     the rules that go with them (the chain's, those that look the set
//     up) are not observed, so that the plan creates them again;
//   - a set that differs from the desired one says what applying adds and
//     removes;
//   - a rule out of the desired order relative to the others is misplaced
//     (the fewest such rules: all but a longest run in desired order).
func observe(l *live, w wanted) []plan.Observed {
	if !l.exists {
		return nil
	}
	out := []plan.Observed{{Resource: l.table}}
	replaced := map[string]bool{}
	for _, c := range l.chains {
		if dc, ok := w.chains[c.Name]; ok && !dc.sameBase(c) {
			replaced[c.Name] = true
		}
		out = append(out, plan.Observed{Resource: c})
	}
	var replacedSets []string
	for _, s := range l.sets {
		if ds, ok := w.sets[s.Name]; ok {
			if !ds.sameKind(s) {
				replacedSets = append(replacedSets, s.Name)
			} else if !s.Timeout {
				add, del := elementDiff(s.Elements, ds.Elements)
				s.delta = describeDelta(add, del)
			}
		}
		out = append(out, plan.Observed{Resource: s})
	}
	for _, c := range l.chains {
		if replaced[c.Name] {
			continue
		}
		var kept []Rule
		for _, r := range l.rules[c.Name] {
			if slices.ContainsFunc(replacedSets, r.references) {
				continue
			}
			kept = append(kept, r)
		}
		markMisplaced(kept, w.order[c.Name])
		for _, r := range kept {
			out = append(out, plan.Observed{Resource: r})
		}
	}
	return out
}

// markMisplaced marks the desired rules that are out of the desired order:
// all but those of a longest subsequence already in order.
func markMisplaced(rules []Rule, order map[string]int) {
	var pos, at []int
	for i, r := range rules {
		if p, ok := order[r.ID]; ok {
			pos, at = append(pos, p), append(at, i)
		}
	}
	keep := longestIncreasing(pos)
	for k, i := range at {
		if !keep[k] {
			rules[i].misplaced = true
		}
	}
}

// longestIncreasing marks the elements of one longest strictly increasing
// subsequence of xs.
func longestIncreasing(xs []int) []bool {
	keep := make([]bool, len(xs))
	// tails[k] is the index of the smallest tail of an increasing run of
	// length k+1; prev links each element to the one before it in its run.
	var tails []int
	prev := make([]int, len(xs))
	for i, x := range xs {
		k := sort.Search(len(tails), func(j int) bool { return xs[tails[j]] >= x })
		prev[i] = -1
		if k > 0 {
			prev[i] = tails[k-1]
		}
		if k == len(tails) {
			tails = append(tails, i)
		} else {
			tails[k] = i
		}
	}
	if len(tails) == 0 {
		return keep
	}
	for i := tails[len(tails)-1]; i >= 0; i = prev[i] {
		keep[i] = true
	}
	return keep
}
