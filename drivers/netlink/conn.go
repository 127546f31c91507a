package netlink

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"syscall"
	"unsafe"

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
	// acks, iov, mmsg and from are recvMany's buffers, made on first use.
	acks []byte
	iov  []unix.Iovec
	mmsg []unix.Mmsghdr
	from []unix.RawSockaddrNetlink
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

// msg is a request being built at the end of a buffer: b[off:] is the
// request, b[:off] the requests before it in the same batch.
type msg struct {
	b   []byte
	off int
}

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

// startMsg begins a request of the given type and flags (NLM_F_REQUEST is
// added) at the end of b.
func startMsg(b []byte, typ, flags uint16) msg {
	off := len(b)
	b = ne.AppendUint32(b, 0) // length, set by finish
	b = ne.AppendUint16(b, typ)
	b = ne.AppendUint16(b, flags|unix.NLM_F_REQUEST)
	b = ne.AppendUint32(b, 0) // sequence, set by finish
	b = ne.AppendUint32(b, 0) // port id: the kernel fills it in
	return msg{b: b, off: off}
}

// finish sets the request's length and sequence number.
func (m msg) finish(seq uint32) {
	ne.PutUint32(m.b[m.off:], uint32(len(m.b)-m.off))
	ne.PutUint32(m.b[m.off+8:], seq)
}

// addFlags adds header flags to the request.
func (m msg) addFlags(flags uint16) {
	ne.PutUint16(m.b[m.off+6:], ne.Uint16(m.b[m.off+6:])|flags)
}

// start begins a request of the given type and flags (NLM_F_REQUEST is
// added) in the conn's buffer. The caller holds c.mu.
func (c *conn) start(typ, flags uint16) msg { return startMsg(c.req[:0], typ, flags) }

// send completes m's header and sends it; it returns its sequence number.
// The caller holds c.mu.
func (c *conn) send(m msg) (uint32, error) {
	c.req = m.b
	c.seq++
	m.finish(c.seq)
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
	m.addFlags(unix.NLM_F_ACK)
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
			if len(out) == cap(out) {
				// Doubling: append grows a large slice by a quarter at a
				// time, which copies 10,000 routes about four times over
				// when nothing says how many to expect.
				grown := make([]liveRoute, len(out), 2*cap(out)+64)
				copy(grown, out)
				out = grown
			}
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
	appendRoute(&m, typ, r, index)
	return c.do(m)
}

// appendRoute appends the body of a route request to m: braid's protocol,
// and for a delete only the identity (table, destination, metric), so that
// it matches braid's route whatever it points at and never a foreign one.
func appendRoute(m *msg, typ uint16, r Route, index int) {
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
	scope, rtype := r.scope(), r.Type.kernel()
	if typ == unix.RTM_DELROUTE {
		// Any scope, any type: the identity and the protocol select it.
		scope, rtype = unix.RT_SCOPE_NOWHERE, unix.RTN_UNSPEC
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
}

// appendRule appends the body of a rule request to m, as
// vishvananda/netlink's RuleAdd and RuleDel encode kernelRule(r): struct
// fib_rule_hdr, the selectors, the priority, the table, suppress_prefixlength
// (only with a table below 256) and braid's protocol. A delete leaves the
// action unset, which matches any. The caller has checked r with
// kernelRule.
func appendRule(m *msg, typ uint16, r Rule) {
	family := byte(unix.AF_INET)
	if r.Family() == "inet6" {
		family = unix.AF_INET6
	}
	var dstLen, srcLen byte
	if r.To.IsValid() {
		dstLen = byte(r.To.Bits())
	}
	if r.From.IsValid() {
		srcLen = byte(r.From.Bits())
	}
	table := byte(unix.RT_TABLE_UNSPEC)
	if r.Table >= 0 && r.Table < 256 {
		table = byte(r.Table)
	}
	action := byte(unix.FR_ACT_UNSPEC)
	if typ == unix.RTM_NEWRULE {
		action = unix.FR_ACT_TO_TBL
	}
	// struct fib_rule_hdr: family, dst_len, src_len, tos, table, res1,
	// res2, action, flags.
	m.b = append(m.b, family, dstLen, srcLen, 0, table, 0, 0, action)
	m.b = ne.AppendUint32(m.b, 0)
	if r.To.IsValid() {
		m.attr(unix.FRA_DST, r.To.Masked().Addr().AsSlice())
	}
	if r.From.IsValid() {
		m.attr(unix.FRA_SRC, r.From.Masked().Addr().AsSlice())
	}
	if r.Priority >= 0 {
		m.attr32(unix.FRA_PRIORITY, uint32(r.Priority))
	}
	if r.Mark != 0 {
		m.attr32(unix.FRA_FWMARK, r.Mark)
	}
	if r.Table >= 256 {
		m.attr32(unix.FRA_TABLE, uint32(r.Table))
	}
	if table > 0 && r.SuppressPrefixlen >= 0 {
		m.attr32(unix.FRA_SUPPRESS_PREFIXLEN, uint32(r.SuppressPrefixlen))
	}
	m.attr(unix.FRA_PROTOCOL, []byte{Protocol})
}

// Pipelining: many requests per sendmsg. The kernel handles the requests
// of one sendmsg in order, before the call returns, and acknowledges each
// (NLM_F_ACK) with its sequence number; a refused request does not stop
// the ones after it.

// Bounds of one pipelined batch. The acknowledgements of a whole batch
// wait in the socket's receive buffer until they are read, and one that
// does not fit is lost (ENOBUFS): 64 acknowledgements take about 64 KiB of
// it, a fraction of the smallest default (see dial).
const (
	maxBatch      = 64
	maxBatchBytes = 32 << 10
	// ackSlot is the buffer of one acknowledgement: an errno, the request's
	// header (NETLINK_CAP_ACK) and the kernel's message.
	ackSlot = 1 << 10
)

// batch is a run of requests being built for one sendmsg.
type batch struct {
	b    []byte
	msgs []msg
}

// add starts a request with NLM_F_ACK at the end of the batch.
func (bt *batch) add(typ, flags uint16) *msg {
	bt.msgs = append(bt.msgs, startMsg(bt.b, typ, flags|unix.NLM_F_ACK))
	return &bt.msgs[len(bt.msgs)-1]
}

// done records the end of the request add returned.
func (bt *batch) done(m *msg) { bt.b = m.b }

// full reports whether the batch has room for no more requests.
func (bt *batch) full() bool { return len(bt.msgs) >= maxBatch || len(bt.b) >= maxBatchBytes }

func (bt *batch) reset() {
	bt.b, bt.msgs = bt.b[:0], bt.msgs[:0]
}

// pipeline sends the batch in one sendmsg and reads the acknowledgement of
// each request into errs[i] (nil: it took effect). It returns how many
// acknowledgements it read, in order: fewer than the batch holds only with
// an error, after which the kernel may or may not have made the requests
// whose acknowledgement was not read. A send that fails makes none.
func (c *conn) pipeline(bt *batch, errs []error) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := len(bt.msgs)
	if n == 0 {
		return 0, nil
	}
	base := c.seq + 1
	for i, m := range bt.msgs {
		end := len(bt.b)
		if i+1 < n {
			end = bt.msgs[i+1].off
		}
		m.b = bt.b[:end] // as it was when the request was complete
		m.finish(base + uint32(i))
	}
	c.seq += uint32(n)
	if err := unix.Sendto(c.fd, bt.b, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return 0, fmt.Errorf("netlink send: %w", err)
	}
	got := 0
	for got < n {
		k, err := c.recvMany()
		if err != nil {
			return got, fmt.Errorf("netlink receive: %w", err)
		}
		for j := range k {
			b := c.acks[j*ackSlot : j*ackSlot+min(int(c.mmsg[j].Len), ackSlot)]
			for len(b) >= unix.NLMSG_HDRLEN {
				l := int(ne.Uint32(b[0:4]))
				if l < unix.NLMSG_HDRLEN {
					return got, fmt.Errorf("netlink: malformed answer")
				}
				// A truncated acknowledgement keeps its errno.
				l = min(l, len(b))
				typ, flags, seq := ne.Uint16(b[4:6]), ne.Uint16(b[6:8]), ne.Uint32(b[8:12])
				body := b[unix.NLMSG_HDRLEN:l]
				b = b[min(nlmAlign(l), len(b)):]
				if typ != unix.NLMSG_ERROR || seq-base >= uint32(n) {
					continue // not ours: a late answer to an abandoned request
				}
				i := int(seq - base)
				if i != got {
					return got, fmt.Errorf("netlink: acknowledgement %d of a batch arrived before %d", i, got)
				}
				errs[i] = ackError(body, flags)
				got++
			}
		}
	}
	return got, nil
}

// recvMany reads up to ackSlots datagrams from the kernel with one
// recvmmsg(2), waiting for the first only, into c.acks; it returns how many.
func (c *conn) recvMany() (int, error) {
	if c.mmsg == nil {
		c.acks = make([]byte, maxBatch*ackSlot)
		c.iov = make([]unix.Iovec, maxBatch)
		c.mmsg = make([]unix.Mmsghdr, maxBatch)
		c.from = make([]unix.RawSockaddrNetlink, maxBatch)
	}
	for j := range c.mmsg {
		c.iov[j].Base = &c.acks[j*ackSlot]
		c.iov[j].SetLen(ackSlot)
		c.mmsg[j] = unix.Mmsghdr{Hdr: unix.Msghdr{
			Name:    (*byte)(unsafe.Pointer(&c.from[j])),
			Namelen: unix.SizeofSockaddrNetlink,
			Iov:     &c.iov[j],
			Iovlen:  1,
		}}
	}
	for {
		n, _, errno := unix.Syscall6(unix.SYS_RECVMMSG, uintptr(c.fd), uintptr(unsafe.Pointer(&c.mmsg[0])), uintptr(len(c.mmsg)), unix.MSG_WAITFORONE, 0, 0)
		if errno == unix.EINTR {
			continue
		}
		if errno != 0 {
			return 0, errno
		}
		// Keep only what the kernel sent (port 0).
		k := 0
		for j := range int(n) {
			if c.from[j].Pid != 0 {
				continue
			}
			if k != j {
				copy(c.acks[k*ackSlot:(k+1)*ackSlot], c.acks[j*ackSlot:j*ackSlot+int(c.mmsg[j].Len)])
				c.mmsg[k].Len = c.mmsg[j].Len
			}
			k++
		}
		if k > 0 {
			return k, nil
		}
	}
}
