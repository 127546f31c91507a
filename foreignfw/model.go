package foreignfw

import (
	"strconv"

	"github.com/google/nftables/expr"
)

// Family is a table's nftables family, as the kernel numbers it
// (NFPROTO_*).
type Family uint8

// Families.
const (
	FamilyINet   Family = 1
	FamilyIPv4   Family = 2
	FamilyARP    Family = 3
	FamilyNetdev Family = 5
	FamilyBridge Family = 7
	FamilyIPv6   Family = 10
)

// String is nft's name of the family.
func (f Family) String() string {
	switch f {
	case FamilyINet:
		return "inet"
	case FamilyIPv4:
		return "ip"
	case FamilyARP:
		return "arp"
	case FamilyNetdev:
		return "netdev"
	case FamilyBridge:
		return "bridge"
	case FamilyIPv6:
		return "ip6"
	}
	return "family" + strconv.Itoa(int(f))
}

// Ruleset is what another program keeps in nftables beside braid's table:
// the tables of every family, with their chains, rules and sets, as read
// from the kernel.
type Ruleset struct {
	Tables []Table
}

// Table is one nftables table.
type Table struct {
	Family Family
	Name   string
	// Dormant tables evaluate nothing.
	Dormant bool
	Chains  []Chain
	Sets    []Set
}

// Label is how nft names the table: "ip filter".
func (t *Table) Label() string { return t.Family.String() + " " + t.Name }

// chain returns the table's chain of that name.
func (t *Table) chain(name string) *Chain {
	for i := range t.Chains {
		if t.Chains[i].Name == name {
			return &t.Chains[i]
		}
	}
	return nil
}

// set returns the table's set of that name, or with that ID when the
// name is empty.
func (t *Table) set(name string, id uint32) *Set {
	for i := range t.Sets {
		if (name != "" && t.Sets[i].Name == name) || (name == "" && t.Sets[i].ID == id) {
			return &t.Sets[i]
		}
	}
	return nil
}

// Hooks of the inet, ip and ip6 families, as nft names them.
const (
	HookPrerouting  = "prerouting"
	HookInput       = "input"
	HookForward     = "forward"
	HookOutput      = "output"
	HookPostrouting = "postrouting"
)

// Chain is one chain of a table: a base chain (Hook set) or a regular one
// that rules jump to.
type Chain struct {
	Name string
	// Hook is nft's name of the chain's hook, "" for a regular chain; a
	// hook braid does not model (ingress) is named as such and never
	// evaluated.
	Hook string
	// Type is "filter", "nat" or "route".
	Type string
	// Priority orders the base chains of a hook, lowest first.
	Priority int
	// Policy is "accept" or "drop" on a base chain.
	Policy string
	Rules  []Rule
}

// Rule is one rule: its expressions as the kernel holds them, and its
// text as braid renders it (for messages).
type Rule struct {
	Handle uint64
	Text   string
	Exprs  []expr.Any
}

// Set is a named or anonymous set, or map, of a table. Lookups find it by
// name (anonymous sets have names too, "__set0") or by ID.
type Set struct {
	Name string
	ID   uint32
	// KeyLen is the length of its keys in bytes (of the whole
	// concatenation, each field padded to 4 bytes).
	KeyLen int
	// Map is set when elements carry data; VerdictMap when that data is a
	// verdict.
	Map, VerdictMap bool
	Elements        []Element
}

// Element is one element of a set: a key, or a range of keys (interval
// sets, and concatenations of ranges), with its data in a map.
type Element struct {
	// Key is the element's key, or the first key of its range; KeyEnd is
	// the last key of its range (inclusive), nil for a single key.
	Key, KeyEnd []byte
	// Verdict is the element's verdict in a verdict map.
	Verdict *expr.Verdict
	// Data is the element's data in a map of data.
	Data []byte
}

// Opaque is an expression the reader could not decode: its name and raw
// data. The analysis never takes it for a match that holds or a statement
// that accepts: it makes the rule's outcome unknown.
type Opaque struct {
	// It satisfies expr.Any through the embedded Notrack only so that it
	// can sit among a rule's expressions; it is never written anywhere.
	expr.Notrack
	Name string
	Data []byte
}
