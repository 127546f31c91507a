// Package leases is the LAN DHCP server's lease table (RFC 2131 section
// 4.3): which address a client is offered, whether a request is
// acknowledged or refused, renewals, releases, declines, static leases
// and expiry. It is pure: no sockets, no clock (every call is told the
// time), no files (the session saves what Leases returns, and gives it
// back to New after a restart, so that a client gets its address back).
package leases

import (
	"cmp"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"
)

// Defaults of Config.
const (
	// DefaultOfferTime is how long an offered address is held for the
	// client that was offered it: long enough for a REQUEST to follow
	// (RFC 2131 4.3.1 leaves it to the server).
	DefaultOfferTime = time.Minute
	// DefaultDeclineTime is how long an address a client declined (it
	// found it in use, RFC 2131 4.3.3) is kept out of the pool.
	DefaultDeclineTime = 10 * time.Minute
)

// Static is a fixed lease: the address a MAC always gets.
type Static struct {
	// MAC is the client's hardware address, as net.HardwareAddr.String
	// writes it.
	MAC string
	// Addr is its address.
	Addr netip.Addr
	// Hostname names the host in status.
	Hostname string
}

// Config is what the table leases.
type Config struct {
	// Server is the server's address: a client that names another
	// server in its REQUEST chose that one.
	Server netip.Addr
	// Subnet is the LAN's subnet; First..Last is the dynamic pool in it.
	Subnet      netip.Prefix
	First, Last netip.Addr
	// Reserved are never leased (the box's own addresses).
	Reserved []netip.Addr
	// Static leases, inside or outside the pool.
	Static []Static
	// LeaseTime is how long a lease lasts.
	LeaseTime time.Duration
	// OfferTime and DeclineTime: zero is DefaultOfferTime and
	// DefaultDeclineTime.
	OfferTime, DeclineTime time.Duration
}

// Check reports a configuration the table cannot serve.
func (c Config) Check() error {
	switch {
	case !c.Subnet.IsValid() || !c.Subnet.Addr().Is4():
		return fmt.Errorf("subnet %s is not an IPv4 prefix", c.Subnet)
	case !c.Subnet.Contains(c.First) || !c.Subnet.Contains(c.Last):
		return fmt.Errorf("range %s-%s is not inside %s", c.First, c.Last, c.Subnet)
	case c.Last.Less(c.First):
		return fmt.Errorf("range %s-%s ends before it starts", c.First, c.Last)
	case c.LeaseTime <= 0:
		return errors.New("lease time must be positive")
	}
	for _, s := range c.Static {
		if !c.Subnet.Contains(s.Addr) {
			return fmt.Errorf("static lease %s of %s is not inside %s", s.Addr, s.MAC, c.Subnet)
		}
	}
	return nil
}

// Lease is a client's binding to an address.
type Lease struct {
	// MAC is the client's hardware address.
	MAC string `json:"mac"`
	// Addr is the leased address.
	Addr netip.Addr `json:"address"`
	// Hostname is the static lease's, else what the client said
	// (option 12).
	Hostname string `json:"hostname,omitempty"`
	// Expires is when the lease ends. An expired lease is remembered,
	// so that the client gets the same address back while no one else
	// took it (RFC 2131 4.3.1).
	Expires time.Time `json:"expires"`
	// Static says the address is the client's static lease.
	Static bool `json:"static,omitempty"`
}

// offer is an address held for a client between OFFER and REQUEST.
type offer struct {
	addr  netip.Addr
	until time.Time
}

// Table is the lease table. It is not safe for concurrent use.
type Table struct {
	cfg      Config
	leases   map[string]*Lease // by MAC: bound now, or expired and remembered
	offers   map[string]offer  // by MAC
	declined map[netip.Addr]time.Time
}

// New returns a table serving cfg, with the leases saved before (what
// Leases returned), of which it keeps those that still fit cfg.
func New(cfg Config, saved []Lease) (*Table, error) {
	if err := cfg.Check(); err != nil {
		return nil, err
	}
	if cfg.OfferTime == 0 {
		cfg.OfferTime = DefaultOfferTime
	}
	if cfg.DeclineTime == 0 {
		cfg.DeclineTime = DefaultDeclineTime
	}
	t := &Table{cfg: cfg, leases: map[string]*Lease{}, offers: map[string]offer{}, declined: map[netip.Addr]time.Time{}}
	taken := map[netip.Addr]bool{}
	for _, l := range saved {
		if l.MAC == "" || taken[l.Addr] || !t.leasable(l.MAC, l.Addr) {
			continue
		}
		l.Static = t.static(l.MAC).Addr == l.Addr
		taken[l.Addr] = true
		t.leases[l.MAC] = &l
	}
	return t, nil
}

// static returns the static lease of mac, if it has one.
func (t *Table) static(mac string) Static {
	for _, s := range t.cfg.Static {
		if s.MAC == mac {
			return s
		}
	}
	return Static{}
}

// staticOf returns the MAC whose static lease addr is, or "".
func (t *Table) staticOf(addr netip.Addr) string {
	for _, s := range t.cfg.Static {
		if s.Addr == addr {
			return s.MAC
		}
	}
	return ""
}

// leasable reports whether addr may ever be leased to mac: its static
// address, or an address of the pool that is not reserved and not
// another client's static one.
func (t *Table) leasable(mac string, addr netip.Addr) bool {
	if s := t.static(mac); s.Addr.IsValid() {
		return s.Addr == addr
	}
	if !addr.Is4() || addr.Less(t.cfg.First) || t.cfg.Last.Less(addr) || slices.Contains(t.cfg.Reserved, addr) {
		return false
	}
	return t.staticOf(addr) == ""
}

// holder returns the MAC that holds addr at now (a lease not expired,
// or an offer still open), or "".
func (t *Table) holder(addr netip.Addr, now time.Time) string {
	for mac, l := range t.leases {
		if l.Addr == addr && now.Before(l.Expires) {
			return mac
		}
	}
	for mac, o := range t.offers {
		if o.addr == addr && now.Before(o.until) {
			return mac
		}
	}
	return ""
}

// available reports whether addr may go to mac at now: leasable to it,
// held by no other client, not declined lately.
func (t *Table) available(mac string, addr netip.Addr, now time.Time) bool {
	if !t.leasable(mac, addr) {
		return false
	}
	if until, ok := t.declined[addr]; ok && now.Before(until) {
		return false
	}
	h := t.holder(addr, now)
	return h == "" || h == mac
}

// Discover answers a DISCOVER from mac, which may ask for an address
// (option 50): the address to offer, chosen as RFC 2131 4.3.1 says (the
// client's static address; its current or previous address; the one it
// asks for; a free one of the pool, one never leased first, then the one
// whose lease ended longest ago), held for the client for the offer
// time. It reports false when there is none to offer.
func (t *Table) Discover(mac string, requested netip.Addr, now time.Time) (netip.Addr, bool) {
	t.expire(now)
	addr, ok := t.choose(mac, requested, now)
	if ok {
		t.offers[mac] = offer{addr: addr, until: now.Add(t.cfg.OfferTime)}
	}
	return addr, ok
}

func (t *Table) choose(mac string, requested netip.Addr, now time.Time) (netip.Addr, bool) {
	if s := t.static(mac); s.Addr.IsValid() {
		// A static address another client still holds (the spec gave
		// it to this MAC since) goes back to its owner when that lease
		// ends; until then there is nothing to offer.
		return s.Addr, t.available(mac, s.Addr, now)
	}
	if o, ok := t.offers[mac]; ok && t.available(mac, o.addr, now) {
		return o.addr, true
	}
	if l, ok := t.leases[mac]; ok && t.available(mac, l.Addr, now) {
		return l.Addr, true
	}
	if requested.IsValid() && t.available(mac, requested, now) {
		return requested, true
	}
	remembered := map[netip.Addr]time.Time{}
	for _, l := range t.leases {
		remembered[l.Addr] = l.Expires
	}
	var oldest netip.Addr
	for a := t.cfg.First; a.IsValid() && !t.cfg.Last.Less(a); a = a.Next() {
		if !t.available(mac, a, now) {
			continue
		}
		ended, ok := remembered[a]
		if !ok {
			return a, true
		}
		if !oldest.IsValid() || ended.Before(remembered[oldest]) {
			oldest = a
		}
	}
	return oldest, oldest.IsValid()
}

// Request is what a REQUEST says, which tells the client's state (RFC
// 2131 4.3.2).
type Request struct {
	// Server is option 54: set when the client is SELECTING an offer.
	Server netip.Addr
	// Requested is option 50: set when SELECTING or in INIT-REBOOT.
	Requested netip.Addr
	// Client is ciaddr: set when RENEWING or REBINDING.
	Client netip.Addr
	// Hostname is option 12, if any.
	Hostname string
}

// Verdict is the answer to a REQUEST.
type Verdict int

// Verdicts.
const (
	// Ignore: send nothing (the client chose another server, or this
	// server knows nothing of the address it asks to keep).
	Ignore Verdict = iota
	// Ack: the lease is granted (DHCPACK).
	Ack
	// Nak: the address is wrong for this client (DHCPNAK).
	Nak
)

func (v Verdict) String() string {
	switch v {
	case Ack:
		return "ACK"
	case Nak:
		return "NAK"
	}
	return "ignore"
}

// Request answers a REQUEST from mac: on Ack, the lease granted (for the
// lease time from now).
func (t *Table) Request(mac string, r Request, now time.Time) (Lease, Verdict) {
	t.expire(now)
	var addr netip.Addr
	switch {
	case r.Server.IsValid():
		// SELECTING: the client answers an offer, ours or another's.
		if r.Server != t.cfg.Server {
			delete(t.offers, mac)
			return Lease{}, Ignore
		}
		addr = r.Requested
		if !addr.IsValid() {
			addr = r.Client
		}
	case r.Requested.IsValid():
		// INIT-REBOOT: the client asks to keep the address it had. The
		// server NAKs a wrong one, and is silent about a client it
		// has no record of.
		addr = r.Requested
		if !t.cfg.Subnet.Contains(addr) {
			return Lease{}, Nak
		}
		l, known := t.leases[mac]
		if s := t.static(mac); !known && !s.Addr.IsValid() {
			return Lease{}, Ignore
		} else if known && !s.Addr.IsValid() && l.Addr != addr {
			return Lease{}, Nak
		}
	case r.Client.IsValid():
		// RENEWING (unicast to us) or REBINDING (broadcast): extend
		// the lease on ciaddr.
		addr = r.Client
		l, known := t.leases[mac]
		switch static := t.static(mac).Addr; {
		case static.IsValid() && static != addr:
			return Lease{}, Nak // the spec gave it another address
		case !known && !static.IsValid():
			return Lease{}, Ignore // another server's client
		case known && !static.IsValid() && l.Addr != addr:
			return Lease{}, Nak
		}
	default:
		return Lease{}, Nak // a REQUEST that names no address
	}
	if !t.available(mac, addr, now) {
		return Lease{}, Nak
	}
	delete(t.offers, mac)
	l := Lease{MAC: mac, Addr: addr, Hostname: r.Hostname, Expires: now.Add(t.cfg.LeaseTime)}
	if s := t.static(mac); s.Addr == addr {
		l.Static = true
		if s.Hostname != "" {
			l.Hostname = s.Hostname
		}
	}
	// Another client's expired lease of the same address is forgotten.
	for m, old := range t.leases {
		if m != mac && old.Addr == addr {
			delete(t.leases, m)
		}
	}
	t.leases[mac] = &l
	return l, Ack
}

// Release ends mac's lease on addr (DHCPRELEASE, RFC 2131 4.3.4): the
// address is free again, and remembered as the client's, which gets it
// back while no one else took it.
func (t *Table) Release(mac string, addr netip.Addr, now time.Time) bool {
	l, ok := t.leases[mac]
	if !ok || l.Addr != addr || !now.Before(l.Expires) {
		return false
	}
	l.Expires = now
	return true
}

// Decline notes that mac found addr in use (DHCPDECLINE, RFC 2131
// 4.3.3): the address stays out of the pool for the decline time, and
// the client's lease or offer of it ends.
func (t *Table) Decline(mac string, addr netip.Addr, now time.Time) {
	if !t.cfg.Subnet.Contains(addr) {
		return
	}
	t.declined[addr] = now.Add(t.cfg.DeclineTime)
	if l, ok := t.leases[mac]; ok && l.Addr == addr {
		delete(t.leases, mac)
	}
	if o, ok := t.offers[mac]; ok && o.addr == addr {
		delete(t.offers, mac)
	}
}

// expire drops ended offers and declines.
func (t *Table) expire(now time.Time) {
	for mac, o := range t.offers {
		if !now.Before(o.until) {
			delete(t.offers, mac)
		}
	}
	for a, until := range t.declined {
		if !now.Before(until) {
			delete(t.declined, a)
		}
	}
}

// Leases returns every lease, bound or expired and remembered, by
// address: what the session saves.
func (t *Table) Leases() []Lease {
	out := make([]Lease, 0, len(t.leases))
	for _, l := range t.leases {
		out = append(out, *l)
	}
	slices.SortFunc(out, func(a, b Lease) int {
		return cmp.Or(a.Addr.Compare(b.Addr), cmp.Compare(a.MAC, b.MAC))
	})
	return out
}

// Bound returns the leases that have not ended at now, by address.
func (t *Table) Bound(now time.Time) []Lease {
	return slices.DeleteFunc(t.Leases(), func(l Lease) bool { return !now.Before(l.Expires) })
}
