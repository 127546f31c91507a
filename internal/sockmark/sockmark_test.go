package sockmark

import (
	"context"
	"net"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/braid-router/braid/internal/nstest"
)

// TestControlMarksTheSocket: the kernel reports the mark on a socket
// dialled with Control (UDP and TCP), and none without it.
func TestControlMarksTheSocket(t *testing.T) {
	ns := nstest.New(t)
	nstest.ServeTCP(t, ns, "127.0.0.1:5301", func(net.Conn) {})
	for _, tc := range []struct {
		network string
		mark    uint32
	}{{"udp", 7101}, {"tcp", 7102}, {"udp", 0}, {"tcp", 0}} {
		var got int
		nstest.Do(t, ns, func() error {
			d := net.Dialer{Control: Control(tc.mark)}
			c, err := d.DialContext(context.Background(), tc.network, "127.0.0.1:5301")
			if err != nil {
				return err
			}
			defer c.Close()
			rc, err := c.(syscall.Conn).SyscallConn()
			if err != nil {
				return err
			}
			var gerr error
			if err := rc.Control(func(fd uintptr) { got, gerr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_MARK) }); err != nil {
				return err
			}
			return gerr
		})
		if got != int(tc.mark) {
			t.Errorf("%s socket dialled with Control(%d): SO_MARK %d", tc.network, tc.mark, got)
		}
	}
}
