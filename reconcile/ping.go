package reconcile

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// ping sends one ICMP or ICMPv6 echo request to addr and waits for the
// reply until ctx ends. It needs a raw socket (root).
func ping(ctx context.Context, addr string) error {
	ip, err := netip.ParseAddr(addr)
	if err != nil {
		return fmt.Errorf("ping %s: %w", addr, err)
	}
	network, listen, proto := "ip4:icmp", "0.0.0.0", 1
	var typ, reply icmp.Type = ipv4.ICMPTypeEcho, ipv4.ICMPTypeEchoReply
	if ip.Is6() {
		network, listen, proto = "ip6:ipv6-icmp", "::", 58
		typ, reply = ipv6.ICMPTypeEchoRequest, ipv6.ICMPTypeEchoReply
	}
	c, err := icmp.ListenPacket(network, listen)
	if err != nil {
		return fmt.Errorf("ping %s: %w", addr, err)
	}
	defer c.Close()
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(2 * time.Second)
	}
	c.SetDeadline(deadline)
	id, seq := os.Getpid()&0xffff, int(time.Now().UnixNano()&0xffff)
	msg := icmp.Message{Type: typ, Body: &icmp.Echo{ID: id, Seq: seq, Data: []byte("braid probe")}}
	b, err := msg.Marshal(nil)
	if err != nil {
		return fmt.Errorf("ping %s: %w", addr, err)
	}
	if _, err := c.WriteTo(b, &net.IPAddr{IP: ip.AsSlice()}); err != nil {
		return fmt.Errorf("ping %s: %w", addr, err)
	}
	buf := make([]byte, 1500)
	for {
		n, from, err := c.ReadFrom(buf)
		if err != nil {
			return fmt.Errorf("ping %s: no reply: %w", addr, err)
		}
		got, err := icmp.ParseMessage(proto, buf[:n])
		if err != nil || got.Type != reply {
			continue
		}
		if e, ok := got.Body.(*icmp.Echo); ok && e.Seq == seq && from.String() == ip.String() {
			return nil
		}
	}
}
