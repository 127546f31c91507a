package compile

import (
	"cmp"
	"net/netip"

	"github.com/braid-router/braid/api"
	"github.com/braid-router/braid/foreignfw"
)

// intents derives what braid's firewall lets through, for the analysis of
// the other firewalls on the box (package foreignfw): from the same spec
// fields and uplink state that firewall compiles into accept rules, so
// that each intent is what one of those rules is for. A test runs every
// intent through braid's own compiled table, which must let it all
// through.
func (c *compiler) intents(spec *api.RouterSpec) []foreignfw.Intent {
	var s foreignfw.Site
	if l := spec.LAN; l != nil {
		s.LAN = l.Interface
		for _, a := range l.Addresses {
			if p, err := netip.ParsePrefix(a); err == nil {
				s.LANPrefixes = append(s.LANPrefixes, p.Masked())
				s.LANAddrs = append(s.LANAddrs, p.Addr())
			}
		}
	}
	for _, u := range spec.Uplinks {
		fu := foreignfw.Uplink{Name: u.Name, Link: u.Interface, V4: u.IPv4 != nil, V6: u.IPv6 != nil,
			RA: u.IPv6 != nil && u.IPv6.RA != nil}
		if st, ok := c.uplinks[u.Name]; ok {
			fu.Addr4, fu.Addr6 = st.addr4.Addr(), st.addr6.Addr()
		}
		s.Uplinks = append(s.Uplinks, fu)
	}
	var fw foreignfw.Firewall
	if f := spec.Firewall; f != nil {
		for _, o := range f.Open {
			from, _ := prefixes(o.From)
			fw.Open = append(fw.Open, foreignfw.Open{Proto: cmp.Or(o.Proto, api.DefaultProto), Port: uint16(o.Port), From: from})
		}
		for _, f := range f.Forward {
			to, err := netip.ParseAddrPort(f.To)
			if err != nil {
				continue // firewall reported it
			}
			from, _ := prefixes(f.From)
			fw.Forward = append(fw.Forward, foreignfw.Forward{Proto: cmp.Or(f.Proto, api.DefaultProto), Port: uint16(f.Port),
				To: netip.AddrPortFrom(to.Addr().Unmap(), to.Port()), From: from})
		}
	}
	if m := spec.Management; m != nil {
		from, _ := prefixes(m.Allow)
		fw.Management = from
	}
	return foreignfw.Intents(s, fw)
}
