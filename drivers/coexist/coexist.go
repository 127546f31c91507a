// Package coexist warns when another firewall on the box defeats braid's:
// it reads the other nftables tables and the legacy iptables ones, and
// runs braid's intents through them (package foreignfw). It implements
// reconcile.Checker; its warnings are never changes, and a failure to
// look is itself a warning, never a failed plan.
package coexist

import (
	"context"
	"fmt"
	"net"

	"github.com/braid-router/braid/drivers/xtables"
	"github.com/braid-router/braid/foreignfw"
	"github.com/braid-router/braid/reconcile"
	"github.com/braid-router/braid/reconcile/plan"
)

// Checker reads what it analyses through its functions (the nftables
// driver's ReadForeign, xtables.Read, the interfaces' indexes), so that it
// holds no socket of its own.
type Checker struct {
	// Foreign reads every nftables table but braid's.
	Foreign func() (*foreignfw.Ruleset, error)
	// Legacy reads the legacy iptables tables; nil skips them.
	Legacy func() ([]xtables.Table, error)
	// Ifindex maps interface names to indexes; nil leaves them unknown.
	Ifindex func() map[string]uint32
}

// Check implements reconcile.Checker.
func (c *Checker) Check(ctx context.Context, d reconcile.Desired) []plan.Warning {
	if len(d.Intents) == 0 {
		return nil
	}
	var out []plan.Warning
	rs, err := c.Foreign()
	if err != nil {
		out = append(out, plan.Warning{Kind: plan.WarnUnanalysed, Key: "nftables",
			Message: fmt.Sprintf("braid could not read the other nftables tables, to check that they let through what it does: %v", err)})
	} else {
		env := foreignfw.Env{}
		if c.Ifindex != nil {
			env.Ifindex = c.Ifindex()
		}
		for _, f := range foreignfw.Analyze(rs, d.Intents, env) {
			out = append(out, Warning(f))
		}
		for _, ch := range foreignfw.Unanalysed(rs) {
			out = append(out, plan.Warning{Kind: plan.WarnUnanalysed, Key: "ingress|" + ch,
				Message: ch + ": braid does not analyse ingress hooks, which see its traffic before everything else; it may drop what braid lets through"})
		}
	}
	if c.Legacy != nil {
		tables, err := c.Legacy()
		if err != nil {
			out = append(out, plan.Warning{Kind: plan.WarnUnanalysed, Key: "legacy",
				Message: fmt.Sprintf("braid could not look for legacy iptables rules: %v", err)})
		}
		for _, t := range tables {
			if t.Matters() {
				out = append(out, plan.Warning{Kind: plan.WarnUnanalysed, Key: "legacy|" + t.Command + " " + t.Name,
					Message: t.String() + ": legacy iptables rules are invisible to nftables and braid does not analyse them; they may drop what braid lets through (list them with " + t.Command + "-legacy -S, or move them to nftables)"})
			}
		}
	}
	return out
}

// Warning turns a finding into the plan's warning.
func Warning(f foreignfw.Finding) plan.Warning {
	prio := f.Priority
	return plan.Warning{Kind: plan.WarnForeignDrop, Key: f.Key(), Message: f.Summary(),
		Table: f.Table, Chain: f.Chain, Hook: f.Hook, Priority: &prio, By: f.By,
		IntentID: f.IntentID, Intent: f.What, Packets: f.Packets, Certain: f.Certain, Because: f.Because,
		Firewall: f.Firewall, Fix: f.Fix}
}

// Ifindex maps the names of the calling process's interfaces to their
// indexes (nil when they cannot be listed: the indexes stay unknown).
func Ifindex() map[string]uint32 {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil
	}
	out := make(map[string]uint32, len(ifs))
	for _, i := range ifs {
		out[i.Name] = uint32(i.Index)
	}
	return out
}
