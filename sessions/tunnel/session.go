package tunnel

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/braid-router/braid/facts"
	"github.com/braid-router/braid/session"
	"github.com/braid-router/braid/sessions/l2tp"
	"github.com/braid-router/braid/sessions/l2tp/dataplane"
	"github.com/braid-router/braid/sessions/ppp"
)

// Status words for what failed: `braid status` shows them as the
// session's last error, and the supervisor starts the session again
// after its backoff.
var (
	// ErrTunnelAuth: the LNS and braid disagree on the tunnel secret
	// (the Challenge Response of RFC 2661 section 5.1.1 did not match).
	ErrTunnelAuth = errors.New("tunnel authentication failed: wrong secret?")
	// ErrPPPAuth: the LNS refused the PPP login (CHAP Failure, PAP
	// Authenticate-Nak): a wrong username or password.
	ErrPPPAuth = errors.New("PPP authentication refused")
)

// stepWait bounds the wait for each layer's goodbye when the session
// stops: LCP's Terminate-Ack, then the StopCCN's acknowledgement.
const stepWait = 2500 * time.Millisecond

// statusEvery is how often the status of a running tunnel is refreshed
// (its LCP echo round trip).
const statusEvery = 5 * time.Second

// Session is the 6PE tunnel session. The zero value is ready.
type Session struct {
	// Hostname is the Host Name the LAC gives the LNS in its SCCRQ;
	// empty: the box's host name.
	Hostname string
}

// Run implements session.Session: it brings the tunnel up (L2TP tunnel
// and session, PPP with LCP, the login and IPV6CP), creates the TUN link,
// gives it braid's link-local address from IPV6CP and publishes it as the
// tunnel's facts.Link; then it carries IPv6 until ctx ends, when it takes
// the tunnel down (LCP Terminate, CDN, StopCCN) and the TUN link goes with
// its file descriptor. Any failure is an error: the supervisor starts the
// session again after a backoff, with new random tunnel and session IDs.
func (s *Session) Run(ctx context.Context, cfg Config, env *session.Env) error {
	log := env.Log()
	login, err := cfg.Login()
	if err != nil {
		return err
	}
	var secret, password string
	if cfg.Secret != nil {
		if secret, err = cfg.Secret.Resolve(nil, nil); err != nil {
			return fmt.Errorf("tunnel secret: %w", err)
		}
	}
	if cfg.Password != nil {
		if password, err = cfg.Password.Resolve(nil, nil); err != nil {
			return fmt.Errorf("PPP password: %w", err)
		}
	}
	uplinkMTU := cfg.UplinkMTU
	if uplinkMTU == 0 {
		ifi, err := net.InterfaceByName(cfg.Device)
		if err != nil {
			return fmt.Errorf("uplink %s: %w", cfg.Via, err)
		}
		uplinkMTU = ifi.MTU
	}
	mtu := dataplane.MTU(uplinkMTU)
	if mtu < dataplane.MinMTU {
		return fmt.Errorf("uplink %s's MTU %d leaves %d for IPv6 in the tunnel, under IPv6's minimum of %d", cfg.Via, uplinkMTU, mtu, dataplane.MinMTU)
	}
	host := s.Hostname
	if host == "" {
		host, _ = os.Hostname()
	}
	if host == "" {
		host = "braid"
	}

	t := &run{cfg: cfg, env: env, log: log, login: login}
	return t.run(ctx, secret, password, host, mtu)
}

// run is one attempt at the tunnel.
type run struct {
	cfg   Config
	env   *session.Env
	log   *slog.Logger
	login string

	mu   sync.Mutex
	l2   *l2tp.Session
	link *ppp.Link
	// since is when IPV6CP came up.
	since time.Time
	mtu   int
}

func (t *run) run(ctx context.Context, secret, password, host string, mtu int) error {
	cfg := t.cfg
	t.env.SetState(session.Starting, "connecting to the LNS "+cfg.Server+" out of "+cfg.Device)

	server, err := resolve(ctx, cfg.Server)
	if err != nil {
		return err
	}
	// The PPP link sends through the L2TP session, which hands it every
	// PPP frame but IPv6 data (the data plane's).
	var l2 *l2tp.Session
	link := ppp.New(ppp.Config{Username: t.login, Password: []byte(password), Keepalive: cfg.Keepalive,
		KeepaliveFailures: cfg.KeepaliveFailures, MRU: mtu},
		func(f []byte) error { return l2.WriteFrame(f) }, t.log.With("layer", "ppp"))
	l2, err = l2tp.Dial(ctx, l2tp.Config{
		Server: server, Local: cfg.Local, Device: cfg.Device,
		Secret: []byte(secret), Hostname: host, PPP: link.Input,
	}, t.log.With("layer", "l2tp"))
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return describe(err)
	}
	defer l2.Close()
	t.env.SetState(session.Starting, fmt.Sprintf("tunnel %s to the LNS %s: PPP negotiating as %s", l2.Info().State, server, t.login))
	t.mu.Lock()
	t.l2, t.link = l2, link
	t.mu.Unlock()

	// Each layer runs under a context of its own, stopped from the top
	// down: PPP terminates first (its Terminate-Request travels through
	// the L2TP session), then L2TP (CDN, StopCCN), and the data plane,
	// which reads their answers off the socket, last.
	planeCtx, stopPlane := context.WithCancel(context.WithoutCancel(ctx))
	l2Ctx, stopL2 := context.WithCancel(context.WithoutCancel(ctx))
	pppCtx, stopPPP := context.WithCancel(context.WithoutCancel(ctx))
	defer stopPlane()
	defer stopL2()
	defer stopPPP()

	// abort ends the tunnel before its layers run: Run with its context
	// done sends the CDN and the StopCCN.
	abort := func(err error) error {
		stopL2()
		l2.Run(l2Ctx)
		return err
	}
	tun, err := dataplane.CreateLink(cfg.Interface, mtu, "tunnel/"+cfg.Tunnel)
	if err != nil {
		return abort(err)
	}
	defer tun.Close()
	// No IPv6 on the link before IPV6CP: no address of the kernel's
	// own, no solicitation or report into a link that does not carry
	// IPv6 yet.
	if err := ipv6Off(cfg.Interface); err != nil {
		return abort(err)
	}
	lt, ls, pt, ps := l2.IDs()
	plane, err := dataplane.New(tun, l2.Conn(), dataplane.Config{LocalTunnel: lt, LocalSession: ls, PeerTunnel: pt, PeerSession: ps,
		Other: l2.Handle, Logger: t.log.With("layer", "dataplane")})
	if err != nil {
		return abort(err)
	}
	errs := make(chan error, 3)
	// start runs one layer; its channel closes when it has returned.
	start := func(name string, ctx context.Context, f func(context.Context) error) <-chan struct{} {
		done := make(chan struct{})
		go func() {
			defer close(done)
			err := f(ctx)
			if ctx.Err() == nil {
				if err == nil {
					err = errors.New(name + " ended")
				}
				errs <- err
			}
		}()
		return done
	}
	planeDone := start("the data plane", planeCtx, plane.Run)
	l2Done := start("the L2TP session", l2Ctx, l2.Run)
	pppDone := start("the PPP link", pppCtx, link.Run)
	// The supervisor gives a session 5 s to stop: against an LNS that
	// answers, each step takes milliseconds; against a dead one, each
	// gets half of them.
	stop := func() {
		stopPPP()
		waitFor(pppDone, stepWait)
		stopL2()
		waitFor(l2Done, stepWait)
		stopPlane()
		<-planeDone
		<-pppDone
		<-l2Done
	}

	select {
	case <-link.Up():
	case err := <-errs:
		stop()
		return describe(err)
	case <-ctx.Done():
		stop()
		return nil
	}
	local, peer, mru := link.Negotiated()
	if mru > 0 && mru < mtu {
		mtu = mru
	}
	addr := netip.PrefixFrom(ppp.LinkLocal(local), 64)
	if err := ipv6On(cfg.Interface, addr, mtu); err != nil {
		stop()
		return err
	}
	t.mu.Lock()
	t.since, t.mtu = time.Now(), mtu
	t.mu.Unlock()
	if err := t.env.Publish(facts.Fact{Link: &facts.Link{For: "tunnel/" + cfg.Tunnel, Name: cfg.Interface,
		Addresses: []netip.Prefix{addr}, Peer: ppp.LinkLocal(peer), MTU: mtu}, Process: true}); err != nil {
		stop()
		return err
	}
	t.log.Info("tunnel up", "lns", cfg.Server, "login", t.login, "link", cfg.Interface, "address", addr, "peer", ppp.LinkLocal(peer), "mtu", mtu)
	t.env.SetState(session.Running, t.detail())
	tick := time.NewTicker(statusEvery)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			t.env.SetState(session.Running, t.detail())
		case err := <-errs:
			t.env.Publish()
			stop()
			return describe(err)
		case <-ctx.Done():
			t.env.Publish()
			stop()
			return nil
		}
	}
}

// detail is the status of a running tunnel: "up since 19:20:01, LNS
// 10.77.1.2:1701 (lns), tunnel 4711/12, session 815/1, LCP echo RTT
// 1.2ms, MTU 1460, fe80::... <-> fe80::...".
func (t *run) detail() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	li := t.link.Info()
	ti := t.l2.Info()
	var b strings.Builder
	fmt.Fprintf(&b, "up since %s, LNS %s", t.since.Format(time.TimeOnly), ti.LNS)
	if ti.PeerHost != "" {
		fmt.Fprintf(&b, " (%s)", ti.PeerHost)
	}
	fmt.Fprintf(&b, ", tunnel %d/%d, session %d/%d, login %s", ti.LocalTunnel, ti.PeerTunnel, ti.LocalSession, ti.PeerSession, t.login)
	if li.Auth != "" {
		fmt.Fprintf(&b, " (%s)", li.Auth)
	}
	if li.EchoRTT > 0 {
		fmt.Fprintf(&b, ", LCP echo RTT %s", li.EchoRTT.Round(10*time.Microsecond))
	}
	if li.EchoesUnanswered > 0 {
		fmt.Fprintf(&b, ", %d echoes unanswered", li.EchoesUnanswered)
	}
	fmt.Fprintf(&b, ", MTU %d, %s <-> %s", t.mtu, ppp.LinkLocal(li.Local), ppp.LinkLocal(li.Peer))
	return b.String()
}

// describe words the error a layer ended with for status: the failures a
// person can fix carry the words of ErrTunnelAuth and ErrPPPAuth (and
// errors.Is finds them).
func describe(err error) error {
	switch {
	case errors.Is(err, l2tp.ErrAuth):
		return statusError{kind: ErrTunnelAuth, err: err}
	case errors.Is(err, ppp.ErrAuthRefused):
		return statusError{kind: ErrPPPAuth, err: err, hint: "wrong username or password?"}
	}
	return err
}

// statusError is err with the words of kind, said once, and a hint.
type statusError struct {
	kind, err error
	hint      string
}

func (e statusError) Error() string {
	s := e.err.Error()
	if !strings.Contains(s, e.kind.Error()) {
		s = e.kind.Error() + ": " + s
	}
	if e.hint != "" {
		s += "; " + e.hint
	}
	return s
}

func (e statusError) Unwrap() []error { return []error{e.kind, e.err} }

// resolve returns the LNS's IPv4 address and port from HOST:PORT,
// looking a host name up.
func resolve(ctx context.Context, server string) (netip.AddrPort, error) {
	host, port, err := net.SplitHostPort(server)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("LNS %q: %w", server, err)
	}
	p, err := net.LookupPort("udp", port)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("LNS %q: %w", server, err)
	}
	if a, err := netip.ParseAddr(host); err == nil {
		if !a.Unmap().Is4() {
			return netip.AddrPort{}, fmt.Errorf("LNS %s: L2TP goes over IPv4 here", server)
		}
		return netip.AddrPortFrom(a.Unmap(), uint16(p)), nil
	}
	as, err := net.DefaultResolver.LookupNetIP(ctx, "ip4", host)
	if err != nil || len(as) == 0 {
		return netip.AddrPort{}, fmt.Errorf("LNS %s: no IPv4 address: %v", host, err)
	}
	return netip.AddrPortFrom(as[0].Unmap(), uint16(p)), nil
}

// waitFor waits until done is closed, at most d.
func waitFor(done <-chan struct{}, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	}
}
