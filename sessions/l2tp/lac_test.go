package l2tp

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/braid-router/braid/internal/netns"
	"github.com/braid-router/braid/internal/nstest"
	"github.com/braid-router/braid/sessions/l2tp/avp"
	"github.com/braid-router/braid/sessions/l2tp/control"
)

// peer is the test's side of TestFollowsPort: an LNS played message by
// message, which listens on 1701 and answers from another port, as RFC
// 2661 8.1 allows (xl2tpd always answers from 1701, so the real LNS
// cannot show this).
type peer struct {
	t         *testing.T
	listen    *net.UDPConn // :1701, where the SCCRQ goes
	answer    *net.UDPConn // another port, where everything else goes
	lac       netip.AddrPort
	ns, nr    uint16
	lacTunnel uint16
}

const (
	peerTunnel  = 0x0077
	peerSession = 0x0088
)

func (p *peer) read(c *net.UDPConn) ([]byte, netip.AddrPort) {
	p.t.Helper()
	buf := make([]byte, 2048)
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	n, from, err := c.ReadFromUDPAddrPort(buf)
	if err != nil {
		p.t.Fatalf("peer: %v", err)
	}
	return buf[:n], from
}

// expect reads the next control message from the LAC; it must be of type
// want (ZLBs are skipped unless want is ZLB). It advances nr.
func (p *peer) expect(c *net.UDPConn, want avp.MessageType) avp.Message {
	p.t.Helper()
	for {
		b, from := p.read(c)
		m, err := avp.ParseMessage(b)
		if err != nil {
			p.t.Fatalf("peer: the LAC sent %x: %v", b, err)
		}
		p.lac = from
		if m.Type() == avp.ZLB && want != avp.ZLB {
			continue
		}
		if m.Type() != want {
			p.t.Fatalf("peer: got %s, want %s", m, want)
		}
		if m.Type() != avp.ZLB {
			p.nr = m.Ns + 1
		}
		return m
	}
}

// send sends a control message from the answering port.
func (p *peer) send(t avp.MessageType, sid uint16, avps ...avp.AVP) {
	p.t.Helper()
	m := avp.Message{TunnelID: p.lacTunnel, SessionID: sid}
	if t != avp.ZLB {
		m = avp.NewMessage(t, p.lacTunnel, sid, avps...)
	}
	m.Ns, m.Nr = p.ns, p.nr
	if t != avp.ZLB {
		p.ns++
	}
	b, err := m.Append(nil)
	if err != nil {
		p.t.Fatal(err)
	}
	if _, err := p.answer.WriteToUDPAddrPort(b, p.lac); err != nil {
		p.t.Fatal(err)
	}
}

func (p *peer) sendData(lacSession uint16, frame []byte) {
	p.t.Helper()
	if _, err := p.answer.WriteToUDPAddrPort(avp.AppendData(nil, p.lacTunnel, lacSession, false, 0, frame), p.lac); err != nil {
		p.t.Fatal(err)
	}
}

// twoNamespaces links a LAC namespace (10.9.0.1, lac0) and a peer
// namespace (10.9.0.2) by a veth pair.
func twoNamespaces(t *testing.T) (lacNS, peerNS string) {
	lacNS, peerNS = nstest.New(t), nstest.New(t)
	nstest.Run(t, "ip", "-n", lacNS, "link", "add", "lac0", "type", "veth", "peer", "name", "lns0", "netns", peerNS)
	nstest.Run(t, "ip", "-n", lacNS, "addr", "add", "10.9.0.1/24", "dev", "lac0")
	nstest.Run(t, "ip", "-n", peerNS, "addr", "add", "10.9.0.2/24", "dev", "lns0")
	nstest.Run(t, "ip", "-n", lacNS, "link", "set", "lac0", "up")
	nstest.Run(t, "ip", "-n", peerNS, "link", "set", "lns0", "up")
	return lacNS, peerNS
}

// TestFollowsPort: the LNS answers the SCCRQ from another port; the LAC
// follows it (RFC 2661 8.1) for the rest of the tunnel, control and data.
// It also walks the caller's side: PPP frames that arrive during Dial
// are delivered when Run starts, Handle takes what the caller reads,
// WriteFrame sends, and a cancelled Run sends a CDN and a StopCCN.
func TestFollowsPort(t *testing.T) {
	lacNS, peerNS := twoNamespaces(t)
	p := &peer{t: t}
	nstest.Do(t, peerNS, func() error {
		var err error
		if p.listen, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(10, 9, 0, 2), Port: Port}); err != nil {
			return err
		}
		p.answer, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(10, 9, 0, 2)})
		return err
	})
	defer p.listen.Close()
	defer p.answer.Close()
	answerAddr := p.answer.LocalAddr().(*net.UDPAddr).AddrPort()

	var mu sync.Mutex
	var frames [][]byte
	cfg := Config{
		Server: netip.MustParseAddrPort("10.9.0.2:1701"), Local: netip.MustParseAddr("10.9.0.1"), Device: "lac0",
		PPP: func(f []byte) {
			mu.Lock()
			frames = append(frames, append([]byte(nil), f...))
			mu.Unlock()
		},
	}
	type dialed struct {
		s   *Session
		err error
	}
	dialc := make(chan dialed, 1)
	go func() {
		var d dialed
		netns.Do(lacNS, func() error {
			d.s, d.err = Dial(context.Background(), cfg, nstest.Logger(t))
			return nil
		})
		dialc <- d
	}()

	rq := p.expect(p.listen, avp.SCCRQ)
	p.lacTunnel, _, _ = rq.Uint16(avp.AssignedTunnelID)
	if _, ok := rq.Find(avp.Challenge); ok {
		t.Error("a challenge without a secret")
	}
	p.send(avp.SCCRP, 0, avp.Uint16(avp.ProtocolVersion, 0x0100), avp.Uint32(avp.FramingCapabilities, 3),
		avp.String(avp.HostName, "test-lns"), avp.Uint16(avp.AssignedTunnelID, peerTunnel))
	p.expect(p.answer, avp.SCCCN)
	icrq := p.expect(p.answer, avp.ICRQ)
	lacSession, _, _ := icrq.Uint16(avp.AssignedSessionID)
	p.send(avp.ICRP, lacSession, avp.Uint16(avp.AssignedSessionID, peerSession))
	iccn := p.expect(p.answer, avp.ICCN)
	if iccn.TunnelID != peerTunnel || iccn.SessionID != peerSession {
		t.Errorf("ICCN to %d/%d", iccn.TunnelID, iccn.SessionID)
	}
	// A PPP frame before the ICCN's acknowledgement: Dial keeps it.
	early := []byte{0xff, 0x03, 0xc0, 0x21, 1, 1, 0, 4}
	p.sendData(lacSession, early)
	p.send(avp.ZLB, 0)

	d := <-dialc
	if d.err != nil {
		t.Fatalf("Dial: %v", d.err)
	}
	s := d.s
	defer s.Close()
	info := s.Info()
	if info.LNS != answerAddr || info.State != "established" || info.PeerHost != "test-lns" {
		t.Errorf("Info %+v, want the LNS at %s, established", info, answerAddr)
	}
	if lt, ls, pt, ps := s.IDs(); lt != p.lacTunnel || ls != lacSession || pt != peerTunnel || ps != peerSession {
		t.Errorf("IDs %d %d %d %d", lt, ls, pt, ps)
	}
	if ra := s.Conn().RemoteAddr(); ra != nil {
		t.Logf("Conn's RemoteAddr: %v", ra)
	}

	// The caller: reads the socket, hands everything to Handle.
	go func() {
		buf := make([]byte, 2048)
		for {
			n, err := s.Conn().Read(buf)
			if errors.Is(err, net.ErrClosed) {
				return
			}
			if err == nil {
				s.Handle(buf[:n])
			}
		}
	}()
	ctx, cancel := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() { runErr <- s.Run(ctx) }()

	late := []byte{0xff, 0x03, 0xc0, 0x21, 1, 2, 0, 4}
	p.sendData(lacSession, late)
	waitFor(t, "both PPP frames, in order", 30*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(frames) == 2
	})
	mu.Lock()
	if !bytes.Equal(frames[0], early) || !bytes.Equal(frames[1], late) {
		t.Errorf("PPP frames %x, want %x then %x", frames, early, late)
	}
	mu.Unlock()

	// WriteFrame goes to where the LNS answers from, with its IDs.
	out := []byte{0xff, 0x03, 0xc0, 0x21, 2, 2, 0, 4}
	if err := s.WriteFrame(out); err != nil {
		t.Fatal(err)
	}
	b, _ := p.read(p.answer)
	h, payload, err := avp.Parse(b)
	if err != nil || h.Control || h.TunnelID != peerTunnel || h.SessionID != peerSession || !bytes.Equal(payload, out) {
		t.Errorf("data message %x (%+v, %v)", b, h, err)
	}

	// Control messages through Handle: a HELLO is acknowledged.
	p.send(avp.HELLO, 0)
	if z := p.expect(p.answer, avp.ZLB); z.Nr != p.ns {
		t.Errorf("ZLB Nr %d, want %d", z.Nr, p.ns)
	}

	cancel()
	cdn := p.expect(p.answer, avp.CDN)
	if sid, _, _ := cdn.Uint16(avp.AssignedSessionID); sid != lacSession || cdn.SessionID != peerSession {
		t.Errorf("CDN %v for session %d", cdn, sid)
	}
	p.expect(p.answer, avp.StopCCN)
	p.send(avp.ZLB, 0)
	select {
	case err := <-runErr:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("Run did not return")
	}
	if st := s.Info().State; st != "closed" {
		t.Errorf("after Run: %s, want closed (StopCCN acknowledged)", st)
	}

	// Nothing but the SCCRQ (retransmitted, on a slow day) went to port
	// 1701.
	p.listen.SetReadDeadline(time.Now())
	for buf := make([]byte, 2048); ; {
		n, _, err := p.listen.ReadFromUDPAddrPort(buf)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			break
		}
		if m, perr := avp.ParseMessage(buf[:n]); err != nil || perr != nil || m.Type() != avp.SCCRQ {
			t.Errorf("port 1701 got %x (%v)", buf[:n], err)
		}
	}
}

// TestNoAnswer: nothing listens where the LNS should be: Dial gives up
// after its retransmissions with ErrNoAnswer.
func TestNoAnswer(t *testing.T) {
	lacNS, _ := twoNamespaces(t)
	cfg := Config{Server: netip.MustParseAddrPort("10.9.0.2:1701"), Local: netip.MustParseAddr("10.9.0.1"), Device: "lac0",
		Timing: control.Timing{Retransmit: 50 * time.Millisecond, Retries: 2}}
	var err error
	nstest.Do(t, lacNS, func() error {
		_, err = Dial(context.Background(), cfg, nstest.Logger(t))
		return nil
	})
	if !errors.Is(err, ErrNoAnswer) {
		t.Fatalf("Dial: %v, want ErrNoAnswer", err)
	}
	t.Log(err)
}

// TestDialCancel: a Dial whose context ends returns the context's error.
func TestDialCancel(t *testing.T) {
	lacNS, _ := twoNamespaces(t)
	cfg := Config{Server: netip.MustParseAddrPort("10.9.0.2:1701"), Local: netip.MustParseAddr("10.9.0.1"), Device: "lac0"}
	ctx, cancel := context.WithCancelCause(context.Background())
	why := errors.New("the tunnel left the spec")
	var err error
	done := make(chan struct{})
	go func() {
		defer close(done)
		netns.Do(lacNS, func() error {
			_, err = Dial(ctx, cfg, nstest.Logger(t))
			return nil
		})
	}()
	cancel(why)
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatal("Dial did not return after its context ended")
	}
	if !errors.Is(err, why) {
		t.Fatalf("Dial: %v, want the context's cause", err)
	}
}
