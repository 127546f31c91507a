// Package linklocal is what the sessions that speak from a link's IPv6
// link-local address (router solicitations, DHCPv6, router
// advertisements) share: the address once usable (past the kernel's
// duplicate address detection), an ICMPv6 socket bound to it, and the
// check that the link is still the one their sockets are on.
package linklocal

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"

	"github.com/mdlayher/ndp"
	vnl "github.com/vishvananda/netlink"
	"golang.org/x/net/ipv6"
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

// Listen opens an ICMPv6 socket on the link name, bound to its usable
// link-local address, reading only the ICMPv6 types in accept, with
// their hop limits (RFC 4861's checks need them); or it says why it
// cannot yet (no such link, down, no carrier, no usable address).
func Listen(name string, accept ...ipv6.ICMPType) (*net.Interface, *ndp.Conn, netip.Addr, error) {
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return nil, nil, netip.Addr{}, fmt.Errorf("link %s: %w", name, err)
	}
	if ifi.Flags&net.FlagUp == 0 {
		return nil, nil, netip.Addr{}, fmt.Errorf("link %s is down", name)
	}
	if ifi.Flags&net.FlagRunning == 0 {
		return nil, nil, netip.Addr{}, fmt.Errorf("link %s has no carrier", name)
	}
	ll, err := Usable(ifi)
	if err != nil {
		return nil, nil, netip.Addr{}, err
	}
	// ndp names the link in the zones of the addresses it binds and
	// sends to, and Go resolves a zone name through a process-wide cache
	// it refreshes at most once a minute: a link made again under the
	// same name would resolve to its old index for up to a minute
	// (binding fails, sending fails with EINVAL). ndp gets the link with
	// its index as its name, a zone Go reads as a number.
	byIndex := *ifi
	byIndex.Name = strconv.Itoa(ifi.Index)
	conn, _, err := ndp.Listen(&byIndex, ndp.Addr(ll.String()))
	if err != nil {
		return nil, nil, netip.Addr{}, fmt.Errorf("listen on %s of %s: %w", ll, name, err)
	}
	var f ipv6.ICMPFilter
	f.SetAll(true)
	for _, t := range accept {
		f.Accept(t)
	}
	if err := conn.SetICMPFilter(&f); err != nil {
		conn.Close()
		return nil, nil, netip.Addr{}, fmt.Errorf("link %s: ICMPv6 filter: %w", name, err)
	}
	if err := conn.SetControlMessage(ipv6.FlagHopLimit, true); err != nil {
		conn.Close()
		return nil, nil, netip.Addr{}, fmt.Errorf("link %s: ask for hop limits: %w", name, err)
	}
	return ifi, conn, ll, nil
}

// Packet is one ICMPv6 message read from a link (with its source and hop
// limit, for RFC 4861's checks), or the read's error.
type Packet struct {
	B   []byte
	Src netip.Addr
	Hop int
	Err error
}

// Read reads ICMPv6 messages from conn, a socket Listen opened on ifi,
// into pkts until the socket fails or closes (the last Packet carries the
// error) or done closes.
func Read(ifi *net.Interface, conn *ndp.Conn, pkts chan<- Packet, done <-chan struct{}) {
	for {
		b := make([]byte, max(ifi.MTU, 1280))
		n, cm, src, err := conn.ReadRaw(b)
		p := Packet{B: b[:max(n, 0)], Src: src, Err: err}
		if cm != nil {
			p.Hop = cm.HopLimit
		}
		select {
		case pkts <- p:
		case <-done:
			return
		}
		if err != nil {
			return
		}
	}
}
