package nftables

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// sock is one of braid's own NETLINK_NETFILTER sockets (see txConn and
// dumpConn). mu serialises its requests, each of which waits for its own
// answers; seq numbers them.
type sock struct {
	mu  sync.Mutex
	fd  int
	seq uint32
}

// Socket settings.
const (
	rcvbuf     = 1 << 20
	txTimeout  = 30 * time.Second
	nlmsgHdr   = unix.SizeofNlMsghdr
	recvBufLen = 1 << 16
)

// open opens the socket in the calling thread's network namespace,
// bound, with a receive buffer of rcvbuf bytes (if allowed) and a receive
// timeout of txTimeout.
func (s *sock) open() error {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_NETFILTER)
	if err != nil {
		return fmt.Errorf("open netfilter socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return fmt.Errorf("netfilter socket: bind: %w", err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, rcvbuf); err != nil {
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, rcvbuf)
	}
	tv := unix.NsecToTimeval(txTimeout.Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		unix.Close(fd)
		return fmt.Errorf("netfilter socket: SO_RCVTIMEO: %w", err)
	}
	s.fd, s.seq = fd, uint32(time.Now().Unix())
	return nil
}

func (s *sock) close() error { return unix.Close(s.fd) }

// send sends b, whole.
func (s *sock) send(b []byte) error {
	return unix.Sendto(s.fd, b, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK})
}

// nlmsg is one netlink message received: its header's type, flags and
// sequence number, and its body.
type nlmsg struct {
	typ, flags uint16
	seq        uint32
	body       []byte
}

// errNoAnswer is a receive that timed out.
var errNoAnswer = fmt.Errorf("no answer from the kernel within %s", txTimeout)

// receive reads answers into buf and calls fn with each message, in
// order, until fn says it is done or fails. A read interrupted by a signal
// is retried; one that times out is errNoAnswer. The caller holds s.mu.
func (s *sock) receive(buf []byte, fn func(m nlmsg) (done bool, err error)) error {
	for {
		n, _, err := unix.Recvfrom(s.fd, buf, 0)
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.EAGAIN):
			return errNoAnswer
		case err != nil:
			return fmt.Errorf("receive: %w", err)
		}
		for b := buf[:n]; len(b) >= nlmsgHdr; {
			l := int(binary.NativeEndian.Uint32(b[0:4]))
			if l < nlmsgHdr || l > len(b) {
				return errors.New("malformed answer")
			}
			m := nlmsg{
				typ:   binary.NativeEndian.Uint16(b[4:6]),
				flags: binary.NativeEndian.Uint16(b[6:8]),
				seq:   binary.NativeEndian.Uint32(b[8:12]),
				body:  b[nlmsgHdr:l],
			}
			b = b[min(align4(l), len(b)):]
			if done, err := fn(m); err != nil || done {
				return err
			}
		}
	}
}

// request sends an nftables request of type typ (NFT_MSG_...) with flags
// and body, and calls fn with the type and body of each answer until fn
// says it is done, or the dump ends (NLMSG_DONE), or the kernel answers
// with an error (with its extended acknowledgement's message, if the
// socket asked for those). An interrupted dump fails with
// errDumpInterrupted. It receives into buf. The caller holds s.mu.
func (s *sock) request(buf []byte, typ, flags uint16, body []byte, fn func(typ uint16, body []byte) (done bool, err error)) error {
	s.seq++
	seq := s.seq
	if err := s.send(appendMsg(nil, unix.NFNL_SUBSYS_NFTABLES<<8|typ, unix.NLM_F_REQUEST|flags, seq, body)); err != nil {
		return fmt.Errorf("send: %w", err)
	}
	interrupted := false
	return s.receive(buf, func(m nlmsg) (bool, error) {
		if m.seq != seq {
			return false, nil // a late answer to an abandoned request
		}
		if m.flags&unix.NLM_F_DUMP_INTR != 0 {
			interrupted = true
		}
		switch m.typ {
		case unix.NLMSG_DONE:
			if interrupted {
				return true, errDumpInterrupted
			}
			return true, nil
		case unix.NLMSG_ERROR:
			if len(m.body) < 4 {
				return true, errors.New("malformed error")
			}
			if errno := -int32(binary.NativeEndian.Uint32(m.body[:4])); errno != 0 {
				return true, msgError{errno: unix.Errno(errno), why: extAck(m)}.err()
			}
			return true, nil
		}
		return fn(m.typ, m.body)
	})
}

// extAck returns the kernel's message in an extended acknowledgement.
func extAck(m nlmsg) string {
	if m.flags&unix.NLM_F_ACK_TLVS == 0 {
		return ""
	}
	off := 4 + nlmsgHdr
	if m.flags&unix.NLM_F_CAPPED == 0 && len(m.body) >= 8 {
		// The whole request is echoed: skip it.
		off = 4 + int(binary.NativeEndian.Uint32(m.body[4:8]))
	}
	if off > len(m.body) {
		return ""
	}
	ad, err := netlink.NewAttributeDecoder(m.body[align4(off):])
	if err != nil {
		return ""
	}
	for ad.Next() {
		if ad.Type() == unix.NLMSGERR_ATTR_MSG {
			return ad.String()
		}
	}
	return ""
}

func align4(n int) int { return (n + 3) &^ 3 }

// appendMsg appends one netlink message.
func appendMsg(b []byte, typ, flags uint16, seq uint32, data []byte) []byte {
	l := nlmsgHdr + len(data)
	b = binary.NativeEndian.AppendUint32(b, uint32(l))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = binary.NativeEndian.AppendUint16(b, flags)
	b = binary.NativeEndian.AppendUint32(b, seq)
	b = binary.NativeEndian.AppendUint32(b, 0)
	b = append(b, data...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}
