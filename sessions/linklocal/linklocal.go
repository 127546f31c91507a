// Package linklocal finds a link's IPv6 link-local address as the
// sessions that speak from it (router solicitations, DHCPv6, router
// advertisements) need it: usable, that is past the kernel's duplicate
// address detection.
package linklocal

import (
	"fmt"
	"net"
	"net/netip"

	vnl "github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Usable returns the link's link-local address once the kernel's own
// duplicate address detection has passed it. A tentative one binds, but
// the kernel refuses to send from it: that is an error, as is none.
func Usable(ifi *net.Interface) (netip.Addr, error) {
	addrs, err := vnl.AddrList(&vnl.Device{LinkAttrs: vnl.LinkAttrs{Index: ifi.Index}}, vnl.FAMILY_V6)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("addresses of %s: %w", ifi.Name, err)
	}
	tentative := false
	for _, a := range addrs {
		ip, ok := netip.AddrFromSlice(a.IP)
		if !ok || !ip.Is6() || !ip.IsLinkLocalUnicast() {
			continue
		}
		if a.Flags&(unix.IFA_F_TENTATIVE|unix.IFA_F_DADFAILED) != 0 {
			tentative = true
			continue
		}
		return ip, nil
	}
	if tentative {
		return netip.Addr{}, fmt.Errorf("the link-local address of %s is tentative (the kernel's duplicate address detection)", ifi.Name)
	}
	return netip.Addr{}, fmt.Errorf("no link-local address on %s", ifi.Name)
}
