// Package plan holds the vocabulary shared by braid's engine and its
// drivers: resources with stable addresses, the changes between a live and a
// desired set of them, conflicts with foreign objects, and per-object status.
package plan

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
)

// Field is one displayed attribute of a resource. Secret fields are redacted
// wherever a plan or status is printed.
type Field struct {
	Name   string `json:"name"`
	Value  string `json:"value"`
	Secret bool   `json:"secret,omitempty"`
}

// Resource is one object braid converges: a link's settings, an address, a
// route, a rule, a sysctl, an nftables table, a session.
type Resource interface {
	// Address is the stable, unique name of the resource across all
	// drivers, e.g. "route.main[0.0.0.0/0 metric 10]". Two resources with
	// the same address are the same object in two states.
	Address() string
	// Fields lists the attributes that matter, in display order. Two states
	// of a resource with equal fields need no change.
	Fields() []Field
}

// Action is what a change does to a resource.
type Action string

// Actions, in the order they are printed.
const (
	Create Action = "create"
	Update Action = "update"
	Delete Action = "delete"
)

// Symbol is the one-character prefix of the action in a text plan.
func (a Action) Symbol() string {
	switch a {
	case Create:
		return "+"
	case Update:
		return "~"
	case Delete:
		return "-"
	}
	return "?"
}

// Change moves one resource from Before to After. Before is nil for a
// create, After is nil for a delete.
type Change struct {
	Action Action
	Before Resource
	After  Resource
}

// Address is the address of the resource the change is about.
func (c Change) Address() string {
	if c.After != nil {
		return c.After.Address()
	}
	return c.Before.Address()
}

// Inverse is the change that undoes c.
func (c Change) Inverse() Change {
	switch c.Action {
	case Create:
		return Change{Action: Delete, Before: c.After}
	case Delete:
		return Change{Action: Create, After: c.Before}
	}
	return Change{Action: Update, Before: c.After, After: c.Before}
}

// Resource is the state the change acts on: After, or Before for a delete.
func (c Change) Resource() Resource {
	if c.After != nil {
		return c.After
	}
	return c.Before
}

// Conflict is a foreign object that occupies what braid wants. braid reports
// it and leaves it alone.
type Conflict struct {
	// Address is the address braid wanted.
	Address string `json:"address"`
	// Foreign describes the object that is in the way.
	Foreign string `json:"foreign"`
}

func (c Conflict) String() string {
	return fmt.Sprintf("%s: occupied by a foreign object (%s); left alone", c.Address, c.Foreign)
}

// Note is something the plan must say that is not a change, such as a
// section this version does not converge yet, or a part of the spec that
// waits for something outside it (a link, a lease).
type Note struct {
	Section string `json:"section"`
	Message string `json:"message"`
	// Waiting is set on a note about what waits: it is converged once
	// what it waits for is there, with no change to the spec.
	Waiting bool `json:"waiting,omitempty"`
}

func (n Note) String() string { return n.Section + ": " + n.Message }

// Observed is a live resource as a driver found it. Foreign objects are
// returned only where they collide with a desired address, so the diff can
// report a conflict.
type Observed struct {
	Resource
	// Foreign is set when braid does not own the object.
	Foreign bool
}

// Diff computes the changes that turn live into desired. A desired
// resource whose address is held by a foreign object becomes a conflict, not
// a change; owned live resources that are not desired are deleted. The
// result is ordered: creates and updates in desired order, then deletes in
// reverse live order.
func Diff(desired []Resource, live []Observed) ([]Change, []Conflict) {
	liveAddrs := make([]string, len(live))
	byAddr := make(map[string]int, len(live))
	for i, o := range live {
		liveAddrs[i] = o.Address()
		byAddr[liveAddrs[i]] = i
	}
	wanted := make([]bool, len(live))
	var changes []Change
	var conflicts []Conflict
	for _, d := range desired {
		addr := d.Address()
		i, ok := byAddr[addr]
		if !ok {
			changes = append(changes, Change{Action: Create, After: d})
			continue
		}
		wanted[i] = true
		o := live[i]
		switch {
		case o.Foreign:
			conflicts = append(conflicts, Conflict{Address: addr, Foreign: Describe(o.Resource)})
		case !Same(o.Resource, d):
			changes = append(changes, Change{Action: Update, Before: o.Resource, After: d})
		}
	}
	for i := len(live) - 1; i >= 0; i-- {
		if live[i].Foreign || wanted[i] {
			continue
		}
		changes = append(changes, Change{Action: Delete, Before: live[i].Resource})
	}
	return changes, conflicts
}

// Same reports whether two states of a resource need no change between
// them: their fields are equal. Values of the same comparable type that are
// equal are the same without building their fields (the fast path of a
// converged pass).
func Same(a, b Resource) bool {
	if t := reflect.TypeOf(a); t == reflect.TypeOf(b) && t.Comparable() && a == b {
		return true
	}
	return slices.Equal(a.Fields(), b.Fields())
}

// Describe renders a resource's fields on one line, secrets redacted.
func Describe(r Resource) string {
	var b strings.Builder
	for i, f := range r.Fields() {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(f.Name)
		b.WriteByte('=')
		b.WriteString(f.Display())
	}
	return b.String()
}

// Redacted is what a secret field shows.
const Redacted = "(sensitive)"

// Display is the value as it may be printed.
func (f Field) Display() string {
	if f.Secret {
		return Redacted
	}
	return f.Value
}

// ProcessBound marks a desired resource that only works while braid's
// daemon runs one of its sessions (a rule steering traffic into the
// proxy's listener). It is built so that the kernel bypasses it when the
// process is gone (see the README: process-bound objects). The daemon
// converges it while its owning session runs and withdraws it when that
// session stops, or when the daemon stops; a CLI run never creates one.
type ProcessBound struct {
	Resource
	// Owner is the session it serves ("proxy/peer").
	Owner string
	// Also is a second session it serves, "" for none: it is kept while
	// either runs (the transparent proxy's local delivery of marked
	// packets, which the DNS forwarder's intercept shares).
	Also string
}

// Unbound returns the resource a ProcessBound wraps, or r itself.
func Unbound(r Resource) Resource {
	if b, ok := r.(ProcessBound); ok {
		return b.Resource
	}
	return r
}
