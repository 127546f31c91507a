package advertise

import (
	"context"
	crand "crypto/rand"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/mdlayher/ndp"
	"golang.org/x/net/ipv6"

	"github.com/braid-router/braid/session"
	"github.com/braid-router/braid/sessions/advertise/announce"
	"github.com/braid-router/braid/sessions/linklocal"
	"github.com/braid-router/braid/sessions/ra/advert"
)

// linkCheck is how often the session looks at its link (there, up, with
// carrier, the same link-local address) while it advertises, and for the
// link while it waits.
const linkCheck = time.Second

// Multicast groups (RFC 4291 2.7.1): adverts go to all nodes,
// solicitations come to all routers.
var (
	allNodes   = netip.MustParseAddr("ff02::1")
	allRouters = netip.MustParseAddr("ff02::2")
)

// Server is the LAN's advertisement session. The zero value is ready; it
// implements session.Session and session.Updater.
type Server struct {
	mu sync.Mutex
	// updates carries the newest configuration to the running Run; nil
	// while none runs.
	updates chan Config
	// iface is the running Run's link.
	iface string
}

// Update implements session.Updater: a new configuration takes effect at
// once (what left it is advertised deprecated, the rest at once and in
// fast adverts), except a new interface, which restarts the session.
func (s *Server) Update(cfg Config) error {
	if err := cfg.Check(); err != nil {
		return fmt.Errorf("%w: %v", session.ErrRestart, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.updates == nil || cfg.Interface != s.iface {
		return session.ErrRestart
	}
	select {
	case <-s.updates: // replaced by the newer one
	default:
	}
	s.updates <- cfg
	return nil
}

// Run implements session.Session: it advertises on the LAN's link until
// ctx ends, waiting while the link is missing, down, without carrier or
// without a usable link-local address. When ctx ends because braid stops
// or the session left the spec, it sends the final advert first (router
// lifetime 0, the prefixes deprecated); a restart with a new
// configuration does not.
func (s *Server) Run(ctx context.Context, cfg Config, env *session.Env) error {
	if err := cfg.Check(); err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	updates := make(chan Config, 1)
	s.mu.Lock()
	s.updates, s.iface = updates, cfg.Interface
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.updates = nil
		s.mu.Unlock()
	}()
	var seed [32]byte
	crand.Read(seed[:])
	r := &runner{cfg: cfg, env: env, updates: updates, m: announce.New(cfg.announce(), rand.New(rand.NewChaCha8(seed)))}
	for ctx.Err() == nil {
		l, err := openLink(cfg.Interface)
		if err != nil {
			env.SetState(session.Waiting, err.Error())
			r.wait(ctx)
			continue
		}
		err = r.serve(ctx, l)
		r.m.Pause()
		var lc linkChange
		switch {
		case errors.As(err, &lc):
			env.Log().Info("opening the link again", "why", lc.error)
		case err != nil:
			return err
		}
	}
	return nil
}

// goodbye reports whether a run ending for cause says goodbye to the
// LAN: braid stops, or the session left the spec; not a restart.
func goodbye(cause error) bool {
	return errors.Is(cause, session.ErrShutdown) || errors.Is(cause, session.ErrRemoved)
}

// linkChange is an error of the link, after which the session opens it
// again (or waits for it).
type linkChange struct{ error }

// runner is one run of the session.
type runner struct {
	cfg     Config
	env     *session.Env
	updates <-chan Config
	m       *announce.Machine
}

// wait waits a link check's time, taking new configurations meanwhile.
func (r *runner) wait(ctx context.Context) {
	t := time.NewTimer(linkCheck)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			return
		case cfg := <-r.updates:
			r.update(cfg)
		}
	}
}

func (r *runner) update(cfg Config) {
	r.cfg = cfg
	r.m.Update(cfg.announce(), time.Now())
	r.env.Log().Info("configuration updated", "prefixes", len(cfg.Prefixes), "dns", len(cfg.DNS), "default router", cfg.DefaultRouter)
}

// serve advertises on an open link until ctx ends (nil) or the link
// changes (a linkChange saying how); when ctx ends with a goodbye, it
// sends the final advert first.
func (r *runner) serve(ctx context.Context, l *link) error {
	pkts := make(chan linklocal.Packet)
	done := make(chan struct{})
	var wg sync.WaitGroup
	defer wg.Wait()
	defer close(done)
	wg.Go(func() { linklocal.Read(l.ifi, l.conn, pkts, done) })
	// Closing the socket ends the read.
	defer l.close()

	r.m.Start(time.Now())
	check := time.NewTicker(linkCheck)
	defer check.Stop()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		r.send(l)
		r.env.SetState(session.Running, r.describe())
		timer.Reset(time.Hour)
		if next := r.m.Next(); !next.IsZero() {
			timer.Reset(max(time.Until(next), 0))
		}
		select {
		case <-ctx.Done():
			if goodbye(context.Cause(ctx)) {
				r.final(l)
			}
			return nil
		case cfg := <-r.updates:
			r.update(cfg)
		case <-check.C:
			if err := l.check(); err != nil {
				return linkChange{err}
			}
		case <-timer.C:
		case p := <-pkts:
			if p.Err != nil {
				return linkChange{fmt.Errorf("read from %s: %w", l.ifi.Name, p.Err)}
			}
			rs, err := advert.ParseSolicitation(p.B, p.Src, p.Hop)
			switch {
			case errors.Is(err, advert.ErrUnread):
			case err != nil:
				r.env.Log().Debug("discarded a router solicitation", "from", p.Src, "err", err)
			default:
				r.env.Log().Debug("router solicitation", "from", rs.Source, "mac", rs.LinkLayer)
				r.m.Solicited(time.Now())
			}
		}
	}
}

// send sends the advert due now, if one is.
func (r *runner) send(l *link) {
	a := r.m.Tick(time.Now())
	if a == nil {
		return
	}
	if err := l.advertise(a); err != nil {
		r.env.Log().Warn("router advertisement", "interface", l.ifi.Name, "err", err)
	}
}

// final sends the final advert, as soon as the rate limit allows (at
// most MinDelayBetweenRAs from now).
func (r *runner) final(l *link) {
	r.m.Stop(time.Now())
	if r.m.Done() {
		return
	}
	t := time.NewTimer(max(time.Until(r.m.Next()), 0))
	defer t.Stop()
	<-t.C
	a := r.m.Tick(r.m.Next())
	if a == nil {
		return
	}
	if err := l.advertise(a); err != nil {
		r.env.Log().Warn("final router advertisement", "interface", l.ifi.Name, "err", err)
		return
	}
	r.env.Log().Info("final router advertisement sent: router lifetime 0, prefixes deprecated", "interface", l.ifi.Name)
}

// describe is the session's status detail: what the adverts say now,
// and how many went.
func (r *runner) describe() string {
	st := r.m.Status(time.Now())
	a := st.Advertised
	if a == nil {
		return "no advert sent yet"
	}
	var parts []string
	for _, p := range a.Prefixes {
		if p.Preferred == 0 {
			parts = append(parts, fmt.Sprintf("%s deprecated (valid %v)", p.Prefix, p.Valid))
		} else {
			parts = append(parts, fmt.Sprintf("%s valid %v, preferred %v", p.Prefix, p.Valid, p.Preferred))
		}
	}
	if len(a.Prefixes) == 0 {
		parts = append(parts, "no prefix")
	}
	if a.RouterLifetime > 0 {
		parts = append(parts, fmt.Sprintf("default router for %v", a.RouterLifetime))
	} else {
		parts = append(parts, "not a default router (router lifetime 0)")
	}
	for _, d := range a.DNS {
		var ss []string
		for _, s := range d.Servers {
			ss = append(ss, s.String())
		}
		if d.Lifetime == 0 {
			parts = append(parts, "dns withdrawn "+strings.Join(ss, ", "))
		} else {
			parts = append(parts, "dns "+strings.Join(ss, ", "))
		}
	}
	if a.MTU != 0 {
		parts = append(parts, fmt.Sprintf("mtu %d", a.MTU))
	}
	parts = append(parts, fmt.Sprintf("%d adverts, %d solicitations", st.Sent, st.Solicited))
	return strings.Join(parts, "; ")
}

// link is the session's ICMPv6 socket on the LAN's link, bound to its
// link-local address, in the all-routers group.
type link struct {
	ifi  *net.Interface
	conn *ndp.Conn
	ll   netip.Addr
}

// openLink opens the socket on the link name, reading router
// solicitations, in the all-routers group; or says why it cannot yet.
func openLink(name string) (*link, error) {
	ifi, conn, ll, err := linklocal.Listen(name, ipv6.ICMPTypeRouterSolicitation)
	if err != nil {
		return nil, err
	}
	if err := conn.JoinGroup(allRouters); err != nil {
		conn.Close()
		return nil, fmt.Errorf("link %s: join %s: %w", name, allRouters, err)
	}
	return &link{ifi: ifi, conn: conn, ll: ll}, nil
}

func (l *link) close() { l.conn.Close() }

// check says whether the link is still the one the socket is on (see
// linklocal.Check).
func (l *link) check() error { return linklocal.Check(l.ifi, l.ll) }

// advertise sends a to all-nodes, with the link's MAC address (RFC 4861
// 4.2: the source link-layer address option, so hosts need not resolve
// the router's address).
func (l *link) advertise(a *advert.Advert) error {
	if len(l.ifi.HardwareAddr) == 6 {
		a.LinkLayer = l.ifi.HardwareAddr
	}
	msg, err := advert.Advertisement(a)
	if err != nil {
		return err
	}
	if err := l.conn.WriteTo(msg, nil, allNodes); err != nil {
		return fmt.Errorf("send to %s: %w", allNodes, err)
	}
	return nil
}
