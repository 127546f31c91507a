package dns

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/braid-router/braid/drivers/nftables"
	"github.com/braid-router/braid/session"
	"github.com/braid-router/braid/sessions/dns/cache"
	"github.com/braid-router/braid/sessions/dns/upstream"
)

// Defaults of a Server's zero fields.
const (
	// DefaultUDPSize is the EDNS0 UDP payload size braid advertises and
	// the most it sends over UDP (DNS flag day 2020: no fragments).
	DefaultUDPSize = 1232
	// DefaultTimeout bounds one upstream query, retries on other
	// upstreams included.
	DefaultTimeout = 5 * time.Second
	// DefaultTCPIdle is how long a TCP connection may stay idle (RFC 7766
	// section 6.2.3 suggests seconds, not minutes).
	DefaultTCPIdle = 10 * time.Second
	// DefaultMaxTCPConns and DefaultMaxTCPConnsPerClient bound the open
	// TCP connections.
	DefaultMaxTCPConns          = 256
	DefaultMaxTCPConnsPerClient = 16
	// DefaultMaxInFlight and DefaultMaxInFlightPerClient bound the
	// queries being answered at once, both transports.
	DefaultMaxInFlight          = 1024
	DefaultMaxInFlightPerClient = 128
	// DefaultPrefetchInterval is how often the cache is asked for the
	// popular answers near expiry; DefaultPrefetchHits how many hits make
	// an answer popular.
	DefaultPrefetchInterval = 5 * time.Second
	DefaultPrefetchHits     = 2
	// DefaultStatusInterval is how often the status detail is refreshed.
	DefaultStatusInterval = 5 * time.Second
)

// prefetch bounds per round.
const (
	prefetchLimit   = 256
	prefetchWorkers = 4
)

// Server is the forwarder session, session[dns/resolver]: it answers on
// UDP and TCP on each Config.Listen address (and no other), and on the
// transparent sockets of Config.InterceptPort, from its cache or its
// upstreams, applying the answer policy. The zero value is ready but for
// NewAsker.
type Server struct {
	// Stats are the counters it counts into; nil: its own.
	Stats *Stats
	// Cache bounds the answer cache; zero fields take cache's defaults.
	Cache cache.Config
	// NewAsker makes what asks the upstreams of a configuration; it is
	// called at start and on an Update that changes the upstreams. The
	// Asker is closed (Close() or Close() error, if it has one) when
	// replaced or when Run ends. nil: an upstream.Pool of the
	// configuration's upstreams and fallback, through the aggregation
	// peer for the peer upstream.
	NewAsker func(Config) (Asker, error)
	// Sets commits the egress elements. nil: braid's nftables element
	// writer (nftables.OpenElements), opened in the namespace of the
	// thread that calls Run (or Update) once a configuration has egress
	// routes, and closed when Run ends.
	Sets Sets
	// UDPSize is braid's EDNS0 UDP size; zero: DefaultUDPSize.
	UDPSize int
	// Timeout bounds an upstream query; zero: DefaultTimeout.
	Timeout time.Duration
	// TCPIdle is the TCP idle timeout; zero: DefaultTCPIdle.
	TCPIdle time.Duration
	// MaxTCPConns and MaxTCPConnsPerClient bound the TCP connections;
	// zero: the defaults.
	MaxTCPConns, MaxTCPConnsPerClient int
	// MaxInFlight and MaxInFlightPerClient bound the queries answered at
	// once; zero: the defaults.
	MaxInFlight, MaxInFlightPerClient int
	// PrefetchInterval is how often popular answers near expiry are
	// refreshed; zero: DefaultPrefetchInterval; negative: never.
	PrefetchInterval time.Duration
	// StatusInterval is how often the status detail is refreshed; zero:
	// DefaultStatusInterval.
	StatusInterval time.Duration

	mu     sync.Mutex
	stats  *Stats
	cur    *engine            // while Run runs
	cfg    Config             // the configuration it runs with
	closer []func()           // closes the current Asker
	writer *nftables.Elements // opened by Run or Update when Sets is nil
}

// Run implements session.Session: it listens on every Config.Listen
// address, UDP and TCP, on Config.Port (and transparently on
// Config.InterceptPort, if set), and answers until ctx ends; then
// it closes the listeners and connections and returns once every query
// in flight is done. An address taken, or a policy that does not parse,
// is an error (the supervisor retries after its backoff).
func (s *Server) Run(ctx context.Context, cfg Config, env *session.Env) error {
	s.mu.Lock()
	if s.stats == nil {
		s.stats = cmp.Or(s.Stats, new(Stats))
	}
	stats := s.stats
	s.mu.Unlock()
	asker, closeAsker, err := s.asker(cfg, env.Log())
	if err != nil {
		return err
	}
	defer func() { closeAsker() }()
	writer, err := s.sets(cfg)
	if err != nil {
		return err
	}
	defer func() {
		s.mu.Lock()
		w := s.writer
		s.writer = nil
		s.mu.Unlock()
		if w != nil {
			w.Close()
		}
	}()
	r, err := newRules(cfg, asker, writer)
	if err != nil {
		return err
	}
	e := &engine{
		ctx:     ctx,
		cache:   cache.New(s.Cache),
		stats:   stats,
		log:     env.Log(),
		udpSize: max(cmp.Or(s.UDPSize, DefaultUDPSize), 512),
		timeout: cmp.Or(s.Timeout, DefaultTimeout),
		now:     time.Now,
		calls:   map[cache.Key]*call{},
	}
	e.rules.Store(r)

	var (
		udps, intercepts []*net.UDPConn
		tcps             []*net.TCPListener
	)
	closeAll := func() {
		for _, c := range append(udps, intercepts...) {
			c.Close()
		}
		for _, l := range tcps {
			l.Close()
		}
	}
	for _, a := range cfg.Listen {
		u, t, err := listen(ctx, a, cfg.Port)
		if err != nil {
			closeAll()
			return err
		}
		udps, tcps = append(udps, u), append(tcps, t)
	}
	if cfg.InterceptPort != 0 {
		u, t, err := listenIntercept(ctx, cfg.InterceptPort)
		if err != nil {
			closeAll()
			return err
		}
		intercepts, tcps = u, append(tcps, t...)
	}

	s.mu.Lock()
	s.cur, s.cfg, s.closer = e, cfg, []func(){closeAsker}
	closeAsker = func() {}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		closers := s.closer
		s.cur, s.closer = nil, nil
		s.mu.Unlock()
		for _, c := range closers {
			c()
		}
	}()

	inflight := newLimiter(cmp.Or(s.MaxInFlightPerClient, DefaultMaxInFlightPerClient), cmp.Or(s.MaxInFlight, DefaultMaxInFlight))
	conns := newLimiter(cmp.Or(s.MaxTCPConnsPerClient, DefaultMaxTCPConnsPerClient), cmp.Or(s.MaxTCPConns, DefaultMaxTCPConns))
	var (
		open connSet
		wg   sync.WaitGroup
	)
	for _, c := range udps {
		wg.Go(func() { s.serveUDP(ctx, e, c, inflight, &wg) })
	}
	for _, c := range intercepts {
		wg.Go(func() { s.serveInterceptUDP(ctx, e, c, inflight, &wg) })
	}
	for _, l := range tcps {
		wg.Go(func() { s.serveTCP(ctx, e, l, conns, inflight, &open, &wg) })
	}
	if iv := cmp.Or(s.PrefetchInterval, DefaultPrefetchInterval); iv > 0 {
		wg.Go(func() { e.prefetchLoop(ctx, iv) })
	}
	wg.Go(func() { s.report(ctx, env, cfg) })
	env.Log().Info("serving", "listen", listenString(cfg), "upstreams", len(cfg.Upstreams))

	<-ctx.Done()
	closeAll()
	open.close()
	wg.Wait()
	return nil
}

// Update implements session.Updater: new upstreams (a new Asker, the old
// one closed once the queries asking it are done), a new AAAA policy or
// new egress routes apply to the next query. The cache keeps its
// answers: it holds the upstreams' answers before the policy. Other
// listen addresses or another port need a restart.
func (s *Server) Update(cfg Config) error {
	s.mu.Lock()
	e, old := s.cur, s.cfg
	s.mu.Unlock()
	if e == nil || cfg.Port != old.Port || cfg.InterceptPort != old.InterceptPort || !slices.Equal(cfg.Listen, old.Listen) {
		return session.ErrRestart
	}
	asker := e.rules.Load().asker
	var closeAsker func()
	if !slices.Equal(cfg.Upstreams, old.Upstreams) || !slices.Equal(cfg.Fallback, old.Fallback) || !reflect.DeepEqual(cfg.Peer, old.Peer) {
		a, c, err := s.asker(cfg, e.log)
		if err != nil {
			return err
		}
		asker, closeAsker = a, c
	}
	writer, err := s.sets(cfg)
	var r *rules
	if err == nil {
		r, err = newRules(cfg, asker, writer)
	}
	if err != nil {
		if closeAsker != nil {
			closeAsker()
		}
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur != e {
		if closeAsker != nil {
			closeAsker()
		}
		return session.ErrRestart
	}
	e.rules.Store(r)
	s.cfg = cfg
	if closeAsker != nil {
		// Queries asking the old Asker finish within the timeout.
		prev := s.closer
		s.closer = []func(){closeAsker}
		time.AfterFunc(e.timeout, func() {
			for _, c := range prev {
				c()
			}
		})
	}
	return nil
}

// sets is what commits cfg's egress elements: Server.Sets, else braid's
// element writer, opened on the first configuration with egress routes.
func (s *Server) sets(cfg Config) (Sets, error) {
	if s.Sets != nil {
		return s.Sets, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.writer == nil && len(cfg.Egress) > 0 {
		w, err := nftables.OpenElements()
		if err != nil {
			return nil, fmt.Errorf("dns: egress sets: %w", err)
		}
		s.writer = w
	}
	if s.writer == nil {
		return nil, nil
	}
	return s.writer, nil
}

// newPool is the default Asker: an upstream.Pool of cfg's upstreams and
// fallback, with the peer's dialer when cfg has a peer.
func newPool(cfg Config, log *slog.Logger) (Asker, error) {
	pc := upstream.Config{Upstreams: cfg.Upstreams, Fallback: cfg.Fallback, Log: log}
	if cfg.Peer != nil {
		password := ""
		if cfg.Peer.Key != nil {
			p, err := cfg.Peer.Key.Resolve(nil, nil)
			if err != nil {
				return nil, fmt.Errorf("peer key: %w", err)
			}
			password = p
		}
		d, err := upstream.NewPeerDialer(cfg.Peer.Address, cfg.Peer.Cipher, password)
		if err != nil {
			return nil, err
		}
		pc.Dial = d
	}
	return upstream.New(pc), nil
}

// Upstreams is the state of each upstream resolver, as the running
// forwarder's upstream.Pool reports it (upstream.Pool.Status): nil while
// it does not run or when its Asker is not a Pool.
func (s *Server) Upstreams() []upstream.State {
	s.mu.Lock()
	e := s.cur
	s.mu.Unlock()
	if e == nil {
		return nil
	}
	if st, ok := e.rules.Load().asker.(interface{ Status() []upstream.State }); ok {
		return st.Status()
	}
	return nil
}

// asker makes cfg's Asker and the function that closes it.
func (s *Server) asker(cfg Config, log *slog.Logger) (Asker, func(), error) {
	newAsker := s.NewAsker
	if newAsker == nil {
		newAsker = func(cfg Config) (Asker, error) { return newPool(cfg, log) }
	}
	a, err := newAsker(cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("dns: upstreams: %w", err)
	}
	var once sync.Once
	closeIt := func() {
		once.Do(func() {
			switch c := a.(type) {
			case io.Closer:
				c.Close()
			case interface{ Close() }:
				c.Close()
			}
		})
	}
	return a, closeIt, nil
}

// prefetchLoop refreshes popular answers near expiry every interval
// until ctx ends.
func (e *engine) prefetchLoop(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			e.prefetch(ctx, now, DefaultPrefetchHits, prefetchLimit, prefetchWorkers)
		}
	}
}

// report sets the session's state, running with a detail refreshed every
// status interval when it changed, until ctx ends.
func (s *Server) report(ctx context.Context, env *session.Env, cfg Config) {
	iv := cmp.Or(s.StatusInterval, DefaultStatusInterval)
	last := ""
	set := func() {
		s.mu.Lock()
		cfg = s.cfg
		s.mu.Unlock()
		if d := detail(cfg, s.stats.Snapshot(), s.Upstreams()); d != last {
			env.SetState(session.Running, d)
			last = d
		}
	}
	set()
	t := time.NewTicker(iv)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			set()
		}
	}
}

// detail is the status detail: where it serves, how much it answered
// and how, then the resolvers (upstreamHealth), each named once: the one
// asked first now is the one marked "in use" there.
func detail(cfg Config, st Snapshot, ups []upstream.State) string {
	var b strings.Builder
	fmt.Fprintf(&b, "serving %s", listenString(cfg))
	fmt.Fprintf(&b, "; %d queries", st.Queries())
	if n := st.CacheHits + st.CacheMisses; n > 0 {
		fmt.Fprintf(&b, ", %d%% from cache", st.CacheHits*100/n)
	}
	if st.UpstreamFailures > 0 {
		fmt.Fprintf(&b, ", %d unanswered upstream", st.UpstreamFailures)
	}
	if st.Filtered > 0 {
		fmt.Fprintf(&b, ", %d filtered", st.Filtered)
	}
	if st.EgressElements > 0 || st.EgressFailures > 0 {
		fmt.Fprintf(&b, ", %d egress elements", st.EgressElements)
		if st.EgressFailures > 0 {
			fmt.Fprintf(&b, " (%d answers failed to add theirs)", st.EgressFailures)
		}
	}
	h := upstreamHealth(ups)
	if ups == nil {
		// An Asker that reports no state: the configured names.
		h = configured(cfg)
	}
	if h != "" {
		fmt.Fprintf(&b, "; %s", h)
	}
	return b.String()
}

// configured names cfg's resolvers, once each, without their health:
// "upstreams: NAME, ... | fallback: NAME, ...".
func configured(cfg Config) string {
	names := func(rs []upstream.Resolver) string {
		var ns []string
		for _, r := range rs {
			if !slices.Contains(ns, r.Name) {
				ns = append(ns, r.Name)
			}
		}
		return strings.Join(ns, ", ")
	}
	var parts []string
	if len(cfg.Upstreams) > 0 {
		parts = append(parts, "upstreams: "+names(cfg.Upstreams))
	}
	if len(cfg.Fallback) > 0 {
		parts = append(parts, "fallback: "+names(cfg.Fallback))
	}
	return strings.Join(parts, " | ")
}

// upstreamHealth writes the resolvers' states for status, each once: as
// "NAME ADDR up RTT" or "NAME ADDR dead (why)", the one asked first now
// marked "in use" (a fallback's when every upstream is dead), and the
// fallback apart: "upstreams: ... | fallback: ...". With none up, it
// says that every query asks them all.
func upstreamHealth(states []upstream.State) string {
	var ups, fallback []string
	inUse := false
	for _, s := range states {
		w := s.Name
		if addr := s.Addr.String(); addr != s.Name {
			w += " " + addr
		}
		switch {
		case s.Up && s.RTT > 0:
			w += " up " + s.RTT.Round(10*time.Microsecond).String()
		case s.Up:
			w += " up"
		default:
			w += " dead"
			if s.Err != "" {
				w += " (" + s.Err + ")"
			}
		}
		if s.InUse {
			w += ", in use"
			inUse = true
		}
		if s.Fallback {
			fallback = append(fallback, w)
		} else {
			ups = append(ups, w)
		}
	}
	var parts []string
	if len(ups) > 0 {
		parts = append(parts, "upstreams: "+strings.Join(ups, "; "))
	}
	if len(fallback) > 0 {
		parts = append(parts, "fallback: "+strings.Join(fallback, "; "))
	}
	if len(states) > 0 && !inUse {
		parts = append(parts, "none up: each query asks them all at once")
	}
	return strings.Join(parts, " | ")
}

// listenString is where cfg serves: "192.0.2.1, 2001:db8::1 port 53",
// then ", intercepting on port 7153" with intercept; "only what it
// intercepts, on port 7153" without a listen address.
func listenString(cfg Config) string {
	var as []string
	for _, a := range cfg.Listen {
		as = append(as, a.String())
	}
	switch {
	case len(as) == 0 && cfg.InterceptPort != 0:
		return "only what it intercepts, on port " + fmt.Sprint(cfg.InterceptPort)
	case len(as) == 0:
		return "nowhere"
	}
	l := strings.Join(as, ", ") + " port " + fmt.Sprint(cfg.Port)
	if cfg.InterceptPort != 0 {
		l += ", intercepting on port " + fmt.Sprint(cfg.InterceptPort)
	}
	return l
}
