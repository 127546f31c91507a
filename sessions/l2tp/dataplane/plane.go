package dataplane

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"runtime/debug"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/tun"

	"github.com/braid-router/braid/sessions/l2tp/avp"
	"github.com/braid-router/braid/sessions/ppp/frame"
)

// Batch sizes and buffers.
const (
	// readBatch is how many packets one read of the link may yield: a
	// 64 KiB super-packet split at the smallest MSS worth carrying.
	readBatch = 128
	// recvBatch is how many datagrams one recvmmsg takes.
	recvBatch = 16
	// writeBatch is how many packets go to the link in one write call
	// (which coalesces them).
	writeBatch = 64
	// bigBuf holds the largest UDP datagram or coalesced packet.
	bigBuf = 1 << 16
	// headroom is the room left in front of each packet read from the
	// link, for the L2TP and PPP headers (at most 14 octets), and in front
	// of each packet written to it, for the virtio header (10).
	headroom = 16
	// maxSegments and maxGSO bound one UDP GSO datagram: the kernel's
	// UDP_MAX_SEGMENTS and the largest IPv4 UDP payload.
	maxSegments = 64
	maxGSO      = 65535 - IPv4Overhead - UDPOverhead
	// socketBuffer is the UDP socket's receive and send buffer size.
	socketBuffer = 4 << 20
)

// Config is what a Plane needs from the L2TP session.
type Config struct {
	// LocalTunnel and LocalSession are braid's Assigned Tunnel ID and
	// Assigned Session ID: the IDs the LNS's data messages carry.
	LocalTunnel, LocalSession uint16
	// PeerTunnel and PeerSession are the LNS's: the IDs braid's data
	// messages carry.
	PeerTunnel, PeerSession uint16
	// Sequenced makes braid's data messages carry sequence numbers (the
	// LNS sent Sequencing Required).
	Sequenced bool
	// Other gets every datagram that is not an IPv6 data frame of this
	// session: control messages, other PPP protocols (LCP, IPV6CP, ...),
	// data for another session, anything unparsable. It runs on the
	// plane's receiving goroutine, and pkt is only valid until it
	// returns: Other copies what it keeps, and does not block.
	Other func(pkt []byte)
	// Logger gets the plane's rare events (a failed send, a broken
	// packet); nil is slog.Default().
	Logger *slog.Logger
}

// Stats are a plane's counters since New.
type Stats struct {
	// Out counts IPv6 packets and their octets sent to the LNS;
	// In those received from it and written to the link.
	OutPackets, OutBytes, InPackets, InBytes uint64
	// OutDatagrams counts the datagrams sent to the LNS, a UDP GSO
	// datagram (which the kernel splits) counting once: OutPackets over
	// it is how well the plane batches.
	OutDatagrams uint64
	// Other counts datagrams handed to Config.Other.
	Other uint64
	// Dropped counts packets dropped: not IPv6, malformed, or a failed
	// system call.
	Dropped uint64
}

// Plane carries IPv6 between a Link and the UDP socket of an L2TP session.
type Plane struct {
	dev  tun.Device
	conn *net.UDPConn
	raw  syscall.RawConn
	cfg  Config
	log  *slog.Logger

	// ns is the next data sequence number, when cfg.Sequenced.
	ns atomic.Uint32
	// gso: UDP GSO works on this socket (cleared at its first failure).
	gso atomic.Bool

	out outbound
	in  inbound

	running  atomic.Bool
	stopping atomic.Bool

	outPackets, outBytes, outDatagrams, inPackets, inBytes, other, dropped atomic.Uint64
}

// outbound is the link-to-UDP direction's state, used by one goroutine.
type outbound struct {
	bufs  [][]byte
	sizes []int
	iovs  []unix.Iovec
	ctl   []byte // controlLen octets per message
	hdrs  []mmsghdr
	// segs[i] is how many packets message i carries, segLen[i] the
	// length of each (the last may be shorter).
	segs, segLen []int
	// The batch being sent: sendOnce sends hdrs[sent:count].
	count, sent int
	errno       unix.Errno
	sendFn      func(fd uintptr) bool
}

// inbound is the UDP-to-link direction's state, used by one goroutine.
type inbound struct {
	bufs   [][]byte
	iovs   []unix.Iovec
	ctl    []byte
	hdrs   []mmsghdr
	n      int
	errno  unix.Errno
	recvFn func(fd uintptr) bool
	// wbufs is the batch being gathered for the link: wbufs[:w].
	wbufs [][]byte
	w     int
}

// New returns a Plane for link and conn, a UDP socket connected to the
// LNS, with the session's IDs in cfg. It enables UDP_GRO on conn when the
// kernel has it. Run starts it.
func New(link *Link, conn *net.UDPConn, cfg Config) (*Plane, error) {
	if cfg.Other == nil {
		cfg.Other = func([]byte) {}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	raw, err := conn.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("data plane: %w", err)
	}
	p := &Plane{dev: link.dev, conn: conn, raw: raw, cfg: cfg, log: cfg.Logger}
	p.gso.Store(true)
	var serr error
	if err := raw.Control(func(fd uintptr) {
		// Best effort: without it, each datagram comes alone.
		serr = unix.SetsockoptInt(int(fd), unix.SOL_UDP, unix.UDP_GRO, 1)
		// Room for bursts of 64 KiB datagrams both ways, past the
		// sysctl's limit when braid may (it runs as root), else up to
		// it.
		for _, o := range [][2]int{{unix.SO_RCVBUFFORCE, unix.SO_RCVBUF}, {unix.SO_SNDBUFFORCE, unix.SO_SNDBUF}} {
			if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, o[0], socketBuffer) != nil {
				unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, o[1], socketBuffer)
			}
		}
	}); err != nil {
		return nil, fmt.Errorf("data plane: %w", err)
	}
	if serr != nil {
		p.log.Debug("data plane: no UDP_GRO on this kernel", "err", serr)
	}

	// Outbound: each packet from the link lands at headroom in its own
	// buffer, MTU long; its headers go in front of it.
	o := &p.out
	o.bufs = slabs(readBatch, headroom+link.mtu)
	o.sizes = make([]int, readBatch)
	o.iovs = make([]unix.Iovec, readBatch)
	o.ctl = make([]byte, readBatch*controlLen)
	o.hdrs = make([]mmsghdr, readBatch)
	o.segs = make([]int, readBatch)
	o.segLen = make([]int, readBatch)
	o.sendFn = p.sendOnce

	// Inbound: whole datagrams (up to 64 KiB with GRO), and the batch
	// for the link, each buffer with room to coalesce into.
	in := &p.in
	in.bufs = slabs(recvBatch, bigBuf)
	in.iovs = make([]unix.Iovec, recvBatch)
	in.ctl = make([]byte, recvBatch*controlLen)
	in.hdrs = make([]mmsghdr, recvBatch)
	for i := range in.hdrs {
		in.iovs[i].Base = &in.bufs[i][0]
		in.hdrs[i].hdr.Iov = &in.iovs[i]
		in.hdrs[i].hdr.SetIovlen(1)
		in.hdrs[i].hdr.Control = &in.ctl[i*controlLen]
	}
	in.recvFn = p.recvOnce
	in.wbufs = slabs(writeBatch, bigBuf+headroom)
	return p, nil
}

// slabs returns n buffers of size octets each, cut from one allocation.
func slabs(n, size int) [][]byte {
	all := make([]byte, n*size)
	b := make([][]byte, n)
	for i := range b {
		b[i] = all[i*size : (i+1)*size : (i+1)*size]
	}
	return b
}

// Stats returns the plane's counters.
func (p *Plane) Stats() Stats {
	return Stats{
		OutPackets: p.outPackets.Load(), OutBytes: p.outBytes.Load(), OutDatagrams: p.outDatagrams.Load(),
		InPackets: p.inPackets.Load(), InBytes: p.inBytes.Load(),
		Other: p.other.Load(), Dropped: p.dropped.Load(),
	}
}

// Run carries packets both ways until ctx ends, and then returns nil; or
// until the link or the socket fails, and then returns why. Either way,
// both directions have stopped when it returns; the link and the socket
// stay open (they are the caller's).
func (p *Plane) Run(ctx context.Context) error {
	if !p.running.CompareAndSwap(false, true) {
		return errors.New("data plane: already running")
	}
	defer p.running.Store(false)
	p.stopping.Store(false)

	errc := make(chan error, 2)
	go func() { errc <- p.guard(p.outboundLoop) }()
	go func() { errc <- p.guard(p.inboundLoop) }()
	var err error
	left := 2
	select {
	case <-ctx.Done():
	case err = <-errc:
		left--
	}
	// Wake both loops: a deadline in the past ends any wait.
	p.stopping.Store(true)
	past := time.Unix(1, 0)
	p.dev.File().SetReadDeadline(past)
	p.conn.SetDeadline(past)
	for ; left > 0; left-- {
		if e := <-errc; err == nil {
			err = e
		}
	}
	p.dev.File().SetReadDeadline(time.Time{})
	p.conn.SetDeadline(time.Time{})
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// guard runs loop, and turns a panic in it into an error: a bug of the
// data plane ends the tunnel's session (which its supervisor restarts),
// never braid's process.
func (p *Plane) guard(loop func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			p.log.Error("data plane: panic", "panic", r, "stack", string(debug.Stack()))
			err = fmt.Errorf("data plane: panic: %v", r)
		}
	}()
	return loop()
}

// stopped turns the error that ended a loop into Run's: nil when Run
// stopped it.
func (p *Plane) stopped(what string, err error) error {
	if p.stopping.Load() {
		return nil
	}
	return fmt.Errorf("data plane: %s: %w", what, err)
}

// WriteFrame sends one PPP frame of protocol proto (LCP, IPV6CP, ...) in a
// data message of the session, for the L2TP session's own frames. It may
// be called while Run runs.
func (p *Plane) WriteFrame(proto uint16, info []byte) error {
	b := make([]byte, 0, L2TPOverhead+SequenceOverhead+PPPOverhead+len(info))
	b = p.appendHeaders(b, PPPOverhead+len(info))
	b = frame.Append(b[:len(b)-PPPOverhead], proto, info)
	if _, err := p.conn.Write(b); err != nil {
		return fmt.Errorf("data plane: send %s frame: %w", frame.ProtocolName(proto), err)
	}
	return nil
}

// headerLen is the length of the L2TP and PPP headers of an IPv6 data
// message.
func (p *Plane) headerLen() int {
	if p.cfg.Sequenced {
		return L2TPOverhead + SequenceOverhead + PPPOverhead
	}
	return L2TPOverhead + PPPOverhead
}

// appendHeaders appends an L2TP data header for a frame of frameLen
// octets and the PPP header of an IPv6 packet to b.
func (p *Plane) appendHeaders(b []byte, frameLen int) []byte {
	h := avp.Header{TunnelID: p.cfg.PeerTunnel, SessionID: p.cfg.PeerSession, Sequenced: p.cfg.Sequenced}
	if h.Sequenced {
		h.Ns = uint16(p.ns.Add(1) - 1)
	}
	b = avp.AppendHeader(b, h, frameLen)
	return append(b, frame.Address, frame.Control, byte(frame.ProtoIPv6>>8), byte(frame.ProtoIPv6))
}

// outboundLoop reads IPv6 packets from the link and sends them to the LNS.
func (p *Plane) outboundLoop() error {
	o := &p.out
	for {
		n, err := p.dev.Read(o.bufs, o.sizes, headroom)
		if err != nil {
			if errors.Is(err, os.ErrClosed) || errors.Is(err, os.ErrDeadlineExceeded) || p.stopping.Load() {
				return p.stopped("read the tunnel link", err)
			}
			// A packet the library could not take (a broken
			// offload header, more segments than buffers): its
			// good part, if any, still goes.
			p.dropped.Add(1)
			p.log.Debug("data plane: read the tunnel link", "err", err)
			if errors.Is(err, tun.ErrTooManySegments) && n > 0 {
				p.send(n)
			}
			continue
		}
		if err := p.send(n); err != nil {
			return p.stopped("send to the LNS", err)
		}
	}
}

// send frames the first n packets of the read batch and sends them:
// runs of packets of one length (the last of a run may be shorter) as one
// UDP GSO datagram each, all in one sendmmsg.
func (p *Plane) send(n int) error {
	o := &p.out
	hl := p.headerLen()
	gso := p.gso.Load()
	o.count, o.sent = 0, 0
	var runBytes int
	open := false
	var packets, bytes uint64
	v := 0 // the next iovec: those of a run are consecutive
	for i := 0; i < n; i++ {
		size := o.sizes[i]
		pkt := o.bufs[i][headroom : headroom+size]
		if size < 40 || pkt[0]>>4 != 6 {
			// The link carries IPv6 only.
			p.dropped.Add(1)
			continue
		}
		start := headroom - hl
		p.appendHeaders(o.bufs[i][start:start], PPPOverhead+size)
		seg := hl + size
		packets++
		bytes += uint64(size)
		o.iovs[v].Base = &o.bufs[i][start]
		o.iovs[v].SetLen(seg)
		v++
		m := o.count - 1
		if gso && open && seg <= o.segLen[m] && o.segs[m] < maxSegments && runBytes+seg <= maxGSO {
			o.segs[m]++
			o.hdrs[m].hdr.SetIovlen(o.segs[m])
			runBytes += seg
			open = seg == o.segLen[m]
			continue
		}
		m = o.count
		o.count++
		o.segs[m], o.segLen[m] = 1, seg
		o.hdrs[m].hdr = unix.Msghdr{Iov: &o.iovs[v-1]}
		o.hdrs[m].hdr.SetIovlen(1)
		runBytes, open = seg, true
	}
	if o.count == 0 {
		return nil
	}
	for m := 0; m < o.count; m++ {
		if o.segs[m] > 1 {
			c := o.ctl[m*controlLen : (m+1)*controlLen]
			l := putSegment(c, uint16(o.segLen[m]))
			o.hdrs[m].hdr.Control = &c[0]
			o.hdrs[m].hdr.SetControllen(l)
		}
	}
	for o.sent < o.count {
		o.errno = 0
		if err := p.raw.Write(o.sendFn); err != nil {
			return err
		}
		if o.errno == 0 {
			continue
		}
		// Message o.sent failed: drop it and go on with the rest.
		m := o.sent
		if o.segs[m] > 1 && (o.errno == unix.EIO || o.errno == unix.EINVAL) {
			// The route's device cannot take UDP GSO.
			p.gso.Store(false)
			p.log.Info("data plane: UDP segmentation offload refused, sending datagrams one by one", "err", o.errno)
		} else if o.errno != unix.ECONNREFUSED {
			p.log.Debug("data plane: send to the LNS", "err", o.errno)
		}
		p.dropped.Add(uint64(o.segs[m]))
		o.sent++
	}
	p.outPackets.Add(packets)
	p.outBytes.Add(bytes)
	p.outDatagrams.Add(uint64(o.count))
	return nil
}

// sendOnce is the raw socket's write function: it sends the rest of the
// batch, and reports a failed message in o.errno.
func (p *Plane) sendOnce(fd uintptr) bool {
	o := &p.out
	for o.sent < o.count {
		r, errno := sendmmsg(fd, o.hdrs[o.sent:o.count])
		switch errno {
		case 0:
			o.sent += r
		case unix.EAGAIN:
			return false
		case unix.EINTR:
		default:
			o.errno = errno
			return true
		}
	}
	return true
}

// recvOnce is the raw socket's read function: one recvmmsg.
func (p *Plane) recvOnce(fd uintptr) bool {
	in := &p.in
	for i := range in.hdrs {
		in.iovs[i].SetLen(len(in.bufs[i]))
		in.hdrs[i].hdr.SetControllen(controlLen)
		in.hdrs[i].hdr.Flags = 0
	}
	for {
		n, errno := recvmmsg(fd, in.hdrs)
		switch errno {
		case 0:
			in.n, in.errno = n, 0
			return true
		case unix.EAGAIN:
			return false
		case unix.EINTR:
		default:
			in.n, in.errno = 0, errno
			return true
		}
	}
}

// inboundLoop receives datagrams from the LNS and writes the IPv6 packets
// of this session to the link.
func (p *Plane) inboundLoop() error {
	in := &p.in
	for {
		if err := p.raw.Read(in.recvFn); err != nil {
			return p.stopped("receive from the LNS", err)
		}
		if in.errno != 0 {
			// An ICMP error for an earlier send (ECONNREFUSED: the
			// LNS's port is closed), reported once: not fatal.
			p.log.Debug("data plane: receive from the LNS", "err", in.errno)
			continue
		}
		for i := 0; i < in.n; i++ {
			h := &in.hdrs[i]
			if h.hdr.Flags&unix.MSG_TRUNC != 0 {
				p.dropped.Add(1)
				continue
			}
			d := in.bufs[i][:h.n]
			seg := groSize(in.ctl[i*controlLen : i*controlLen+int(h.hdr.Controllen)])
			if seg <= 0 {
				seg = len(d)
			}
			for len(d) > 0 {
				s := min(seg, len(d))
				p.receive(d[:s])
				d = d[s:]
			}
		}
		if err := p.flush(); err != nil {
			return p.stopped("write the tunnel link", err)
		}
	}
}

// receive takes one datagram: an IPv6 data frame of the session goes to
// the link's write batch, anything else to Other.
func (p *Plane) receive(d []byte) {
	pkt, v := classify(d, p.cfg.LocalTunnel, p.cfg.LocalSession)
	switch v {
	case verdictOther:
		p.other.Add(1)
		p.cfg.Other(d)
		return
	case verdictDrop:
		p.dropped.Add(1)
		return
	}
	in := &p.in
	in.wbufs[in.w] = in.wbufs[in.w][:headroom+len(pkt)]
	copy(in.wbufs[in.w][headroom:], pkt)
	in.w++
	if in.w == len(in.wbufs) {
		// Errors are the link's; flush reports them on the next call.
		p.flush()
	}
}

// What classify makes of a datagram.
type verdict int

const (
	verdictIPv6  verdict = iota // an IPv6 packet of the session: to the link
	verdictOther                // not IPv6 data of the session: to Other
	verdictDrop                 // IPv6 data of the session, but broken
)

// classify reads datagram d, received from the LNS, for the session
// tunnel/session: an L2TP data message of the session carrying a PPP
// frame of protocol IPv6 yields the IPv6 packet, trimmed to the length
// its header gives (a packet cut short, or not IPv6 inside, is dropped);
// anything else is Other's.
func classify(d []byte, tunnel, session uint16) ([]byte, verdict) {
	h, payload, err := avp.Parse(d)
	if err != nil || h.Control || h.TunnelID != tunnel || h.SessionID != session {
		return nil, verdictOther
	}
	f, err := frame.Parse(payload)
	if err != nil || f.Protocol != frame.ProtoIPv6 {
		return nil, verdictOther
	}
	pkt := f.Info
	if len(pkt) < 40 || pkt[0]>>4 != 6 {
		return nil, verdictDrop
	}
	l := 40 + int(binary.BigEndian.Uint16(pkt[4:]))
	if l > len(pkt) {
		return nil, verdictDrop
	}
	return pkt[:l], verdictIPv6
}

// flush writes the gathered packets to the link. Only a closed link is an
// error; a packet the kernel refused is dropped.
func (p *Plane) flush() error {
	in := &p.in
	if in.w == 0 {
		return nil
	}
	batch := in.wbufs[:in.w]
	var bytes uint64
	for _, b := range batch {
		bytes += uint64(len(b) - headroom)
	}
	_, err := p.dev.Write(batch, headroom)
	p.inPackets.Add(uint64(in.w))
	p.inBytes.Add(bytes)
	in.w = 0
	if err != nil {
		if errors.Is(err, os.ErrClosed) {
			return err
		}
		p.dropped.Add(1)
		p.log.Debug("data plane: write the tunnel link", "err", err)
	}
	return nil
}
