// Package autoconf is what a host learns from the router advertisements
// on one link, as a state machine with no sockets and no clock:
//
//   - router discovery (RFC 4861 section 6.3): one default router, kept
//     for its router lifetime, dropped at once when it advertises a
//     lifetime of zero; solicitations when the link comes up and again
//     when the router's lifetime runs out without a new advert, retried
//     with RFC 7559's backoff until an advert comes;
//   - one address by stateless autoconfiguration (RFC 4862) in the first
//     prefix of an advert that allows it (the A flag, a /64), formed as
//     RFC 7217 says, checked unique by duplicate address detection (one
//     probe with an RFC 7527 nonce, then RetransTimer of silence) before
//     it is learnt, and kept for its valid lifetime with RFC 4862's
//     two-hour rule;
//   - the resolvers of RDNSS options (RFC 8106), each for its lifetime.
//
// Every method takes the time now and returns the actions to take (send a
// solicitation, send a DAD probe); the caller calls Tick at Next, and
// publishes Learnt when it changes.
package autoconf

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/braid-router/braid/sessions/ra/advert"
)

// Protocol constants.
const (
	// MaxRtrSolicitationDelay bounds the random delay before the first
	// solicitation (RFC 4861 section 10).
	MaxRtrSolicitationDelay = time.Second
	// RtrSolicitationInterval is the first retransmission interval of
	// solicitations (RFC 4861 section 10; RFC 7559's IRT).
	RtrSolicitationInterval = 4 * time.Second
	// MaxRtrSolicitationInterval caps the backoff (RFC 7559's MRT).
	MaxRtrSolicitationInterval = time.Hour
	// RetransTimer is how long DAD waits for an answer to its probe when
	// the adverts do not say (RFC 4861 section 10).
	RetransTimer = time.Second
	// IDGenRetries is how many new addresses RFC 7217 forms in a prefix
	// after duplicates before it gives up (section 7).
	IDGenRetries = 3
	// MaxRDNSS is how many resolvers are kept (RFC 8106 section 5.3.1: at
	// least three).
	MaxRDNSS = 3
	// twoHours is RFC 4862's floor under which an advert may not shorten
	// an address's valid lifetime (section 5.5.3 e).
	twoHours = 2 * time.Hour
)

// Rand is the randomness the machine uses: jitter of the solicitation
// schedule and DAD nonces. *math/rand/v2.Rand implements it.
type Rand interface {
	// Float64 returns a number in [0, 1).
	Float64() float64
	// Uint64 returns a random number.
	Uint64() uint64
}

// Config is what the machine needs to form addresses.
type Config struct {
	// Interface names the link: RFC 7217's Net_Iface.
	Interface string
	// Secret is RFC 7217's secret key.
	Secret []byte
	// Rand is its randomness.
	Rand Rand
}

// Learnt is what the machine knows and the session publishes. A zero time
// is forever.
type Learnt struct {
	// Address is the address formed by SLAAC, with the prefix's length;
	// invalid while there is none.
	Address netip.Prefix
	// Valid and Preferred are when the address's lifetimes end.
	Valid, Preferred time.Time
	// Router is the default router's link-local address; invalid while
	// there is none.
	Router netip.Addr
	// RouterExpires is when its router lifetime ends.
	RouterExpires time.Time
	// DNS are the resolvers, in the order they were first advertised.
	DNS []DNS
}

// DNS is a resolver and the end of its lifetime.
type DNS struct {
	Addr    netip.Addr
	Expires time.Time
}

// Equal reports whether l and o hold the same.
func (l Learnt) Equal(o Learnt) bool {
	return l.Address == o.Address && l.Valid.Equal(o.Valid) && l.Preferred.Equal(o.Preferred) &&
		l.Router == o.Router && l.RouterExpires.Equal(o.RouterExpires) &&
		slices.EqualFunc(l.DNS, o.DNS, func(a, b DNS) bool { return a.Addr == b.Addr && a.Expires.Equal(b.Expires) })
}

// ActionKind says what to send.
type ActionKind int

// Actions.
const (
	// Solicit: send a router solicitation to all routers.
	Solicit ActionKind = iota + 1
	// Probe: send a DAD probe for Target with Nonce (advert.Probe), having
	// joined Target's solicited-node group.
	Probe
)

// Action is one thing to send.
type Action struct {
	Kind   ActionKind
	Target netip.Addr
	Nonce  []byte
}

// Machine is the state of one link. Its zero value is not usable: see New.
type Machine struct {
	cfg Config
	up  bool

	// Router solicitation: whether, when next, and the interval after it.
	soliciting bool
	nextRS     time.Time
	rt         time.Duration

	// retrans is the link's RetransTimer, from its adverts.
	retrans time.Duration

	addr             netip.Prefix
	valid, preferred time.Time

	// The address under duplicate address detection, its lifetimes,
	// when DAD ends (zero while the link is down) and its probe's nonce.
	tentative          netip.Prefix
	tValid, tPreferred time.Time
	dadEnd             time.Time
	nonce              []byte
	// counter is RFC 7217's DAD_Counter in the tentative's prefix; failed
	// is a prefix given up on after IDGenRetries duplicates, problem why.
	counter uint8
	failed  netip.Prefix
	problem string

	router    netip.Addr
	routerEnd time.Time

	dns []DNS
}

// New returns the machine of a link, holding prev (what the session
// published before a restart) minus what has expired at now. It sends
// nothing until Start.
func New(cfg Config, prev Learnt, now time.Time) *Machine {
	m := &Machine{cfg: cfg, retrans: RetransTimer,
		addr: prev.Address, valid: prev.Valid, preferred: prev.Preferred,
		router: prev.Router, routerEnd: prev.RouterExpires, dns: slices.Clone(prev.DNS)}
	if m.router.IsValid() && m.routerEnd.IsZero() {
		// A router lifetime is 16 bits of seconds: never forever.
		m.router = netip.Addr{}
	}
	m.expire(now)
	return m
}

// Start says that the link is up and braid can send on it: it solicits
// (after a random delay under MaxRtrSolicitationDelay) until an advert
// comes, and probes again for an address whose DAD the link's going down
// interrupted.
func (m *Machine) Start(now time.Time) []Action {
	m.up = true
	m.soliciting, m.rt = true, 0
	m.nextRS = now.Add(time.Duration(m.cfg.Rand.Float64() * float64(MaxRtrSolicitationDelay)))
	if m.tentative.IsValid() {
		return m.probe(now)
	}
	return nil
}

// Stop says that the link went down: nothing is sent until Start. What
// was learnt keeps its lifetimes.
func (m *Machine) Stop() {
	m.up = false
	m.dadEnd = time.Time{}
}

// Advert takes a valid router advertisement.
func (m *Machine) Advert(now time.Time, a *advert.Advert) []Action {
	m.expire(now)
	// A router answers on the link: its adverts keep braid informed.
	m.soliciting = false
	if a.RetransTimer > 0 {
		m.retrans = a.RetransTimer
	}
	switch {
	case a.RouterLifetime > 0 && (!m.router.IsValid() || m.router == a.Router):
		m.router, m.routerEnd = a.Router, now.Add(a.RouterLifetime)
	case a.RouterLifetime == 0 && m.router == a.Router:
		// RFC 4861 6.3.4: a lifetime of zero times the router out at once.
		m.router, m.routerEnd = netip.Addr{}, time.Time{}
	}
	m.resolvers(now, a.DNS)
	var acts []Action
	for _, p := range a.Prefixes {
		// RFC 4862 5.5.3: the A flag (a), not link-local (b), preferred
		// within valid (c); and a /64: 64 bits of interface identifier.
		if !p.Autonomous || p.Prefix.Bits() != 64 || p.Prefix.Addr().IsLinkLocalUnicast() || p.Preferred > p.Valid {
			continue
		}
		switch {
		case m.addr.IsValid() && p.Prefix == m.addr.Masked():
			m.valid = refreshValid(now, m.valid, p.Valid)
			m.preferred = end(now, p.Preferred)
			if !m.valid.IsZero() && (m.preferred.IsZero() || m.preferred.After(m.valid)) {
				m.preferred = m.valid
			}
		case m.tentative.IsValid() && p.Prefix == m.tentative.Masked():
			m.tValid, m.tPreferred = end(now, p.Valid), end(now, p.Preferred)
		case !m.addr.IsValid() && !m.tentative.IsValid() && p.Valid > 0 && p.Prefix != m.failed:
			// The first prefix that allows an address: one address per
			// uplink.
			m.counter, m.problem = 0, ""
			m.tentative = netip.PrefixFrom(p.Prefix.Addr(), 64)
			m.tValid, m.tPreferred = end(now, p.Valid), end(now, p.Preferred)
			acts = append(acts, m.form(now)...)
		}
	}
	return acts
}

// Neighbor takes a valid neighbour solicitation or advertisement: one
// about the tentative address says another node has it or wants it (RFC
// 4862 sections 5.4.3 and 5.4.4), and braid forms another.
func (m *Machine) Neighbor(now time.Time, n *advert.Neighbor) []Action {
	if !m.tentative.IsValid() || n.Target != m.tentative.Addr() {
		return nil
	}
	if !n.Advertisement {
		if !n.Source.IsUnspecified() {
			// Address resolution by a node that has not read DAD's rules:
			// not a claim on the address.
			return nil
		}
		if len(m.nonce) > 0 && bytes.Equal(n.Nonce, m.nonce) {
			// braid's own probe, looped back (RFC 7527).
			return nil
		}
	}
	m.counter++
	if m.counter > IDGenRetries {
		m.failed = m.tentative.Masked()
		m.problem = fmt.Sprintf("duplicate address detection found %d addresses of %s taken on the link: no address in it until the prefix changes or the session restarts",
			m.counter, m.failed)
		m.tentative = netip.Prefix{}
		return nil
	}
	return m.form(now)
}

// Tick moves the machine to now: lifetimes that ended, DAD that
// completed, a solicitation that is due.
func (m *Machine) Tick(now time.Time) []Action {
	m.expire(now)
	if m.tentative.IsValid() && m.up && !m.dadEnd.IsZero() && !now.Before(m.dadEnd) {
		if expired(m.tValid, now) {
			m.tentative = netip.Prefix{}
		} else {
			// No answer for RetransTimer: the address is unique (RFC 4862
			// 5.4), and learnt.
			m.addr, m.valid, m.preferred = m.tentative, m.tValid, m.tPreferred
			m.tentative, m.dadEnd, m.nonce = netip.Prefix{}, time.Time{}, nil
		}
	}
	if m.soliciting && m.up && !now.Before(m.nextRS) {
		m.nextRS = now.Add(m.interval())
		return []Action{{Kind: Solicit}}
	}
	return nil
}

// Next is when Tick has work (zero: never, until another event).
func (m *Machine) Next() time.Time {
	var next time.Time
	at := func(t time.Time) {
		if !t.IsZero() && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	if m.soliciting && m.up {
		at(m.nextRS)
	}
	if m.tentative.IsValid() && m.up {
		at(m.dadEnd)
	}
	if m.router.IsValid() {
		at(m.routerEnd)
	}
	if m.addr.IsValid() {
		at(m.valid)
	}
	for _, d := range m.dns {
		at(d.Expires)
	}
	return next
}

// Learnt returns what the machine knows.
func (m *Machine) Learnt() Learnt {
	return Learnt{Address: m.addr, Valid: m.valid, Preferred: m.preferred,
		Router: m.router, RouterExpires: m.routerEnd, DNS: slices.Clone(m.dns)}
}

// Tentative returns the address under duplicate address detection, if any.
func (m *Machine) Tentative() netip.Addr {
	return m.tentative.Addr()
}

// Problem says why the machine holds no address where adverts offer a
// prefix ("" when nothing is wrong).
func (m *Machine) Problem() string { return m.problem }

// Soliciting reports whether the machine solicits adverts (none came
// since the link came up, or the router's lifetime ran out).
func (m *Machine) Soliciting() bool { return m.soliciting }

// form gives the tentative prefix its address for the DAD counter, and
// probes for it.
func (m *Machine) form(now time.Time) []Action {
	a, c := StableAddress(m.tentative, m.cfg.Interface, m.counter, m.cfg.Secret)
	m.tentative, m.counter = netip.PrefixFrom(a, 64), c
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], m.cfg.Rand.Uint64())
	m.nonce = n[:advert.NonceLen]
	return m.probe(now)
}

// probe sends the tentative address's DAD probe, when the link is up.
func (m *Machine) probe(now time.Time) []Action {
	if !m.up {
		m.dadEnd = time.Time{}
		return nil
	}
	m.dadEnd = now.Add(m.retrans)
	return []Action{{Kind: Probe, Target: m.tentative.Addr(), Nonce: m.nonce}}
}

// expire drops what has expired at now. Losing the router without a
// withdrawal (adverts went missing) starts soliciting again.
func (m *Machine) expire(now time.Time) {
	if m.router.IsValid() && expired(m.routerEnd, now) {
		m.router, m.routerEnd = netip.Addr{}, time.Time{}
		if !m.soliciting {
			m.soliciting, m.rt = true, 0
			m.nextRS = now.Add(time.Duration(m.cfg.Rand.Float64() * float64(MaxRtrSolicitationDelay)))
		}
	}
	if m.addr.IsValid() && expired(m.valid, now) {
		m.addr, m.valid, m.preferred = netip.Prefix{}, time.Time{}, time.Time{}
	}
	m.dns = slices.DeleteFunc(m.dns, func(d DNS) bool { return expired(d.Expires, now) })
}

// resolvers takes the RDNSS options of an advert (RFC 8106 section
// 5.3.1): a lifetime of zero removes a server; a new one beyond MaxRDNSS
// replaces the one that expires first.
func (m *Machine) resolvers(now time.Time, opts []advert.RDNSS) {
	for _, o := range opts {
		for _, s := range o.Servers {
			i := slices.IndexFunc(m.dns, func(d DNS) bool { return d.Addr == s })
			switch {
			case o.Lifetime == 0:
				if i >= 0 {
					m.dns = slices.Delete(m.dns, i, i+1)
				}
			case i >= 0:
				m.dns[i].Expires = end(now, o.Lifetime)
			default:
				m.dns = append(m.dns, DNS{Addr: s, Expires: end(now, o.Lifetime)})
				if len(m.dns) > MaxRDNSS {
					first := 0
					for j, d := range m.dns {
						if !d.Expires.IsZero() && (m.dns[first].Expires.IsZero() || d.Expires.Before(m.dns[first].Expires)) {
							first = j
						}
					}
					m.dns = slices.Delete(m.dns, first, first+1)
				}
			}
		}
	}
}

// interval is the wait after a solicitation before the next: RFC 7559's
// (RFC 3315's) RT, from RtrSolicitationInterval doubling to
// MaxRtrSolicitationInterval, each with ±10% of jitter.
func (m *Machine) interval() time.Duration {
	jitter := func(d time.Duration) time.Duration {
		return time.Duration((m.cfg.Rand.Float64()*0.2 - 0.1) * float64(d))
	}
	if m.rt == 0 {
		m.rt = RtrSolicitationInterval + jitter(RtrSolicitationInterval)
	} else {
		m.rt = 2*m.rt + jitter(m.rt)
	}
	if m.rt > MaxRtrSolicitationInterval {
		m.rt = MaxRtrSolicitationInterval + jitter(MaxRtrSolicitationInterval)
	}
	return m.rt
}

// end is when a lifetime d from now ends: zero for Infinite.
func end(now time.Time, d time.Duration) time.Time {
	if d == advert.Infinite {
		return time.Time{}
	}
	return now.Add(d)
}

// expired reports whether a lifetime that ends at t (zero: never) has
// ended at now.
func expired(t, now time.Time) bool {
	return !t.IsZero() && !now.Before(t)
}

// refreshValid is the valid lifetime's end after an advert of recv for an
// address whose lifetime ends at cur (RFC 4862 section 5.5.3 e): the
// advert's when it is over two hours or beyond cur; cur when under two
// hours remain; else two hours, so that a forged advert cannot take an
// address away at once.
func refreshValid(now, cur time.Time, recv time.Duration) time.Time {
	if recv == advert.Infinite {
		return time.Time{}
	}
	next := now.Add(recv)
	switch {
	case recv > twoHours, !cur.IsZero() && next.After(cur):
		return next
	case !cur.IsZero() && cur.Sub(now) <= twoHours:
		return cur
	}
	return now.Add(twoHours)
}
