package compile

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"

	"github.com/braid-router/braid/api"
	"github.com/braid-router/braid/facts"
	"github.com/braid-router/braid/session"
	"github.com/braid-router/braid/sessions/advertise"
	"github.com/braid-router/braid/sessions/l2tp/dataplane"
)

// Subnet64 returns the /64 numbered n inside a delegated prefix: n in the
// bits between the delegated length and 64 (subnet 1 of 2001:db8:aa00::/56
// is 2001:db8:aa00:1::/64). It fails when the prefix is not IPv6, is
// longer than /64, or has fewer than n+1 /64s. Everything that takes the
// LAN's /64 of a delegation (the LAN address, its routes, the adverts)
// derives it here.
func Subnet64(delegated netip.Prefix, n int) (netip.Prefix, error) {
	switch {
	case !delegated.IsValid() || !delegated.Addr().Is6() || delegated.Addr().Is4In6():
		return netip.Prefix{}, fmt.Errorf("delegated prefix %s is not IPv6", delegated)
	case delegated.Bits() > 64:
		return netip.Prefix{}, fmt.Errorf("delegated prefix %s is longer than /64: no /64 in it", delegated)
	case n < 0 || (64-delegated.Bits() < 63 && uint64(n) >= 1<<(64-delegated.Bits())):
		return netip.Prefix{}, fmt.Errorf("subnet %d does not fit the delegated %s: it has %d /64s (subnets 0 to %d)",
			n, delegated, uint64(1)<<(64-delegated.Bits()), uint64(1)<<(64-delegated.Bits())-1)
	}
	b := delegated.Masked().Addr().As16()
	hi := binary.BigEndian.Uint64(b[:8]) | uint64(n)
	binary.BigEndian.PutUint64(b[:8], hi)
	return netip.PrefixFrom(netip.AddrFrom16(b), 64), nil
}

// DelegatedLANAddress returns the box's LAN address in subnet n of a
// delegated prefix: the /64's first address (::1), with length 64. The
// LAN's resolver address in the adverts (RDNSS) is this one.
func DelegatedLANAddress(delegated netip.Prefix, n int) (netip.Prefix, error) {
	p, err := Subnet64(delegated, n)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(p.Addr().Next(), 64), nil
}

// defaultMTU is a link's MTU when the spec leaves it as it is.
const defaultMTU = 1500

// TunnelMTU returns the MTU the LAN is told for a tunnel's prefix: the
// tunnel link's MTU over the uplink it leaves by (the spec's MTU, or
// 1500), with sequenced L2TP data messages, which cost the most
// (dataplane.SequencedMTU: 1458 on a 1500-byte uplink), so it holds
// whatever the LNS asks for; never under 1280, the least IPv6 allows.
// Zero for a tunnel the spec does not have.
func TunnelMTU(spec *api.RouterSpec, tunnel string) uint32 {
	for _, t := range spec.Tunnels {
		if t.Name != tunnel || t.L2TP == nil {
			continue
		}
		mtu := defaultMTU
		for _, u := range spec.Uplinks {
			if u.Name == t.L2TP.Via && u.MTU != 0 {
				mtu = u.MTU
			}
		}
		return uint32(max(dataplane.SequencedMTU(mtu), dataplane.MinMTU))
	}
	return 0
}

// delegation is the prefix fact of a delegation ("tunnel/sixpe"), with
// the end of its valid lifetime, which is the fact's expiry.
func (c *compiler) delegation(what string) (facts.Prefix, facts.Fact, bool) {
	for _, o := range c.facts.Owners() {
		for _, f := range c.facts.Slots[o].Facts {
			if f.Prefix != nil && f.Prefix.For == what {
				return *f.Prefix, f, true
			}
		}
	}
	return facts.Prefix{}, facts.Fact{}, false
}

// advertise compiles session[advertise/lan] for lan.ipv6.advertise: the
// IPv6 /64s of lan.addresses, and the /64 of the delegated prefix while
// it is there (and, from a tunnel, while the tunnel's link is there with
// carrier: a tunnel that went down takes its prefix out of the adverts,
// deprecated); the
// resolvers (the box's address in each /64 when braid's DNS listens on
// the LAN, else the delegated ones); the MTU (the tunnel's when the
// prefix comes over one, the LAN's when the spec sets it, the smaller of
// the two); the box as default router while it has an IPv6 way out (an
// uplink's IPv6 default route, or the delegation). The session runs
// whenever advertise is set and the LAN's link is there: with nothing to
// say, it is silent, and deprecates what it said before.
func (c *compiler) advertise(spec *api.RouterSpec) error {
	l := spec.LAN
	if l == nil || l.IPv6 == nil || !l.IPv6.Advertise {
		return nil
	}
	cfg := advertise.Config{Interface: l.Interface}
	var boxAddrs []netip.Addr
	seen := map[netip.Prefix]bool{}
	add := func(p advertise.Prefix, box netip.Addr) {
		if seen[p.Prefix] {
			return
		}
		seen[p.Prefix] = true
		cfg.Prefixes = append(cfg.Prefixes, p)
		boxAddrs = append(boxAddrs, box)
	}
	for _, a := range l.Addresses {
		p, err := netip.ParsePrefix(a)
		if err != nil {
			return fmt.Errorf("lan.addresses: %w", err)
		}
		if !p.Addr().Is6() || p.Addr().Is4In6() || p.Bits() != 64 || p.Addr().IsLinkLocalUnicast() {
			continue // SLAAC forms addresses in /64s only
		}
		add(advertise.Prefix{Prefix: p.Masked(), From: "lan.addresses"}, p.Addr())
	}
	if l.MTU != 0 {
		cfg.MTU = uint32(l.MTU)
	}
	x := l.IPv6
	var delegatedDNS []netip.Addr
	// what names the delegation, link the link it is asked on.
	what, link, up := "", "", false
	switch {
	case x.FromTunnel != "":
		what = "tunnel/" + x.FromTunnel
		for _, t := range spec.Tunnels {
			if t.Name == x.FromTunnel {
				link = t.Interface
			}
		}
		// The tunnel is up once its session published its link (IPV6CP
		// up, the link-local address on it), as its DHCPv6 client waits
		// for; the link's own MTU then (the uplink's less the tunnel's
		// headers, or the LNS's MRU), else the spec's estimate.
		lk, ok := c.facts.Link(what)
		up = ok && lk.Name == link
		mtu := TunnelMTU(spec, x.FromTunnel)
		if up && lk.MTU > 0 {
			mtu = uint32(lk.MTU)
		}
		if mtu != 0 && (cfg.MTU == 0 || mtu < cfg.MTU) {
			cfg.MTU = mtu
		}
	case x.FromUplink != "":
		what, up = "uplink/"+x.FromUplink, true
		if st := c.uplinks[x.FromUplink]; st != nil {
			link = st.link
		}
	}
	if what != "" && up {
		// A prefix asked on another link (the uplink's interface changed)
		// gives the LAN no address (delegation.go): nor is it advertised.
		if d, f, ok := c.delegation(what); ok && (d.Link == "" || d.Link == link) {
			// A subnet that does not fit is noted with the LAN's address
			// (delegation.go).
			if box, err := DelegatedLANAddress(d.Prefix, x.Subnet); err == nil {
				add(advertise.Prefix{Prefix: box.Masked(), From: what, ValidUntil: f.Expires, PreferredUntil: d.Preferred}, box.Addr())
				delegatedDNS = d.DNS
				cfg.DefaultRouter = true
			}
		}
	}
	for _, u := range c.uplinks {
		if u.gw6.IsValid() {
			cfg.DefaultRouter = true
		}
	}
	if d := spec.DNS; d != nil && len(cfg.Prefixes) > 0 {
		for _, listen := range d.Listen {
			if listen == "lan" {
				cfg.DNS = append(cfg.DNS, boxAddrs...)
				continue
			}
			if a, err := netip.ParseAddr(listen); err == nil && seen[netip.PrefixFrom(a, 64).Masked()] {
				cfg.DNS = append(cfg.DNS, a)
			}
		}
	}
	if len(cfg.DNS) == 0 {
		cfg.DNS = delegatedDNS
	}
	cfg.DNS = unicast6(cfg.DNS)
	if err := cfg.Check(); err != nil {
		return fmt.Errorf("lan.ipv6.advertise: %w", err)
	}
	var wait string
	if !c.present(l.Interface) {
		wait = "link " + l.Interface
	}
	c.specs = append(c.specs, session.Spec{Kind: advertise.Kind, Name: advertise.Name, Config: cfg, Wait: wait})
	return nil
}

// unicast6 keeps the unicast IPv6 addresses of as, once each, in order:
// what an RDNSS option may carry.
func unicast6(as []netip.Addr) []netip.Addr {
	var out []netip.Addr
	for _, a := range as {
		if !a.Is6() || a.Is4In6() || a.IsMulticast() || a.IsUnspecified() || a.IsLoopback() || a.Zone() != "" || slices.Contains(out, a) {
			continue
		}
		out = append(out, a)
	}
	return out
}
