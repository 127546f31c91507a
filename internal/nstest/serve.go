package nstest

import (
	"net"
	"net/netip"
	"testing"
)

// ServeTCP listens on TCP addr inside namespace ns until the test ends,
// and hands each connection to handle in a goroutine of its own,
// closing it when handle returns.
func ServeTCP(t testing.TB, ns, addr string, handle func(net.Conn)) {
	t.Helper()
	var ln net.Listener
	Do(t, ns, func() (err error) {
		ln, err = net.Listen("tcp", addr)
		return err
	})
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				handle(c)
			}()
		}
	}()
}

// ServeUDP reads the datagrams that reach c, on a goroutine of its own,
// and hands each with its source to handle (the payload is only valid
// until handle returns), until the test ends and closes c.
func ServeUDP(t testing.TB, c *net.UDPConn, handle func(payload []byte, from netip.AddrPort)) {
	t.Cleanup(func() { c.Close() })
	go func() {
		buf := make([]byte, 64<<10)
		for {
			n, from, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			handle(buf[:n], from)
		}
	}()
}
