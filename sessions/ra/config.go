// Package ra is an uplink's router advertisement session: braid's own
// host side of IPv6 neighbour discovery on an uplink whose IPv6 is
// `ipv6: {ra: {}}`. The kernel's accept_ra is off on that link (the
// compiler writes the sysctl, recorded and restored like any other), so
// no kernel-owned default route escapes braid's failover; this session
// solicits the link's adverts, forms one address in the first prefix that
// allows SLAAC and checks it unique (duplicate address detection), keeps
// the default router and the RDNSS resolvers, and publishes them as
// facts: slaac (the address, its preferred lifetime, the resolvers;
// expiring with the valid lifetime) and router6 (the router's link-local
// address; expiring with the router lifetime). The compiler turns them
// into the same objects as a static address and gateway.
//
// The protocol lives in the pure packages advert (the wire) and autoconf
// (the state machine); this package owns the sockets, the timers and the
// facts.
package ra

import (
	"github.com/braid-router/braid/api"
	"github.com/braid-router/braid/reconcile/plan"
	"github.com/braid-router/braid/session"
)

// Kind is the session kind: "session[ra/UPLINK]".
const Kind = "ra"

// Config is what the session needs: the uplink and its link.
type Config struct {
	// Uplink names the uplink its facts are about.
	Uplink string
	// Interface is the uplink's link, where it listens and sends.
	Interface string
}

// Fields implements session.Config.
func (c Config) Fields() []plan.Field {
	return session.Fields("uplink", c.Uplink, "interface", c.Interface)
}

// Secrets implements session.Config: the session has none.
func (Config) Secrets() []*api.Secret { return nil }
