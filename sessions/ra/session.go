package ra

import (
	"context"
	"crypto/hmac"
	crand "crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/braid-router/braid/sessions/linklocal"

	"github.com/mdlayher/ndp"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"

	"github.com/braid-router/braid/facts"
	"github.com/braid-router/braid/session"
	"github.com/braid-router/braid/sessions/ra/advert"
	"github.com/braid-router/braid/sessions/ra/autoconf"
)

// MachineIDFile is where the secret key of the session's addresses comes
// from, unless a Client says otherwise.
const MachineIDFile = "/etc/machine-id"

// linkCheck is how often the session looks at its link (up, carrier,
// the same ifindex) while it runs, and for the link while it waits.
const linkCheck = time.Second

// allRouters is where router solicitations go (RFC 4861 section 4.1).
var allRouters = netip.MustParseAddr("ff02::2")

// Client is the RA session of one uplink. The zero value is ready.
type Client struct {
	// MachineIDFile is the file SecretKey reads; MachineIDFile when
	// empty. Tests point it at their own.
	MachineIDFile string
}

// SecretKey derives the secret key of RFC 7217 addresses from the
// machine ID in path (/etc/machine-id: stable across restarts and
// reinstalls of braid, different on every box), as systemd-networkd does:
// an HMAC of a label of braid's own keyed by the ID, so that the ID
// itself never shows in an address.
func SecretKey(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("the secret key of SLAAC addresses: %w", err)
	}
	id := strings.TrimSpace(string(b))
	if id == "" {
		return nil, fmt.Errorf("the secret key of SLAAC addresses: %s is empty", path)
	}
	mac := hmac.New(sha256.New, []byte(id))
	mac.Write([]byte("braid ra: RFC 7217 secret key"))
	return mac.Sum(nil), nil
}

// Run implements session.Session: it solicits and reads the uplink's
// adverts until ctx ends, restoring what it learnt before a restart from
// its facts (an address keeps its remaining lifetime and is not checked
// again), and waits while the link is missing, down, without carrier or
// without a usable link-local address.
func (c *Client) Run(ctx context.Context, cfg Config, env *session.Env) error {
	path := c.MachineIDFile
	if path == "" {
		path = MachineIDFile
	}
	secret, err := SecretKey(path)
	if err != nil {
		return err
	}
	var seed [32]byte
	crand.Read(seed[:])
	slot := env.Facts().Slots[env.ID()].Facts
	r := &runner{cfg: cfg, env: env, published: restore(cfg, slot)}
	r.m = autoconf.New(autoconf.Config{Interface: cfg.Interface, Secret: secret, Rand: rand.New(rand.NewChaCha8(seed))},
		r.published, time.Now())
	if len(factsOf(cfg, r.published)) != len(slot) {
		// Facts of another link (the uplink moved): withdrawn.
		if err := env.Publish(factsOf(cfg, r.m.Learnt())...); err != nil {
			return err
		}
		r.published = r.m.Learnt()
	}
	if err := r.publish(); err != nil {
		return err
	}
	for ctx.Err() == nil {
		l, err := openLink(cfg.Interface)
		if err != nil {
			env.SetState(session.Waiting, err.Error())
			if err := r.wait(ctx); err != nil {
				return err
			}
			continue
		}
		err = r.serve(ctx, l)
		l.close()
		r.m.Stop()
		var lc linkChange
		switch {
		case errors.As(err, &lc):
			env.Log().Info("listening on the link again", "why", lc.error)
		case err != nil:
			return err
		}
	}
	return nil
}

// linkChange is an error of the link, after which the session opens it
// again (or waits for it).
type linkChange struct{ error }

// runner is one run of the session.
type runner struct {
	cfg Config
	env *session.Env
	m   *autoconf.Machine
	// published is what the facts say now.
	published autoconf.Learnt
}

// restore reads back what the session published before a restart, for
// this uplink and link (an address on another link was checked unique
// there, not here).
func restore(cfg Config, fs []facts.Fact) autoconf.Learnt {
	var l autoconf.Learnt
	for _, f := range fs {
		switch {
		case f.SLAAC != nil && f.SLAAC.Uplink == cfg.Uplink && f.SLAAC.Link == cfg.Interface:
			l.Address, l.Valid, l.Preferred = f.SLAAC.Address, f.Expires, f.SLAAC.Preferred
			for _, d := range f.SLAAC.DNS {
				l.DNS = append(l.DNS, autoconf.DNS{Addr: d.Addr, Expires: d.Expires})
			}
		case f.Router6 != nil && f.Router6.Uplink == cfg.Uplink && f.Router6.Link == cfg.Interface:
			l.Router, l.RouterExpires = f.Router6.Router, f.Expires
		}
	}
	return l
}

// factsOf turns what the machine learnt into the session's facts. The
// resolvers go with the address: without one, the uplink has no IPv6
// source to reach them from.
func factsOf(cfg Config, l autoconf.Learnt) []facts.Fact {
	var fs []facts.Fact
	if l.Address.IsValid() {
		a := &facts.SLAAC{Uplink: cfg.Uplink, Link: cfg.Interface, Address: l.Address, Preferred: l.Preferred.Round(0)}
		for _, d := range l.DNS {
			a.DNS = append(a.DNS, facts.RDNSS{Addr: d.Addr, Expires: d.Expires.Round(0)})
		}
		fs = append(fs, facts.Fact{SLAAC: a, Expires: l.Valid.Round(0)})
	}
	if l.Router.IsValid() {
		fs = append(fs, facts.Fact{Router6: &facts.Router6{Uplink: cfg.Uplink, Router: l.Router, Link: cfg.Interface},
			Expires: l.RouterExpires.Round(0)})
	}
	return fs
}

// publish publishes what the machine learnt, when it changed.
func (r *runner) publish() error {
	l := r.m.Learnt()
	if l.Equal(r.published) {
		return nil
	}
	if err := r.env.Publish(factsOf(r.cfg, l)...); err != nil {
		return err
	}
	r.logChange(r.published, l)
	r.published = l
	return nil
}

// logChange logs what came and went.
func (r *runner) logChange(was, now autoconf.Learnt) {
	log := r.env.Log()
	if was.Address != now.Address {
		if now.Address.IsValid() {
			log.Info("address learnt", "address", now.Address, "valid", lifetime(now.Valid), "preferred", lifetime(now.Preferred))
		} else {
			log.Info("address gone: its valid lifetime ended", "address", was.Address)
		}
	}
	if was.Router != now.Router {
		if now.Router.IsValid() {
			log.Info("default router learnt", "router", now.Router, "until", lifetime(now.RouterExpires))
		} else {
			log.Info("default router gone: its lifetime ended or it advertised zero", "router", was.Router)
		}
	}
}

// wait waits a link check's time (or less, when the machine has work),
// keeping the lifetimes of what was learnt running.
func (r *runner) wait(ctx context.Context) error {
	d := linkCheck
	if next := r.m.Next(); !next.IsZero() {
		d = min(d, max(time.Until(next), 0))
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return nil
	case <-t.C:
	}
	r.m.Tick(time.Now())
	return r.publish()
}

// serve runs the session on an open link until ctx ends (nil), the link
// changes (a linkChange saying how) or the facts hub fails.
func (r *runner) serve(ctx context.Context, l *link) error {
	pkts := make(chan linklocal.Packet)
	done := make(chan struct{})
	var wg sync.WaitGroup
	defer wg.Wait()
	defer close(done)
	wg.Go(func() { linklocal.Read(l.ifi, l.conn, pkts, done) })
	// Closing the socket ends the read.
	defer l.conn.Close()

	r.act(l, r.m.Start(time.Now()))
	check := time.NewTicker(linkCheck)
	defer check.Stop()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		if err := r.publish(); err != nil {
			return err
		}
		if err := l.follow(r.m.Tentative()); err != nil {
			return linkChange{err}
		}
		r.env.SetState(session.Running, describe(r.cfg, r.m))
		timer.Reset(time.Hour)
		if next := r.m.Next(); !next.IsZero() {
			timer.Reset(max(time.Until(next), 0))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-check.C:
			if err := l.check(); err != nil {
				return linkChange{err}
			}
		case <-timer.C:
			r.act(l, r.m.Tick(time.Now()))
		case p := <-pkts:
			if p.Err != nil {
				return linkChange{fmt.Errorf("read from %s: %w", l.ifi.Name, p.Err)}
			}
			msg, err := advert.Parse(p.B, p.Src, p.Hop)
			switch {
			case errors.Is(err, advert.ErrUnread):
				continue
			case err != nil:
				r.env.Log().Debug("discarded a neighbour discovery message", "from", p.Src, "err", err)
				continue
			}
			var acts []autoconf.Action
			now := time.Now()
			if msg.Advert != nil {
				acts = r.m.Advert(now, msg.Advert)
				if msg.Advert.Skipped > 0 {
					r.env.Log().Warn("advert with malformed options; skipped them", "router", msg.Advert.Router, "skipped", msg.Advert.Skipped)
				}
			} else {
				acts = r.m.Neighbor(now, msg.Neighbor)
			}
			r.act(l, acts)
		}
	}
}

// act sends what the machine asks for. A send that fails is logged, not
// fatal: the machine retries solicitations, and DAD's silence after a
// probe that never left is what it would have been on a quiet link.
func (r *runner) act(l *link, acts []autoconf.Action) {
	for _, a := range acts {
		var err error
		switch a.Kind {
		case autoconf.Solicit:
			err = l.solicit()
		case autoconf.Probe:
			if err = l.follow(a.Target); err == nil {
				err = l.probe(a.Target, a.Nonce)
			}
		}
		if err != nil {
			r.env.Log().Warn("send on the uplink", "interface", l.ifi.Name, "err", err)
		}
	}
}

// describe is the session's status detail: the address and its
// lifetimes, the router and its lifetime, the resolvers.
func describe(cfg Config, m *autoconf.Machine) string {
	l := m.Learnt()
	var parts []string
	switch {
	case l.Address.IsValid():
		parts = append(parts, fmt.Sprintf("address %s valid %s, preferred %s", l.Address, lifetime(l.Valid), lifetime(l.Preferred)))
	case m.Tentative().IsValid():
		parts = append(parts, fmt.Sprintf("checking that %s is unique (DAD)", m.Tentative()))
	case m.Problem() != "":
		parts = append(parts, m.Problem())
	default:
		parts = append(parts, "no address yet")
	}
	if l.Router.IsValid() {
		parts = append(parts, fmt.Sprintf("router %s%%%s %s", l.Router, cfg.Interface, lifetime(l.RouterExpires)))
	} else {
		parts = append(parts, "no default router")
	}
	if len(l.DNS) > 0 {
		var ds []string
		for _, d := range l.DNS {
			ds = append(ds, d.Addr.String()+" "+lifetime(d.Expires))
		}
		parts = append(parts, "dns "+strings.Join(ds, ", "))
	}
	if m.Soliciting() {
		parts = append(parts, "soliciting adverts")
	}
	return strings.Join(parts, "; ")
}

// lifetime renders the end of a lifetime: "forever", or "until" a time
// (of day when it is today).
func lifetime(t time.Time) string {
	if t.IsZero() {
		return "forever"
	}
	t = t.Local()
	if t.Format(time.DateOnly) == time.Now().Format(time.DateOnly) {
		return "until " + t.Format(time.TimeOnly)
	}
	return "until " + t.Format(time.DateTime)
}

// link is the session's sockets on its uplink: an ICMPv6 socket bound to
// the link-local address (adverts, neighbour messages, solicitations)
// and a raw IPv6 socket for DAD probes, which come from the unspecified
// address.
type link struct {
	ifi  *net.Interface
	conn *ndp.Conn
	ll   netip.Addr
	// probeFD is the raw socket DAD probes leave by.
	probeFD int
	// joined is the solicited-node group joined for a tentative address.
	joined netip.Addr
}

// openLink opens the sockets on the link name, or says why it cannot yet.
func openLink(name string) (*link, error) {
	ifi, conn, ll, err := linklocal.Listen(name, ipv6.ICMPTypeRouterAdvertisement, ipv6.ICMPTypeNeighborSolicitation, ipv6.ICMPTypeNeighborAdvertisement)
	if err != nil {
		return nil, err
	}
	l := &link{ifi: ifi, conn: conn, ll: ll, probeFD: -1}
	if err := l.setup(); err != nil {
		l.close()
		return nil, fmt.Errorf("link %s: %w", name, err)
	}
	return l, nil
}

// setup opens the probe socket.
func (l *link) setup() error {
	fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW)
	if err != nil {
		return fmt.Errorf("raw IPv6 socket for DAD probes: %w", err)
	}
	l.probeFD = fd
	if err := unix.SetsockoptString(fd, unix.SOL_SOCKET, unix.SO_BINDTODEVICE, l.ifi.Name); err != nil {
		return fmt.Errorf("bind the DAD socket to the link: %w", err)
	}
	// braid's own probe must not come back to its ICMPv6 socket, which
	// joined the group, as another node's.
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_LOOP, 0); err != nil {
		return fmt.Errorf("DAD socket: no multicast loop: %w", err)
	}
	return nil
}

func (l *link) close() {
	l.conn.Close()
	if l.probeFD >= 0 {
		unix.Close(l.probeFD)
		l.probeFD = -1
	}
}

// check says whether the link is still the one the socket is on (see
// linklocal.Check).
func (l *link) check() error { return linklocal.Check(l.ifi, l.ll) }

// solicit sends a router solicitation from the link-local address, with
// the link's MAC address.
func (l *link) solicit() error {
	if err := l.conn.WriteTo(advert.Solicitation(l.ifi.HardwareAddr), nil, allRouters); err != nil {
		return fmt.Errorf("router solicitation: %w", err)
	}
	return nil
}

// follow keeps the ICMPv6 socket in the solicited-node group of the
// tentative address (none: no group), where other nodes' probes for it
// arrive.
func (l *link) follow(tentative netip.Addr) error {
	var want netip.Addr
	if tentative.IsValid() {
		g, err := ndp.SolicitedNodeMulticast(tentative)
		if err != nil {
			return err
		}
		want = g
	}
	if want == l.joined {
		return nil
	}
	if l.joined.IsValid() {
		if err := l.conn.LeaveGroup(l.joined); err != nil {
			return fmt.Errorf("leave %s: %w", l.joined, err)
		}
		l.joined = netip.Addr{}
	}
	if want.IsValid() {
		if err := l.conn.JoinGroup(want); err != nil {
			return fmt.Errorf("join %s: %w", want, err)
		}
		l.joined = want
	}
	return nil
}

// probe sends a DAD probe for target.
func (l *link) probe(target netip.Addr, nonce []byte) error {
	pkt, dst, err := advert.Probe(target, nonce)
	if err != nil {
		return err
	}
	sa := &unix.SockaddrInet6{Addr: dst.As16(), ZoneId: uint32(l.ifi.Index)}
	if err := unix.Sendto(l.probeFD, pkt, 0, sa); err != nil {
		return fmt.Errorf("DAD probe for %s: %w", target, err)
	}
	return nil
}
