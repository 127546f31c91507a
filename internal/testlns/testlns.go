// Package testlns is braid's own test LNS, in two forms.
//
// Start is the data plane alone, for testing and measuring braid's 6PE
// data plane where the real LNS (a QEMU guest) is far too slow: it
// terminates one L2TPv2 session's data messages on a UDP socket and
// carries their IPv6 packets to and from a TUN link of its own, with
// fixed tunnel and session IDs and no control connection. It checks every
// datagram it receives against RFC 2661 and RFC 1661 by hand, strictly,
// without braid's codecs: a datagram that is not an unsequenced L2TPv2
// data message for its session carrying one whole IPv6 packet in PPP is
// counted as malformed and dropped.
//
// NewServer is a whole LNS, for the demo (`braid lab lns up`, see package
// lab) and for fast tests: the control connection with tunnel
// authentication (package testlns/control), PPP with CHAP-MD5 or PAP and
// IPV6CP (package testlns/ppp), and the data plane, on one UDP socket
// and one TUN link. Its state machines are written with braid's own
// codecs (sessions/l2tp/avp, sessions/ppp/frame), so it shares their
// reading of the RFCs: the real LNS (xl2tpd, pppd and Kea in a QEMU
// guest, ../shared/peers/lns/run-lns.sh) remains the conformance test of
// braid's LAC; this one exists for the demo and for fast tests.
//
// It is test code: the real LNS is the one braid must work with.
package testlns

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/tun"
)

// Config is a test LNS's session.
type Config struct {
	// Link is the name of the TUN link to create, MTU its MTU.
	Link string
	MTU  int
	// TunnelID and SessionID are the LNS's own: the box's data messages
	// carry them. PeerTunnel and PeerSession are the box's.
	TunnelID, SessionID     uint16
	PeerTunnel, PeerSession uint16
}

// LNS is a running test LNS.
type LNS struct {
	cfg  Config
	conn *net.UDPConn
	dev  tun.Device

	mu   sync.Mutex
	peer netip.AddrPort // learnt from the first good datagram
	bad  []string       // the first malformed datagrams, described

	received, sent, malformed atomic.Uint64
	oneByOne                  atomic.Bool
	done                      sync.WaitGroup
}

// aLongTimeAgo is a read deadline that ends any read.
var aLongTimeAgo = time.Unix(1, 0)

// The LNS's buffers: offset leaves room for headers in front of packets.
const (
	offset  = 16
	hdrLen  = 10 // L2TP data header without length or sequence (6), PPP (4)
	batch   = 128
	bufSize = 1 << 16
)

// Start creates the LNS's link in the calling thread's namespace and
// serves the session on conn, a bound UDP socket (port 1701, as an LNS's),
// until Close. The box's address is the source of the first good
// datagram.
func Start(conn *net.UDPConn, cfg Config) (*LNS, error) {
	dev, err := tun.CreateTUN(cfg.Link, cfg.MTU)
	if err != nil {
		return nil, fmt.Errorf("test LNS: create %s: %w", cfg.Link, err)
	}
	go func() {
		for range dev.Events() {
		}
	}()
	raw, err := conn.SyscallConn()
	if err == nil {
		raw.Control(func(fd uintptr) {
			unix.SetsockoptInt(int(fd), unix.SOL_UDP, unix.UDP_GRO, 1)
			unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 4<<20)
			unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, 4<<20)
		})
	}
	l := &LNS{cfg: cfg, conn: conn, dev: dev}
	l.done.Add(2)
	go l.fromBox()
	go l.toBox()
	return l, nil
}

// Close stops the LNS and removes its link; conn is the caller's.
func (l *LNS) Close() error {
	err := l.dev.Close()
	l.conn.SetReadDeadline(aLongTimeAgo)
	l.done.Wait()
	return err
}

// Received counts the IPv6 packets the LNS took from the box.
func (l *LNS) Received() uint64 { return l.received.Load() }

// Sent counts the IPv6 packets the LNS sent to the box.
func (l *LNS) Sent() uint64 { return l.sent.Load() }

// Malformed counts the datagrams from the box that the LNS refused.
func (l *LNS) Malformed() uint64 { return l.malformed.Load() }

// SendOneByOne makes the LNS send each packet to the box in a datagram of
// its own, as an LNS whose kernel carries the session does (on, true), or
// runs of packets as UDP GSO datagrams (off, the default), which reach the
// box coalesced.
func (l *LNS) SendOneByOne(on bool) { l.oneByOne.Store(on) }

// Bad describes the first malformed datagrams.
func (l *LNS) Bad() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.bad...)
}

func (l *LNS) refuse(why string, d []byte) {
	l.malformed.Add(1)
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.bad) < 10 {
		l.bad = append(l.bad, fmt.Sprintf("%s: % x", why, d[:min(len(d), 24)]))
	}
}

// check returns the IPv6 packet of a data message d, or why it is not one.
func (l *LNS) check(d []byte) ([]byte, string) {
	if len(d) < hdrLen+40 {
		return nil, "too short"
	}
	// RFC 2661 3.1: T=0 (data), L=0, S=0, O=0, P=0, Ver=2; braid
	// writes no optional field in an unsequenced session.
	if f := binary.BigEndian.Uint16(d); f != 0x0002 {
		return nil, fmt.Sprintf("flags and version %#04x, want 0x0002", f)
	}
	if t := binary.BigEndian.Uint16(d[2:]); t != l.cfg.TunnelID {
		return nil, fmt.Sprintf("tunnel %d, want %d", t, l.cfg.TunnelID)
	}
	if s := binary.BigEndian.Uint16(d[4:]); s != l.cfg.SessionID {
		return nil, fmt.Sprintf("session %d, want %d", s, l.cfg.SessionID)
	}
	// RFC 1661 2 with RFC 1662's address and control: ff 03, protocol
	// 0x0057 (IPv6, RFC 5072).
	if d[6] != 0xff || d[7] != 0x03 || d[8] != 0x00 || d[9] != 0x57 {
		return nil, "PPP header is not ff 03 00 57"
	}
	pkt := d[hdrLen:]
	if pkt[0]>>4 != 6 {
		return nil, "not IPv6"
	}
	if n := 40 + int(binary.BigEndian.Uint16(pkt[4:])); n != len(pkt) {
		return nil, fmt.Sprintf("IPv6 packet of %d octets in a frame of %d", n, len(pkt))
	}
	return pkt, ""
}

// fromBox receives data messages (with UDP_GRO, several per read) and
// writes their IPv6 packets to the link.
func (l *LNS) fromBox() {
	defer l.done.Done()
	buf := make([]byte, bufSize)
	oob := make([]byte, 64)
	bufs := make([][]byte, batch)
	for i := range bufs {
		bufs[i] = make([]byte, offset+bufSize)
	}
	for {
		n, oobn, _, from, err := l.conn.ReadMsgUDPAddrPort(buf, oob)
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		seg := n
		if msgs, err := unix.ParseSocketControlMessage(oob[:oobn]); err == nil {
			for _, m := range msgs {
				if m.Header.Level == unix.SOL_UDP && m.Header.Type == unix.UDP_GRO && len(m.Data) >= 4 {
					seg = int(binary.NativeEndian.Uint32(m.Data))
				}
			}
		}
		w := 0
		for d := buf[:n]; len(d) > 0; {
			s := min(seg, len(d))
			pkt, why := l.check(d[:s])
			if why != "" {
				l.refuse(why, d[:s])
			} else {
				l.mu.Lock()
				l.peer = from
				l.mu.Unlock()
				bufs[w] = bufs[w][:offset+len(pkt)]
				copy(bufs[w][offset:], pkt)
				w++
			}
			d = d[s:]
			if w == len(bufs) || len(d) == 0 && w > 0 {
				l.received.Add(uint64(w))
				if _, err := l.dev.Write(bufs[:w], offset); errors.Is(err, os.ErrClosed) {
					return
				}
				for i := range bufs[:w] {
					bufs[i] = bufs[i][:cap(bufs[i])]
				}
				w = 0
			}
		}
	}
}

// toBox reads IPv6 packets from the link and sends each to the box in a
// data message, runs of equal size as one UDP GSO datagram.
func (l *LNS) toBox() {
	defer l.done.Done()
	bufs := make([][]byte, batch)
	for i := range bufs {
		bufs[i] = make([]byte, offset+l.cfg.MTU)
	}
	sizes := make([]int, batch)
	gsoBuf := make([]byte, 0, bufSize)
	oob := make([]byte, unix.CmsgSpace(2))
	for {
		n, err := l.dev.Read(bufs, sizes, offset)
		if err != nil {
			if errors.Is(err, os.ErrClosed) {
				return
			}
			continue
		}
		l.mu.Lock()
		peer := l.peer
		l.mu.Unlock()
		if !peer.IsValid() {
			continue
		}
		send := func(segs, size int) {
			var o []byte
			if segs > 1 {
				h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
				h.Level, h.Type = unix.SOL_UDP, unix.UDP_SEGMENT
				h.SetLen(unix.CmsgLen(2))
				binary.NativeEndian.PutUint16(oob[unix.CmsgLen(0):], uint16(size))
				o = oob
			}
			if _, _, err := l.conn.WriteMsgUDPAddrPort(gsoBuf, o, peer); err == nil {
				l.sent.Add(uint64(segs))
			}
			gsoBuf = gsoBuf[:0]
		}
		segs, size := 0, 0
		maxSegs := 64
		if l.oneByOne.Load() {
			maxSegs = 1
		}
		for i := 0; i < n; i++ {
			pkt := bufs[i][offset : offset+sizes[i]]
			if len(pkt) < 40 || pkt[0]>>4 != 6 {
				continue
			}
			m := hdrLen + len(pkt)
			if segs > 0 && (m > size || segs == maxSegs || len(gsoBuf)+m > 65000 || len(gsoBuf)%size != 0) {
				send(segs, size)
				segs = 0
			}
			if segs == 0 {
				size = m
			}
			gsoBuf = binary.BigEndian.AppendUint16(gsoBuf, 0x0002)
			gsoBuf = binary.BigEndian.AppendUint16(gsoBuf, l.cfg.PeerTunnel)
			gsoBuf = binary.BigEndian.AppendUint16(gsoBuf, l.cfg.PeerSession)
			gsoBuf = append(gsoBuf, 0xff, 0x03, 0x00, 0x57)
			gsoBuf = append(gsoBuf, pkt...)
			segs++
		}
		if segs > 0 {
			send(segs, size)
		}
	}
}
