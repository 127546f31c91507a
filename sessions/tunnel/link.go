package tunnel

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"

	vnl "github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// The TUN link's IPv6 settings, by their /proc/sys names.
const (
	sysctlDisableIPv6 = "disable_ipv6"
	// addr_gen_mode 1 (none): the kernel adds no link-local address of
	// its own; braid's comes from IPV6CP.
	sysctlAddrGenMode = "addr_gen_mode"
)

func setIPv6Sysctl(link, name, value string) error {
	p := "/proc/sys/net/ipv6/conf/" + strings.ReplaceAll(link, ".", "/") + "/" + name
	if err := os.WriteFile(p, []byte(value), 0o644); err != nil {
		return fmt.Errorf("tunnel link %s: %s=%s: %w", link, name, value, err)
	}
	return nil
}

// ipv6Off turns IPv6 off on the new TUN link until IPV6CP opens: the
// kernel forgets the link-local address it made, and sends nothing.
func ipv6Off(link string) error {
	if err := setIPv6Sysctl(link, sysctlDisableIPv6, "1"); err != nil {
		return err
	}
	return setIPv6Sysctl(link, sysctlAddrGenMode, "1")
}

// ipv6On turns IPv6 on on the TUN link with addr, braid's link-local
// address from IPV6CP's interface identifier (nodad: IPV6CP made it
// unique on the link), and sets its MTU.
func ipv6On(link string, addr netip.Prefix, mtu int) error {
	lk, err := vnl.LinkByName(link)
	if err != nil {
		return fmt.Errorf("tunnel link %s: %w", link, err)
	}
	if lk.Attrs().MTU != mtu {
		if err := vnl.LinkSetMTU(lk, mtu); err != nil {
			return fmt.Errorf("tunnel link %s: set mtu %d: %w", link, mtu, err)
		}
	}
	if err := setIPv6Sysctl(link, sysctlDisableIPv6, "0"); err != nil {
		return err
	}
	a := &vnl.Addr{IPNet: prefixNet(addr), Flags: unix.IFA_F_NODAD}
	if err := vnl.AddrReplace(lk, a); err != nil {
		return fmt.Errorf("tunnel link %s: address %s: %w", link, addr, err)
	}
	return nil
}

func prefixNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}
