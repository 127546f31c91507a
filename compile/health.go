package compile

import (
	"maps"
	"net/netip"
	"slices"

	"github.com/braid-router/braid/api"
	"github.com/braid-router/braid/drivers/mptcp"
	nl "github.com/braid-router/braid/drivers/netlink"
	nft "github.com/braid-router/braid/drivers/nftables"
)

// What an uplink's health verdict moves. An uplink its tracker judges
// unhealthy (a health fact with Healthy false) is withdrawn, so that
// traffic follows the healthy uplinks:
//
//   - its default routes leave the main table;
//   - the routes and rules of the routes: entries via it, and its egress
//     marks (the mark rules in nftables and the fwmark policy rules), are
//     withdrawn: their traffic follows the main table;
//   - its MPTCP endpoints get the backup flag (see unhealthyEndpoint);
//   - a LAN IPv6 prefix that only withdrawn uplinks route is rejected with
//     ICMPv6 destination unreachable, code 5 (source address failed
//     ingress/egress policy), so that hosts fall back to IPv4 at once
//     rather than send into a dead path or out of an uplink whose
//     provider drops their source address.
//
// Without a tracker, an uplink is judged by its carrier alone, by the
// kernel (see carrier). What never moves: the uplink's own table, its default route there and
// its `from <address>` rule (its probes and MPTCP subflows leave by it,
// and they are how it recovers), its addresses, NAT and firewall rules.
// And when no uplink with a default route is left healthy, none is
// withdrawn: every default route stays, since a dead probe target (or a
// dead probe path shared by every uplink) must never take the LAN offline.

// carrier makes the kernel itself judge an uplink by its carrier: with
// ignore_routes_with_linkdown, a route out of a link without carrier is
// skipped by every lookup, so its traffic takes the next default route
// the moment the carrier goes, with or without a health tracker, and even
// while braid does not run. The routes stay in the tables, flagged
// linkdown, and serve again when the carrier is back.
func (c *compiler) carrier(u *api.Uplink) {
	ifname := sysctlIfname(u.Interface)
	c.sysctls = append(c.sysctls,
		nl.Sysctl{Name: "net.ipv4.conf." + ifname + ".ignore_routes_with_linkdown", Value: "1"},
		nl.Sysctl{Name: "net.ipv6.conf." + ifname + ".ignore_routes_with_linkdown", Value: "1"})
}

// unhealthyEndpoint is what a withdrawn uplink's MPTCP endpoints become.
// The benchmark (bench/, "Failover") compared the two ways of moving
// established MPTCP connections off a dead path, each taken at the moment
// braid's defaults decide: over 24 downloads each, with the endpoint set
// backup they ran free of stalls 2.7 s after the fault at the median
// (3.5 s deleted), and their longest stall was at most 1.6 s (2.8 s
// deleted). See the README's Health section.
const unhealthyEndpoint = endpointBackup

// Ways an unhealthy uplink's MPTCP endpoints can go.
const (
	// endpointWithdrawn deletes them: the kernel closes the subflows from
	// their addresses and announces REMOVE_ADDR over the other subflows.
	endpointWithdrawn = iota
	// endpointBackup keeps them with the backup flag: the box's scheduler
	// stops using their subflows while others work, and the kernel tells
	// the peer by MP_PRIO (on the subflow itself, which a dead path may
	// not carry).
	endpointBackup
)

// withdrawn lists the uplinks whose health verdict takes them out of use
// now: those judged unhealthy, unless that would leave no uplink with a
// default route that is not.
func withdrawn(spec *api.RouterSpec, c *compiler) map[string]bool {
	down := map[string]bool{}
	carrying := false
	for i := range spec.Uplinks {
		u := &spec.Uplinks[i]
		if healthy, known := c.facts.Healthy(u.Name); known && !healthy {
			down[u.Name] = true
			continue
		}
		if c.hasGateway(u) {
			carrying = true
		}
	}
	if !carrying {
		return nil
	}
	return down
}

// hasGateway reports whether an uplink has a default route now: a static
// gateway, or its lease's router.
func (c *compiler) hasGateway(u *api.Uplink) bool {
	for _, s := range []*api.Static{staticOf4(u), staticOf6(u)} {
		if s != nil && s.Gateway != "" {
			return true
		}
	}
	if u.IPv4 != nil && u.IPv4.DHCP != nil {
		if l, ok := c.facts.Lease4(u.Name); ok && l.Gateway.IsValid() {
			return true
		}
	}
	return false
}

// endpointFlags returns the MPTCP flags of an uplink's endpoints, and
// false when they are withdrawn.
func (c *compiler) endpointFlags(uplink string, flags mptcp.Flags) (mptcp.Flags, bool) {
	if !c.down[uplink] {
		return flags, true
	}
	if unhealthyEndpoint == endpointBackup {
		return flags | mptcp.FlagBackup, true
	}
	return 0, false
}

// ula is the unique local prefix, which no provider routes: a LAN prefix
// in it (or a link-local one) never leaves by an uplink, so no verdict
// concerns it.
var ula = netip.MustParsePrefix("fc00::/7")

// lanPrefixes6 returns the LAN's IPv6 prefixes that leave by uplinks, each
// with the uplinks that route it: a delegated prefix's /64 by the uplink
// it came from (directly, or under the tunnel it came over); a static
// global prefix of lan.addresses by every uplink with IPv6, since braid
// routes IPv6 without NAT and the spec does not say which provider routes
// it back.
func (c *compiler) lanPrefixes6(spec *api.RouterSpec) map[netip.Prefix][]string {
	out := map[netip.Prefix][]string{}
	l := spec.LAN
	if l == nil {
		return out
	}
	var v6 []string
	for i := range spec.Uplinks {
		u := &spec.Uplinks[i]
		if staticOf6(u) != nil || (u.IPv6 != nil && u.IPv6.RA != nil) {
			v6 = append(v6, u.Name)
		}
	}
	for _, a := range l.Addresses {
		p, err := netip.ParsePrefix(a)
		if err != nil || !p.Addr().Is6() || p.Addr().IsLinkLocalUnicast() || ula.Contains(p.Addr()) {
			continue
		}
		out[p.Masked()] = v6
	}
	if x := l.IPv6; x != nil {
		what, via := "", ""
		switch {
		case x.FromUplink != "":
			what, via = "uplink/"+x.FromUplink, x.FromUplink
		case x.FromTunnel != "":
			what = "tunnel/" + x.FromTunnel
			for _, t := range spec.Tunnels {
				if t.Name == x.FromTunnel && t.L2TP != nil {
					via = t.L2TP.Via
				}
			}
		}
		if d, ok := c.facts.Prefix(what); ok && via != "" {
			if p, ok := subnet64(d.Prefix, x.Subnet); ok {
				out[p] = []string{via}
			}
		}
	}
	return out
}

// subnet64 returns the /64 numbered n inside a delegated prefix, and false
// when it does not fit.
func subnet64(delegated netip.Prefix, n int) (netip.Prefix, bool) {
	if !delegated.Addr().Is6() || delegated.Bits() > 64 || n < 0 || (64-delegated.Bits() < 63 && uint64(n) >= uint64(1)<<(64-delegated.Bits())) {
		return netip.Prefix{}, false
	}
	b := delegated.Masked().Addr().As16()
	hi := uint64(b[0])<<56 | uint64(b[1])<<48 | uint64(b[2])<<40 | uint64(b[3])<<32 |
		uint64(b[4])<<24 | uint64(b[5])<<16 | uint64(b[6])<<8 | uint64(b[7])
	hi |= uint64(n)
	for i := range 8 {
		b[i] = byte(hi >> (56 - 8*i))
	}
	return netip.PrefixFrom(netip.AddrFrom16(b), 64), true
}

// rejectUnrouted6 adds, first in the forward chain, a reject for each LAN
// IPv6 prefix whose every uplink is withdrawn: ICMPv6 destination
// unreachable code 5, established connections included (their path is
// dead too). A policy rule sends the prefix's traffic to its first
// uplink's table, whose default route stays, so that it reaches the
// forward chain: with no route at all (no healthy uplink has IPv6), the
// kernel would answer "no route" (code 0) before any chain saw it. The
// main table's specific routes (the LAN, connected networks) and the box's
// own addresses are looked up before that rule, so only what would leave
// by an uplink is rejected.
func (c *compiler) rejectUnrouted6(rs *nft.Ruleset, spec *api.RouterSpec, lanIf string) {
	if len(c.down) == 0 || lanIf == "" {
		return
	}
	prefixes := c.lanPrefixes6(spec)
	for _, p := range sortedPrefixes(prefixes) {
		via := prefixes[p]
		if len(via) == 0 {
			continue
		}
		dead := true
		for _, u := range via {
			if !c.down[u] {
				dead = false
			}
		}
		if dead {
			rs.Add(nft.ChainForward, "unhealthy-"+p.String(), nft.IIFName(lanIf), nft.SrcPrefix(p), nft.RejectICMPv6(nft.ICMPv6PolicyFail))
			if u := c.uplinks[via[0]]; u != nil {
				c.rules = append(c.rules, nl.Rule{Priority: nl.PrioFrom, IPv6: true, From: p, Table: u.table, SuppressPrefixlen: -1})
			}
		}
	}
}

// sortedPrefixes returns the keys of m in order.
func sortedPrefixes[V any](m map[netip.Prefix]V) []netip.Prefix {
	return slices.SortedFunc(maps.Keys(m), netip.Prefix.Compare)
}
