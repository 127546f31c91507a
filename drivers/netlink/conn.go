package netlink

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
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
	// A dump answers with up to 32 KiB per datagram.
	c := &conn{fd: fd, req: make([]byte, 0, 256), buf: make([]byte, 64<<10)}
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

// start begins a request of the given type and flags (NLM_F_REQUEST is
// added) in the conn's buffer. The caller holds c.mu.
func (c *conn) start(typ, flags uint16) msg {
	b := c.req[:0]
	b = ne.AppendUint32(b, 0) // length, set by send
	b = ne.AppendUint16(b, typ)
	b = ne.AppendUint16(b, flags|unix.NLM_F_REQUEST)
	b = ne.AppendUint32(b, 0) // sequence, set by do
	b = ne.AppendUint32(b, 0) // port id: the kernel fills it in
	return msg{b}
}

// send completes m's header and sends it; it returns its sequence number.
// The caller holds c.mu.
func (c *conn) send(m msg) (uint32, error) {
	c.req = m.b
	c.seq++
	ne.PutUint32(m.b[0:4], uint32(len(m.b)))
	ne.PutUint32(m.b[8:12], c.seq)
	if err := unix.Sendto(c.fd, m.b, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return 0, fmt.Errorf("netlink send: %w", err)
	}
	return c.seq, nil
}

// receive reads the kernel's answers to request seq and passes each
// message to fn until fn reports the end. The caller holds c.mu.
func (c *conn) receive(seq uint32, fn func(typ, flags uint16, body []byte) (done bool, err error)) error {
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
			b = b[min(nlmAlign(l), len(b)):]
			if mseq != seq {
				continue // a late answer to an abandoned request
			}
			done, err := fn(typ, flags, body)
			if done || err != nil {
				return err
			}
		}
	}
}

// do sends m with NLM_F_ACK and waits for its acknowledgement. A refusal
// is returned as the syscall.Errno, wrapped with the kernel's message when
// it gave one. The caller holds c.mu.
func (c *conn) do(m msg) error {
	ne.PutUint16(m.b[6:8], ne.Uint16(m.b[6:8])|unix.NLM_F_ACK)
	seq, err := c.send(m)
	if err != nil {
		return err
	}
	return c.receive(seq, func(typ, flags uint16, body []byte) (bool, error) {
		if typ == unix.NLMSG_ERROR {
			return true, ackError(body, flags)
		}
		return false, nil
	})
}

// errDumpInterrupted says a dump saw the table change under it; its
// result may be inconsistent and it is retried.
var errDumpInterrupted = errors.New("netlink dump interrupted")

// dump sends a dump request of type typ whose body is hdr and passes each
// answer's body to fn.
func (c *conn) dump(typ uint16, hdr []byte, fn func(body []byte)) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := c.start(typ, unix.NLM_F_DUMP)
	m.b = append(m.b, hdr...)
	seq, err := c.send(m)
	if err != nil {
		return err
	}
	interrupted := false
	err = c.receive(seq, func(t, flags uint16, body []byte) (bool, error) {
		if flags&unix.NLM_F_DUMP_INTR != 0 {
			interrupted = true
		}
		switch t {
		case unix.NLMSG_DONE:
			return true, nil
		case unix.NLMSG_ERROR:
			if err := ackError(body, flags); err != nil {
				return true, err
			}
			return true, nil
		}
		fn(body)
		return false, nil
	})
	if err == nil && interrupted {
		err = errDumpInterrupted
	}
	return err
}

// routes dumps the routes of one family (all tables) into out.
func (c *conn) routes(family int, out []liveRoute) ([]liveRoute, error) {
	hdr := make([]byte, unix.SizeofRtMsg)
	hdr[0] = byte(family)
	err := c.dump(unix.RTM_GETROUTE, hdr, func(b []byte) {
		if r, ok := parseRoute(b); ok {
			out = append(out, r)
		}
	})
	return out, err
}

// parseRoute decodes an RTM_NEWROUTE body.
func parseRoute(b []byte) (liveRoute, bool) {
	if len(b) < unix.SizeofRtMsg {
		return liveRoute{}, false
	}
	r := liveRoute{
		v6:     b[0] == unix.AF_INET6,
		table:  int(b[4]),
		proto:  b[5],
		typ:    b[7],
		cloned: ne.Uint32(b[8:12])&unix.RTM_F_CLONED != 0,
	}
	if b[0] != unix.AF_INET && b[0] != unix.AF_INET6 {
		return r, false
	}
	dstLen := int(b[1])
	var dst netip.Addr
	for typ, v := range attrs(b[unix.SizeofRtMsg:]) {
		switch typ {
		case unix.RTA_TABLE:
			if len(v) >= 4 {
				r.table = int(ne.Uint32(v))
			}
		case unix.RTA_DST:
			dst = addrOf(v)
		case unix.RTA_GATEWAY:
			r.gw = addrOf(v)
		case unix.RTA_PREFSRC:
			r.src = addrOf(v)
		case unix.RTA_OIF:
			if len(v) >= 4 {
				r.oif = int(ne.Uint32(v))
			}
		case unix.RTA_PRIORITY:
			if len(v) >= 4 {
				r.metric = int(ne.Uint32(v))
			}
		case unix.RTA_MULTIPATH:
			// braid adds no multipath route: report the first hop.
			if len(v) < unix.SizeofRtNexthop || r.gw.IsValid() {
				continue
			}
			if l := min(int(ne.Uint16(v[0:2])), len(v)); l >= unix.SizeofRtNexthop {
				r.oif = int(ne.Uint32(v[4:8]))
				for t, a := range attrs(v[unix.SizeofRtNexthop:l]) {
					if t == unix.RTA_GATEWAY {
						r.gw = addrOf(a)
					}
				}
			}
		}
	}
	if !dst.IsValid() {
		dst = netip.IPv4Unspecified()
		if r.v6 {
			dst = netip.IPv6Unspecified()
		}
	}
	r.dst = netip.PrefixFrom(dst, dstLen)
	return r, true
}

// attrs iterates over route attributes: type (without flag bits) and value.
func attrs(b []byte) func(yield func(uint16, []byte) bool) {
	return func(yield func(uint16, []byte) bool) {
		for len(b) >= unix.SizeofRtAttr {
			l := int(ne.Uint16(b[0:2]))
			if l < unix.SizeofRtAttr || l > len(b) {
				return
			}
			if !yield(ne.Uint16(b[2:4])&^(unix.NLA_F_NESTED|unix.NLA_F_NET_BYTEORDER), b[unix.SizeofRtAttr:l]) {
				return
			}
			b = b[min(nlmAlign(l), len(b)):]
		}
	}
}

// addrOf decodes a 4- or 16-byte address.
func addrOf(v []byte) netip.Addr {
	switch len(v) {
	case 4:
		return netip.AddrFrom4([4]byte(v))
	case 16:
		return netip.AddrFrom16([16]byte(v))
	}
	return netip.Addr{}
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
