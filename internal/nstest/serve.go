package nstest

import (
	"net"
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
