package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/Jigsaw-Code/outline-sdk/transport"
	"github.com/Jigsaw-Code/outline-sdk/transport/shadowsocks"

	"github.com/braid-router/braid/facts"
	"github.com/braid-router/braid/internal/dnsstream"
	"github.com/braid-router/braid/internal/sockmark"
	"github.com/braid-router/braid/probe"
	"github.com/braid-router/braid/session"
	"github.com/braid-router/braid/sessions/peer/socksaddr"
	"github.com/braid-router/braid/sessions/proxy/peerhealth"
	"github.com/braid-router/braid/sessions/proxy/subflows"
)

// Timing of the peer's probes.
const (
	// DefaultProbeInterval is how often the peer is probed over each
	// uplink.
	DefaultProbeInterval = 3 * time.Second
	// DefaultProbeTimeout bounds one probe.
	DefaultProbeTimeout = 2 * time.Second
	// ProbeName is what the end-to-end probe asks the peer's resolver
	// (type A): a name resolvers answer themselves (RFC 6761), so that
	// the answer depends on the peer's path, not on the resolver's own
	// upstreams.
	ProbeName = "localhost."
	// mainTable names the probe that takes the box's routing, when no
	// uplink is given.
	mainTable = "routing"
)

// peerHealth probes the peer and judges its health (package peerhealth),
// from the probes and from the connections the relays report; it
// publishes the verdict as the session's facts.Peer, and writes the
// session's status.
type peerHealth struct {
	env      *session.Env
	interval time.Duration
	timeout  time.Duration
	params   peerhealth.Params
	kick     chan struct{}

	mu      sync.Mutex
	cfg     Config
	key     *shadowsocks.EncryptionKey
	secret  string
	base    string // the relayer's part of the status
	m       *peerhealth.Machine
	pub     *facts.Peer // what was published last
	probed  time.Time   // when the last round ended
	dnsAddr socksaddr.Addr
	// waiting are the relayed connections the peer has not answered
	// yet, each with what gives it up: when the peer goes down, they
	// are reset rather than left hanging.
	waiting map[*int]func()

	// sf judges, per uplink, whether the connections' MPTCP subflows
	// establish (mptcpdiag.go); nil once the session stopped. sfGen
	// counts the peers judged (a look at another's connection is
	// dropped), looks the connections waiting for theirs, settle how
	// long after its answer a connection is looked at, flagged the
	// uplinks flagged at the last status.
	sf      *subflows.Machine
	sfGen   int
	looks   int
	settle  time.Duration
	flagged map[string]string
}

func newPeerHealth(env *session.Env, interval, timeout, settle time.Duration, params peerhealth.Params) *peerHealth {
	return &peerHealth{env: env, interval: interval, timeout: timeout, settle: settle, params: params, kick: make(chan struct{}, 1),
		sf: subflows.New(subflows.Params{})}
}

// configure takes cfg (and its derived key, and the status's first
// part): a new peer, cipher or key, or another resolver, starts the
// verdict anew (the last one stays published until the new one is
// known); other uplinks keep what was found over those probed already.
func (h *peerHealth) configure(cfg Config, key *shadowsocks.EncryptionKey, secret, base string) error {
	var dns socksaddr.Addr
	if cfg.DNS != "" {
		ap, err := netip.ParseAddrPort(cfg.DNS)
		if a, aerr := netip.ParseAddr(cfg.DNS); err != nil && aerr == nil {
			ap, err = netip.AddrPortFrom(a, 53), nil // the spec's default port
		}
		if err != nil {
			return fmt.Errorf("proxy: peer dns %q: %w", cfg.DNS, err)
		}
		dns = socksaddr.Addr{IP: ap.Addr().Unmap(), Port: ap.Port()}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	params := h.params
	params.EndToEnd = cfg.DNS != ""
	same := h.m != nil && cfg.Peer == h.cfg.Peer && cfg.Cipher == h.cfg.Cipher && cfg.DNS == h.cfg.DNS && secret == h.secret
	if same {
		h.m.SetUplinks(uplinkNames(cfg))
	} else {
		h.m = peerhealth.New(params, uplinkNames(cfg))
		if h.sf != nil {
			h.sf, h.looks, h.flagged = subflows.New(subflows.Params{}), 0, nil
			h.sfGen++
		}
	}
	h.cfg, h.key, h.secret, h.base, h.dnsAddr = cfg, key, secret, base, dns
	h.applyLocked(time.Now())
	select {
	case h.kick <- struct{}{}:
	default:
	}
	return nil
}

func uplinkNames(cfg Config) []string {
	if len(cfg.Uplinks) == 0 {
		return []string{mainTable}
	}
	var out []string
	for _, u := range cfg.Uplinks {
		out = append(out, u.Name)
	}
	return out
}

// strict reports whether a connection the peer does not answer in time
// is given up (see peerhealth.Machine.Strict).
func (h *peerHealth) strict() bool {
	if h == nil {
		return true
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.m.Strict()
}

// wait registers a relayed connection the peer has not answered yet,
// with giveUp, which resets it; the returned function deregisters it
// (once answered, or ended).
func (h *peerHealth) wait(giveUp func()) (done func()) {
	if h == nil {
		return func() {}
	}
	key := new(int)
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.waiting == nil {
		h.waiting = map[*int]func(){}
	}
	h.waiting[key] = giveUp
	return func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		delete(h.waiting, key)
	}
}

// connection6 records whether the peer answered a relayed connection to
// an IPv6 destination, or closed it without a byte, for the IPv6
// judgement (peerhealth.Machine.Connection6).
func (h *peerHealth) connection6(answered bool) {
	if h == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	now := time.Now()
	h.m.Connection6(answered, now)
	h.applyLocked(now)
}

// connection records whether the peer answered a relayed connection.
func (h *peerHealth) connection(answered bool) {
	if h == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	now := time.Now()
	h.m.Connection(answered, now)
	h.applyLocked(now)
}

// run probes every interval until ctx ends, then withdraws the verdict:
// it holds only while the session runs.
func (h *peerHealth) run(ctx context.Context) {
	defer h.env.Publish()
	defer func() {
		h.mu.Lock()
		h.sf = nil
		h.mu.Unlock()
	}()
	tick := time.NewTicker(h.interval)
	defer tick.Stop()
	for {
		h.round(ctx)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-h.kick:
		}
	}
}

// round probes the peer over every uplink at once, and waits for them.
func (h *peerHealth) round(ctx context.Context) {
	h.mu.Lock()
	cfg, key, secret, dns := h.cfg, h.key, h.secret, h.dnsAddr
	h.mu.Unlock()
	ups := cfg.Uplinks
	if len(ups) == 0 {
		ups = []Uplink{{Name: mainTable}}
	}
	failures := make([]string, len(ups))
	var wg sync.WaitGroup
	for i, u := range ups {
		wg.Go(func() { failures[i] = h.probe(ctx, u.Mark, cfg.Peer, key, dns) })
	}
	wg.Wait()
	if ctx.Err() != nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.secret != secret || h.cfg.Peer != cfg.Peer || h.cfg.Cipher != cfg.Cipher || h.cfg.DNS != cfg.DNS {
		return // a new peer came meanwhile: these say nothing of it
	}
	now := time.Now()
	for i, u := range ups {
		h.m.Probed(u.Name, failures[i])
	}
	h.probed = now
	h.m.Tick(now)
	h.applyLocked(now)
}

// probe connects to peer with a plain TCP socket (not Multipath TCP, so
// that it leaves by the uplink) marked with mark; with a resolver, it
// then asks it ProbeName through the peer, in the shadowsocks stream, by
// DNS over TCP (RFC 7766, package dnsstream, as the DNS forwarder's peer
// upstream does), and waits for the answer. It returns "" on success,
// else what failed.
func (h *peerHealth) probe(ctx context.Context, mark uint32, peer string, key *shadowsocks.EncryptionKey, dns socksaddr.Addr) string {
	ctx, cancel := context.WithTimeout(ctx, h.timeout)
	defer cancel()
	d := net.Dialer{Control: sockmark.Control(mark)}
	d.SetMultipathTCP(false)
	if !dns.IP.IsValid() {
		c, err := d.DialContext(ctx, "tcp", peer)
		if err != nil {
			return failure(err)
		}
		c.Close()
		return ""
	}
	ss, err := shadowsocks.NewStreamDialer(&transport.TCPEndpoint{Dialer: d, Address: peer}, key)
	if err != nil {
		return err.Error()
	}
	c, err := ss.DialStream(ctx, dns.String())
	if err != nil {
		return failure(err)
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	id := uint16(rand.Uint32())
	q, err := probe.DNSQuery(id, ProbeName)
	if err != nil {
		return err.Error()
	}
	// The target address went lazily into the stream's first chunk: the
	// query joins it there.
	if err := dnsstream.Write(c, q); err != nil {
		return "sending the DNS query: " + failure(err)
	}
	reply, err := dnsstream.Read(c)
	if err != nil {
		return "no DNS answer through the peer: " + failure(err)
	}
	if !probe.IsDNSReply(reply, id) {
		return "the peer's DNS answer is not the query's"
	}
	return ""
}

// failure says in a few words what err was.
func failure(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset"
	case errors.Is(err, syscall.ENETUNREACH):
		return "network unreachable"
	case errors.Is(err, syscall.EHOSTUNREACH):
		return "host unreachable"
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timed out"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "closed"
	case protocolError(err):
		return "the reply does not decrypt"
	}
	return err.Error()
}

// protocolError reports whether err is the peer's stream failing to
// decrypt (another key, not a shadowsocks server), rather than a
// connection's end or failure.
func protocolError(err error) bool {
	var ne net.Error
	var errno syscall.Errno
	return err != nil && !errors.As(err, &ne) && !errors.As(err, &errno) &&
		!errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, net.ErrClosed) &&
		!errors.Is(err, os.ErrDeadlineExceeded) && !errors.Is(err, errIdle) && !errors.Is(err, errNoReply)
}

// applyLocked publishes the verdict when it changed (an unknown one
// leaves the last in place), and writes the status.
func (h *peerHealth) applyLocked(now time.Time) {
	v := h.m.Verdict()
	if v.Known {
		f := &facts.Peer{Address: h.cfg.Peer, Healthy: v.Healthy, Reason: v.Reason, Uplinks: v.Uplinks, NoIPv6: v.NoIPv6}
		if h.pub == nil || h.pub.Address != f.Address || h.pub.Healthy != f.Healthy || h.pub.Reason != f.Reason || !slices.Equal(h.pub.Uplinks, f.Uplinks) || h.pub.NoIPv6 != f.NoIPv6 {
			if err := h.env.Publish(facts.Fact{Peer: f, Process: true}); err != nil {
				h.env.Log().Warn("proxy: publish the peer's health", "err", err)
			} else {
				h.pub = f
				h.env.Log().Info("proxy: peer health", "peer", f.Address, "healthy", f.Healthy, "reason", f.Reason, "uplinks", f.Uplinks, "noIPv6", f.NoIPv6)
			}
			if !f.Healthy {
				// The peer is down: what it has not answered yet, it
				// never will. Their clients are reset, not left hanging
				// (those that come after take plain routing).
				for key, giveUp := range h.waiting {
					giveUp()
					delete(h.waiting, key)
				}
			}
		}
	}
	h.env.SetState(session.Running, h.base+"; "+h.describeLocked(v))
}

// describeLocked is the health's part of the status: the verdict, what
// each uplink found, the last probe, the next trial.
func (h *peerHealth) describeLocked(v peerhealth.Verdict) string {
	var b strings.Builder
	switch {
	case !v.Known:
		b.WriteString("peer not proven up yet: LAN traffic goes direct")
	case v.Healthy:
		fmt.Fprintf(&b, "peer up over %s", strings.Join(v.Uplinks, ", "))
		if v.Reason != "" {
			b.WriteString(", " + v.Reason)
		}
		switch {
		case v.NoIPv6:
			b.WriteString("; the peer relays no IPv6 (" + v.IPv6Reason + "): LAN IPv6 goes direct")
		case v.IPv6Reason != "":
			b.WriteString("; " + v.IPv6Reason)
		}
	default:
		fmt.Fprintf(&b, "peer down: %s: LAN traffic goes direct", v.Reason)
	}
	var ups []string
	for _, u := range h.m.Uplinks() {
		switch {
		case u.Reached:
			ups = append(ups, u.Name+" reached")
		case u.Known:
			ups = append(ups, u.Name+" not reached ("+u.Err+")")
		default:
			ups = append(ups, u.Name+" not probed yet")
		}
	}
	b.WriteString(" (" + strings.Join(ups, ", "))
	if !h.probed.IsZero() {
		b.WriteString("; probed at " + h.probed.Format(time.TimeOnly))
	}
	if at := h.m.RetryAt(); !at.IsZero() {
		b.WriteString("; trial at " + at.Format(time.TimeOnly))
	}
	if at := h.m.RetryAt6(); !at.IsZero() {
		b.WriteString("; IPv6 trial at " + at.Format(time.TimeOnly))
	}
	b.WriteString(")")
	b.WriteString(h.subflowsLocked())
	return b.String()
}
