package netlink

import (
	"encoding/binary"
	"fmt"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// conn is a minimal rtnetlink socket for the driver's hot path: route
// writes, ten thousand of which must not cost more than `ip -batch` does.
// It sends one request, waits for its acknowledgement, and reuses its
// buffers. (vishvananda/netlink allocates a 64 KiB receive buffer and asks
// for the socket's address on every request, which costs a third more per
// route.) It asks for extended acknowledgements, so a refused write carries
// the kernel's own explanation.
type conn struct {
	mu  sync.Mutex
	fd  int
	seq uint32
	req []byte
	buf []byte
}

// dial opens a conn in the network namespace of the calling thread.
func dial() (*conn, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, err
	}
	c := &conn{fd: fd, req: make([]byte, 0, 256), buf: make([]byte, 16<<10)}
	for _, opt := range []int{unix.NETLINK_EXT_ACK, unix.NETLINK_CAP_ACK} {
		// Best effort: older kernels answer without them.
		_ = unix.SetsockoptInt(fd, unix.SOL_NETLINK, opt, 1)
	}
	// A kernel that never answers must not hang the driver forever.
	tv := unix.Timeval{Sec: 30}
	_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return c, nil
}

func (c *conn) close() error { return unix.Close(c.fd) }

var ne = binary.NativeEndian

// msg is a request being built in the conn's buffer.
type msg struct{ b []byte }

func (m *msg) attr(typ uint16, v []byte) {
	m.b = ne.AppendUint16(m.b, uint16(unix.SizeofRtAttr+len(v)))
	m.b = ne.AppendUint16(m.b, typ)
	m.b = append(m.b, v...)
	for len(m.b)%unix.NLMSG_ALIGNTO != 0 {
		m.b = append(m.b, 0)
	}
}

func (m *msg) attr32(typ uint16, v uint32) {
	var b [4]byte
	ne.PutUint32(b[:], v)
	m.attr(typ, b[:])
}

// start begins a request of the given type and flags (NLM_F_REQUEST and
// NLM_F_ACK are added) in the conn's buffer. The caller holds c.mu.
func (c *conn) start(typ, flags uint16) msg {
	b := c.req[:0]
	b = ne.AppendUint32(b, 0) // length, set by do
	b = ne.AppendUint16(b, typ)
	b = ne.AppendUint16(b, flags|unix.NLM_F_REQUEST|unix.NLM_F_ACK)
	b = ne.AppendUint32(b, 0) // sequence, set by do
	b = ne.AppendUint32(b, 0) // port id: the kernel fills it in
	return msg{b}
}

// do sends m and waits for its acknowledgement. A refusal is returned as
// the syscall.Errno, wrapped with the kernel's message when it gave one.
// The caller holds c.mu.
func (c *conn) do(m msg) error {
	c.req = m.b
	c.seq++
	seq := c.seq
	ne.PutUint32(m.b[0:4], uint32(len(m.b)))
	ne.PutUint32(m.b[8:12], seq)
	if err := unix.Sendto(c.fd, m.b, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("netlink send: %w", err)
	}
	for {
		n, from, err := unix.Recvfrom(c.fd, c.buf, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("netlink receive: %w", err)
		}
		if sa, ok := from.(*unix.SockaddrNetlink); !ok || sa.Pid != 0 {
			continue // not from the kernel
		}
		b := c.buf[:n]
		for len(b) >= unix.NLMSG_HDRLEN {
			l := int(ne.Uint32(b[0:4]))
			if l < unix.NLMSG_HDRLEN || l > len(b) {
				return fmt.Errorf("netlink: malformed answer")
			}
			typ, flags, mseq := ne.Uint16(b[4:6]), ne.Uint16(b[6:8]), ne.Uint32(b[8:12])
			body := b[unix.NLMSG_HDRLEN:l]
			if mseq == seq && typ == unix.NLMSG_ERROR {
				return ackError(body, flags)
			}
			b = b[min(nlmAlign(l), len(b)):]
		}
	}
}

// ackError decodes an NLMSG_ERROR body: nil for an acknowledgement, else
// the errno and the extended acknowledgement's message, if any.
func ackError(body []byte, flags uint16) error {
	if len(body) < 4 {
		return fmt.Errorf("netlink: short acknowledgement")
	}
	errno := -int32(ne.Uint32(body[0:4]))
	if errno == 0 {
		return nil
	}
	err := syscall.Errno(errno)
	if flags&unix.NLM_F_ACK_TLVS == 0 || len(body) < 4+unix.NLMSG_HDRLEN {
		return err
	}
	// The request's header follows the errno (its payload too, unless
	// NLM_F_CAPPED), then the attributes.
	off := 4 + unix.NLMSG_HDRLEN
	if flags&unix.NLM_F_CAPPED == 0 {
		off = 4 + nlmAlign(int(ne.Uint32(body[4:8])))
	}
	for off+unix.SizeofRtAttr <= len(body) {
		l := int(ne.Uint16(body[off:]))
		typ := ne.Uint16(body[off+2:])
		if l < unix.SizeofRtAttr || off+l > len(body) {
			break
		}
		if typ == unix.NLMSGERR_ATTR_MSG {
			return fmt.Errorf("%w (%s)", err, unix.ByteSliceToString(body[off+unix.SizeofRtAttr:off+l]))
		}
		off += nlmAlign(l)
	}
	return err
}

func nlmAlign(n int) int { return (n + unix.NLMSG_ALIGNTO - 1) &^ (unix.NLMSG_ALIGNTO - 1) }

// route sends one route request: RTM_NEWROUTE with flags (create or
// replace) or RTM_DELROUTE.
func (c *conn) route(typ, flags uint16, r Route, index int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := c.start(typ, flags)
	dst := r.Dst.Masked()
	family := byte(unix.AF_INET)
	if dst.Addr().Is6() {
		family = unix.AF_INET6
	}
	table := r.kernelTable()
	rtTable := byte(unix.RT_TABLE_UNSPEC)
	if table < 256 {
		rtTable = byte(table)
	}
	scope, rtype := byte(unix.RT_SCOPE_UNIVERSE), byte(unix.RTN_UNICAST)
	if typ == unix.RTM_DELROUTE {
		// Any scope, any type: the identity and the protocol select it.
		scope, rtype = unix.RT_SCOPE_NOWHERE, unix.RTN_UNSPEC
	} else if !r.Gateway.IsValid() && family == unix.AF_INET {
		scope = unix.RT_SCOPE_LINK
	}
	// struct rtmsg
	m.b = append(m.b, family, byte(dst.Bits()), 0, 0, rtTable, Protocol, scope, rtype)
	m.b = ne.AppendUint32(m.b, 0)
	m.attr32(unix.RTA_TABLE, uint32(table))
	if dst.Bits() > 0 {
		m.attr(unix.RTA_DST, dst.Addr().AsSlice())
	}
	if metric := r.kernelMetric(); metric != 0 {
		m.attr32(unix.RTA_PRIORITY, uint32(metric))
	}
	if typ != unix.RTM_DELROUTE {
		if r.Gateway.IsValid() {
			m.attr(unix.RTA_GATEWAY, r.Gateway.AsSlice())
		}
		if r.Src.IsValid() {
			m.attr(unix.RTA_PREFSRC, r.Src.AsSlice())
		}
		m.attr32(unix.RTA_OIF, uint32(index))
	}
	return c.do(m)
}
