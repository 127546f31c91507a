package proxy

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/Jigsaw-Code/outline-sdk/transport/shadowsocks"

	"github.com/braid-router/braid/api"
	"github.com/braid-router/braid/internal/transparent"
	"github.com/braid-router/braid/session"
	"github.com/braid-router/braid/sessions/proxy/peerhealth"
	"github.com/braid-router/braid/sessions/proxy/subflows"
)

// Defaults of a Proxy's zero fields.
const (
	// DefaultIdle is how long a relayed connection may carry no byte in
	// either direction before it is reset.
	DefaultIdle = 5 * time.Minute
	// DefaultDialTimeout bounds the connection to the peer.
	DefaultDialTimeout = 10 * time.Second
)

// Proxy is the transparent proxy session: it listens with IP_TRANSPARENT
// on Config.Port in both families and carries every LAN connection the
// steering hands it to the peer, one Multipath TCP connection each,
// in the shadowsocks AEAD stream. The zero value is ready.
type Proxy struct {
	// Idle is how long a connection may stay silent both ways; zero:
	// DefaultIdle.
	Idle time.Duration
	// DialTimeout bounds the dial to the peer; zero: DefaultDialTimeout.
	DialTimeout time.Duration
	// ProbeInterval and ProbeTimeout time the peer's probes; zero:
	// DefaultProbeInterval and DefaultProbeTimeout.
	ProbeInterval time.Duration
	ProbeTimeout  time.Duration
	// Health are the thresholds of the peer's health (its K, its
	// trials' backoff); zero fields take peerhealth's defaults.
	Health peerhealth.Params
	// SubflowSettle is how long after the peer first answered a
	// connection its MPTCP subflows are looked at (package subflows);
	// zero: DefaultSubflowSettle.
	SubflowSettle time.Duration
	// UDPIdle is how long a UDP association may stay silent both ways;
	// zero: DefaultUDPIdle.
	UDPIdle time.Duration
	// UDPAssociations bounds the UDP associations at once; zero:
	// DefaultUDPAssociations.
	UDPAssociations int

	mu     sync.Mutex
	cur    *relayer // while Run runs: the relayer of new connections
	port   int
	health *peerHealth
	tcp    bool // whether Run listens for TCP
	ctx    context.Context
	udp    *udpRelay // while Run runs with Config.UDP peer
}

// Run implements session.Session: it listens and probes its peer until
// ctx ends, then closes the listeners and every relayed connection,
// withdraws its verdict on the peer, and returns once they are gone. A
// key that does not resolve, an unknown cipher or a port taken are errors
// (the supervisor retries after its backoff). With Config.TCP direct it
// listens for UDP only; with Config.UDP peer it relays UDP too (udp.go).
func (p *Proxy) Run(ctx context.Context, cfg Config, env *session.Env) error {
	health := newPeerHealth(env, cmp.Or(p.ProbeInterval, DefaultProbeInterval), cmp.Or(p.ProbeTimeout, DefaultProbeTimeout),
		cmp.Or(p.SubflowSettle, DefaultSubflowSettle), p.Health)
	r, err := p.relayer(cfg, env, health)
	if err != nil {
		return err
	}
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	tcp := cfg.TCP != api.TCPDirect
	for _, network := range []string{"tcp4", "tcp6"} {
		if !tcp {
			break
		}
		ln, err := transparent.Listen(ctx, network, cfg.Port)
		if err != nil {
			return fmt.Errorf("proxy: %w", err)
		}
		lns = append(lns, ln)
	}
	p.mu.Lock()
	p.cur, p.port, p.health, p.tcp, p.ctx = r, cfg.Port, health, tcp, ctx
	if cfg.UDP == api.UDPPeer {
		if err := p.startUDP(r); err != nil {
			p.cur, p.health, p.ctx = nil, nil, nil
			p.mu.Unlock()
			return err
		}
	}
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		u := p.udp
		p.cur, p.health, p.ctx, p.udp = nil, nil, nil, nil
		p.mu.Unlock()
		if u != nil {
			u.Close()
		}
	}()
	// The status says where it listens: only once every listener is
	// bound, UDP's too.
	if err := health.configure(cfg, r.key, r.secret, detail(cfg, r)); err != nil {
		return err
	}
	var wg sync.WaitGroup
	for _, ln := range lns {
		wg.Go(func() { p.accept(ctx, ln.(*net.TCPListener), cfg.Port, &wg) })
	}
	wg.Go(func() { health.run(ctx) })
	<-ctx.Done()
	for _, ln := range lns {
		ln.Close()
	}
	wg.Wait()
	return nil
}

// Update implements session.Updater: a new peer, cipher or key applies to
// the connections accepted from now on, while those relayed already go on
// with theirs, and the peer's health is judged anew; other uplinks to
// probe over, as their health changes, take effect at the next probe.
// The UDP relay starts or stops with Config.UDP; a new peer, cipher or
// key ends its associations, and the next datagrams open new ones with
// it. Another port, or TCP on or off, needs a restart.
func (p *Proxy) Update(cfg Config) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cur == nil || cfg.Port != p.port || p.tcp != (cfg.TCP != api.TCPDirect) {
		return session.ErrRestart
	}
	r, err := p.relayer(cfg, p.health.env, p.health)
	if err != nil {
		return err
	}
	switch {
	case cfg.UDP == api.UDPPeer && p.udp == nil:
		if err := p.startUDP(r); err != nil {
			return err
		}
	case cfg.UDP != api.UDPPeer && p.udp != nil:
		p.udp.Close()
		p.udp = nil
	case p.udp != nil && (r.peer != p.cur.peer || r.cipher != p.cur.cipher || r.secret != p.cur.secret):
		p.udp.setParams(r.udpParams())
	}
	if err := p.health.configure(cfg, r.key, r.secret, detail(cfg, r)); err != nil {
		return err
	}
	p.cur = r
	return nil
}

// startUDP starts the UDP relay with r's peer and key; p.mu is held.
func (p *Proxy) startUDP(r *relayer) error {
	u, err := listenUDP(p.ctx, p.port, cmp.Or(p.UDPIdle, DefaultUDPIdle), cmp.Or(p.UDPAssociations, DefaultUDPAssociations), r.udpParams(), r.log)
	if err != nil {
		return err
	}
	p.udp = u
	return nil
}

// detail is the session's status while it relays cfg with r: what it
// listens for, and where it relays.
func detail(cfg Config, r *relayer) string {
	what := "tcp"
	switch {
	case cfg.TCP != api.TCPDirect && cfg.UDP == api.UDPPeer:
		what = "tcp and udp"
	case cfg.UDP == api.UDPPeer:
		what = "udp"
	}
	return fmt.Sprintf("listening on port %d (%s), peer %s (%s)", cfg.Port, what, r.peer, r.cipher)
}

// SubflowVerdicts returns the verdicts on the uplinks' MPTCP subflows to
// the peer (package subflows) that connections said something of, for
// the uplinks plain TCP reaches the peer over; none while the session
// does not run. It may be called from any goroutine.
func (p *Proxy) SubflowVerdicts() []subflows.Verdict {
	p.mu.Lock()
	h := p.health
	p.mu.Unlock()
	if h == nil {
		return nil
	}
	return h.subflowVerdicts()
}

// current is the relayer for a new connection.
func (p *Proxy) current() *relayer {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cur
}

// relayer makes the relayer of cfg: its key derived, its dialer MPTCP.
func (p *Proxy) relayer(cfg Config, env *session.Env, health *peerHealth) (*relayer, error) {
	if cfg.Protocol != "" && cfg.Protocol != api.DefaultProtocol {
		return nil, fmt.Errorf("proxy: protocol %q: only shadowsocks is supported", cfg.Protocol)
	}
	secret, err := cfg.Key.Resolve(nil, nil)
	if err != nil {
		return nil, fmt.Errorf("proxy: key: %w", err)
	}
	cipher := cmp.Or(cfg.Cipher, api.DefaultCipher)
	key, err := shadowsocks.NewEncryptionKey(cipher, secret)
	if err != nil {
		return nil, fmt.Errorf("proxy: cipher %s: %w", cipher, err)
	}
	r := &relayer{
		peer:      cfg.Peer,
		cipher:    cipher,
		key:       key,
		secret:    secret,
		health:    health,
		idle:      cmp.Or(p.Idle, DefaultIdle),
		replyWait: replyWait,
		log:       env.Log(),
		dialer:    net.Dialer{Timeout: cmp.Or(p.DialTimeout, DefaultDialTimeout)},
	}
	r.dialer.SetMultipathTCP(true)
	return r, nil
}

// accept serves ln's connections until it is closed, each in its own
// goroutine counted in wg, with the relayer current when it came. The
// connections end with ctx.
func (p *Proxy) accept(ctx context.Context, ln *net.TCPListener, port int, wg *sync.WaitGroup) {
	for {
		c, err := ln.AcceptTCP()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Say, EMFILE: back off rather than spin.
			p.current().log.Warn("proxy: accept", "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(50 * time.Millisecond):
			}
			continue
		}
		la := c.LocalAddr().(*net.TCPAddr).AddrPort()
		dst := netip.AddrPortFrom(la.Addr().Unmap(), la.Port())
		if int(dst.Port()) == port && isLocal(dst.Addr()) {
			// A client connected to the listener itself, not steered:
			// there is nowhere to relay it.
			reset(c)
			continue
		}
		r := p.current()
		wg.Go(func() {
			stop := context.AfterFunc(ctx, func() { reset(c) })
			defer stop()
			r.serve(ctx, c, dst)
		})
	}
}

// isLocal reports whether a is one of the box's own addresses.
func isLocal(a netip.Addr) bool {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return true // cannot tell: do not relay
	}
	for _, ia := range addrs {
		if n, ok := ia.(*net.IPNet); ok {
			if b, ok := netip.AddrFromSlice(n.IP); ok && b.Unmap() == a {
				return true
			}
		}
	}
	return false
}
