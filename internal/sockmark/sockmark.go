// Package sockmark marks a socket (SO_MARK) as it is created, so that
// policy routing sends what it sends out of the uplink whose table the
// mark selects: the uplink's table number, by braid's convention.
package sockmark

import (
	"errors"
	"fmt"
	"syscall"

	"golang.org/x/sys/unix"
)

// Control returns a net.Dialer or net.ListenConfig Control function that
// sets SO_MARK to mark on the socket before it connects or binds (so that
// the route lookup of connect already sees it); nil for mark 0, the box's
// own routing.
func Control(mark uint32) func(network, address string, c syscall.RawConn) error {
	if mark == 0 {
		return nil
	}
	return func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_MARK, int(mark)) })
		if err = errors.Join(err, serr); err != nil {
			return fmt.Errorf("set SO_MARK %d: %w", mark, err)
		}
		return nil
	}
}
