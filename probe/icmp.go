package probe

import (
	"context"
	"fmt"
	"net"
	"net/netip"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// icmp sends one echo request to t and waits for its reply.
func (p *Prober) icmp(ctx context.Context, t Target) error {
	dst, err := t.ip()
	if err != nil {
		return err
	}
	src, err := p.source(dst)
	if err != nil {
		return err
	}
	network, laddr := "ip4:icmp", "0.0.0.0"
	if dst.Is6() {
		network, laddr = "ip6:ipv6-icmp", "::"
	}
	if src.IsValid() {
		laddr = src.String()
	}
	lc := net.ListenConfig{Control: p.control}
	pc, err := lc.ListenPacket(ctx, network, laddr)
	if err != nil {
		return err
	}
	defer pc.Close()
	c := pc.(*net.IPConn)
	if err := filterEchoReplies(c, dst.Is6()); err != nil {
		return err
	}
	defer deadlineFromContext(ctx, c)()

	e := newEcho(dst.Is6())
	to := &net.IPAddr{IP: dst.AsSlice(), Zone: dst.Zone()}
	if _, err := c.WriteTo(e.request(), to); err != nil {
		return fmt.Errorf("send echo request: %w", err)
	}
	// Room for an IPv4 header with options (the socket returns the IP
	// packet, net strips the header) and any reply someone else's ping
	// brings; a longer one, truncated, is not ours anyway.
	buf := make([]byte, 1500)
	for {
		n, from, err := c.ReadFrom(buf)
		if err != nil {
			return fmt.Errorf("no echo reply: %w", ctxErr(ctx, err))
		}
		if e.isReply(buf[:n]) && sameAddr(from, dst) {
			return nil
		}
	}
}

// filterEchoReplies makes the kernel pass only echo replies to c
// (ICMP_FILTER, ICMP6_FILTER): a raw socket otherwise gets every ICMP
// message the namespace receives.
func filterEchoReplies(c *net.IPConn, v6 bool) error {
	var err error
	if v6 {
		var f ipv6.ICMPFilter
		f.SetAll(true)
		f.Accept(ipv6.ICMPTypeEchoReply)
		err = ipv6.NewPacketConn(c).SetICMPFilter(&f)
	} else {
		var f ipv4.ICMPFilter
		f.SetAll(true)
		f.Accept(ipv4.ICMPTypeEchoReply)
		err = ipv4.NewPacketConn(c).SetICMPFilter(&f)
	}
	if err != nil {
		return fmt.Errorf("filter echo replies: %w", err)
	}
	return nil
}

// sameAddr reports whether from, a raw socket's sender, is dst; zones
// are not compared (a link-local reply comes with the interface's).
func sameAddr(from net.Addr, dst netip.Addr) bool {
	a, ok := from.(*net.IPAddr)
	if !ok {
		return false
	}
	ip, ok := netip.AddrFromSlice(a.IP)
	return ok && ip.Unmap() == dst.WithZone("")
}
