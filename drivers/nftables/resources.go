package nftables

import (
	"strconv"
	"strings"

	"github.com/google/nftables/expr"

	"github.com/braid-router/braid/reconcile/plan"
)

// TableName is braid's one nftables table, in the inet family: every rule,
// chain and set braid converges lives in it, and nothing else is read or
// written.
const TableName = "braid"

// tableLabel is how addresses name the table: "inet braid".
const tableLabel = "inet " + TableName

// Chains of braid's table, grouped by hook. Each is a base chain with
// policy accept: braid drops only what arrives on the interfaces it
// manages, never what it does not know about.
const (
	// ChainMangle (prerouting, priority mangle) marks packets for what
	// routes cannot express: the per-uplink egress sets.
	ChainMangle = "prerouting_mangle"
	// ChainTProxy (prerouting, priority mangle + 1) steers LAN TCP into
	// the transparent proxy's listener (TProxy), except what must go
	// direct, and the LAN's DNS to other resolvers into the DNS
	// forwarder's transparent sockets (dns.intercept). It comes after
	// ChainMangle, so that the packets marked there are seen marked, and
	// before dstnat, so that it sees the destination the client asked
	// for. Only the daemon keeps it, while
	// the proxy or the forwarder runs (a process-bound object).
	ChainTProxy = "prerouting_tproxy"
	// ChainDNAT (prerouting, priority dstnat) holds the IPv4 port forwards.
	ChainDNAT = "prerouting_nat"
	// ChainInput (input, priority filter) is the box's own firewall, a
	// router's or a peer's.
	ChainInput = "input"
	// ChainForward (forward, priority filter) decides what is routed.
	ChainForward = "forward"
	// ChainSNAT (postrouting, priority srcnat) masquerades the LAN's IPv4.
	ChainSNAT = "postrouting_nat"
)

// chainOrder is the order chains are created in.
var chainOrder = []string{ChainMangle, ChainTProxy, ChainDNAT, ChainInput, ChainForward, ChainSNAT}

// Kinds of base chains.
const (
	typeFilter = "filter"
	typeNAT    = "nat"
)

// Hooks, as nft names them; "" is a regular chain (no hook).
const (
	hookPrerouting  = "prerouting"
	hookInput       = "input"
	hookForward     = "forward"
	hookOutput      = "output"
	hookPostrouting = "postrouting"
)

// Standard priorities of base chains (nft's names for them).
const (
	prioMangle = -150
	prioDstNAT = -100
	prioFilter = 0
	prioSrcNAT = 100
)

// baseChain returns the definition of one of braid's chains.
func baseChain(name string) (Chain, bool) {
	c := Chain{Name: name, Policy: "accept"}
	switch name {
	case ChainMangle:
		c.Type, c.Hook, c.Priority = typeFilter, hookPrerouting, prioMangle
	case ChainTProxy:
		c.Type, c.Hook, c.Priority = typeFilter, hookPrerouting, prioMangle+1
	case ChainDNAT:
		c.Type, c.Hook, c.Priority = typeNAT, hookPrerouting, prioDstNAT
	case ChainInput:
		c.Type, c.Hook, c.Priority = typeFilter, hookInput, prioFilter
	case ChainForward:
		c.Type, c.Hook, c.Priority = typeFilter, hookForward, prioFilter
	case ChainSNAT:
		c.Type, c.Hook, c.Priority = typeNAT, hookPostrouting, prioSrcNAT
	default:
		return Chain{}, false
	}
	return c, true
}

// Table is braid's table itself. Deleting it deletes everything in it.
type Table struct {
	// Dormant is set when the table's chains are switched off (nft's
	// "flags dormant"); braid wants it active.
	Dormant bool
}

// Address implements plan.Resource.
func (Table) Address() string { return "nft.table[" + tableLabel + "]" }

// Fields implements plan.Resource.
func (t Table) Fields() []plan.Field {
	state := "active"
	if t.Dormant {
		state = "dormant"
	}
	return []plan.Field{{Name: "state", Value: state}}
}

// Chain is a chain of braid's table.
type Chain struct {
	// Name is the chain's name in the table.
	Name string
	// Type is "filter", "nat" or "route".
	Type string
	// Hook is nft's name of the chain's hook; "" for a regular chain.
	Hook string
	// Priority orders base chains on the same hook.
	Priority int
	// Policy is "accept" or "drop" ("" for a regular chain).
	Policy string
}

// Address implements plan.Resource. Names read from the kernel are
// escaped where they hold control characters.
func (c Chain) Address() string { return "nft.chain[" + tableLabel + " " + printable(c.Name) + "]" }

// Fields implements plan.Resource.
func (c Chain) Fields() []plan.Field {
	if c.Hook == "" {
		return []plan.Field{{Name: "hook", Value: "none"}}
	}
	return []plan.Field{
		{Name: "type", Value: c.Type},
		{Name: "hook", Value: c.Hook},
		{Name: "priority", Value: priorityName(c.Hook, c.Priority)},
		{Name: "policy", Value: c.Policy},
	}
}

// sameBase reports whether two chains have the same hook, type and
// priority: only the policy can change in place; anything else means the
// chain is deleted and created again.
func (c Chain) sameBase(o Chain) bool {
	return c.Type == o.Type && c.Hook == o.Hook && c.Priority == o.Priority
}

// standardPriorities are nft's names of base chain priorities in the inet
// family, and the hook each is limited to ("" for any).
var standardPriorities = []struct {
	name string
	prio int
	hook string
}{
	{"raw", -300, ""}, {"mangle", prioMangle, ""}, {"dstnat", prioDstNAT, hookPrerouting},
	{"filter", prioFilter, ""}, {"security", 50, ""}, {"srcnat", prioSrcNAT, hookPostrouting},
}

// priorityName writes a base chain's priority as nft lists it: by the
// name of a standard priority its hook allows, with an offset of up to 10
// ("mangle + 1").
func priorityName(hook string, p int) string {
	for _, s := range standardPriorities {
		if s.hook != "" && s.hook != hook {
			continue
		}
		switch off := p - s.prio; {
		case off == 0:
			return s.name
		case off > 0 && off <= 10:
			return s.name + " + " + strconv.Itoa(off)
		case off < 0 && off >= -10:
			return s.name + " - " + strconv.Itoa(-off)
		}
	}
	return strconv.Itoa(p)
}

// Set is a named set of braid's table: IPv4 or IPv6 addresses, either
// with intervals (the spec's prefixes) or with timeouts (a session's
// addresses).
//
// An interval set's elements are the spec's, converged by difference: a
// change adds and deletes only the elements that differ, however large
// the set. A timeout set's elements belong to a session, not the spec
// (the DNS forwarder's answers, written with Elements, each expiring on
// its own): the driver converges its definition only, never reads,
// diffs, removes or reports its elements.
type Set struct {
	// Name is the set's name in the table.
	Name string
	// Type is "ipv4_addr" or "ipv6_addr" (another type only when observed).
	Type string
	// Interval is nft's "flags interval".
	Interval bool
	// Timeout is nft's "flags timeout": elements carry their own timeout,
	// and belong to a session.
	Timeout bool
	// Elements are the set's address ranges, sorted (none for a timeout
	// set: its elements are not the driver's).
	Elements []Range
	// delta, on an observed set, says what applying the desired one would
	// add and remove ("+192.0.2.0/24 -198.51.100.7"); empty when the
	// elements are as desired or nothing is desired.
	delta string
}

// Set types.
const (
	typeIPv4 = "ipv4_addr"
	typeIPv6 = "ipv6_addr"
)

// Address implements plan.Resource.
func (s Set) Address() string { return "nft.set[" + tableLabel + " " + printable(s.Name) + "]" }

// Fields implements plan.Resource. Elements are shown as a count (a set
// may hold thousands); an observed set that differs from the desired one
// adds what applying would add (+) and remove (-). A timeout set's
// elements are a session's: they show as such, never counted or
// compared.
func (s Set) Fields() []plan.Field {
	var flags []string
	if s.Interval {
		flags = append(flags, "interval")
	}
	if s.Timeout {
		flags = append(flags, "timeout")
	}
	if len(flags) == 0 {
		flags = append(flags, "none")
	}
	n := strconv.Itoa(len(s.Elements))
	switch {
	case s.Timeout:
		n = "session-owned"
	case s.delta != "":
		n += " (" + s.delta + ")"
	}
	return []plan.Field{
		{Name: "type", Value: s.Type},
		{Name: "flags", Value: strings.Join(flags, ",")},
		{Name: "elements", Value: n},
	}
}

// sameKind reports whether o can become s by changing elements only.
func (s Set) sameKind(o Set) bool {
	return s.Type == o.Type && s.Interval == o.Interval && s.Timeout == o.Timeout
}

// v6 reports whether the set holds IPv6 addresses.
func (s Set) v6() bool { return s.Type == typeIPv6 }

// Rule is one rule of a chain of braid's table. Its ID, stored in the
// rule's user data as an nft comment, is its stable identity within the
// chain; its text is what `nft list` would show, and is what is compared.
type Rule struct {
	// Chain is the chain the rule is in.
	Chain string
	// ID is the rule's identity within its chain.
	ID    string
	exprs []expr.Any
	text  string
	// seq places the rule in its chain: the IDs of the chain in order
	// (desired, or as observed), shared by the chain's rules, and this
	// rule's index in it. A create is inserted before the next rule of seq
	// that stays where it is.
	seq *sequence
	idx int
	// handle is the kernel's handle of an observed rule.
	handle uint64
	// misplaced marks an observed rule that is not in the desired order
	// relative to the others; it is deleted and inserted again.
	misplaced bool
}

// sequence is the order of the rules of a chain, by ID.
type sequence struct{ ids []string }

// Address implements plan.Resource.
func (r Rule) Address() string {
	return "nft.rule[" + tableLabel + " " + printable(r.Chain) + ":" + r.ID + "]"
}

// Fields implements plan.Resource.
func (r Rule) Fields() []plan.Field {
	f := []plan.Field{{Name: "rule", Value: r.text}}
	if r.misplaced {
		f = append(f, plan.Field{Name: "position", Value: "out of order"})
	}
	return f
}

// Text is the rule as nft would show it, without its comment.
func (r Rule) Text() string { return r.text }

// Handle is the kernel's handle of an observed rule (0 for a desired one).
func (r Rule) Handle() uint64 { return r.handle }

// references reports whether the rule looks up the named set.
func (r Rule) references(set string) bool {
	for _, e := range r.exprs {
		if l, ok := e.(*expr.Lookup); ok && l.SetName == set {
			return true
		}
	}
	return false
}

// validID reports whether s can be a rule ID: 1 to maxIDLen printable
// ASCII characters without spaces or quotes, so that it reads the same in
// an address, a plan and nft's comment.
func validID(s string) bool {
	if s == "" || len(s) > maxIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || c == '"' || c == '\\' {
			return false
		}
	}
	return !strings.Contains(s, "]")
}
