package testlns

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"

	"golang.zx2c4.com/wireguard/tun"

	"github.com/braid-router/braid/internal/testlns/control"
	"github.com/braid-router/braid/internal/testlns/ppp"
	"github.com/braid-router/braid/sessions/l2tp/avp"
	"github.com/braid-router/braid/sessions/ppp/frame"
)

// ServerConfig is a whole test LNS: control connection, PPP and the data
// plane.
type ServerConfig struct {
	// Addr is where it listens for L2TP (an LNS's port is 1701).
	Addr netip.AddrPort
	// Hostname is its Host Name AVP and CHAP name ("lns" when empty).
	Hostname string
	// Secret is the tunnel secret (tunnel authentication both ways).
	Secret []byte
	// Auth, User and Password are the PPP login it accepts.
	Auth     ppp.Auth
	User     string
	Password []byte
	// InterfaceID is its IPV6CP interface identifier.
	InterfaceID [8]byte
	// Link is the TUN link that carries the sessions' IPv6, MTU its MTU.
	Link string
	MTU  int
	// Log is where it says what happens (never the secret or the
	// password); nil discards.
	Log *slog.Logger
}

// Server is a running test LNS with a control plane: it takes L2TPv2
// tunnels from LACs (braid), one session each, runs PPP over them, and
// carries the IPv6 of the newest session whose IPV6CP is open to and from
// one TUN link, which lives as long as the Server (so a DHCPv6 server and
// routes on it survive the sessions). An older session is closed when a
// newer one opens IPV6CP: a LAC that restarts replaces its dead tunnel.
type Server struct {
	cfg  ServerConfig
	conn *net.UDPConn
	dev  tun.Device
	log  *slog.Logger

	mu      sync.Mutex
	tunnels map[uint16]*lnsTunnel // by the LNS's tunnel ID
	opening []*lnsTunnel          // tunnels whose SCCRQ is being answered
	active  *lnsTunnel            // the session that owns the link
	done    sync.WaitGroup
}

// lnsTunnel is one LAC's tunnel and its session.
type lnsTunnel struct {
	peer    netip.AddrPort
	peerID  uint16 // the LAC's Assigned Tunnel ID
	ctl     *control.Conn
	link    *ppp.Conn
	session [2]uint16 // the LNS's and the LAC's session IDs, while up
}

// NewServer binds cfg.Addr and creates cfg.Link in the calling thread's
// network namespace; Run serves.
func NewServer(cfg ServerConfig) (*Server, error) {
	if cfg.Hostname == "" {
		cfg.Hostname = "lns"
	}
	if cfg.MTU == 0 {
		cfg.MTU = 1500
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	conn, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(cfg.Addr))
	if err != nil {
		return nil, fmt.Errorf("test LNS: %w", err)
	}
	dev, err := tun.CreateTUN(cfg.Link, cfg.MTU)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("test LNS: create %s: %w", cfg.Link, err)
	}
	go func() {
		for range dev.Events() {
		}
	}()
	return &Server{cfg: cfg, conn: conn, dev: dev, log: log, tunnels: map[uint16]*lnsTunnel{}}, nil
}

// Run serves until ctx is done, then closes every tunnel (StopCCN, not
// waited for), the socket and the link.
func (s *Server) Run(ctx context.Context) error {
	s.done.Add(2)
	go s.fromLACs()
	go s.fromLink()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			s.mu.Lock()
			now := time.Now()
			for _, t := range s.tunnels {
				s.carry(t, t.ctl.Stop(avp.Result{Code: avp.StopShutdown, HasError: true, Message: "LNS shutting down"}, now), now)
			}
			s.mu.Unlock()
			s.conn.Close()
			s.dev.Close()
			s.done.Wait()
			return nil
		case now := <-tick.C:
			s.mu.Lock()
			for _, t := range s.all() {
				if d := t.ctl.Deadline(); !d.IsZero() && !now.Before(d) {
					s.carry(t, t.ctl.Timeout(now), now)
				}
				if t.link != nil {
					if d := t.link.Deadline(); !d.IsZero() && !now.Before(d) {
						s.carryPPP(t, t.link.Timeout(now), now)
					}
				}
			}
			s.mu.Unlock()
		}
	}
}

// all returns every tunnel, opening ones included.
func (s *Server) all() []*lnsTunnel {
	ts := append([]*lnsTunnel(nil), s.opening...)
	for _, t := range s.tunnels {
		ts = append(ts, t)
	}
	return ts
}

// fromLACs reads L2TP from the socket.
func (s *Server) fromLACs() {
	defer s.done.Done()
	buf := make([]byte, 1<<16)
	for {
		n, from, err := s.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
		s.received(buf[:n], from, time.Now())
	}
}

func (s *Server) received(b []byte, from netip.AddrPort, now time.Time) {
	h, payload, err := avp.Parse(b)
	if err != nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !h.Control {
		t := s.tunnels[h.TunnelID]
		if t == nil || t.link == nil || h.SessionID != t.session[0] {
			return
		}
		f, err := frame.Parse(payload)
		if err == nil && f.Protocol == frame.ProtoIPv6 {
			if t == s.active && t.link.IPv6Up() {
				buf := make([]byte, tunOffset+len(f.Info))
				copy(buf[tunOffset:], f.Info)
				s.dev.Write([][]byte{buf}, tunOffset)
			}
			return
		}
		s.carryPPP(t, t.link.Input(payload, now), now)
		return
	}
	m, err := avp.ParseMessage(b)
	if err != nil {
		return
	}
	var t *lnsTunnel
	if m.TunnelID == 0 {
		if m.Type() != avp.SCCRQ {
			return
		}
		id, _, _ := m.Uint16(avp.AssignedTunnelID)
		for _, o := range s.all() {
			if o.peer == from && o.peerID == id && o.ctl.Phase() < control.Established {
				t = o // a retransmitted SCCRQ
			}
		}
		if t == nil {
			t = &lnsTunnel{peer: from, peerID: id, ctl: control.New(control.Config{Hostname: s.cfg.Hostname, Secret: s.cfg.Secret, Rand: rand.Reader})}
			s.opening = append(s.opening, t)
			s.log.Info("SCCRQ", "from", from, "host", hostOf(m))
		}
	} else if t = s.tunnels[m.TunnelID]; t == nil {
		return
	}
	// The LAC may move (RFC 2661 8.1): answer where it sends from.
	t.peer = from
	s.carry(t, t.ctl.Receive(m, now), now)
	if local, _ := t.ctl.Tunnels(); local != 0 && s.tunnels[local] == nil && t.ctl.Phase() < control.Done {
		s.tunnels[local] = t
		for i, o := range s.opening {
			if o == t {
				s.opening = append(s.opening[:i], s.opening[i+1:]...)
				break
			}
		}
	}
}

func hostOf(m avp.Message) string {
	h, _, _ := m.Bytes(avp.HostName, 0)
	return string(h)
}

// carry does what the control connection asks.
func (s *Server) carry(t *lnsTunnel, acts []control.Action, now time.Time) {
	for _, a := range acts {
		switch a := a.(type) {
		case control.Send:
			b, err := a.Msg.Append(nil)
			if err == nil {
				s.conn.WriteToUDPAddrPort(b, t.peer)
			}
		case control.TunnelUp:
			s.log.Info("tunnel up", "lac", t.peer, "host", a.PeerHost, "tunnel", a.LocalTunnel, "peer_tunnel", a.PeerTunnel)
		case control.SessionUp:
			s.log.Info("session up", "lac", t.peer, "session", a.LocalSession, "peer_session", a.PeerSession)
			t.session = [2]uint16{a.LocalSession, a.PeerSession}
			t.link = ppp.New(ppp.Config{Auth: s.cfg.Auth, User: s.cfg.User, Password: s.cfg.Password,
				Name: s.cfg.Hostname, InterfaceID: s.cfg.InterfaceID, Rand: rand.Reader})
			s.carryPPP(t, t.link.Open(now), now)
		case control.SessionDown:
			s.log.Info("session down", "lac", t.peer, "session", a.LocalSession, "why", a.Err)
			s.sessionGone(t)
		case control.Closed:
			s.log.Info("tunnel closed", "lac", t.peer, "why", a.Err)
			s.sessionGone(t)
			local, _ := t.ctl.Tunnels()
			if s.tunnels[local] == t {
				delete(s.tunnels, local)
			}
			for i, o := range s.opening {
				if o == t {
					s.opening = append(s.opening[:i], s.opening[i+1:]...)
					break
				}
			}
		}
	}
}

func (s *Server) sessionGone(t *lnsTunnel) {
	t.link, t.session = nil, [2]uint16{}
	if s.active == t {
		s.active = nil
	}
}

// carryPPP does what a session's PPP asks.
func (s *Server) carryPPP(t *lnsTunnel, acts []ppp.Action, now time.Time) {
	for _, a := range acts {
		if t.link == nil {
			return
		}
		switch a := a.(type) {
		case ppp.Send:
			s.conn.WriteToUDPAddrPort(avp.AppendData(nil, t.ctl.PeerTunnel(), t.session[1], false, 0, a.Frame), t.peer)
		case ppp.Authenticated:
			s.log.Info("PPP login accepted", "lac", t.peer, "login", a.Login, "auth", string(s.cfg.Auth))
		case ppp.Up:
			id := a.PeerID
			peerLL := netip.AddrFrom16([16]byte{0xfe, 0x80, 8: id[0], id[1], id[2], id[3], id[4], id[5], id[6], id[7]})
			s.log.Info("IPV6CP up", "lac", t.peer, "peer", peerLL, "link", s.cfg.Link)
			if old := s.active; old != nil && old != t {
				s.log.Info("closing the older tunnel", "lac", old.peer)
				s.carry(old, old.ctl.Stop(avp.Result{Code: avp.StopClear, HasError: true, Message: "replaced by a newer session"}, now), now)
			}
			s.active = t
		case ppp.Down:
			s.log.Info("PPP down", "lac", t.peer, "why", a.Err)
			s.carry(t, t.ctl.Stop(avp.Result{Code: avp.StopClear, HasError: true, Message: "PPP ended"}, now), now)
		}
	}
}

// The link's buffers leave room in front of each packet (the TUN
// device's virtio header).
const tunOffset = 16

// fromLink carries the link's IPv6 to the active session.
func (s *Server) fromLink() {
	defer s.done.Done()
	const n = 16
	bufs := make([][]byte, n)
	for i := range bufs {
		bufs[i] = make([]byte, tunOffset+65535)
	}
	sizes := make([]int, n)
	var out []byte
	for {
		k, err := s.dev.Read(bufs, sizes, tunOffset)
		if err != nil {
			if errors.Is(err, os.ErrClosed) {
				return
			}
			continue
		}
		s.mu.Lock()
		t := s.active
		if t != nil && t.link != nil && t.link.IPv6Up() {
			for i := range k {
				out = avp.AppendData(out[:0], t.ctl.PeerTunnel(), t.session[1], false, 0,
					frame.Append(nil, frame.ProtoIPv6, bufs[i][tunOffset:tunOffset+sizes[i]]))
				s.conn.WriteToUDPAddrPort(out, t.peer)
			}
		}
		s.mu.Unlock()
	}
}
