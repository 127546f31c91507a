// Package health is an uplink's health tracker session.
package health

import (
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/braid-router/braid/api"
	"github.com/braid-router/braid/reconcile/plan"
	"github.com/braid-router/braid/session"
)

// Kind is the session kind: "session[health/UPLINK]".
const Kind = "health"

// Config is what the tracker needs.
type Config struct {
	// Uplink names the tracked uplink; Interface is its link, which every
	// probe is bound to.
	Uplink    string
	Interface string
	// Sources are the uplink's current addresses, which probes leave from
	// (one per family); a probe of a family the uplink has no address of
	// fails.
	Sources []netip.Addr
	// Probes are checked every Interval, each within Timeout (at most
	// Interval, so rounds never overlap). A round succeeds when any probe
	// answers: an ICMP echo reply, a TCP connection, or for a DNS probe
	// any reply carrying its query's ID (the resolver is ADDRESS:PORT,
	// the name it is asked for Name).
	Probes   []api.Probe
	Interval time.Duration
	Timeout  time.Duration
	// FailAfter failed rounds in a row mark the uplink down,
	// RecoverAfter successful ones up again.
	FailAfter    int
	RecoverAfter int
}

// Fields implements session.Config.
func (c Config) Fields() []plan.Field {
	var probes, sources []string
	for _, p := range c.Probes {
		switch {
		case p.ICMP != "":
			probes = append(probes, "icmp "+p.ICMP)
		case p.TCP != "":
			probes = append(probes, "tcp "+p.TCP)
		case p.DNS != "":
			probes = append(probes, "dns "+p.DNS+" "+p.Name)
		}
	}
	for _, s := range c.Sources {
		sources = append(sources, s.String())
	}
	return session.Fields("uplink", c.Uplink, "interface", c.Interface,
		"sources", strings.Join(sources, ","), "probes", strings.Join(probes, ","),
		"interval", c.Interval.String(), "timeout", c.Timeout.String(),
		"failAfter", strconv.Itoa(c.FailAfter), "recoverAfter", strconv.Itoa(c.RecoverAfter))
}

// Secrets implements session.Config: the tracker has none.
func (Config) Secrets() []*api.Secret { return nil }
