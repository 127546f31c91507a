package probe

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
)

// tcp connects to t and closes the connection.
func (p *Prober) tcp(ctx context.Context, t Target) error {
	host, port, err := t.hostPort()
	if err != nil {
		return err
	}
	d := net.Dialer{Control: p.control}
	addr := t.Addr
	if len(p.Sources) > 0 {
		dst, err := p.resolve(ctx, host)
		if err != nil {
			return err
		}
		src, err := p.source(dst)
		if err != nil {
			return err
		}
		d.LocalAddr = net.TCPAddrFromAddrPort(netip.AddrPortFrom(src, 0))
		addr = netip.AddrPortFrom(dst, uint16(port)).String()
	}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		if p.RefusedAnswers && errors.Is(err, syscall.ECONNREFUSED) {
			return nil
		}
		return ctxErr(ctx, err)
	}
	return c.Close()
}

// resolve returns host's address to probe from p.Sources: host itself if
// it is an address, else the first of its addresses of a family p has a
// source for.
func (p *Prober) resolve(ctx context.Context, host string) (netip.Addr, error) {
	if ip, err := netip.ParseAddr(host); err == nil {
		return ip.Unmap(), nil
	}
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return netip.Addr{}, err
	}
	for _, ip := range ips {
		if _, err := p.source(ip.Unmap()); err == nil {
			return ip.Unmap(), nil
		}
	}
	return netip.Addr{}, fmt.Errorf("%w: %s has no address of the families of the sources %v (it has %v)", ErrNoSource, host, p.Sources, ips)
}
