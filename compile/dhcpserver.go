package compile

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"time"

	"github.com/braid-router/braid/api"
	"github.com/braid-router/braid/session"
	"github.com/braid-router/braid/sessions/dhcpserver"
	"github.com/braid-router/braid/sessions/dhcpserver/leases"
)

// dhcpServer compiles session[dhcpserver/lan] for lan.dhcp: the pool and
// the static leases, the box's address on the range's subnet as server
// and router, and as resolver braid's own when it listens on the LAN
// (dns.listen holds "lan" or an IPv4 address of lan.addresses), else the
// IPv4 resolvers the uplinks learnt. The session waits for the LAN's
// link.
func (c *compiler) dhcpServer(spec *api.RouterSpec) error {
	l := spec.LAN
	if l == nil || l.DHCP == nil {
		return nil
	}
	d := l.DHCP
	box, ok := api.DHCPSubnet(l)
	if !ok || len(d.Range) != 2 {
		return fmt.Errorf("lan.dhcp.range: not in an IPv4 subnet of lan.addresses")
	}
	first, err := netip.ParseAddr(d.Range[0])
	if err != nil {
		return fmt.Errorf("lan.dhcp.range: %w", err)
	}
	last, err := netip.ParseAddr(d.Range[1])
	if err != nil {
		return fmt.Errorf("lan.dhcp.range: %w", err)
	}
	lt, err := time.ParseDuration(d.LeaseTime)
	if err != nil {
		return fmt.Errorf("lan.dhcp.leaseTime: %w", err)
	}
	cfg := dhcpserver.Config{Interface: l.Interface, Server: box.Addr(), Subnet: box.Masked(),
		First: first, Last: last, LeaseTime: lt, Router: box.Addr()}
	for i, st := range d.Static {
		mac, err := net.ParseMAC(st.MAC)
		if err != nil {
			return fmt.Errorf("lan.dhcp.static[%d].mac: %w", i, err)
		}
		a, err := netip.ParseAddr(st.Address)
		if err != nil {
			return fmt.Errorf("lan.dhcp.static[%d].address: %w", i, err)
		}
		cfg.Static = append(cfg.Static, leases.Static{MAC: mac.String(), Addr: a, Hostname: st.Hostname})
	}
	cfg.DNS = lanResolvers4(spec, box.Addr())
	if len(cfg.DNS) == 0 {
		for _, r := range c.resolvers(spec) {
			if a := r.Addr.Addr(); a.Is4() && !slices.Contains(cfg.DNS, a) {
				cfg.DNS = append(cfg.DNS, a)
			}
		}
	}
	if err := cfg.Check(); err != nil {
		return fmt.Errorf("lan.dhcp: %w", err)
	}
	var wait string
	if !c.present(l.Interface) {
		wait = "link " + l.Interface
	}
	c.specs = append(c.specs, session.Spec{Kind: dhcpserver.Kind, Name: dhcpserver.Name, Config: cfg, Wait: wait})
	return nil
}

// lanResolvers4 returns the IPv4 addresses on the LAN where braid's
// resolver listens: box (the server's address) for "lan", and each IPv4
// address of lan.addresses that dns.listen names.
func lanResolvers4(spec *api.RouterSpec, box netip.Addr) []netip.Addr {
	if spec.DNS == nil || spec.LAN == nil {
		return nil
	}
	var out []netip.Addr
	add := func(a netip.Addr) {
		if !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	for _, listen := range spec.DNS.Listen {
		if listen == "lan" {
			add(box)
			continue
		}
		a, err := netip.ParseAddr(listen)
		if err != nil || !a.Is4() {
			continue
		}
		for _, la := range spec.LAN.Addresses {
			if p, err := netip.ParsePrefix(la); err == nil && p.Addr() == a {
				add(a)
			}
		}
	}
	return out
}
