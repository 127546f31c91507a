package rfc1661

import (
	"bytes"
	"crypto/md5"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/braid-router/braid/sessions/ppp/frame"
)

// lns plays the LNS's side of a conversation with a Conn: it feeds the
// Conn frames and reads what the Conn sends, one frame at a time, on a
// clock of its own.
type lns struct {
	t    *testing.T
	c    *Conn
	now  time.Time
	sent [][]byte // frames the Conn sent, not yet read
	ups  []Up
	down []Down
	fin  *Finished
}

func newLNS(t *testing.T, cfg Config) *lns {
	t.Helper()
	if cfg.Username == "" {
		cfg.Username = "dhcp/192.0.2.7@0024d4aabbcc"
		cfg.Password = []byte("s3cret")
	}
	return &lns{t: t, c: New(cfg, 1), now: time.Unix(1_700_000_000, 0)}
}

func (l *lns) take(acts []Action) {
	for _, a := range acts {
		switch a := a.(type) {
		case Send:
			// Every frame braid sends is well formed: the codec reads it
			// back, with a full header.
			f, err := frame.Parse(a.Frame)
			if err != nil || !bytes.HasPrefix(a.Frame, []byte{0xff, 0x03}) {
				l.t.Fatalf("braid sent a malformed frame % x: %v", a.Frame, err)
			}
			if p, err := frame.ParsePacket(f.Info); err != nil || p.Len() != len(f.Info) {
				l.t.Fatalf("braid sent a malformed packet % x: %v", a.Frame, err)
			}
			l.sent = append(l.sent, a.Frame)
		case Up:
			l.ups = append(l.ups, a)
		case Down:
			l.down = append(l.down, a)
		case Finished:
			if l.fin != nil {
				l.t.Fatalf("finished twice: %v, then %v", l.fin.Err, a.Err)
			}
			l.fin = &a
		}
	}
}

func (l *lns) open() { l.take(l.c.Open(l.now)) }

// advance moves the clock by d and runs the Conn's timers.
func (l *lns) advance(d time.Duration) {
	l.now = l.now.Add(d)
	l.take(l.c.Timeout(l.now))
}

// untilDeadline moves the clock to the Conn's next deadline.
func (l *lns) untilDeadline() {
	l.t.Helper()
	d := l.c.Deadline()
	if d.IsZero() {
		l.t.Fatal("no deadline")
	}
	l.now = d
	l.take(l.c.Timeout(l.now))
}

// in feeds the Conn a control packet of proto.
func (l *lns) in(proto uint16, p frame.Packet) { l.take(l.c.Input(p.Frame(nil, proto), l.now)) }

// inOpts feeds a Configure-* packet with options.
func (l *lns) inOpts(proto uint16, code, id uint8, opts ...frame.Option) {
	l.in(proto, frame.Packet{Code: code, ID: id, Data: frame.EncodeOptions(opts)})
}

// next reads the next frame the Conn sent, which must be of proto and
// code.
func (l *lns) next(proto uint16, code uint8) frame.Packet {
	l.t.Helper()
	if len(l.sent) == 0 {
		l.t.Fatalf("braid sent nothing, want %s %s", frame.ProtocolName(proto), frame.CodeName(code))
	}
	b := l.sent[0]
	l.sent = l.sent[1:]
	f, _ := frame.Parse(b)
	p, _ := frame.ParsePacket(f.Info)
	if f.Protocol != proto || p.Code != code {
		l.t.Fatalf("braid sent %s code %d (% x), want %s %s", frame.ProtocolName(f.Protocol), p.Code, b,
			frame.ProtocolName(proto), frame.CodeName(code))
	}
	return p
}

// none checks braid sent nothing more.
func (l *lns) none() {
	l.t.Helper()
	if len(l.sent) > 0 {
		l.t.Fatalf("braid sent % x, want nothing", l.sent[0])
	}
}

func opts(t *testing.T, p frame.Packet) []frame.Option {
	t.Helper()
	o, err := frame.ParseOptions(p.Data)
	if err != nil {
		t.Fatalf("options of % x: %v", p.Data, err)
	}
	return o
}

func option(o []frame.Option, typ uint8) (frame.Option, bool) {
	for _, x := range o {
		if x.Type == typ {
			return x, true
		}
	}
	return frame.Option{}, false
}

const lnsMagic = 0x5ca1ab1e

// lcpUp opens the Conn's LCP with an LNS asking for auth (nil: none),
// losing braid's first Configure-Request as xl2tpd's pppd does right
// after ICCN.
func (l *lns) lcpUp(auth *frame.Option) {
	l.t.Helper()
	l.open()
	first := l.next(frame.ProtoLCP, frame.ConfigureRequest)
	l.none()
	// Lost. The restart timer sends it again, same Identifier, same
	// options (RFC 1661 section 5.1).
	l.untilDeadline()
	again := l.next(frame.ProtoLCP, frame.ConfigureRequest)
	if again.ID != first.ID || !bytes.Equal(again.Data, first.Data) {
		l.t.Fatalf("retransmission % x differs from % x", again.Append(nil), first.Append(nil))
	}
	req := []frame.Option{frame.MRU(1500), frame.Magic(lnsMagic)}
	if auth != nil {
		req = []frame.Option{frame.MRU(1500), *auth, frame.Magic(lnsMagic)}
	}
	l.inOpts(frame.ProtoLCP, frame.ConfigureRequest, 1, req...)
	ack := l.next(frame.ProtoLCP, frame.ConfigureAck)
	if ack.ID != 1 || !bytes.Equal(ack.Data, frame.EncodeOptions(req)) {
		l.t.Fatalf("Ack % x of % x", ack.Data, frame.EncodeOptions(req))
	}
	l.in(frame.ProtoLCP, frame.Packet{Code: frame.ConfigureAck, ID: again.ID, Data: again.Data})
	if l.c.lcp.state != Opened {
		l.t.Fatalf("LCP %s after both Acks", l.c.lcp.state)
	}
}

// ipv6cpUp opens IPV6CP with the LNS's identifier ::1, as pppd's
// "ipv6 ::1," does.
func (l *lns) ipv6cpUp() frame.Packet {
	l.t.Helper()
	req := l.next(frame.ProtoIPV6CP, frame.ConfigureRequest)
	peer := [8]byte{7: 1}
	l.inOpts(frame.ProtoIPV6CP, frame.ConfigureRequest, 1, frame.InterfaceID(peer))
	l.next(frame.ProtoIPV6CP, frame.ConfigureAck)
	l.in(frame.ProtoIPV6CP, frame.Packet{Code: frame.ConfigureAck, ID: req.ID, Data: req.Data})
	if len(l.ups) != 1 {
		l.t.Fatalf("%d Ups after IPV6CP's Acks", len(l.ups))
	}
	return req
}

// The whole bring-up with CHAP (RFC 1994 section 4.1's Response to the
// LNS's Challenge), then IPV6CP.
func TestBringUpCHAP(t *testing.T) {
	l := newLNS(t, Config{MRU: 1452, InterfaceID: [8]byte{0x02, 0x24, 0xd4, 0xff, 0xfe, 0xaa, 0xbb, 0xcc}})
	chap := frame.AuthCHAPMD5()
	l.lcpUp(&chap)
	if l.c.Phase() != Authenticate {
		t.Fatalf("phase %s", l.c.Phase())
	}
	// IPV6CP and IPCP before the login are discarded (RFC 1661 3.5).
	l.inOpts(frame.ProtoIPV6CP, frame.ConfigureRequest, 9, frame.InterfaceID([8]byte{7: 1}))
	l.inOpts(frame.ProtoIPCP, frame.ConfigureRequest, 9)
	l.none()

	challenge := []byte("0123456789abcdef")
	l.in(frame.ProtoCHAP, frame.Packet{Code: frame.CHAPChallenge, ID: 0x2a, Data: append(append([]byte{16}, challenge...), "lns"...)})
	resp := l.next(frame.ProtoCHAP, frame.CHAPResponse)
	want := md5.Sum(append(append([]byte{0x2a}, "s3cret"...), challenge...))
	if resp.ID != 0x2a || resp.Data[0] != 16 || !bytes.Equal(resp.Data[1:17], want[:]) || string(resp.Data[17:]) != "dhcp/192.0.2.7@0024d4aabbcc" {
		t.Fatalf("Response % x, want ID 2a, MD5 % x and the username", resp.Append(nil), want)
	}
	// The Success is lost: braid sends its Response again.
	l.untilDeadline()
	if again := l.next(frame.ProtoCHAP, frame.CHAPResponse); !bytes.Equal(again.Data, resp.Data) {
		t.Fatalf("Response sent again as % x", again.Data)
	}
	l.in(frame.ProtoCHAP, frame.Packet{Code: frame.CHAPSuccess, ID: 0x2a, Data: []byte("Access granted")})
	if l.c.Phase() != Network {
		t.Fatalf("phase %s after Success", l.c.Phase())
	}
	req := l.ipv6cpUp()
	if o, _ := option(opts(t, req), frame.IPV6CPInterfaceID); !bytes.Equal(o.Data, []byte{0x02, 0x24, 0xd4, 0xff, 0xfe, 0xaa, 0xbb, 0xcc}) {
		t.Fatalf("IPV6CP request % x", req.Data)
	}
	up := l.ups[0]
	if up.Local != [8]byte{0x02, 0x24, 0xd4, 0xff, 0xfe, 0xaa, 0xbb, 0xcc} || up.Peer != [8]byte{7: 1} || up.MRU != 1452 {
		t.Fatalf("Up %+v", up)
	}
	if s := l.c.Status(); s.Auth != "CHAP-MD5" || s.IPV6CP != Opened {
		t.Fatalf("status %+v", s)
	}
	// A rechallenge in the network phase is answered too (RFC 1994 3).
	l.in(frame.ProtoCHAP, frame.Packet{Code: frame.CHAPChallenge, ID: 0x2b, Data: append([]byte{4}, "abcd"...)})
	l.next(frame.ProtoCHAP, frame.CHAPResponse)
	l.in(frame.ProtoCHAP, frame.Packet{Code: frame.CHAPSuccess, ID: 0x2b})
	l.none()
	if l.fin != nil || len(l.ups) != 1 {
		t.Fatalf("rechallenge: finished %v, %d Ups", l.fin, len(l.ups))
	}
}

// PAP (RFC 1334 2.2.1): Authenticate-Requests until the Ack.
func TestBringUpPAP(t *testing.T) {
	l := newLNS(t, Config{})
	pap := frame.AuthPAP()
	l.lcpUp(&pap)
	req := l.next(frame.ProtoPAP, frame.PAPRequest)
	a, err := frame.ParsePAP(req.Append(nil))
	if err != nil || string(a.PeerID) != "dhcp/192.0.2.7@0024d4aabbcc" || string(a.Password) != "s3cret" {
		t.Fatalf("Authenticate-Request %+v, %v", a, err)
	}
	l.untilDeadline()
	if again := l.next(frame.ProtoPAP, frame.PAPRequest); again.ID != req.ID {
		t.Fatalf("retransmission ID %d, want %d", again.ID, req.ID)
	}
	l.in(frame.ProtoPAP, frame.Packet{Code: frame.PAPAck, ID: req.ID + 1, Data: []byte{0}})
	if l.c.Phase() != Authenticate {
		t.Fatal("an Ack of another Identifier counted")
	}
	l.in(frame.ProtoPAP, frame.Packet{Code: frame.PAPAck, ID: req.ID, Data: []byte{0}})
	l.ipv6cpUp()
	if s := l.c.Status(); s.Auth != "PAP" {
		t.Fatalf("auth %q", s.Auth)
	}
}

// No authentication asked: straight to IPV6CP.
func TestBringUpNoAuth(t *testing.T) {
	l := newLNS(t, Config{})
	l.lcpUp(nil)
	l.ipv6cpUp()
}

// A refused login ends the link with ErrAuthRefused, after an LCP
// Terminate-Request (RFC 1994 section 4.2, RFC 1334 section 2.2.2).
func TestAuthRefused(t *testing.T) {
	for _, tc := range []struct {
		name   string
		auth   frame.Option
		refuse func(l *lns)
	}{
		{"CHAP Failure", frame.AuthCHAPMD5(), func(l *lns) {
			l.in(frame.ProtoCHAP, frame.Packet{Code: frame.CHAPChallenge, ID: 1, Data: []byte{1, 9}})
			l.next(frame.ProtoCHAP, frame.CHAPResponse)
			l.in(frame.ProtoCHAP, frame.Packet{Code: frame.CHAPFailure, ID: 1, Data: []byte("Authentication failed")})
		}},
		{"PAP Authenticate-Nak", frame.AuthPAP(), func(l *lns) {
			req := l.next(frame.ProtoPAP, frame.PAPRequest)
			l.in(frame.ProtoPAP, frame.Packet{Code: frame.PAPNak, ID: req.ID, Data: append([]byte{12}, "Login failed"...)})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newLNS(t, Config{})
			l.lcpUp(&tc.auth)
			tc.refuse(l)
			term := l.next(frame.ProtoLCP, frame.TerminateRequest)
			if !strings.Contains(string(term.Data), "PPP authentication refused") {
				t.Fatalf("Terminate-Request says %q", term.Data)
			}
			if strings.Contains(string(term.Data), "s3cret") {
				t.Fatal("the password is in the Terminate-Request")
			}
			l.in(frame.ProtoLCP, frame.Packet{Code: frame.TerminateAck, ID: term.ID})
			if l.fin == nil || !errors.Is(l.fin.Err, ErrAuthRefused) {
				t.Fatalf("finished with %v", l.fin)
			}
			if !strings.Contains(l.fin.Err.Error(), "failed") {
				t.Fatalf("the LNS's message is not in %q", l.fin.Err)
			}
		})
	}
}

// An LNS that never challenges: the authentication phase ends in time.
func TestAuthTimeout(t *testing.T) {
	l := newLNS(t, Config{})
	chap := frame.AuthCHAPMD5()
	l.lcpUp(&chap)
	for i := 0; i < 100 && l.fin == nil; i++ {
		l.untilDeadline()
	}
	if l.fin == nil || !errors.Is(l.fin.Err, ErrAuthTimeout) {
		t.Fatalf("finished with %v", l.fin)
	}
}

// RFC 1661 section 5: what LCP rejects, Naks and acknowledges of the
// LNS's request, on an L2TP link.
func TestLCPOptions(t *testing.T) {
	accm := frame.Option{Type: frame.LCPACCM, Data: []byte{0, 0, 0, 0}}
	quality := frame.Option{Type: frame.LCPQuality, Data: []byte{0xc0, 0x25, 0, 0, 0, 10}}
	pfc, acfc := frame.Option{Type: frame.LCPPFC}, frame.Option{Type: frame.LCPACFC}
	callback := frame.Option{Type: 13, Data: []byte{6}}
	for _, tc := range []struct {
		name string
		req  []frame.Option
		code uint8
		want []frame.Option
	}{
		{"MRU, ACCM, CHAP-MD5, magic", []frame.Option{frame.MRU(1460), accm, frame.AuthCHAPMD5(), frame.Magic(lnsMagic)}, frame.ConfigureAck, nil},
		{"PAP", []frame.Option{frame.AuthPAP(), frame.Magic(lnsMagic)}, frame.ConfigureAck, nil},
		{"PFC and ACFC rejected", []frame.Option{frame.Magic(lnsMagic), pfc, acfc}, frame.ConfigureReject, []frame.Option{pfc, acfc}},
		{"Quality-Protocol and callback rejected", []frame.Option{quality, frame.MRU(1500), callback}, frame.ConfigureReject, []frame.Option{quality, callback}},
		{"reject before Nak", []frame.Option{frame.MRU(500), pfc}, frame.ConfigureReject, []frame.Option{pfc}},
		{"MS-CHAPv2 Nak'd toward CHAP-MD5", []frame.Option{frame.Auth(frame.ProtoCHAP, 0x81)}, frame.ConfigureNak, []frame.Option{frame.AuthCHAPMD5()}},
		{"EAP Nak'd toward CHAP-MD5", []frame.Option{frame.Auth(frame.ProtoEAP)}, frame.ConfigureNak, []frame.Option{frame.AuthCHAPMD5()}},
		{"MRU under IPv6's 1280 Nak'd", []frame.Option{frame.MRU(576)}, frame.ConfigureNak, []frame.Option{frame.MRU(1280)}},
		{"MRU of the wrong length rejected", []frame.Option{{Type: frame.LCPMRU, Data: []byte{5}}}, frame.ConfigureReject, []frame.Option{{Type: frame.LCPMRU, Data: []byte{5}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newLNS(t, Config{})
			l.open()
			l.next(frame.ProtoLCP, frame.ConfigureRequest)
			l.inOpts(frame.ProtoLCP, frame.ConfigureRequest, 3, tc.req...)
			reply := l.next(frame.ProtoLCP, tc.code)
			want := frame.EncodeOptions(tc.want)
			if tc.code == frame.ConfigureAck {
				want = frame.EncodeOptions(tc.req)
			}
			if reply.ID != 3 || !bytes.Equal(reply.Data, want) {
				t.Fatalf("%s % x, want % x", frame.CodeName(reply.Code), reply.Data, want)
			}
		})
	}
}

// braid's own request, and what it does with the LNS's Nak and Reject of
// it.
func TestLCPRequest(t *testing.T) {
	l := newLNS(t, Config{MRU: 1460})
	l.open()
	req := l.next(frame.ProtoLCP, frame.ConfigureRequest)
	o := opts(t, req)
	if len(o) != 2 || o[0].Type != frame.LCPMRU || o[1].Type != frame.LCPMagic {
		t.Fatalf("request % x: want MRU and Magic-Number only", req.Data)
	}
	if v, _ := o[0].Uint16(); v != 1460 {
		t.Fatalf("MRU %d", v)
	}
	magic, _ := o[1].Uint32()
	// The LNS Naks the MRU down and the magic number: braid takes the
	// MRU and picks a new magic number.
	l.inOpts(frame.ProtoLCP, frame.ConfigureNak, req.ID, frame.MRU(1400), frame.Magic(123))
	req2 := l.next(frame.ProtoLCP, frame.ConfigureRequest)
	o = opts(t, req2)
	if v, _ := o[0].Uint16(); v != 1400 || req2.ID == req.ID {
		t.Fatalf("after the Nak: % x, ID %d", req2.Data, req2.ID)
	}
	if m, _ := o[1].Uint32(); m == magic || m == 0 {
		t.Fatalf("magic number %x after a Nak of %x", m, magic)
	}
	// A Reject of both: braid asks for neither.
	l.in(frame.ProtoLCP, frame.Packet{Code: frame.ConfigureReject, ID: req2.ID, Data: req2.Data})
	req3 := l.next(frame.ProtoLCP, frame.ConfigureRequest)
	if len(req3.Data) != 0 {
		t.Fatalf("after the Reject: % x", req3.Data)
	}
	// A Reject of options braid did not send is not one (RFC 1661 5.4).
	l.inOpts(frame.ProtoLCP, frame.ConfigureReject, req3.ID, frame.MRU(1500))
	l.none()
}

// RFC 1661 section 6.4: a Configure-Request with braid's own magic
// number is Nak'd with another; a link that keeps sending braid's own
// frames back is found looped.
func TestMagicLoopback(t *testing.T) {
	l := newLNS(t, Config{})
	l.open()
	req := l.next(frame.ProtoLCP, frame.ConfigureRequest)
	o, _ := option(opts(t, req), frame.LCPMagic)
	nak := func() {
		t.Helper()
		l.in(frame.ProtoLCP, req)
		p := l.next(frame.ProtoLCP, frame.ConfigureNak)
		m, _ := option(opts(t, p), frame.LCPMagic)
		if m.Equal(o) {
			t.Fatalf("Nak'd with the same magic number % x", m.Data)
		}
	}
	nak()

	// A real loop: everything braid sends comes back to it.
	l2 := newLNS(t, Config{})
	l2.open()
	for i := 0; i < 200 && l2.fin == nil; i++ {
		if len(l2.sent) == 0 {
			l2.untilDeadline()
			continue
		}
		f := l2.sent[0]
		l2.sent = l2.sent[1:]
		l2.take(l2.c.Input(f, l2.now))
	}
	if l2.fin == nil || !errors.Is(l2.fin.Err, ErrLooped) {
		t.Fatalf("looped link finished with %v", l2.fin)
	}
}

// RFC 5072 section 4.1: the LNS's Nak suggests braid's identifier;
// braid Naks a zero identifier and one equal to its own (a collision).
func TestIPV6CPIdentifiers(t *testing.T) {
	mine := [8]byte{0x02, 0x24, 0xd4, 0xff, 0xfe, 0xaa, 0xbb, 0xcc}
	l := newLNS(t, Config{InterfaceID: mine})
	l.lcpUp(nil)
	req := l.next(frame.ProtoIPV6CP, frame.ConfigureRequest)
	suggested := [8]byte{0x1c, 0x2d, 0x3e, 0x4f, 0x50, 0x61, 0x72, 0x83}
	l.inOpts(frame.ProtoIPV6CP, frame.ConfigureNak, req.ID, frame.InterfaceID(suggested))
	req = l.next(frame.ProtoIPV6CP, frame.ConfigureRequest)
	if o, _ := option(opts(t, req), frame.IPV6CPInterfaceID); !bytes.Equal(o.Data, suggested[:]) {
		t.Fatalf("after the Nak braid asks for % x, want the suggested % x", o.Data, suggested)
	}
	for _, bad := range [][8]byte{{}, suggested} {
		l.inOpts(frame.ProtoIPV6CP, frame.ConfigureRequest, 5, frame.InterfaceID(bad))
		nak := l.next(frame.ProtoIPV6CP, frame.ConfigureNak)
		o, _ := option(opts(t, nak), frame.IPV6CPInterfaceID)
		id, _ := o.InterfaceID()
		if id == ([8]byte{}) || id == suggested || id[0]&0x02 != 0 {
			t.Fatalf("Nak of the peer's % x suggests % x: want non-zero, not braid's, local scope", bad, id)
		}
	}
	if l.c.v6Opts.collisions != 1 {
		t.Fatalf("%d collisions", l.c.v6Opts.collisions)
	}
	// Compression is rejected.
	comp := frame.Option{Type: frame.IPV6CPCompression, Data: []byte{0x00, 0x4f}}
	l.inOpts(frame.ProtoIPV6CP, frame.ConfigureRequest, 6, frame.InterfaceID([8]byte{7: 1}), comp)
	if rej := l.next(frame.ProtoIPV6CP, frame.ConfigureReject); !bytes.Equal(rej.Data, frame.EncodeOptions([]frame.Option{comp})) {
		t.Fatalf("Reject % x", rej.Data)
	}
	l.inOpts(frame.ProtoIPV6CP, frame.ConfigureRequest, 7, frame.InterfaceID([8]byte{7: 1}))
	l.next(frame.ProtoIPV6CP, frame.ConfigureAck)
	l.in(frame.ProtoIPV6CP, frame.Packet{Code: frame.ConfigureAck, ID: req.ID, Data: req.Data})
	if len(l.ups) != 1 || l.ups[0].Local != suggested || l.ups[0].Peer != [8]byte{7: 1} {
		t.Fatalf("Ups %+v", l.ups)
	}
}

// braid speaks no IPv4: IPCP and IPv4 (and anything else unknown) are
// Protocol-Rejected once the link is in the network phase, with the
// rejected packet (RFC 1661 section 5.7); unknown LCP codes are
// Code-Rejected (5.6).
func TestRejects(t *testing.T) {
	l := newLNS(t, Config{})
	l.lcpUp(nil)
	l.next(frame.ProtoIPV6CP, frame.ConfigureRequest)
	ipcp := frame.Packet{Code: frame.ConfigureRequest, ID: 1, Data: frame.EncodeOptions([]frame.Option{frame.IPAddress(netipV4(10, 99, 0, 1))})}
	for _, tc := range []struct {
		proto uint16
		info  []byte
	}{
		{frame.ProtoIPCP, ipcp.Append(nil)},
		{frame.ProtoIPv4, []byte{0x45, 0, 0, 20}},
		{frame.ProtoCCP, []byte{1, 1, 0, 4}},
		{0x4021, []byte{1, 2, 3}},
	} {
		l.take(l.c.Input(frame.Append(nil, tc.proto, tc.info), l.now))
		rej := l.next(frame.ProtoLCP, frame.ProtocolReject)
		if !bytes.Equal(rej.Data, frame.ProtoReject(tc.proto, tc.info)) {
			t.Fatalf("Protocol-Reject of %s: % x", frame.ProtocolName(tc.proto), rej.Data)
		}
	}
	l.in(frame.ProtoLCP, frame.Packet{Code: 42, ID: 9, Data: []byte{1, 2}})
	if cj := l.next(frame.ProtoLCP, frame.CodeReject); !bytes.Equal(cj.Data, []byte{42, 9, 0, 6, 1, 2}) {
		t.Fatalf("Code-Reject % x", cj.Data)
	}
	// IPV6CP carries on.
	l.inOpts(frame.ProtoIPV6CP, frame.ConfigureRequest, 1, frame.InterfaceID([8]byte{7: 1}))
	l.next(frame.ProtoIPV6CP, frame.ConfigureAck)
	if l.fin != nil {
		t.Fatalf("finished: %v", l.fin.Err)
	}
}

// A Protocol-Reject of a long frame is cut to the LNS's MRU.
func TestProtocolRejectTruncated(t *testing.T) {
	l := newLNS(t, Config{})
	l.open()
	req := l.next(frame.ProtoLCP, frame.ConfigureRequest)
	l.inOpts(frame.ProtoLCP, frame.ConfigureRequest, 1, frame.MRU(1280))
	l.next(frame.ProtoLCP, frame.ConfigureAck)
	l.in(frame.ProtoLCP, frame.Packet{Code: frame.ConfigureAck, ID: req.ID, Data: req.Data})
	l.next(frame.ProtoIPV6CP, frame.ConfigureRequest)
	l.take(l.c.Input(frame.Append(nil, frame.ProtoIPv4, make([]byte, 1500)), l.now))
	if rej := l.next(frame.ProtoLCP, frame.ProtocolReject); rej.Len() != 1280 {
		t.Fatalf("Protocol-Reject of %d octets, over the MRU of 1280", rej.Len())
	}
}

// The LNS Protocol-Rejects IPV6CP: no IPv6 here, the link ends.
func TestIPV6CPRejected(t *testing.T) {
	l := newLNS(t, Config{})
	l.lcpUp(nil)
	req := l.next(frame.ProtoIPV6CP, frame.ConfigureRequest)
	l.in(frame.ProtoLCP, frame.Packet{Code: frame.ProtocolReject, ID: 3, Data: frame.ProtoReject(frame.ProtoIPV6CP, req.Append(nil))})
	term := l.next(frame.ProtoLCP, frame.TerminateRequest)
	l.in(frame.ProtoLCP, frame.Packet{Code: frame.TerminateAck, ID: term.ID})
	if l.fin == nil || !errors.Is(l.fin.Err, ErrNoIPv6) {
		t.Fatalf("finished with %v", l.fin)
	}
}

// LCP echoes: braid answers the LNS's (RFC 1661 5.8), sends its own every
// Keepalive, measures their round trip, and ends the link after
// KeepaliveFailures unanswered in a row.
func TestEchoKeepalive(t *testing.T) {
	l := newLNS(t, Config{Keepalive: 10 * time.Second, KeepaliveFailures: 3})
	l.lcpUp(nil)
	l.ipv6cpUp()

	l.in(frame.ProtoLCP, frame.Packet{Code: frame.EchoRequest, ID: 77, Data: frame.Echo(lnsMagic, []byte("hi"))})
	reply := l.next(frame.ProtoLCP, frame.EchoReply)
	if m, _ := frame.EchoMagic(reply.Data); reply.ID != 77 || m != l.c.lcpOpts.magic || string(reply.Data[4:]) != "hi" {
		t.Fatalf("Echo-Reply % x", reply.Append(nil))
	}

	l.advance(10 * time.Second)
	echo := l.next(frame.ProtoLCP, frame.EchoRequest)
	if m, _ := frame.EchoMagic(echo.Data); m != l.c.lcpOpts.magic {
		t.Fatalf("Echo-Request % x without braid's magic number", echo.Data)
	}
	l.now = l.now.Add(35 * time.Millisecond)
	l.in(frame.ProtoLCP, frame.Packet{Code: frame.EchoReply, ID: echo.ID, Data: frame.Echo(lnsMagic, nil)})
	if s := l.c.Status(); s.EchoRTT != 35*time.Millisecond || s.EchoesUnanswered != 0 {
		t.Fatalf("status after the reply: %+v", s)
	}
	// An answer with braid's own magic number is braid's own echo come
	// back: not an answer.
	for i := range 3 {
		l.untilDeadline()
		echo = l.next(frame.ProtoLCP, frame.EchoRequest)
		l.in(frame.ProtoLCP, frame.Packet{Code: frame.EchoReply, ID: echo.ID, Data: echo.Data})
		if s := l.c.Status(); s.EchoesUnanswered != i+1 {
			t.Fatalf("echo %d: %d unanswered", i+1, s.EchoesUnanswered)
		}
	}
	l.untilDeadline()
	term := l.next(frame.ProtoLCP, frame.TerminateRequest)
	if len(l.down) != 1 {
		t.Fatalf("%d Downs", len(l.down))
	}
	// The LNS is gone: Max-Terminate requests, then finished.
	l.untilDeadline()
	l.next(frame.ProtoLCP, frame.TerminateRequest)
	l.untilDeadline()
	l.none()
	if l.fin == nil || !errors.Is(l.fin.Err, ErrKeepalive) {
		t.Fatalf("finished with %v (Terminate-Request %q)", l.fin, term.Data)
	}
}

// The LNS terminates: braid acknowledges, IPv6 goes down, and the link
// finishes a restart period later (RFC 1661 zrc).
func TestPeerTerminates(t *testing.T) {
	l := newLNS(t, Config{})
	l.lcpUp(nil)
	l.ipv6cpUp()
	l.in(frame.ProtoLCP, frame.Packet{Code: frame.TerminateRequest, ID: 4, Data: []byte("User request")})
	l.next(frame.ProtoLCP, frame.TerminateAck)
	if len(l.down) != 1 || l.fin != nil {
		t.Fatalf("Downs %v, finished %v", l.down, l.fin)
	}
	l.untilDeadline()
	if l.fin == nil || !errors.Is(l.fin.Err, ErrPeerTerminated) || !strings.Contains(l.fin.Err.Error(), "User request") {
		t.Fatalf("finished with %v", l.fin)
	}
}

// braid closes: a Terminate-Request, finished at its Ack.
func TestClose(t *testing.T) {
	l := newLNS(t, Config{})
	l.lcpUp(nil)
	l.ipv6cpUp()
	l.take(l.c.Close(l.now))
	term := l.next(frame.ProtoLCP, frame.TerminateRequest)
	if len(l.down) != 1 {
		t.Fatal("IPv6 not down at Close")
	}
	l.in(frame.ProtoLCP, frame.Packet{Code: frame.TerminateAck, ID: term.ID})
	if l.fin == nil || !errors.Is(l.fin.Err, ErrClosed) {
		t.Fatalf("finished with %v", l.fin)
	}
	if l.c.Input(frame.Append(nil, frame.ProtoLCP, []byte{1, 1, 0, 4}), l.now) != nil {
		t.Fatal("a finished link still answers")
	}
}

// An LNS that never answers: Max-Configure requests, then
// ErrNotConverged; one that Naks forever: the same, sooner.
func TestNotConverging(t *testing.T) {
	l := newLNS(t, Config{})
	l.open()
	for i := 0; i < 50 && l.fin == nil; i++ {
		l.untilDeadline()
	}
	if l.fin == nil || !errors.Is(l.fin.Err, ErrNotConverged) {
		t.Fatalf("finished with %v", l.fin)
	}

	l = newLNS(t, Config{MRU: 1500})
	l.open()
	for i := 0; i < 50 && l.fin == nil; i++ {
		if len(l.sent) == 0 {
			l.untilDeadline()
			continue
		}
		req := l.next(frame.ProtoLCP, l.sentCode())
		if req.Code == frame.ConfigureRequest {
			l.inOpts(frame.ProtoLCP, frame.ConfigureNak, req.ID, frame.MRU(1300))
		}
	}
	if l.fin == nil || !errors.Is(l.fin.Err, ErrNotConverged) {
		t.Fatalf("Nak'd forever: finished with %v", l.fin)
	}
}

// sentCode is the code of the next frame braid sent.
func (l *lns) sentCode() uint8 {
	f, _ := frame.Parse(l.sent[0])
	p, _ := frame.ParsePacket(f.Info)
	return p.Code
}

// The LNS renegotiates LCP once up (RFC 1661: RCR in Opened): IPv6 goes
// down and comes back; the same parameters keep the link.
func TestRenegotiation(t *testing.T) {
	l := newLNS(t, Config{})
	l.lcpUp(nil)
	l.ipv6cpUp()
	l.inOpts(frame.ProtoLCP, frame.ConfigureRequest, 50, frame.MRU(1500), frame.Magic(lnsMagic))
	req := l.next(frame.ProtoLCP, frame.ConfigureRequest)
	l.next(frame.ProtoLCP, frame.ConfigureAck)
	if len(l.down) != 1 || l.c.Phase() != Establish {
		t.Fatalf("Downs %d, phase %s", len(l.down), l.c.Phase())
	}
	l.in(frame.ProtoLCP, frame.Packet{Code: frame.ConfigureAck, ID: req.ID, Data: req.Data})
	v6 := l.next(frame.ProtoIPV6CP, frame.ConfigureRequest)
	l.inOpts(frame.ProtoIPV6CP, frame.ConfigureRequest, 2, frame.InterfaceID([8]byte{7: 1}))
	l.next(frame.ProtoIPV6CP, frame.ConfigureAck)
	l.in(frame.ProtoIPV6CP, frame.Packet{Code: frame.ConfigureAck, ID: v6.ID, Data: v6.Data})
	if len(l.ups) != 2 || l.fin != nil {
		t.Fatalf("Ups %d, finished %v", len(l.ups), l.fin)
	}
	// Renegotiated to another identifier: the link ends.
	l.inOpts(frame.ProtoIPV6CP, frame.ConfigureRequest, 3, frame.InterfaceID([8]byte{7: 2}))
	v6 = l.next(frame.ProtoIPV6CP, frame.ConfigureRequest)
	l.next(frame.ProtoIPV6CP, frame.ConfigureAck)
	l.in(frame.ProtoIPV6CP, frame.Packet{Code: frame.ConfigureAck, ID: v6.ID, Data: v6.Data})
	l.next(frame.ProtoLCP, frame.TerminateRequest)
	if err := l.c.lcp.reason; !errors.Is(err, ErrRenegotiated) {
		t.Fatalf("reason %v", err)
	}
}

// The password never reaches a log line.
func TestConfigLogValueRedacts(t *testing.T) {
	cfg := Config{Username: "u", Password: []byte("hunter2")}
	if s := fmt.Sprint(cfg.LogValue()); strings.Contains(s, "hunter2") {
		t.Fatalf("log value %s", s)
	}
}

func netipV4(a, b, c, d byte) netip.Addr { return netip.AddrFrom4([4]byte{a, b, c, d}) }

// A Code-Reject of a long packet is cut to the LNS's MRU (RFC 1661 5.6).
func TestCodeRejectTruncated(t *testing.T) {
	l := newLNS(t, Config{})
	l.open()
	req := l.next(frame.ProtoLCP, frame.ConfigureRequest)
	l.inOpts(frame.ProtoLCP, frame.ConfigureRequest, 1, frame.MRU(1280))
	l.next(frame.ProtoLCP, frame.ConfigureAck)
	l.in(frame.ProtoLCP, frame.Packet{Code: frame.ConfigureAck, ID: req.ID, Data: req.Data})
	l.next(frame.ProtoIPV6CP, frame.ConfigureRequest)
	l.in(frame.ProtoLCP, frame.Packet{Code: 99, ID: 1, Data: make([]byte, 1400)})
	if cj := l.next(frame.ProtoLCP, frame.CodeReject); cj.Len() != 1280 {
		t.Fatalf("Code-Reject of %d octets, over the MRU of 1280", cj.Len())
	}
}
