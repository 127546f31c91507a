package compile

import (
	"fmt"
	"net/netip"

	"github.com/braid-router/braid/api"
	nl "github.com/braid-router/braid/drivers/netlink"
	"github.com/braid-router/braid/session"
	"github.com/braid-router/braid/sessions/dhcp6"
)

// TunnelTable returns the routing table of the spec's index-th tunnel
// (spec.tunnels[index]): one of braid's reserved tables after the proxy's
// (7191 to 7199), so no uplink's table and no listener's collides with
// it; false when index is out of that range (more than 9 tunnels). The
// tunnel's routes (its default route and the unreachable default beneath
// it) and the rule sending a prefix delegated over it (lan.ipv6.fromTunnel)
// both use it.
func TunnelTable(index int) (int, bool) {
	t := nl.TableProxy + 1 + index
	if index < 0 || t > nl.TableMax {
		return 0, false
	}
	return t, true
}

// dhcp6Sessions compiles the DHCPv6 prefix delegation clients: one per
// uplink with ipv6.ra.dhcpv6.prefixDelegation, on its link (waiting
// while the link is missing), and one per tunnel with
// l2tp.ipv6.dhcpv6.prefixDelegation, on its TUN link (waiting until the
// tunnel's session made it and it is up). The client's DUID-LL is the
// uplink's MAC address, the via uplink's for a tunnel, which has none.
func (c *compiler) dhcp6Sessions(spec *api.RouterSpec) {
	for i := range spec.Uplinks {
		u := &spec.Uplinks[i]
		if u.IPv6 == nil || u.IPv6.RA == nil || u.IPv6.RA.DHCPv6 == nil || !u.IPv6.RA.DHCPv6.PrefixDelegation {
			continue
		}
		var wait string
		if st := c.uplinks[u.Name]; st != nil && st.missing != "" {
			wait = "link " + u.Interface
		}
		c.specs = append(c.specs, session.Spec{Kind: dhcp6.Kind, Name: u.Name, Config: dhcp6.Config{
			For: "uplink/" + u.Name, Interface: u.Interface, DUIDLink: u.Interface,
		}, Wait: wait})
	}
	for _, t := range spec.Tunnels {
		l := t.L2TP
		if l == nil || l.IPv6 == nil || l.IPv6.DHCPv6 == nil || !l.IPv6.DHCPv6.PrefixDelegation || t.Interface == "" {
			continue
		}
		cfg := dhcp6.Config{For: "tunnel/" + t.Name, Interface: t.Interface}
		if st := c.uplinks[l.Via]; st != nil {
			cfg.DUIDLink = st.link
		}
		// The tunnel's session publishes its link once IPV6CP is up and
		// the link has its link-local address: before, the link may be
		// there, up, and still carry no IPv6.
		var wait string
		if lk, ok := c.facts.Link("tunnel/" + t.Name); !ok || lk.Name != t.Interface {
			wait = "link " + t.Interface + " up (made by the tunnel's session, once IPV6CP is up)"
		}
		c.specs = append(c.specs, session.Spec{Kind: dhcp6.Kind, Name: t.Name, Config: cfg, Wait: wait})
	}
}

// delegatedLAN compiles the LAN's IPv6 from a delegated prefix
// (lan.ipv6.fromUplink or fromTunnel, and subnet), once the prefix is a
// fact: the box's address <the subnet-th /64>::1/64 on the LAN with its
// connected route, an unreachable route for the whole delegated prefix
// (the more specific LAN route wins; the unused rest of the prefix, which
// the ISP routes to the box, never loops back out of a default route),
// and a rule sending what comes from the prefix to the routing table of
// where it came from (the uplink's table, the tunnel's), after the main
// table's specific routes. A prefix that changes or expires takes them
// all with it: they are compiled from the fact alone. A subnet that does
// not fit the delegated length is a note, not an error: the spec cannot
// know the length before the prefix arrives.
func (c *compiler) delegatedLAN(spec *api.RouterSpec) {
	lan := spec.LAN
	if lan == nil || lan.IPv6 == nil {
		return
	}
	x := lan.IPv6
	var what, link, path string
	table := 0
	switch {
	case x.FromUplink != "":
		what, path = "uplink/"+x.FromUplink, "lan.ipv6.fromUplink"
		st := c.uplinks[x.FromUplink]
		if st == nil {
			return // validation names it
		}
		link, table = st.link, st.table
	case x.FromTunnel != "":
		what, path = "tunnel/"+x.FromTunnel, "lan.ipv6.fromTunnel"
		for i, t := range spec.Tunnels {
			if t.Name != x.FromTunnel {
				continue
			}
			link = t.Interface
			var ok bool
			if table, ok = TunnelTable(i); !ok {
				c.note(path, fmt.Sprintf("tunnel %s is the %dth: braid's tunnel tables (%d-%d) hold 9; the delegated prefix is not used", t.Name, i+1, nl.TableProxy+1, nl.TableMax))
				return
			}
		}
		if table == 0 {
			return // validation names it
		}
	default:
		return
	}
	d, ok := c.facts.Prefix(what)
	if !ok || !d.Prefix.Addr().Is6() || (d.Link != "" && d.Link != link) {
		c.wait(path, "waiting for the prefix delegated for "+what+" (DHCPv6)")
		return
	}
	if !c.present(lan.Interface) {
		return // the LAN waits for its link (router)
	}
	addr, err := DelegatedLANAddress(d.Prefix, x.Subnet)
	if err != nil {
		c.note("lan.ipv6.subnet", fmt.Sprintf("subnet %d does not fit the prefix %s delegated for %s (%s): the LAN has no address from it",
			x.Subnet, d.Prefix, what, fits(d.Prefix)))
		return
	}
	c.address(lan.Interface, addr)
	c.routes = append(c.routes, nl.Route{Table: nl.TableMain, Dst: d.Prefix.Masked(), Metric: metricTable6, Type: nl.Unreachable, Link: "lo"})
	c.rules = append(c.rules, nl.Rule{Priority: nl.PrioDelegated, IPv6: true, From: d.Prefix.Masked(), Table: table, SuppressPrefixlen: -1})
}

// fits says which subnets a delegated prefix holds.
func fits(p netip.Prefix) string {
	switch {
	case p.Bits() > 64:
		return fmt.Sprintf("a /%d holds no /64", p.Bits())
	case p.Bits() == 64:
		return "a /64 holds subnet 0 only"
	case 64-p.Bits() >= 63:
		return fmt.Sprintf("a /%d", p.Bits())
	}
	return fmt.Sprintf("a /%d holds subnets 0 to %d", p.Bits(), uint64(1)<<(64-p.Bits())-1)
}
