// Package l2tp is braid's L2TPv2 LAC (RFC 2661): one control connection
// to an LNS over UDP, carrying one session whose PPP frames the caller
// sends and receives. The wire format is package avp, the control
// connection's rules are package control (pure, no socket, no clock);
// this package owns the socket and the timers.
//
// # Socket
//
// Dial opens one UDP socket, bound to Config.Local (the via uplink's
// IPv4) on port 1701 when it is free, else on an ephemeral port (Info
// says which), and to Config.Device (SO_BINDTODEVICE), so the tunnel
// leaves through that uplink whatever the routing says. It sends the
// SCCRQ to Config.Server; the LNS may answer from another address or port
// (RFC 2661 8.1): the socket is connected to wherever the accepted SCCRP
// came from, and everything after, control and data, goes there. The
// firewall must let that answer in (the compiler's job: the tunnel's
// socket is braid's own).
//
// # Who reads
//
// Dial reads the socket itself until the session is established (its
// ICCN acknowledged), then returns; from then on only the caller reads
// it (Conn), so that the data plane owns the hot path. The caller hands
// every datagram that is not one of its own data frames to Handle:
// control messages go to the state machine, data messages' PPP frames to
// Config.PPP. Run keeps the timers (retransmissions, HELLO) until its
// context ends, then sends a CDN and a StopCCN and waits briefly for the
// acknowledgement, reading the socket itself for that while (on a
// duplicate of the descriptor, so the caller's deadlines are untouched).
package l2tp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/braid-router/braid/sessions/l2tp/avp"
	"github.com/braid-router/braid/sessions/l2tp/control"
)

// Port is L2TP's UDP port (RFC 2661 8.1).
const Port = 1701

// Why a tunnel went down: Dial's and Run's errors wrap one of them (see
// errors.Is). ErrAuth is not worth retrying soon (the secrets differ);
// the others are.
var (
	ErrAuth          = control.ErrAuth          // "tunnel authentication failed: wrong secret? ..."
	ErrRefused       = control.ErrRefused       // "the LNS refused the tunnel: <result code>"
	ErrClosed        = control.ErrClosed        // "the LNS closed the tunnel: <result code>"
	ErrSessionClosed = control.ErrSessionClosed // "the LNS closed the session: <CDN result>"
	ErrNoAnswer      = control.ErrNoAnswer      // "no answer from the LNS"
	ErrProtocol      = control.ErrProtocol      // the LNS sent what this LAC cannot go on with
)

// linger is how long a closing tunnel waits for the LNS to acknowledge
// its StopCCN.
const linger = 3 * time.Second

// Config is a LAC's configuration.
type Config struct {
	// Server is the LNS: its IPv4 address and port (1701 when 0).
	Server netip.AddrPort
	// Local is the source address, the via uplink's IPv4; the zero Addr
	// lets the kernel choose.
	Local netip.Addr
	// Device is the via uplink's link (SO_BINDTODEVICE); "" for none.
	Device string
	// Secret is the tunnel secret; it may be empty. Never logged.
	Secret []byte
	// Hostname is the Host Name AVP ("braid" when empty).
	Hostname string
	// PPP receives every PPP frame (from the Address and Control fields
	// on, as carried) of the session's data messages that reach Handle,
	// and those Dial read, once Run starts. It must not keep the slice.
	PPP func(frame []byte)
	// SkipChallenge: do not challenge the LNS even with a secret.
	SkipChallenge bool
	// Timing are the control connection's timers; zero fields take the
	// defaults (RFC 2661's).
	Timing control.Timing
	// Rand is the source of IDs and challenges; nil is crypto/rand.
	Rand io.Reader
}

// Info is a tunnel's state, for status.
type Info struct {
	// State is the control connection's phase: "connecting", "calling",
	// "connecting session", "established", "stopping", "closed".
	State string
	// LNS is where the LNS answers from; LocalPort is this side's UDP
	// port (1701, or an ephemeral one when 1701 was taken).
	LNS       netip.AddrPort
	LocalPort uint16
	// PeerHost is the LNS's Host Name AVP.
	PeerHost                                           string
	LocalTunnel, LocalSession, PeerTunnel, PeerSession uint16
	// Established is when the session came up.
	Established time.Time
	// Err is why the tunnel went down; nil while it is not.
	Err error
}

// Session is an established L2TP tunnel with its one session.
type Session struct {
	cfg  Config
	log  *slog.Logger
	conn *net.UDPConn
	port uint16

	mu          sync.Mutex
	m           *control.Conn
	peer        netip.AddrPort
	connected   bool
	up          bool
	established time.Time
	down        error
	done        chan struct{}
	wake        chan struct{}
	// The IDs, fixed once the session is up.
	lt, ls, pt, ps uint16

	pppMu   sync.Mutex
	running bool
	pending [][]byte

	closeOnce sync.Once
}

// Dial brings up a tunnel and its session with the LNS at cfg.Server,
// reading the socket itself, and returns once the session is
// established, or the reason it could not be: an error wrapping ErrAuth,
// ErrRefused, ErrSessionClosed, ErrNoAnswer, ErrProtocol, or ctx's.
func Dial(ctx context.Context, cfg Config, log *slog.Logger) (*Session, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if !cfg.Server.Addr().Is4() {
		return nil, fmt.Errorf("l2tp: LNS %s is not an IPv4 address", cfg.Server)
	}
	if cfg.Server.Port() == 0 {
		cfg.Server = netip.AddrPortFrom(cfg.Server.Addr(), Port)
	}
	conn, err := listen(ctx, cfg)
	if err != nil {
		return nil, err
	}
	s := &Session{
		cfg: cfg, log: log.With("lns", cfg.Server), conn: conn,
		port: uint16(conn.LocalAddr().(*net.UDPAddr).Port),
		m: control.New(control.Config{Hostname: cfg.Hostname, Secret: cfg.Secret, SkipChallenge: cfg.SkipChallenge,
			Timing: cfg.Timing, Rand: cfg.Rand}),
		peer: cfg.Server,
		done: make(chan struct{}),
		wake: make(chan struct{}, 1),
	}
	if err := s.dial(ctx); err != nil {
		conn.Close()
		return nil, fmt.Errorf("l2tp: tunnel to %s: %w", cfg.Server, err)
	}
	return s, nil
}

// listen opens the tunnel's socket: Local:1701 if free, else an
// ephemeral port, bound to Device.
func listen(ctx context.Context, cfg Config) (*net.UDPConn, error) {
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		if cfg.Device == "" {
			return nil
		}
		var serr error
		if err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptString(int(fd), unix.SOL_SOCKET, unix.SO_BINDTODEVICE, cfg.Device)
		}); err != nil {
			return err
		}
		if serr != nil {
			return fmt.Errorf("bind to device %s: %w", cfg.Device, serr)
		}
		return nil
	}}
	local := cfg.Local
	if !local.IsValid() {
		local = netip.IPv4Unspecified()
	}
	var err error
	for _, port := range []uint16{Port, 0} {
		var pc net.PacketConn
		pc, err = lc.ListenPacket(ctx, "udp4", netip.AddrPortFrom(local, port).String())
		if err == nil {
			return pc.(*net.UDPConn), nil
		}
		if !errors.Is(err, unix.EADDRINUSE) {
			break
		}
	}
	return nil, fmt.Errorf("l2tp: open UDP socket on %s: %w", local, err)
}

// dial runs the bring-up until the session is up.
func (s *Session) dial(ctx context.Context) error {
	s.log.Info("l2tp: connecting", "local", s.conn.LocalAddr(), "device", s.cfg.Device)
	s.mu.Lock()
	acts, err := s.m.Start(time.Now())
	if err == nil {
		s.apply(acts)
	}
	s.mu.Unlock()
	if err != nil {
		return err
	}
	// ctx ending wakes the read below, but never once dial returned:
	// the caller's reads would all time out.
	var wmu sync.Mutex
	dialing := true
	stopWake := context.AfterFunc(ctx, func() {
		wmu.Lock()
		defer wmu.Unlock()
		if dialing {
			s.conn.SetReadDeadline(time.Now())
		}
	})
	defer func() {
		stopWake()
		wmu.Lock()
		dialing = false
		wmu.Unlock()
		s.conn.SetReadDeadline(time.Time{})
	}()
	buf := make([]byte, 64<<10)
	for {
		s.mu.Lock()
		up, phase, deadline, down := s.up, s.m.Phase(), s.m.Deadline(), s.down
		s.mu.Unlock()
		switch {
		case up:
			return nil
		case down != nil:
			// Give the StopCCN, if any, a moment for its
			// acknowledgement; not the full retransmission cycle.
			s.lingerOn(s.conn)
			return down
		case phase == control.Done:
			return errors.New("closed")
		}
		if deadline.IsZero() {
			deadline = time.Now().Add(time.Second)
		}
		s.conn.SetReadDeadline(deadline)
		if ctx.Err() != nil {
			s.stop(context.Cause(ctx))
			s.lingerOn(s.conn)
			return context.Cause(ctx)
		}
		n, from, err := s.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				s.timeout()
				continue
			}
			return fmt.Errorf("read: %w", err)
		}
		s.receive(buf[:n], from, true)
	}
}

// receive takes a datagram from the LNS. While dialing, the first SCCRP
// accepted says where the LNS answers from: the socket follows it.
func (s *Session) receive(pkt []byte, from netip.AddrPort, dialing bool) {
	h, payload, err := avp.Parse(pkt)
	if err != nil {
		s.log.Debug("l2tp: dropping a datagram", "from", from, "err", err)
		return
	}
	if !h.Control {
		s.data(h, payload)
		return
	}
	msg, err := avp.ParseMessage(pkt)
	if err != nil {
		s.log.Debug("l2tp: dropping a control message", "from", from, "err", err)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if dialing && !s.connected && from != s.peer && msg.Type() != avp.SCCRP {
		s.log.Debug("l2tp: ignoring a message not from the LNS", "from", from, "msg", msg)
		return
	}
	s.log.Debug("l2tp: received", "msg", msg)
	before := s.m.Phase()
	acts := s.m.Receive(msg, time.Now())
	if dialing && !s.connected && before == control.WaitSCCRP && s.m.Phase() != control.WaitSCCRP && len(acts) > 0 {
		if from != s.peer {
			s.log.Info("l2tp: the LNS answers from another address (RFC 2661 8.1): following it", "from", from)
		}
		s.peer = from
		if err := connect(s.conn, from); err != nil {
			s.log.Warn("l2tp: cannot connect the socket to the LNS", "to", from, "err", err)
		} else {
			s.connected = true
		}
	}
	s.apply(acts)
}

// data takes a data message: its PPP frame, if it is the session's.
func (s *Session) data(h avp.Header, frame []byte) {
	s.mu.Lock()
	lt, ls, _, ps := s.m.IDs()
	ok := ps != 0 && h.TunnelID == lt && h.SessionID == ls
	s.mu.Unlock()
	if !ok || s.cfg.PPP == nil {
		return
	}
	s.pppMu.Lock()
	defer s.pppMu.Unlock()
	if !s.running {
		s.pending = append(s.pending, append([]byte(nil), frame...))
		return
	}
	s.cfg.PPP(frame)
}

// connect connects c to the LNS in the kernel: from then on it only
// receives from there, and Write sends there.
func connect(c *net.UDPConn, to netip.AddrPort) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var cerr error
	err = rc.Control(func(fd uintptr) {
		cerr = unix.Connect(int(fd), &unix.SockaddrInet4{Port: int(to.Port()), Addr: to.Addr().As4()})
	})
	if err != nil {
		return err
	}
	return cerr
}

func (s *Session) timeout() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if d := s.m.Deadline(); !d.IsZero() && !time.Now().Before(d) {
		s.apply(s.m.Timeout(time.Now()))
	}
}

// apply carries out the machine's actions; s.mu is held.
func (s *Session) apply(acts []control.Action) {
	for _, a := range acts {
		switch a := a.(type) {
		case control.Send:
			s.write(a.Msg)
		case control.TunnelUp:
			s.log.Info("l2tp: tunnel up", "tunnel", a.LocalTunnel, "peer_tunnel", a.PeerTunnel, "peer_host", a.PeerHost)
		case control.SessionUp:
			s.up, s.established = true, time.Now()
			s.lt, s.ls, s.pt, s.ps = a.LocalTunnel, a.LocalSession, a.PeerTunnel, a.PeerSession
			s.log.Info("l2tp: session up", "tunnel", a.LocalTunnel, "session", a.LocalSession,
				"peer_tunnel", a.PeerTunnel, "peer_session", a.PeerSession)
		case control.Down:
			s.down = a.Err
			s.log.Warn("l2tp: tunnel down", "err", a.Err)
		case control.Closed:
			select {
			case <-s.done:
			default:
				close(s.done)
			}
		}
	}
	if len(acts) > 0 {
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
}

// write sends a control message; s.mu is held.
func (s *Session) write(m avp.Message) {
	b, err := m.Append(nil)
	if err != nil {
		s.log.Error("l2tp: cannot encode", "msg", m, "err", err)
		return
	}
	if s.connected {
		_, err = s.conn.Write(b)
	} else {
		_, err = s.conn.WriteToUDPAddrPort(b, s.peer)
	}
	if err != nil {
		// Like a lost datagram: retransmission deals with it.
		s.log.Debug("l2tp: send failed", "msg", m, "err", err)
		return
	}
	s.log.Debug("l2tp: sent", "msg", m)
}

// stop asks the machine to close the tunnel, saying why.
func (s *Session) stop(why error) {
	msg := "braid is stopping the tunnel"
	if why != nil && !errors.Is(why, context.Canceled) {
		msg = why.Error()
	}
	if len(msg) > 200 {
		msg = msg[:200]
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.apply(s.m.Stop(avp.Result{Code: avp.StopClear, Message: msg}, time.Now()))
}

// lingerOn reads c (the socket, or a duplicate of it) until the machine
// is done or linger passes, for the StopCCN's acknowledgement.
func (s *Session) lingerOn(c *net.UDPConn) {
	end := time.Now().Add(linger)
	buf := make([]byte, 64<<10)
	for time.Now().Before(end) {
		s.mu.Lock()
		phase, d := s.m.Phase(), s.m.Deadline()
		s.mu.Unlock()
		if phase == control.Done {
			return
		}
		if d.IsZero() || d.After(end) {
			d = end
		}
		c.SetReadDeadline(d)
		n, from, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				s.timeout()
				continue
			}
			return
		}
		s.receive(buf[:n], from, false)
	}
}

// Conn is the tunnel's socket, connected to the LNS's current address
// and port: the data plane reads it (handing what is not its own to
// Handle) and writes data messages to it.
func (s *Session) Conn() *net.UDPConn { return s.conn }

// IDs are the tunnel's and the session's IDs: this side's (the LNS puts
// them in what it sends) and the LNS's (this side puts them in what it
// sends).
func (s *Session) IDs() (localTunnel, localSession, peerTunnel, peerSession uint16) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lt, s.ls, s.pt, s.ps
}

// Handle takes a datagram the caller read from Conn that is not one of
// its own data frames: a control message goes to the control connection,
// a data message of the session to Config.PPP. It does not keep pkt.
func (s *Session) Handle(pkt []byte) {
	s.mu.Lock()
	peer := s.peer
	s.mu.Unlock()
	s.receive(pkt, peer, false)
}

// WriteFrame sends frame, a PPP frame (from its Address and Control
// fields), as a data message of the session.
func (s *Session) WriteFrame(frame []byte) error {
	s.mu.Lock()
	pt, ps := s.pt, s.ps
	s.mu.Unlock()
	b := avp.AppendData(make([]byte, 0, 6+len(frame)), pt, ps, false, 0, frame)
	if _, err := s.conn.Write(b); err != nil {
		return fmt.Errorf("l2tp: send PPP frame: %w", err)
	}
	return nil
}

// Run keeps the control connection (retransmissions, HELLO, and what
// Handle brings) until ctx ends or the tunnel goes down. When ctx ends,
// it sends a CDN and a StopCCN (result 1, with context.Cause's text) and
// waits up to 3 s for the acknowledgement, then returns nil; when the LNS
// closes the tunnel or stops answering, it returns why (ErrClosed,
// ErrSessionClosed, ErrNoAnswer, ...). Run does not close the socket:
// Close does.
func (s *Session) Run(ctx context.Context) error {
	s.pppMu.Lock()
	for _, f := range s.pending {
		s.cfg.PPP(f)
	}
	s.pending, s.running = nil, true
	s.pppMu.Unlock()

	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		s.mu.Lock()
		d, down := s.m.Deadline(), s.down
		s.mu.Unlock()
		select {
		case <-s.done:
			if down == nil {
				down = errors.New("closed")
			}
			return fmt.Errorf("l2tp: tunnel to %s: %w", s.cfg.Server, down)
		default:
		}
		wait := time.Hour
		if !d.IsZero() {
			wait = max(time.Until(d), 0)
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			s.log.Info("l2tp: closing the tunnel", "why", context.Cause(ctx))
			s.stop(context.Cause(ctx))
			s.linger()
			return nil
		case <-timer.C:
			s.timeout()
		case <-s.wake:
		}
	}
}

// linger waits for the StopCCN's acknowledgement, reading a duplicate of
// the socket's descriptor alongside the caller's reader, if any.
func (s *Session) linger() {
	f, err := s.conn.File()
	if err != nil {
		return
	}
	pc, err := net.FilePacketConn(f)
	f.Close()
	if err != nil {
		return
	}
	defer pc.Close()
	if c, ok := pc.(*net.UDPConn); ok {
		s.lingerOn(c)
	}
}

// Info is the tunnel's state now.
func (s *Session) Info() Info {
	s.mu.Lock()
	defer s.mu.Unlock()
	lt, ls, pt, ps := s.m.IDs()
	return Info{
		State: s.m.Phase().String(), LNS: s.peer, LocalPort: s.port, PeerHost: s.m.PeerHost(),
		LocalTunnel: lt, LocalSession: ls, PeerTunnel: pt, PeerSession: ps,
		Established: s.established, Err: s.down,
	}
}

// Close closes the socket. Call it once Run has returned (or instead of
// Run, which then sends nothing).
func (s *Session) Close() error {
	var err error
	s.closeOnce.Do(func() { err = s.conn.Close() })
	return err
}
