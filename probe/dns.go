package probe

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"syscall"
)

// dns sends one query to t's server and waits for the response.
func (p *Prober) dns(ctx context.Context, t Target) error {
	server, err := t.server()
	if err != nil {
		return err
	}
	id := uint16(rand.Uint32())
	q, err := dnsQuery(id, t.Name)
	if err != nil {
		return err
	}
	src, err := p.source(server.Addr())
	if err != nil {
		return err
	}
	d := net.Dialer{Control: p.control}
	if src.IsValid() {
		d.LocalAddr = net.UDPAddrFromAddrPort(netip.AddrPortFrom(src, 0))
	}
	// Connected: the kernel drops datagrams from anyone but the server.
	c, err := d.DialContext(ctx, "udp", server.String())
	if err != nil {
		return ctxErr(ctx, err)
	}
	defer c.Close()
	defer deadlineFromContext(ctx, c)()
	if _, err := c.Write(q); err != nil {
		return fmt.Errorf("send query: %w", ctxErr(ctx, err))
	}
	// Only the header matters; a longer response is truncated.
	buf := make([]byte, 512)
	for {
		n, err := c.Read(buf)
		if errors.Is(err, syscall.ECONNREFUSED) {
			return fmt.Errorf("no DNS server listens (port unreachable): %w", err)
		}
		if err != nil {
			return fmt.Errorf("no response: %w", ctxErr(ctx, err))
		}
		if isDNSReply(buf[:n], id) {
			return nil
		}
	}
}
