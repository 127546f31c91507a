package tcpqueue

import (
	"context"
	"net"
	"testing"

	"golang.org/x/sys/unix"
)

// notsentLowat reads TCP_NOTSENT_LOWAT back from c's socket.
func notsentLowat(t *testing.T, c *net.TCPConn) int {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var v int
	var serr error
	if err := rc.Control(func(fd uintptr) {
		v, serr = unix.GetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_NOTSENT_LOWAT)
	}); err != nil {
		t.Fatal(err)
	}
	if serr != nil {
		t.Fatal(serr)
	}
	return v
}

// TestLimitUnsent sets the mark on both ends of a loopback connection,
// TCP and Multipath TCP, and reads it back from the kernel. That the
// mark holds writes back is TestRelayQueuesBounded's (cmd/braid, in the
// lab).
func TestLimitUnsent(t *testing.T) {
	for _, mptcp := range []bool{false, true} {
		name := "TCP"
		if mptcp {
			name = "MPTCP"
		}
		t.Run(name, func(t *testing.T) {
			var lc net.ListenConfig
			lc.SetMultipathTCP(mptcp)
			ln, err := lc.Listen(context.Background(), "tcp4", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			var d net.Dialer
			d.SetMultipathTCP(mptcp)
			c, err := d.Dial("tcp4", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			s, err := ln.Accept()
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			for _, conn := range []*net.TCPConn{c.(*net.TCPConn), s.(*net.TCPConn)} {
				if mptcp {
					if ok, err := conn.MultipathTCP(); err != nil || !ok {
						t.Fatalf("%v: not Multipath TCP (%v): does the kernel have it?", conn.LocalAddr(), err)
					}
				}
				before := notsentLowat(t, conn)
				if err := LimitUnsent(conn, Unsent); err != nil {
					t.Fatal(err)
				}
				if got := notsentLowat(t, conn); got != Unsent {
					t.Errorf("%v: TCP_NOTSENT_LOWAT %d after LimitUnsent (before: %d), want %d", conn.LocalAddr(), got, before, Unsent)
				}
			}
		})
	}
}
