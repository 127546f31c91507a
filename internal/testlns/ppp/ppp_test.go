package ppp

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/braid-router/braid/sessions/ppp/frame"
	"github.com/braid-router/braid/sessions/ppp/rfc1661"
)

// link runs braid's PPP client (sessions/ppp/rfc1661) against the LNS's
// side in memory, frame by frame, on a fake clock; drop decides whether
// a frame is lost (from the LNS when toLAC).
type link struct {
	t      *testing.T
	now    time.Time
	lac    *rfc1661.Conn
	lns    *Conn
	drop   func(toLAC bool, f []byte) bool
	lacUp  *rfc1661.Up
	lacFin error
	lnsUp  *Up
	login  string
	lnsErr error
	echoes int // LCP Echo-Replies the LNS sent
}

func newLink(t *testing.T, auth Auth, lacPassword string) *link {
	l := &link{t: t, now: time.Unix(1e9, 0)}
	l.lac = rfc1661.New(rfc1661.Config{Username: "dhcp/10.101.0.2@0024d4aabbcc", Password: []byte(lacPassword),
		Keepalive: 2 * time.Second, KeepaliveFailures: 3}, 1)
	l.lns = New(Config{Auth: auth, User: "dhcp/10.101.0.2@0024d4aabbcc", Password: []byte("testpass"), Name: "lns",
		InterfaceID: [8]byte{7: 1}, Rand: rand.NewChaCha8([32]byte{1})})
	return l
}

func (l *link) fromLAC(acts []rfc1661.Action) {
	for _, a := range acts {
		switch a := a.(type) {
		case rfc1661.Send:
			if l.drop != nil && l.drop(false, a.Frame) {
				continue
			}
			l.fromLNS(l.lns.Input(a.Frame, l.now))
		case rfc1661.Up:
			l.lacUp = &a
		case rfc1661.Finished:
			l.lacFin = a.Err
		}
	}
}

func (l *link) fromLNS(acts []Action) {
	for _, a := range acts {
		switch a := a.(type) {
		case Send:
			if f, err := frame.Parse(a.Frame); err == nil && f.Protocol == frame.ProtoLCP && f.Info[0] == frame.EchoReply {
				l.echoes++
			}
			if l.drop != nil && l.drop(true, a.Frame) {
				continue
			}
			l.fromLAC(l.lac.Input(a.Frame, l.now))
		case Up:
			l.lnsUp = &a
		case Authenticated:
			l.login = a.Login
		case Down:
			l.lnsErr = a.Err
		}
	}
}

// run advances the clock in steps of 100 ms for d, running both sides'
// timers.
func (l *link) run(d time.Duration) {
	for end := l.now.Add(d); l.now.Before(end); l.now = l.now.Add(100 * time.Millisecond) {
		if dl := l.lac.Deadline(); !dl.IsZero() && !l.now.Before(dl) {
			l.fromLAC(l.lac.Timeout(l.now))
		}
		if dl := l.lns.Deadline(); !dl.IsZero() && !l.now.Before(dl) {
			l.fromLNS(l.lns.Timeout(l.now))
		}
	}
}

// open opens braid's side, then the LNS's (which reads braid's request
// first, as when the LAC's ICCN starts both).
func (l *link) open() {
	l.fromLAC(l.lac.Open(l.now))
	l.fromLNS(l.lns.Open(l.now))
}

// braid's client logs in with CHAP-MD5 and with PAP, IPV6CP opens on both
// sides with the LNS's fe80::1 and an identifier of braid's, and the
// LNS answers braid's LCP echoes.
func TestBraidLogsIn(t *testing.T) {
	for _, auth := range []Auth{CHAP, PAP} {
		t.Run(string(auth), func(t *testing.T) {
			l := newLink(t, auth, "testpass")
			l.open()
			l.run(time.Second)
			if l.lacUp == nil || l.lnsUp == nil {
				t.Fatalf("not up: braid %v, LNS %v (braid %v, LNS %v)", l.lacUp, l.lnsUp, l.lacFin, l.lnsErr)
			}
			if l.lacUp.Peer != [8]byte{7: 1} || l.lnsUp.PeerID != l.lacUp.Local || l.lnsUp.PeerID == ([8]byte{}) {
				t.Errorf("identifiers: braid %x <-> %x, the LNS saw %x", l.lacUp.Local, l.lacUp.Peer, l.lnsUp.PeerID)
			}
			if l.login != "dhcp/10.101.0.2@0024d4aabbcc" || !l.lns.IPv6Up() {
				t.Errorf("login %q, IPv6 up %v", l.login, l.lns.IPv6Up())
			}
			if want := map[Auth]string{CHAP: "CHAP-MD5", PAP: "PAP"}[auth]; l.lac.Status().Auth != want {
				t.Errorf("braid logged in with %q, want %q", l.lac.Status().Auth, want)
			}
			l.run(10 * time.Second)
			if l.echoes < 3 || l.lacFin != nil || l.lnsErr != nil {
				t.Errorf("after 10 s: %d echo replies, braid %v, LNS %v", l.echoes, l.lacFin, l.lnsErr)
			}
		})
	}
}

// A wrong password: the LNS sends CHAP Failure (or PAP Nak) and
// terminates the link; braid says the login was refused, and the LNS
// goes Down only after braid acknowledged its Terminate-Request.
func TestWrongPassword(t *testing.T) {
	for _, auth := range []Auth{CHAP, PAP} {
		t.Run(string(auth), func(t *testing.T) {
			l := newLink(t, auth, "wrong")
			l.open()
			l.run(5 * time.Second)
			if !errors.Is(l.lacFin, rfc1661.ErrAuthRefused) {
				t.Errorf("braid finished with %v, want %v", l.lacFin, rfc1661.ErrAuthRefused)
			}
			if !errors.Is(l.lnsErr, ErrAuth) || l.lnsUp != nil || l.login != "" {
				t.Errorf("LNS: %v, up %v, login %q", l.lnsErr, l.lnsUp, l.login)
			}
		})
	}
}

// Frames lost both ways (the first three from each side) are sent again
// on the restart timer, and the link still comes up.
func TestLoss(t *testing.T) {
	l := newLink(t, CHAP, "testpass")
	lost := map[bool]int{}
	l.drop = func(toLAC bool, _ []byte) bool {
		lost[toLAC]++
		return lost[toLAC] <= 3
	}
	l.open()
	l.run(20 * time.Second)
	if l.lacUp == nil || l.lnsUp == nil {
		t.Fatalf("not up after losses: braid %v, LNS %v (braid %v, LNS %v)", l.lacUp, l.lnsUp, l.lacFin, l.lnsErr)
	}
}

// A LAC that never answers: the LNS gives up after MaxConfigure requests
// and terminates.
func TestSilentLAC(t *testing.T) {
	c := New(Config{User: "u", Password: []byte("p"), Rand: rand.NewChaCha8([32]byte{})})
	now := time.Unix(0, 0)
	var sent int
	var down error
	do := func(acts []Action) {
		for _, a := range acts {
			switch a := a.(type) {
			case Send:
				sent++
			case Down:
				down = a.Err
			}
		}
	}
	do(c.Open(now))
	for i := 0; i < 200 && down == nil; i++ {
		now = now.Add(100 * time.Millisecond)
		if d := c.Deadline(); !d.IsZero() && !now.Before(d) {
			do(c.Timeout(now))
		}
	}
	if !errors.Is(down, ErrNegotiation) || sent != 10+2 {
		t.Errorf("down %v after %d frames, want %v after 10 requests and 2 Terminate-Requests", down, sent, ErrNegotiation)
	}
}

// The LNS's answers to options, and to what it does not speak.
func TestAnswers(t *testing.T) {
	lcp := func(code, id uint8, opts ...frame.Option) []byte {
		return frame.Packet{Code: code, ID: id, Data: frame.EncodeOptions(opts)}.Frame(nil, frame.ProtoLCP)
	}
	for _, tt := range []struct {
		name string
		in   []byte
		want []byte
	}{
		{"MRU, magic and ACCM acknowledged", lcp(frame.ConfigureRequest, 7, frame.MRU(1500), frame.Magic(0x01020304), frame.Option{Type: frame.LCPACCM, Data: []byte{0, 0, 0, 0}}),
			lcp(frame.ConfigureAck, 7, frame.MRU(1500), frame.Magic(0x01020304), frame.Option{Type: frame.LCPACCM, Data: []byte{0, 0, 0, 0}})},
		{"PFC and ACFC rejected", lcp(frame.ConfigureRequest, 8, frame.MRU(1500), frame.Option{Type: frame.LCPPFC}, frame.Option{Type: frame.LCPACFC}),
			lcp(frame.ConfigureReject, 8, frame.Option{Type: frame.LCPPFC}, frame.Option{Type: frame.LCPACFC})},
		{"a tiny MRU rejected", lcp(frame.ConfigureRequest, 9, frame.MRU(100)), lcp(frame.ConfigureReject, 9, frame.MRU(100))},
		{"an unknown code rejected", frame.Packet{Code: 42, ID: 3}.Frame(nil, frame.ProtoLCP),
			frame.Packet{Code: frame.CodeReject, ID: 2, Data: frame.Packet{Code: 42, ID: 3}.Append(nil)}.Frame(nil, frame.ProtoLCP)},
		{"Terminate-Request acknowledged", frame.Packet{Code: frame.TerminateRequest, ID: 5}.Frame(nil, frame.ProtoLCP),
			frame.Packet{Code: frame.TerminateAck, ID: 5}.Frame(nil, frame.ProtoLCP)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := New(Config{User: "u", Password: []byte("p"), Rand: rand.NewChaCha8([32]byte{})})
			c.Open(time.Unix(0, 0))
			var got []byte
			for _, a := range c.Input(tt.in, time.Unix(0, 0)) {
				if s, ok := a.(Send); ok && got == nil {
					got = s.Frame
				}
			}
			if !bytes.Equal(got, tt.want) {
				t.Errorf("answer\n% x\nwant\n% x", got, tt.want)
			}
		})
	}
}
