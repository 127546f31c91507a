// Package tcpqueue bounds what the kernel queues on a relay's TCP and
// Multipath TCP sockets.
//
// A relay that copies from one connection to another blocks in its
// write while the second cannot take more, and stops reading the first:
// its own buffer is one chunk. The kernel's queues are not bounded by
// that: a socket's send buffer autotunes up to net.ipv4.tcp_wmem's
// maximum, megabytes written but not yet sent, waiting for the
// receiver's window. TCP_NOTSENT_LOWAT (Linux 3.12; MPTCP sockets take
// it on recent 6.x kernels, which braid's lab test checks) makes a
// socket writable only while its unsent bytes are under a mark, so a
// blocking write waits instead: nothing is dropped, the writer is held
// back, and the unsent bytes stay under the mark plus about one write.
package tcpqueue

import (
	"fmt"
	"syscall"

	"golang.org/x/sys/unix"
)

// Unsent is the mark braid's relays give LimitUnsent. The writer is
// woken as soon as its socket falls under the mark, with up to 128 KiB
// still to send (5 ms at 200 Mbit/s), so the socket does not run dry at
// the rates of this project's uplinks; a stalled receiver makes each
// relay socket on its path hold no more than that, plus about one relay
// chunk.
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
