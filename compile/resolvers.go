package compile

import (
	"cmp"
	"net/netip"
	"slices"

	"github.com/braid-router/braid/api"
	"github.com/braid-router/braid/resolve"
)

// resolvers lists the resolvers braid's own name lookups use: those the
// uplinks learnt (their leases' option 6, their adverts' RDNSS), by the
// uplinks' priority, each leaving by its uplink. An unhealthy uplink's
// are left out, unless every uplink with resolvers is unhealthy: braid
// then still tries them rather than none. An uplink whose link is missing
// has none.
func (c *compiler) resolvers(spec *api.RouterSpec) []resolve.Server {
	type learnt struct {
		prio    int
		healthy bool
		servers []resolve.Server
	}
	var all []learnt
	for _, u := range spec.Uplinks {
		if st := c.uplinks[u.Name]; st == nil || st.missing != "" {
			continue
		}
		var addrs []netip.Addr
		if l, ok := c.facts.Lease4(u.Name); ok {
			addrs = append(addrs, l.DNS...)
		}
		if a, ok := c.facts.SLAAC(u.Name); ok {
			for _, r := range a.DNS {
				addrs = append(addrs, r.Addr)
			}
		}
		if len(addrs) == 0 {
			continue
		}
		h, known := c.facts.Healthy(u.Name)
		l := learnt{prio: u.Priority, healthy: !known || h}
		for _, a := range addrs {
			l.servers = append(l.servers, resolve.Server{Addr: netip.AddrPortFrom(a, 53), Link: u.Interface, Uplink: u.Name})
		}
		all = append(all, l)
	}
	slices.SortStableFunc(all, func(a, b learnt) int { return cmp.Compare(a.prio, b.prio) })
	anyHealthy := slices.ContainsFunc(all, func(l learnt) bool { return l.healthy })
	var out []resolve.Server
	for _, l := range all {
		if l.healthy || !anyHealthy {
			out = append(out, l.servers...)
		}
	}
	return out
}
