package control

import (
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/braid-router/braid/sessions/l2tp/avp"
	lac "github.com/braid-router/braid/sessions/l2tp/control"
)

// pair runs braid's LAC side (sessions/l2tp/control) against the LNS's
// in memory, every message through its bytes (Append, ParseMessage), on
// a fake clock; drop decides whether a message is lost.
type pair struct {
	t    *testing.T
	now  time.Time
	lac  *lac.Conn
	lns  *Conn
	drop func(toLAC bool, m avp.Message) bool

	lacTunnel, lacSession bool
	lacDown               error
	lacClosed             bool
	lnsTunnel             *TunnelUp
	lnsSession            *SessionUp
	lnsSessionDown        *SessionDown
	lnsClosed             *Closed
	sent                  map[avp.MessageType]int // by the LNS
}

func newPair(t *testing.T, lacSecret, lnsSecret string) *pair {
	return &pair{t: t, now: time.Unix(1e9, 0), sent: map[avp.MessageType]int{},
		lac: lac.New(lac.Config{Hostname: "braid", Secret: []byte(lacSecret), Rand: rand.NewChaCha8([32]byte{1})}),
		lns: New(Config{Hostname: "lns", Secret: []byte(lnsSecret), Rand: rand.NewChaCha8([32]byte{2})}),
	}
}

// wire returns m as its receiver reads it.
func (p *pair) wire(m avp.Message) avp.Message {
	b, err := m.Append(nil)
	if err != nil {
		p.t.Fatal(err)
	}
	r, err := avp.ParseMessage(b)
	if err != nil {
		p.t.Fatalf("%s does not parse: %v", m, err)
	}
	return r
}

func (p *pair) fromLAC(acts []lac.Action) {
	for _, a := range acts {
		switch a := a.(type) {
		case lac.Send:
			if p.drop != nil && p.drop(false, a.Msg) {
				continue
			}
			p.fromLNS(p.lns.Receive(p.wire(a.Msg), p.now))
		case lac.TunnelUp:
			p.lacTunnel = true
		case lac.SessionUp:
			p.lacSession = true
		case lac.Down:
			p.lacDown = a.Err
		case lac.Closed:
			p.lacClosed = true
		}
	}
}

func (p *pair) fromLNS(acts []Action) {
	for _, a := range acts {
		switch a := a.(type) {
		case Send:
			p.sent[a.Msg.Type()]++
			if p.drop != nil && p.drop(true, a.Msg) {
				continue
			}
			p.fromLAC(p.lac.Receive(p.wire(a.Msg), p.now))
		case TunnelUp:
			p.lnsTunnel = &a
		case SessionUp:
			p.lnsSession = &a
		case SessionDown:
			p.lnsSessionDown = &a
		case Closed:
			p.lnsClosed = &a
		}
	}
}

func (p *pair) start() {
	acts, err := p.lac.Start(p.now)
	if err != nil {
		p.t.Fatal(err)
	}
	p.fromLAC(acts)
}

// run advances the clock in steps of 100 ms for d, running the timers.
func (p *pair) run(d time.Duration) {
	for end := p.now.Add(d); p.now.Before(end); p.now = p.now.Add(100 * time.Millisecond) {
		if dl := p.lac.Deadline(); !dl.IsZero() && !p.now.Before(dl) {
			p.fromLAC(p.lac.Timeout(p.now))
		}
		if dl := p.lns.Deadline(); !dl.IsZero() && !p.now.Before(dl) {
			p.fromLNS(p.lns.Timeout(p.now))
		}
	}
}

// braid's LAC brings the tunnel (authenticated both ways) and the session
// up, and both sides agree on the IDs.
func TestBraidConnects(t *testing.T) {
	p := newPair(t, "6pe", "6pe")
	p.start()
	if !p.lacTunnel || !p.lacSession || p.lnsTunnel == nil || p.lnsSession == nil {
		t.Fatalf("braid: tunnel %v session %v; LNS: tunnel %v session %v (braid %v)", p.lacTunnel, p.lacSession, p.lnsTunnel, p.lnsSession, p.lacDown)
	}
	lt, ls, pt, ps := p.lac.IDs()
	if p.lnsTunnel.PeerTunnel != lt || p.lnsTunnel.LocalTunnel != pt || p.lnsSession.PeerSession != ls || p.lnsSession.LocalSession != ps {
		t.Errorf("braid's IDs %d/%d %d/%d, the LNS's %+v %+v", lt, ls, pt, ps, p.lnsTunnel, p.lnsSession)
	}
	if p.lnsTunnel.PeerHost != "braid" || p.lac.PeerHost() != "lns" {
		t.Errorf("host names: the LNS saw %q, braid %q", p.lnsTunnel.PeerHost, p.lac.PeerHost())
	}
	if p.sent[avp.SCCRP] != 1 || p.sent[avp.ICRP] != 1 {
		t.Errorf("the LNS sent %v", p.sent)
	}
	// Quiet minutes: braid's HELLOs (it sends one after 60 s without a
	// message, before the LNS would), acknowledged; nothing goes down.
	zlbs := p.sent[avp.ZLB]
	p.run(3 * time.Minute)
	if p.sent[avp.ZLB] < zlbs+2 || p.lacDown != nil || p.lnsClosed != nil {
		t.Errorf("after 3 minutes: the LNS sent %v; braid %v, LNS %v", p.sent, p.lacDown, p.lnsClosed)
	}
	// braid stops: CDN, StopCCN; the LNS ends the session and the tunnel.
	p.fromLAC(p.lac.Stop(avp.Result{Code: avp.StopClear}, p.now))
	p.run(time.Second)
	if p.lnsSessionDown == nil || p.lnsClosed == nil || !errors.Is(p.lnsClosed.Err, ErrStopped) || !p.lacClosed {
		t.Errorf("after braid's Stop: LNS session down %v, closed %v; braid closed %v", p.lnsSessionDown, p.lnsClosed, p.lacClosed)
	}
}

// Different secrets end the tunnel with tunnel authentication failing on
// whichever side checks first: braid, which challenges the LNS, sees a
// wrong response; a LAC that does not challenge is caught by the LNS's
// own challenge (StopCCN, result 4).
func TestWrongSecret(t *testing.T) {
	p := newPair(t, "not-6pe", "6pe")
	p.start()
	p.run(2 * time.Second)
	if !errors.Is(p.lacDown, lac.ErrAuth) || p.lnsTunnel != nil {
		t.Errorf("braid %v, LNS tunnel %v", p.lacDown, p.lnsTunnel)
	}

	p = newPair(t, "not-6pe", "6pe")
	p.lac = lac.New(lac.Config{Secret: []byte("not-6pe"), SkipChallenge: true, Rand: rand.NewChaCha8([32]byte{1})})
	p.start()
	p.run(2 * time.Second)
	if p.lnsClosed == nil || !errors.Is(p.lnsClosed.Err, ErrAuth) || p.lnsTunnel != nil {
		t.Errorf("LNS closed %v, tunnel %v", p.lnsClosed, p.lnsTunnel)
	}
	if !errors.Is(p.lacDown, lac.ErrAuth) {
		t.Errorf("braid: %v, want %v", p.lacDown, lac.ErrAuth)
	}
}

// Lost messages both ways are sent again, and the connection comes up.
func TestLoss(t *testing.T) {
	p := newPair(t, "6pe", "6pe")
	lost := map[avp.MessageType]bool{}
	p.drop = func(_ bool, m avp.Message) bool {
		// The first of each kind but ZLBs is lost.
		if m.Type() == avp.ZLB || lost[m.Type()] {
			return false
		}
		lost[m.Type()] = true
		return true
	}
	p.start()
	p.run(30 * time.Second)
	if !p.lacSession || p.lnsSession == nil || p.lacDown != nil {
		t.Fatalf("not up after losses: braid session %v (%v), LNS session %v", p.lacSession, p.lacDown, p.lnsSession)
	}
}

// A LAC that goes silent: the LNS's HELLO goes unanswered, and after its
// retransmissions the tunnel is closed.
func TestSilentLAC(t *testing.T) {
	p := newPair(t, "6pe", "6pe")
	p.start()
	p.drop = func(toLAC bool, _ avp.Message) bool { return toLAC }
	p.run(3 * time.Minute)
	if p.lnsClosed == nil || !errors.Is(p.lnsClosed.Err, ErrNoAnswer) || p.lnsSessionDown == nil {
		t.Errorf("LNS closed %v, session down %v", p.lnsClosed, p.lnsSessionDown)
	}
}

// The LNS stops the session (a newer one replaces it): braid hears the
// CDN and closes its tunnel.
func TestStopSession(t *testing.T) {
	p := newPair(t, "6pe", "6pe")
	p.start()
	p.fromLNS(p.lns.StopSession(p.now))
	p.run(time.Second)
	if !errors.Is(p.lacDown, lac.ErrSessionClosed) || p.lnsSessionDown == nil {
		t.Errorf("braid %v, LNS session down %v", p.lacDown, p.lnsSessionDown)
	}
}
