package reconcile

import (
	"github.com/braid-router/braid/foreignfw"
	"github.com/braid-router/braid/probe"
	"github.com/braid-router/braid/reconcile/plan"
	"github.com/braid-router/braid/resolve"
	"github.com/braid-router/braid/session"
)

// Desired is the state compiled from a spec and the facts: the kernel
// resources to converge, in apply order (some of them process-bound: see
// plan.ProcessBound), the sessions to run, the notes the plan must carry,
// and what must keep answering after a change of spec.
type Desired struct {
	Resources []plan.Resource
	Sessions  []session.Spec
	Notes     []plan.Note
	Targets   []probe.Target
	// Resolvers are where braid's own name lookups go (the uplinks'
	// learnt resolvers), in order of preference.
	Resolvers []resolve.Server
	// Intents are what braid's firewall lets through, as flows that the
	// other firewalls on the box must let through too (see foreignfw):
	// the engine's checks warn when one does not.
	Intents []foreignfw.Intent
}

// WithoutProcessBound returns d without the process-bound resources whose
// keep does not accept: the CLI keeps none of them (they
// are the daemon's), the daemon those whose session runs.
func (d Desired) WithoutProcessBound(keep func(plan.ProcessBound) bool) Desired {
	out := d
	out.Resources = make([]plan.Resource, 0, len(d.Resources))
	for _, r := range d.Resources {
		if b, ok := r.(plan.ProcessBound); ok && (keep == nil || !keep(b)) {
			continue
		}
		out.Resources = append(out.Resources, r)
	}
	return out
}

// ProcessBound lists the process-bound resources of d.
func (d Desired) ProcessBound() []plan.ProcessBound {
	var out []plan.ProcessBound
	for _, r := range d.Resources {
		if b, ok := r.(plan.ProcessBound); ok {
			out = append(out, b)
		}
	}
	return out
}
