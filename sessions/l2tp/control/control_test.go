package control

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/braid-router/braid/sessions/l2tp/avp"
)

// The IDs and challenge the test randomness yields: Start reads the
// tunnel ID, the session ID, then the challenge; the SCCRP's handling
// reads the call serial number.
const (
	ourTunnel  = 0x1122
	ourSession = 0x3344
	lnsTunnel  = 0x7d46
	lnsSession = 0x1cb4
)

var (
	ourChallenge = bytes.Repeat([]byte{0xc0}, 16)
	lnsChallenge = []byte("0123456789abcdef")
	secret       = []byte("6pe")
)

func testRand() *bytes.Reader {
	b := []byte{0x11, 0x22, 0x33, 0x44}
	b = append(b, ourChallenge...)
	b = append(b, 0, 0, 0, 7) // call serial number
	return bytes.NewReader(b)
}

// wire sends m through the codec, as the driver does both ways.
func wire(t *testing.T, m avp.Message) avp.Message {
	t.Helper()
	b, err := m.Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	out, err := avp.ParseMessage(b)
	if err != nil {
		t.Fatalf("%s does not parse back: %v", m, err)
	}
	return out
}

// script drives a Conn and keeps a clock.
type script struct {
	t   *testing.T
	c   *Conn
	now time.Time
}

func newScript(t *testing.T, cfg Config) *script {
	if cfg.Rand == nil {
		cfg.Rand = testRand()
	}
	return &script{t: t, c: New(cfg), now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
}

func (s *script) start() []Action {
	s.t.Helper()
	acts, err := s.c.Start(s.now)
	if err != nil {
		s.t.Fatal(err)
	}
	return s.wire(acts)
}

func (s *script) wire(acts []Action) []Action {
	for i, a := range acts {
		if snd, ok := a.(Send); ok {
			acts[i] = Send{Msg: wire(s.t, snd.Msg)}
		}
	}
	return acts
}

// recv delivers an LNS message: type t (ZLB for none), Ns, Nr, to
// session sid, with avps.
func (s *script) recv(t avp.MessageType, ns, nr, sid uint16, avps ...avp.AVP) []Action {
	s.t.Helper()
	m := avp.Message{TunnelID: ourTunnel, SessionID: sid}
	if t != avp.ZLB {
		m = avp.NewMessage(t, ourTunnel, sid, avps...)
	}
	m.Ns, m.Nr = ns, nr
	return s.wire(s.c.Receive(wire(s.t, m), s.now))
}

// tick advances the clock by d and runs the timers.
func (s *script) tick(d time.Duration) []Action {
	s.now = s.now.Add(d)
	return s.wire(s.c.Timeout(s.now))
}

// summary describes actions as "SCCCN 1/1" (type Ns/Nr), "tunnel up",
// "session up", "down", "closed".
func summary(acts []Action) []string {
	var out []string
	for _, a := range acts {
		switch a := a.(type) {
		case Send:
			out = append(out, fmt.Sprintf("%s %d/%d", a.Msg.Type(), a.Msg.Ns, a.Msg.Nr))
		case TunnelUp:
			out = append(out, "tunnel up")
		case SessionUp:
			out = append(out, "session up")
		case Down:
			out = append(out, "down")
		case Closed:
			out = append(out, "closed")
		}
	}
	return out
}

func (s *script) expect(acts []Action, want ...string) {
	s.t.Helper()
	if got := summary(acts); !slices.Equal(got, want) {
		s.t.Fatalf("actions %q, want %q", got, want)
	}
}

func sent(t *testing.T, acts []Action, typ avp.MessageType) avp.Message {
	t.Helper()
	for _, a := range acts {
		if snd, ok := a.(Send); ok && snd.Msg.Type() == typ {
			return snd.Msg
		}
	}
	t.Fatalf("no %s in %q", typ, summary(acts))
	return avp.Message{}
}

func downErr(t *testing.T, acts []Action) error {
	t.Helper()
	for _, a := range acts {
		if d, ok := a.(Down); ok {
			return d.Err
		}
	}
	t.Fatalf("no Down in %q", summary(acts))
	return nil
}

func respond(carrier avp.MessageType, challenge []byte) avp.AVP {
	r := avp.Respond(carrier, secret, challenge)
	return avp.New(avp.ChallengeResponse, r[:])
}

// sccrp is xl2tpd's reply with challenge = yes: it answers the LAC's
// challenge and sends its own.
func sccrp(extra ...avp.AVP) []avp.AVP {
	return append([]avp.AVP{
		avp.Uint16(avp.ProtocolVersion, 0x0100),
		avp.Uint32(avp.FramingCapabilities, 3),
		avp.Uint32(avp.BearerCapabilities, 0),
		avp.String(avp.HostName, "lns-test"),
		avp.String(avp.VendorName, "xelerance.com"),
		avp.Uint16(avp.AssignedTunnelID, lnsTunnel),
		avp.Uint16(avp.ReceiveWindowSize, 4),
	}, extra...)
}

// establish runs the exchange of xl2tpd's bring-up (the reference
// capture of run-lns.sh) up to the session.
func establish(t *testing.T, cfg Config) *script {
	s := newScript(t, cfg)
	s.start()
	var auth []avp.AVP
	if len(cfg.Secret) > 0 {
		auth = []avp.AVP{respond(avp.SCCRP, ourChallenge), avp.New(avp.Challenge, lnsChallenge)}
	}
	s.expect(s.recv(avp.SCCRP, 0, 1, 0, sccrp(auth...)...), "SCCCN 1/1", "tunnel up", "ICRQ 2/1")
	s.recv(avp.ZLB, 1, 2, 0)
	s.recv(avp.ICRP, 1, 3, ourSession, avp.Uint16(avp.AssignedSessionID, lnsSession))
	s.expect(s.recv(avp.ZLB, 2, 4, ourSession), "session up")
	return s
}

// TestBringUp follows the reference capture of a stock LAC against
// xl2tpd, with RFC 2661 Appendix B.1's lock-step Ns/Nr: SCCRQ 0/0, SCCRP
// 0/1, SCCCN 1/1 and ICRQ 2/1 at once, ZLB 1/2, ICRP 1/3, ICCN 3/2, ZLB
// 2/4.
func TestBringUp(t *testing.T) {
	s := newScript(t, Config{Secret: secret, Hostname: "box"})
	acts := s.start()
	s.expect(acts, "SCCRQ 0/0")
	rq := sent(t, acts, avp.SCCRQ)
	if rq.TunnelID != 0 || rq.SessionID != 0 {
		t.Errorf("SCCRQ to tunnel %d session %d, want 0 0", rq.TunnelID, rq.SessionID)
	}
	for _, c := range []struct {
		typ  avp.Type
		want []byte
	}{
		{avp.ProtocolVersion, []byte{1, 0}},
		{avp.HostName, []byte("box")},
		{avp.FramingCapabilities, []byte{0, 0, 0, 3}},
		{avp.AssignedTunnelID, []byte{0x11, 0x22}},
		{avp.ReceiveWindowSize, []byte{0, 4}},
		{avp.Challenge, ourChallenge},
	} {
		a, ok := rq.Find(c.typ)
		if !ok || !bytes.Equal(a.Value, c.want) || !a.Mandatory {
			t.Errorf("SCCRQ %s = %x (present %v, M %v), want %x, mandatory", c.typ, a.Value, ok, a.Mandatory, c.want)
		}
	}
	if s.c.Deadline() != s.now.Add(time.Second) {
		t.Errorf("deadline %v after the SCCRQ, want the first retransmission in 1 s", s.c.Deadline().Sub(s.now))
	}

	acts = s.recv(avp.SCCRP, 0, 1, 0, sccrp(respond(avp.SCCRP, ourChallenge), avp.New(avp.Challenge, lnsChallenge))...)
	s.expect(acts, "SCCCN 1/1", "tunnel up", "ICRQ 2/1")
	cn := sent(t, acts, avp.SCCCN)
	want := avp.Respond(avp.SCCCN, secret, lnsChallenge)
	if cr, ok := cn.Find(avp.ChallengeResponse); !ok || !bytes.Equal(cr.Value, want[:]) {
		t.Errorf("SCCCN Challenge Response %x, want %x", cr.Value, want)
	}
	if cn.TunnelID != lnsTunnel {
		t.Errorf("SCCCN to tunnel %d, want the LNS's %d", cn.TunnelID, lnsTunnel)
	}
	rq = sent(t, acts, avp.ICRQ)
	if v, _, _ := rq.Uint16(avp.AssignedSessionID); v != ourSession {
		t.Errorf("ICRQ Assigned Session ID %d, want %d", v, ourSession)
	}
	if v, _, _ := rq.Uint32(avp.CallSerialNumber); v != 7 {
		t.Errorf("ICRQ Call Serial Number %d, want 7 (from the randomness)", v)
	}

	s.expect(s.recv(avp.ZLB, 1, 2, 0))
	acts = s.recv(avp.ICRP, 1, 3, ourSession, avp.Uint16(avp.AssignedSessionID, lnsSession))
	s.expect(acts, "ICCN 3/2")
	cc := sent(t, acts, avp.ICCN)
	if cc.TunnelID != lnsTunnel || cc.SessionID != lnsSession {
		t.Errorf("ICCN to %d/%d, want %d/%d", cc.TunnelID, cc.SessionID, lnsTunnel, lnsSession)
	}
	if v, _, _ := cc.Uint32(avp.FramingType); v != 1 {
		t.Errorf("ICCN Framing Type %d, want 1 (synchronous, which the LNS offered)", v)
	}
	if s.c.Phase() != WaitICCNAck {
		t.Fatalf("phase %s before the ICCN's acknowledgement", s.c.Phase())
	}
	acts = s.recv(avp.ZLB, 2, 4, ourSession)
	s.expect(acts, "session up")
	if up := acts[0].(SessionUp); up != (SessionUp{ourTunnel, ourSession, lnsTunnel, lnsSession}) {
		t.Errorf("SessionUp %+v", up)
	}
	if lt, ls, pt, ps := s.c.IDs(); lt != ourTunnel || ls != ourSession || pt != lnsTunnel || ps != lnsSession {
		t.Errorf("IDs %d %d %d %d", lt, ls, pt, ps)
	}
	if s.c.PeerHost() != "lns-test" {
		t.Errorf("PeerHost %q", s.c.PeerHost())
	}
}

// TestLostICRP is RFC 2661 Appendix B.2: the ICRP is lost, the LAC's
// timer fires first and it sends the ICRQ again (same Ns, current Nr);
// the LNS acknowledges the duplicate with a ZLB, then retransmits its
// ICRP, which the LAC answers with the ICCN.
func TestLostICRP(t *testing.T) {
	s := newScript(t, Config{Secret: secret, SkipChallenge: true})
	s.start()
	s.expect(s.recv(avp.SCCRP, 0, 1, 0, sccrp()...), "SCCCN 1/1", "tunnel up", "ICRQ 2/1")
	s.expect(s.recv(avp.ZLB, 1, 2, 0))
	// The ICRP (Ns 1, Nr 3) is lost.
	s.expect(s.tick(time.Second), "ICRQ 2/1")
	s.expect(s.recv(avp.ZLB, 2, 3, 0))
	s.expect(s.recv(avp.ICRP, 1, 3, ourSession, avp.Uint16(avp.AssignedSessionID, lnsSession)), "ICCN 3/2")
	s.expect(s.recv(avp.ZLB, 2, 4, ourSession), "session up")
}

// TestDuplicate: the SCCCN is lost, so the LNS sends its SCCRP again:
// the duplicate is acknowledged, not processed a second time, and the
// SCCCN goes again on its own timer, with the same Ns.
func TestDuplicate(t *testing.T) {
	s := newScript(t, Config{})
	s.start()
	s.expect(s.recv(avp.SCCRP, 0, 1, 0, sccrp()...), "SCCCN 1/1", "tunnel up", "ICRQ 2/1")
	s.expect(s.recv(avp.SCCRP, 0, 1, 0, sccrp()...), "ZLB 3/1")
	s.expect(s.tick(time.Second), "SCCCN 1/1", "ICRQ 2/1")
}

// TestOutOfOrder: a message past a gap waits until the gap fills; then
// both are processed in order, and the ICCN acknowledges both.
func TestOutOfOrder(t *testing.T) {
	s := newScript(t, Config{})
	s.start()
	s.recv(avp.SCCRP, 0, 1, 0, sccrp()...)
	// HELLO (Ns 2) arrives before the ICRP (Ns 1).
	s.expect(s.recv(avp.HELLO, 2, 3, 0))
	s.expect(s.recv(avp.ICRP, 1, 3, ourSession, avp.Uint16(avp.AssignedSessionID, lnsSession)), "ICCN 3/2", "ZLB 4/3")
}

// TestOutOfOrderTwoGaps: messages 2 and 4 arrive before 1 and 3; each
// waits for its gap.
func TestOutOfOrderTwoGaps(t *testing.T) {
	s := establish(t, Config{})
	// nr is 2 here; HELLOs 3 and 5 come before 2 and 4.
	s.expect(s.recv(avp.HELLO, 3, 4, 0))
	s.expect(s.recv(avp.HELLO, 5, 4, 0))
	s.expect(s.recv(avp.HELLO, 2, 4, 0), "ZLB 4/4")
	s.expect(s.recv(avp.HELLO, 4, 4, 0), "ZLB 4/6")
	// And a duplicate of one processed from the queue is acknowledged.
	s.expect(s.recv(avp.HELLO, 5, 4, 0), "ZLB 4/6")
}

// TestWindow: with the LNS's Receive Window Size of 1, the ICRQ waits
// for the SCCCN's acknowledgement.
func TestWindow(t *testing.T) {
	s2 := newScript(t, Config{})
	s2.start()
	rws1 := sccrp()
	rws1[6] = avp.Uint16(avp.ReceiveWindowSize, 1)
	s2.expect(s2.recv(avp.SCCRP, 0, 1, 0, rws1...), "SCCCN 1/1", "tunnel up")
	s2.expect(s2.recv(avp.ZLB, 1, 2, 0), "ICRQ 2/1")
}

// TestRetransmitBackoff: 1, 2, 4, 8, 8 s between retransmissions (RFC
// 2661 5.8: exponential, capped at 8 s), Nr kept current, then no answer.
func TestRetransmitBackoff(t *testing.T) {
	s := newScript(t, Config{})
	s.start()
	var gaps []time.Duration
	last := s.now
	for s.c.Phase() != Done {
		d := s.c.Deadline().Sub(s.now)
		acts := s.tick(d)
		if s.c.Phase() == Done {
			s.expect(acts, "down", "closed")
			if err := downErr(t, acts); !errors.Is(err, ErrNoAnswer) {
				t.Errorf("down with %v, want ErrNoAnswer", err)
			}
			break
		}
		s.expect(acts, "SCCRQ 0/0")
		gaps = append(gaps, s.now.Sub(last))
		last = s.now
	}
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 8 * time.Second}
	if !slices.Equal(gaps, want) {
		t.Errorf("retransmissions after %v, want %v", gaps, want)
	}
	if !s.c.Deadline().IsZero() {
		t.Error("a closed connection still has a deadline")
	}
}

// TestRetransmitUpdatesNr: a retransmission carries the Nr of now.
func TestRetransmitUpdatesNr(t *testing.T) {
	s := newScript(t, Config{})
	s.start()
	s.recv(avp.SCCRP, 0, 1, 0, sccrp()...)
	s.expect(s.recv(avp.HELLO, 1, 1, 0), "ZLB 3/2")
	s.expect(s.tick(time.Second), "SCCCN 1/2", "ICRQ 2/2")
}

func TestAuth(t *testing.T) {
	for _, tc := range []struct {
		name   string
		cfg    Config
		sccrp  []avp.AVP
		code   uint16
		errSub string
	}{{
		name:   "wrong challenge response: the secrets differ",
		cfg:    Config{Secret: []byte("not 6pe")},
		sccrp:  sccrp(respond(avp.SCCRP, ourChallenge)),
		code:   avp.StopNotAuth,
		errSub: "tunnel authentication failed: wrong secret?",
	}, {
		name:   "no challenge response",
		cfg:    Config{Secret: secret},
		sccrp:  sccrp(),
		code:   avp.StopNotAuth,
		errSub: "did not answer the tunnel challenge",
	}, {
		name:   "the LNS challenges and there is no secret",
		cfg:    Config{},
		sccrp:  sccrp(avp.New(avp.Challenge, lnsChallenge)),
		code:   avp.StopNotAuth,
		errSub: "no secret is configured",
	}, {
		name:   "a response computed for the wrong message type",
		cfg:    Config{Secret: secret},
		sccrp:  sccrp(respond(avp.SCCCN, ourChallenge)),
		code:   avp.StopNotAuth,
		errSub: "wrong secret?",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			s := newScript(t, tc.cfg)
			s.start()
			acts := s.recv(avp.SCCRP, 0, 1, 0, tc.sccrp...)
			s.expect(acts, "down", "StopCCN 1/1")
			err := downErr(t, acts)
			if !errors.Is(err, ErrAuth) || !strings.Contains(err.Error(), tc.errSub) {
				t.Errorf("down with %q, want ErrAuth saying %q", err, tc.errSub)
			}
			stop := sent(t, acts, avp.StopCCN)
			r, ok, rerr := stop.Result()
			if !ok || rerr != nil || r.Code != tc.code {
				t.Errorf("StopCCN result %+v (%v %v), want code %d", r, ok, rerr, tc.code)
			}
			if tid, _, _ := stop.Uint16(avp.AssignedTunnelID); tid != ourTunnel || stop.TunnelID != lnsTunnel {
				t.Errorf("StopCCN Assigned Tunnel ID %d to tunnel %d", tid, stop.TunnelID)
			}
			s.expect(s.recv(avp.ZLB, 1, 2, 0), "closed")
		})
	}
}

// TestAuthRefusedByLNS: xl2tpd finds this side's Challenge Response wrong
// and ends the tunnel with "general error, vendor-specific: Invalid
// challenge authentication" right after the SCCCN: ErrAuth.
func TestAuthRefusedByLNS(t *testing.T) {
	s := newScript(t, Config{Secret: []byte("wrong"), SkipChallenge: true})
	s.start()
	s.recv(avp.SCCRP, 0, 1, 0, sccrp(avp.New(avp.Challenge, lnsChallenge))...)
	acts := s.recv(avp.StopCCN, 1, 2, 0, avp.Uint16(avp.AssignedTunnelID, lnsTunnel),
		avp.NewResult(avp.Result{Code: avp.StopGeneralError, Error: avp.ErrorVendor, Message: "Invalid challenge authentication"}))
	s.expect(acts, "ZLB 3/2", "down", "closed")
	if err := downErr(t, acts); !errors.Is(err, ErrAuth) || !strings.Contains(err.Error(), "Invalid challenge authentication") {
		t.Errorf("down with %v", err)
	}
}

func TestHidden(t *testing.T) {
	vector := []byte("random vector 16")
	hidden, err := avp.Hide(avp.Uint16(avp.AssignedTunnelID, lnsTunnel), secret, vector, []byte{9, 9, 9})
	if err != nil {
		t.Fatal(err)
	}
	avps := sccrp()
	avps[5] = hidden
	avps = append([]avp.AVP{avp.New(avp.RandomVector, vector)}, avps...)

	s := newScript(t, Config{Secret: secret, SkipChallenge: true})
	s.start()
	acts := s.recv(avp.SCCRP, 0, 1, 0, avps...)
	s.expect(acts, "SCCCN 1/1", "tunnel up", "ICRQ 2/1")
	if sent(t, acts, avp.SCCCN).TunnelID != lnsTunnel {
		t.Error("the hidden Assigned Tunnel ID was not revealed")
	}

	s = newScript(t, Config{Secret: []byte("other"), SkipChallenge: true})
	s.start()
	acts = s.recv(avp.SCCRP, 0, 1, 0, avps...)
	// Revealed with the wrong secret, the ID is garbage or the AVP
	// does not fit: either the attempt fails as an authentication
	// failure, or it addresses a wrong tunnel. Here it fails.
	if err := downErr(t, acts); !errors.Is(err, ErrAuth) {
		t.Errorf("hidden AVP with the wrong secret: down with %v, want ErrAuth", err)
	}
}

func TestRefused(t *testing.T) {
	s := newScript(t, Config{})
	s.start()
	acts := s.recv(avp.StopCCN, 0, 1, 0, avp.Uint16(avp.AssignedTunnelID, lnsTunnel),
		avp.NewResult(avp.Result{Code: avp.StopGeneralError, Error: avp.ErrorResources, Message: "busy"}))
	s.expect(acts, "ZLB 1/1", "down", "closed")
	err := downErr(t, acts)
	if !errors.Is(err, ErrRefused) || err.Error() != "the LNS refused the tunnel: result code 2 (general error), error 4 (insufficient resources): busy" {
		t.Errorf("down with %q", err)
	}
	if z := sent(t, acts, avp.ZLB); z.TunnelID != lnsTunnel {
		t.Errorf("ZLB to tunnel %d, want %d from the StopCCN", z.TunnelID, lnsTunnel)
	}
}

func TestLNSCloses(t *testing.T) {
	s := establish(t, Config{Secret: secret})
	acts := s.recv(avp.StopCCN, 2, 4, 0, avp.Uint16(avp.AssignedTunnelID, lnsTunnel), avp.NewResult(avp.Result{Code: avp.StopShutdown}))
	s.expect(acts, "ZLB 4/3", "down", "closed")
	if err := downErr(t, acts); !errors.Is(err, ErrClosed) {
		t.Errorf("down with %v", err)
	}
	// Its retransmission (the ZLB was lost) is acknowledged again.
	s.expect(s.recv(avp.StopCCN, 2, 4, 0, avp.Uint16(avp.AssignedTunnelID, lnsTunnel), avp.NewResult(avp.Result{Code: avp.StopShutdown})), "ZLB 4/3")
}

func TestLNSClosesSession(t *testing.T) {
	s := establish(t, Config{Secret: secret})
	acts := s.recv(avp.CDN, 2, 4, ourSession, avp.NewResult(avp.Result{Code: avp.CDNAdmin, Message: "bye"}), avp.Uint16(avp.AssignedSessionID, lnsSession))
	s.expect(acts, "ZLB 4/3", "down", "StopCCN 4/3")
	if err := downErr(t, acts); !errors.Is(err, ErrSessionClosed) || !strings.Contains(err.Error(), "(administrative reasons): bye") {
		t.Errorf("down with %v", err)
	}
	s.expect(s.recv(avp.ZLB, 3, 5, 0), "closed")
}

func TestStop(t *testing.T) {
	s := establish(t, Config{Secret: secret})
	acts := s.wire(s.c.Stop(avp.Result{Code: avp.StopClear, Message: "braid stops"}, s.now))
	s.expect(acts, "CDN 4/2", "StopCCN 5/2")
	cdn := sent(t, acts, avp.CDN)
	if r, _, _ := cdn.Result(); r.Code != avp.CDNAdmin || cdn.SessionID != lnsSession {
		t.Errorf("CDN %v result %+v", cdn, r)
	}
	if v, _, _ := cdn.Uint16(avp.AssignedSessionID); v != ourSession {
		t.Errorf("CDN Assigned Session ID %d", v)
	}
	if r, _, _ := sent(t, acts, avp.StopCCN).Result(); r.Code != avp.StopClear || r.Message != "braid stops" {
		t.Errorf("StopCCN result %+v", r)
	}
	s.expect(s.recv(avp.ZLB, 2, 5, 0))
	s.expect(s.recv(avp.ZLB, 2, 6, 0), "closed")
	if s.c.Phase() != Done {
		t.Errorf("phase %s", s.c.Phase())
	}
}

func TestStopUnanswered(t *testing.T) {
	s := establish(t, Config{})
	s.c.Stop(avp.Result{Code: avp.StopClear}, s.now)
	var acts []Action
	for s.c.Phase() != Done {
		acts = s.tick(s.c.Deadline().Sub(s.now))
	}
	s.expect(acts, "closed") // no Down: this side stopped
}

func TestHello(t *testing.T) {
	s := establish(t, Config{Timing: Timing{Hello: 30 * time.Second}})
	if d := s.c.Deadline().Sub(s.now); d != 30*time.Second {
		t.Fatalf("deadline in %v, want the HELLO's in 30 s", d)
	}
	s.expect(s.tick(30*time.Second), "HELLO 4/2")
	s.expect(s.recv(avp.ZLB, 2, 5, 0))
	// xl2tpd's own HELLO is acknowledged, and resets the idle timer.
	s.tick(10 * time.Second)
	s.expect(s.recv(avp.HELLO, 2, 5, 0), "ZLB 5/3")
	if d := s.c.Deadline().Sub(s.now); d != 30*time.Second {
		t.Errorf("deadline in %v after a message, want 30 s", d)
	}
	// An unanswered HELLO ends the tunnel as no answer.
	s.tick(30 * time.Second)
	var acts []Action
	for s.c.Phase() != Done {
		acts = s.tick(s.c.Deadline().Sub(s.now))
	}
	if err := downErr(t, acts); !errors.Is(err, ErrNoAnswer) {
		t.Errorf("down with %v", err)
	}
}

func TestUnknownMandatoryAVP(t *testing.T) {
	s := establish(t, Config{})
	acts := s.recv(avp.HELLO, 2, 4, 0, avp.AVP{Mandatory: true, Vendor: 9, Type: 1, Value: []byte{1}})
	s.expect(acts, "down", "CDN 4/3", "StopCCN 5/3")
	if r, _, _ := sent(t, acts, avp.StopCCN).Result(); r.Code != avp.StopGeneralError || r.Error != avp.ErrorUnknownMAVP {
		t.Errorf("StopCCN result %+v", r)
	}
	// An unknown AVP without the M bit is ignored.
	s = establish(t, Config{})
	s.expect(s.recv(avp.HELLO, 2, 4, 0, avp.AVP{Vendor: 9, Type: 1, Value: []byte{1}}), "ZLB 4/3")
}

// TestOtherTunnel: messages to another tunnel ID are not this
// connection's.
func TestOtherTunnel(t *testing.T) {
	s := establish(t, Config{})
	m := avp.NewMessage(avp.StopCCN, ourTunnel+1, 0, avp.NewResult(avp.Result{Code: 1}))
	m.Ns, m.Nr = 2, 4
	if acts := s.c.Receive(m, s.now); len(acts) != 0 {
		t.Errorf("a message to another tunnel: %q", summary(acts))
	}
}

// TestRandomIDs: every attempt draws new IDs from its randomness.
func TestRandomIDs(t *testing.T) {
	a := New(Config{Rand: bytes.NewReader([]byte{0, 0, 0, 1, 0, 2, 0, 3})})
	if _, err := a.Start(time.Time{}); err != nil {
		t.Fatal(err)
	}
	if lt, ls, _, _ := a.IDs(); lt != 1 || ls != 2 {
		t.Errorf("IDs %d %d, want 1 2 (0 is skipped)", lt, ls)
	}
	b := New(Config{Rand: bytes.NewReader(nil)})
	if _, err := b.Start(time.Time{}); err == nil {
		t.Error("Start without randomness succeeded")
	}
}
