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

// Check says whether the link a session opened its sockets on is still
// that link: the same index (not made again under its name), up, with
// carrier, and with the link-local address ll usable. Its error says
// which is not so.
func Check(ifi *net.Interface, ll netip.Addr) error {
	now, err := net.InterfaceByName(ifi.Name)
	switch {
	case err != nil:
		return fmt.Errorf("link %s: %w", ifi.Name, err)
	case now.Index != ifi.Index:
		return fmt.Errorf("link %s was made again", ifi.Name)
	case now.Flags&net.FlagUp == 0:
		return fmt.Errorf("link %s went down", ifi.Name)
	case now.Flags&net.FlagRunning == 0:
		return fmt.Errorf("link %s lost its carrier", ifi.Name)
	}
	if got, err := Usable(now); err != nil || got != ll {
		return fmt.Errorf("the link-local address %s of %s is gone", ll, ifi.Name)
	}
	return nil
}
