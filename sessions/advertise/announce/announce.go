// Package announce decides what braid's router advertisements on the LAN
// say and when they go out: the router side of RFC 4861's router
// discovery (sections 6.2.4 to 6.2.6), with the prefix lifetimes of RFC
// 9096 and the resolvers of RFC 8106. It has no sockets and no clock: the
// session passes the time in, sends what Tick returns to all-nodes, and
// tells the machine of the solicitations it reads.
//
// What it keeps beyond the schedule is what LAN hosts may still hold:
// for every prefix and resolver it advertised, the end of the longest
// lifetime it gave. A prefix that leaves the configuration is advertised
// deprecated (preferred lifetime 0) with the rest of that lifetime until
// it has run out, so hosts stop choosing its addresses at once and lose
// them when they would anyway (RFC 4862 5.5.3 e: a host does not cut a
// valid lifetime of two hours or less on an advert's word); a resolver
// that leaves is advertised with lifetime 0 (RFC 8106 5.1) as long. The
// final advert, when the session stops, has a router lifetime of 0 (RFC
// 4861 6.2.5), every prefix deprecated and every resolver withdrawn.
package announce

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"net/netip"
	"slices"
	"time"

	"github.com/braid-router/braid/sessions/ra/advert"
)

// RFC 4861's router constants (section 10).
const (
	// MaxInitialInterval caps the interval after each of the first
	// MaxInitialAdverts adverts (MAX_INITIAL_RTR_ADVERT_INTERVAL).
	MaxInitialInterval = 16 * time.Second
	// MaxInitialAdverts is how many adverts go out fast when the link
	// starts advertising or what it advertises changes
	// (MAX_INITIAL_RTR_ADVERTISEMENTS).
	MaxInitialAdverts = 3
	// MinDelayBetweenRAs is the least time between two adverts to
	// all-nodes (MIN_DELAY_BETWEEN_RAS).
	MinDelayBetweenRAs = 3 * time.Second
	// MaxRADelay bounds the random delay of an answer to a solicitation
	// (MAX_RA_DELAY_TIME).
	MaxRADelay = 500 * time.Millisecond
)

// Defaults and bounds of the configuration.
const (
	// DefaultMaxInterval is MaxRtrAdvInterval's default (RFC 4861
	// 6.2.1); MinRtrAdvInterval defaults to a third of it.
	DefaultMaxInterval = 600 * time.Second
	// PreferredLimit and ValidLimit are the longest preferred and valid
	// lifetimes a prefix is advertised with: RFC 9096 section 4's
	// ND_PREFERRED_LIMIT and ND_VALID_LIMIT, so that hosts forget a
	// prefix the box lost (a new delegation, a reboot) within 90 minutes.
	PreferredLimit = 2700 * time.Second
	ValidLimit     = 5400 * time.Second
	// HopLimit is the Cur Hop Limit advertised (RFC 4861 6.2.1: the
	// Internet's default TTL).
	HopLimit = 64
)

// Prefix is a /64 to advertise, on-link and for SLAAC.
type Prefix struct {
	Prefix netip.Prefix
	// ValidUntil and PreferredUntil bound the lifetimes advertised: the
	// ends of a delegated prefix's lifetimes. Zero: no bound (a static
	// prefix, or one delegated forever).
	ValidUntil, PreferredUntil time.Time
}

// Config is what the adverts say, and how often they go.
type Config struct {
	// Prefixes are advertised in order, with the L and A flags.
	Prefixes []Prefix
	// DNS are the resolvers of the RDNSS option; none: no option.
	DNS []netip.Addr
	// MTU is the MTU option's value; zero: no option.
	MTU uint32
	// DefaultRouter makes the box the LAN's default router: a router
	// lifetime of three MaxIntervals (RFC 4861 6.2.1's default). Unset,
	// the router lifetime is 0: hosts take the prefixes but not a
	// default route through the box.
	DefaultRouter bool
	// MaxInterval and MinInterval bound the time between unsolicited
	// adverts (MaxRtrAdvInterval, MinRtrAdvInterval); zero takes the
	// defaults: 600 s, and a third of MaxInterval.
	MaxInterval, MinInterval time.Duration
	// ValidLimit and PreferredLimit cap the prefixes' lifetimes; zero
	// takes RFC 9096's.
	ValidLimit, PreferredLimit time.Duration
}

// WithDefaults returns c with its zero intervals and limits set to the
// defaults.
func (c Config) WithDefaults() Config {
	if c.MaxInterval == 0 {
		c.MaxInterval = DefaultMaxInterval
	}
	if c.MinInterval == 0 {
		c.MinInterval = max(c.MaxInterval/3, MinDelayBetweenRAs)
	}
	if c.ValidLimit == 0 {
		c.ValidLimit = ValidLimit
	}
	if c.PreferredLimit == 0 {
		c.PreferredLimit = PreferredLimit
	}
	return c
}

// Check reports what RFC 4861 6.2.1 and the codec refuse in c (with its
// defaults): intervals out of range, a prefix that is not an IPv6 /64
// without host bits, or twice; a resolver that is not unicast IPv6; an
// MTU under the least an IPv6 link has.
func (c Config) Check() error {
	c = c.WithDefaults()
	switch {
	case c.MaxInterval < 4*time.Second || c.MaxInterval > 1800*time.Second:
		return fmt.Errorf("MaxRtrAdvInterval %v: want 4 s to 1800 s", c.MaxInterval)
	case c.MinInterval < MinDelayBetweenRAs || c.MinInterval > c.MaxInterval*3/4:
		return fmt.Errorf("MinRtrAdvInterval %v: want 3 s to %v (three quarters of MaxRtrAdvInterval)", c.MinInterval, c.MaxInterval*3/4)
	case c.ValidLimit < time.Second || c.PreferredLimit < 0 || c.PreferredLimit > c.ValidLimit:
		return fmt.Errorf("lifetime limits %v (preferred) and %v (valid): want 0 <= preferred <= valid, valid at least 1 s", c.PreferredLimit, c.ValidLimit)
	case c.MTU != 0 && c.MTU < advert.MinLinkMTU:
		return fmt.Errorf("MTU %d: under %d", c.MTU, advert.MinLinkMTU)
	}
	seen := map[netip.Prefix]bool{}
	for _, p := range c.Prefixes {
		q := p.Prefix
		if !q.IsValid() || !q.Addr().Is6() || q.Addr().Is4In6() || q.Bits() != 64 || q != q.Masked() || q.Addr().Zone() != "" {
			return fmt.Errorf("prefix %s: want an IPv6 /64 without host bits", q)
		}
		if seen[q] {
			return fmt.Errorf("prefix %s twice", q)
		}
		seen[q] = true
	}
	for _, d := range c.DNS {
		if !d.Is6() || d.Is4In6() || d.IsMulticast() || d.IsUnspecified() || d.IsLoopback() || d.Zone() != "" {
			return fmt.Errorf("resolver %s: want a unicast IPv6 address", d)
		}
	}
	return nil
}

// routerLifetime is the router lifetime of a default router: three
// MaxIntervals (RFC 4861 6.2.1), never over the codec's maximum.
func (c Config) routerLifetime() time.Duration {
	return min(3*c.MaxInterval, advert.MaxRouterLifetime)
}

// dnsLifetime is the RDNSS lifetime: three MaxIntervals (RFC 8106 5.1).
func (c Config) dnsLifetime() time.Duration { return 3 * c.MaxInterval }

// Machine is the advertising side of one LAN link.
type Machine struct {
	cfg Config
	rnd *rand.Rand
	// next is when the next advert to all-nodes is due; zero: none
	// (paused, or done).
	next time.Time
	// last is when the last one went; zero: none yet.
	last time.Time
	// initial counts the fast adverts left.
	initial int
	// held is, for each prefix advertised, the end of the longest valid
	// lifetime advertised for it: hosts may hold its addresses until then.
	held map[netip.Prefix]time.Time
	// dnsHeld is, for each resolver advertised, the end of the longest
	// lifetime advertised for it.
	dnsHeld map[netip.Addr]time.Time
	// stopping: the next advert is the final one; done: it went.
	stopping, done bool
	// Counters for status.
	sent, solicited int
}

// New returns a machine advertising cfg (with its defaults; Check it
// first), drawing its random intervals and delays from rnd. It sends
// nothing until Start.
func New(cfg Config, rnd *rand.Rand) *Machine {
	return &Machine{cfg: cfg.WithDefaults(), rnd: rnd, held: map[netip.Prefix]time.Time{}, dnsHeld: map[netip.Addr]time.Time{}}
}

// Start makes the link an advertising interface at now (the session
// opened it, or opened it again): an advert at once, then the fast ones
// (RFC 4861 6.2.4), all at least MinDelayBetweenRAs apart.
func (m *Machine) Start(now time.Time) {
	if m.stopping {
		return
	}
	m.initial = MaxInitialAdverts
	m.next = m.earliest(now)
}

// Pause stops the adverts while the link cannot carry them (it is down,
// or gone); Start resumes them. What hosts hold is kept.
func (m *Machine) Pause() {
	if !m.stopping {
		m.next = time.Time{}
	}
}

// earliest is the earliest an advert to all-nodes may go after now.
func (m *Machine) earliest(now time.Time) time.Time {
	if !m.last.IsZero() && now.Before(m.last.Add(MinDelayBetweenRAs)) {
		return m.last.Add(MinDelayBetweenRAs)
	}
	return now
}

// Next is when Tick has an advert to send; zero when none is scheduled.
func (m *Machine) Next() time.Time { return m.next }

// Done reports whether the final advert went.
func (m *Machine) Done() bool { return m.done }

// Update replaces the configuration at now. What left it is advertised
// withdrawn while hosts may hold it; the change goes out at once, then in
// the fast adverts of a link that starts advertising (RFC 4861 6.2.4).
func (m *Machine) Update(cfg Config, now time.Time) {
	m.cfg = cfg.WithDefaults()
	if m.stopping || m.next.IsZero() {
		return
	}
	m.initial = MaxInitialAdverts
	m.next = m.earliest(now)
}

// Solicited tells the machine of a valid router solicitation read at now.
// The answer is an advert to all-nodes after a random delay of up to
// MaxRADelay, or MinDelayBetweenRAs after the last one plus that delay;
// an advert already due sooner answers it (RFC 4861 6.2.6).
func (m *Machine) Solicited(now time.Time) {
	if m.stopping || m.next.IsZero() {
		return
	}
	m.solicited++
	delay := time.Duration(m.rnd.Int64N(int64(MaxRADelay) + 1))
	at := now.Add(delay)
	if !m.last.IsZero() && now.Before(m.last.Add(MinDelayBetweenRAs)) {
		at = m.last.Add(MinDelayBetweenRAs + delay)
	}
	if m.next.After(at) {
		m.next = at
	}
}

// Stop asks for the final advert, due as soon as it may go. A machine
// that never sent one has nothing to take back: it is done at once.
func (m *Machine) Stop(now time.Time) {
	if m.stopping {
		return
	}
	m.stopping = true
	if m.last.IsZero() {
		m.done, m.next = true, time.Time{}
		return
	}
	m.next = m.earliest(now)
}

// Tick returns the advert due at now, for all-nodes (ff02::1), or nil
// when none is, and schedules the next one: at a random interval between
// MinInterval and MaxInterval, at most MaxInitialInterval while fast
// adverts are left. After Stop, the advert it returns is the final one.
func (m *Machine) Tick(now time.Time) *advert.Advert {
	if m.next.IsZero() || now.Before(m.next) {
		return nil
	}
	a := m.build(now, m.stopping)
	if m.stopping {
		m.done, m.next = true, time.Time{}
	}
	if empty(a) {
		// Nothing to say (no prefix, no resolver, not a default
		// router): silence, until the configuration changes.
		if !m.stopping {
			m.next = now.Add(m.interval(false))
		}
		return nil
	}
	m.last = now
	m.sent++
	if m.stopping {
		return a
	}
	fast := m.initial > 1
	m.initial = max(m.initial-1, 0)
	m.next = now.Add(m.interval(fast))
	return a
}

// interval draws the time to the next unsolicited advert: at random
// between MinInterval and MaxInterval, at most MaxInitialInterval when
// fast.
func (m *Machine) interval(fast bool) time.Duration {
	span := m.cfg.MaxInterval - m.cfg.MinInterval
	d := m.cfg.MinInterval + time.Duration(m.rnd.Int64N(int64(span)+1))
	if fast {
		d = min(d, MaxInitialInterval)
	}
	return max(d, MinDelayBetweenRAs)
}

// empty reports whether a says nothing: no prefix, no resolver, and not
// a default router.
func empty(a *advert.Advert) bool {
	return len(a.Prefixes) == 0 && len(a.DNS) == 0 && a.RouterLifetime == 0
}

// seconds truncates d to whole seconds, as the wire carries it, and never
// below zero.
func seconds(d time.Duration) time.Duration {
	return max(d.Truncate(time.Second), 0)
}

// build writes the advert of now. A final one deprecates every prefix and
// withdraws every resolver and the router itself.
func (m *Machine) build(now time.Time, final bool) *advert.Advert {
	a := &advert.Advert{HopLimit: HopLimit, MTU: m.cfg.MTU}
	if m.cfg.DefaultRouter && !final {
		a.RouterLifetime = m.cfg.routerLifetime()
	}
	current := map[netip.Prefix]bool{}
	for _, p := range m.cfg.Prefixes {
		current[p.Prefix] = true
		valid := m.cfg.ValidLimit
		if !p.ValidUntil.IsZero() {
			valid = min(valid, p.ValidUntil.Sub(now))
		}
		preferred := m.cfg.PreferredLimit
		if !p.PreferredUntil.IsZero() {
			preferred = min(preferred, p.PreferredUntil.Sub(now))
		}
		valid = seconds(valid)
		preferred = min(seconds(preferred), valid)
		if final {
			continue // with the withdrawn ones below
		}
		if valid == 0 {
			// Expired: hosts dropped it with the lifetime braid gave.
			continue
		}
		if end := now.Add(valid); end.After(m.held[p.Prefix]) {
			m.held[p.Prefix] = end
		}
		a.Prefixes = append(a.Prefixes, advert.Prefix{Prefix: p.Prefix, OnLink: true, Autonomous: true, Valid: valid, Preferred: preferred})
	}
	// What hosts may hold and braid no longer offers: deprecated, with
	// what is left of its lifetime, until that has run out.
	for _, p := range slices.SortedFunc(maps.Keys(m.held), netip.Prefix.Compare) {
		if current[p] && !final {
			continue
		}
		left := seconds(m.held[p].Sub(now))
		if left == 0 {
			delete(m.held, p)
			continue
		}
		a.Prefixes = append(a.Prefixes, advert.Prefix{Prefix: p, OnLink: true, Autonomous: true, Valid: left})
	}
	var withdrawn []netip.Addr
	if !final && len(m.cfg.DNS) > 0 {
		life := m.cfg.dnsLifetime()
		a.DNS = append(a.DNS, advert.RDNSS{Lifetime: life, Servers: slices.Clone(m.cfg.DNS)})
		for _, d := range m.cfg.DNS {
			if end := now.Add(life); end.After(m.dnsHeld[d]) {
				m.dnsHeld[d] = end
			}
		}
	}
	for _, d := range slices.SortedFunc(maps.Keys(m.dnsHeld), netip.Addr.Compare) {
		if !final && slices.Contains(m.cfg.DNS, d) {
			continue
		}
		if !now.Before(m.dnsHeld[d]) {
			delete(m.dnsHeld, d)
			continue
		}
		withdrawn = append(withdrawn, d)
	}
	if len(withdrawn) > 0 {
		a.DNS = append(a.DNS, advert.RDNSS{Lifetime: 0, Servers: withdrawn})
	}
	return a
}

// Status is what the machine says of itself, for the session's status.
type Status struct {
	// Advertised is the last advert sent; nil before the first.
	Advertised *advert.Advert
	// Sent counts the adverts sent; Solicited the solicitations read.
	Sent, Solicited int
}

// Status returns what the adverts of now would say, and the counters.
func (m *Machine) Status(now time.Time) Status {
	st := Status{Sent: m.sent, Solicited: m.solicited}
	if m.sent > 0 {
		c := *m
		c.held, c.dnsHeld = maps.Clone(m.held), maps.Clone(m.dnsHeld)
		st.Advertised = c.build(now, m.done)
	}
	return st
}
