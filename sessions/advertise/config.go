// Package advertise is the LAN's router advertisement session,
// session[advertise/lan]: braid as the IPv6 router of its LAN, for
// `lan.ipv6.advertise: true`. It advertises the LAN's /64s for SLAAC (the
// static ones of lan.addresses, and the one of a delegated prefix), the
// resolvers (RFC 8106 RDNSS), the MTU and the box as the default router;
// answers router solicitations; advertises a prefix that left deprecated
// before it goes; and, when it stops, says the box is no longer a router
// (a router lifetime of 0, RFC 4861 6.2.5).
//
// What the adverts say and when they go is the pure package announce; the
// wire is package advert of the uplink's RA session. This package owns
// the socket, the timers and the link.
package advertise

import (
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/braid-router/braid/api"
	"github.com/braid-router/braid/reconcile/plan"
	"github.com/braid-router/braid/session"
	"github.com/braid-router/braid/sessions/advertise/announce"
)

// Kind is the session kind: "session[advertise/lan]".
const Kind = "advertise"

// Name is the session's name: there is one LAN.
const Name = "lan"

// Prefix is a /64 the LAN's hosts form addresses in.
type Prefix struct {
	// Prefix is the /64.
	Prefix netip.Prefix
	// From says where it comes from: "lan.addresses", or the delegation
	// it is a /64 of ("tunnel/sixpe", "uplink/fibre").
	From string
	// ValidUntil and PreferredUntil are the ends of a delegated prefix's
	// lifetimes, which the adverts never exceed; zero for a static prefix
	// or one delegated forever.
	ValidUntil, PreferredUntil time.Time
}

// Config is what the session advertises, and where. The compiler writes
// it; a new one updates the running session in place, except for a new
// interface.
type Config struct {
	// Interface is the LAN's link.
	Interface string
	// Prefixes are advertised on-link and for SLAAC, in order.
	Prefixes []Prefix
	// DNS are the resolvers advertised (RDNSS); none: no RDNSS option.
	DNS []netip.Addr
	// MTU is the MTU option: the tunnel's MTU when the LAN's prefix comes
	// over one, else the LAN link's MTU when the spec sets it; zero: no
	// option.
	MTU uint32
	// DefaultRouter makes the box the LAN's IPv6 default router; unset,
	// the adverts carry a router lifetime of 0 (the box has no IPv6 way
	// out for now).
	DefaultRouter bool

	// MaxInterval and MinInterval bound the time between unsolicited
	// adverts (RFC 4861's MaxRtrAdvInterval, MinRtrAdvInterval); zero:
	// 600 s and 200 s. ValidLimit and PreferredLimit cap the prefixes'
	// lifetimes; zero: RFC 9096's 5400 s and 2700 s. The compiler leaves
	// them zero; tests set them.
	MaxInterval, MinInterval   time.Duration
	ValidLimit, PreferredLimit time.Duration
}

// announce is the configuration of the pure machine.
func (c Config) announce() announce.Config {
	a := announce.Config{DNS: c.DNS, MTU: c.MTU, DefaultRouter: c.DefaultRouter,
		MaxInterval: c.MaxInterval, MinInterval: c.MinInterval,
		ValidLimit: c.ValidLimit, PreferredLimit: c.PreferredLimit}
	for _, p := range c.Prefixes {
		a.Prefixes = append(a.Prefixes, announce.Prefix{Prefix: p.Prefix, ValidUntil: p.ValidUntil, PreferredUntil: p.PreferredUntil})
	}
	return a
}

// Check reports what the adverts cannot carry: a prefix that is not an
// IPv6 /64, a resolver that is not unicast IPv6, an MTU under 1280,
// intervals out of RFC 4861's ranges.
func (c Config) Check() error { return c.announce().Check() }

// Fields implements session.Config.
func (c Config) Fields() []plan.Field {
	var ps []string
	for _, p := range c.Prefixes {
		s := p.Prefix.String()
		var from []string
		if p.From != "" {
			from = append(from, "from "+p.From)
		}
		if !p.ValidUntil.IsZero() {
			from = append(from, "valid until "+p.ValidUntil.UTC().Format(time.RFC3339))
		}
		if !p.PreferredUntil.IsZero() {
			from = append(from, "preferred until "+p.PreferredUntil.UTC().Format(time.RFC3339))
		}
		if len(from) > 0 {
			s += " (" + strings.Join(from, ", ") + ")"
		}
		ps = append(ps, s)
	}
	var dns []string
	for _, d := range c.DNS {
		dns = append(dns, d.String())
	}
	var mtu, intervals, limits string
	if c.MTU != 0 {
		mtu = strconv.FormatUint(uint64(c.MTU), 10)
	}
	if c.MaxInterval != 0 || c.MinInterval != 0 {
		intervals = c.MinInterval.String() + " to " + c.MaxInterval.String()
	}
	if c.ValidLimit != 0 || c.PreferredLimit != 0 {
		limits = "valid " + c.ValidLimit.String() + ", preferred " + c.PreferredLimit.String()
	}
	router := "no (router lifetime 0)"
	if c.DefaultRouter {
		router = "yes"
	}
	return session.Fields("interface", c.Interface, "prefixes", strings.Join(ps, ", "),
		"dns", strings.Join(dns, ", "), "mtu", mtu, "default router", router,
		"intervals", intervals, "lifetime limits", limits)
}

// Secrets implements session.Config: the session has none.
func (Config) Secrets() []*api.Secret { return nil }
