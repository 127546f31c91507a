// Package tcpqueue bounds what the kernel queues on a relay's TCP and
// Multipath TCP sockets.
//
// A relay that copies from one connection to another blocks in its
// write while the second cannot take more, and stops reading the first:
// its own buffer is one chunk. The kernel's queues are not bounded by
// that: a socket's send buffer autotunes up to net.ipv4.tcp_wmem's
// maximum, megabytes of bytes written but not yet sent, waiting for the
// receiver's window. TCP_NOTSENT_LOWAT (Linux 3.12; MPTCP sockets take
// it in recent 6.x kernels, which the lab test checks) makes a socket writable only while its unsent bytes are
// under a mark, so a blocking write waits there instead: nothing is
// dropped, the writer is held back, and the unsent bytes stay under the
// mark plus one write.
package tcpqueue

import (
	"fmt"
	"syscall"

	"golang.org/x/sys/unix"
)

// Unsent is the mark LimitUnsent is given by braid's relays: 128 KiB of
// unsent bytes keep a socket fed (the kernel refills it as soon as it
// falls under the mark, long before it runs dry at any rate this
// project's uplinks carry) while a stalled receiver holds no more than
// that, plus one relay chunk, on each relay socket.
const Unsent = 128 << 10

// LimitUnsent sets TCP_NOTSENT_LOWAT to bytes on c, a TCP or Multipath
// TCP socket: writes block (in Go, wait in the poller) while bytes
// written but not yet sent reach it.
func LimitUnsent(c syscall.Conn, bytes int) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return fmt.Errorf("TCP_NOTSENT_LOWAT: %w", err)
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_NOTSENT_LOWAT, bytes)
	}); err != nil {
		return fmt.Errorf("TCP_NOTSENT_LOWAT: %w", err)
	}
	if serr != nil {
		return fmt.Errorf("TCP_NOTSENT_LOWAT %d: %w", bytes, serr)
	}
	return nil
}
