// Package facts holds what braid's protocol sessions learnt and the
// compiler turns into kernel objects: a DHCP lease, an address and a
// default router from router advertisements, an uplink's health verdict,
// the aggregation peer's health, a link a session created, a delegated
// prefix; and what braid observes of
// the kernel's links the spec names (present or not, MAC address,
// carrier).
//
// Facts are kept by owner: each session writes only its own slot (its
// address, "dhcp4/fibre"), replacing what it reported before, and the
// compiler reads all slots. Every fact says how long it holds: until it
// expires (a lease's end), and whether it survives braid's process (a
// lease does; a health verdict, or a link that vanishes with the process's
// file descriptors, does not). Measurements (round-trip times, loss,
// counters) are not facts: they live in a session's status and never
// trigger a pass.
//
// A missing fact means "waiting", never "remove": the compiler leaves out
// what depends on a fact nobody has reported. Links are the one
// observation that is not learnt but looked at: an Interface fact says a
// link is there or is not, and a Set with no Interface fact about a link
// says nothing of it (see Set.Interface).
package facts

import (
	"cmp"
	"maps"
	"net/netip"
	"slices"
	"time"
)

// Set is every fact, by owner. The zero Set has no facts.
type Set struct {
	// Version increases with every change.
	Version uint64 `json:"version"`
	// Slots holds each owner's facts, by owner ("dhcp4/fibre").
	Slots map[string]Slot `json:"slots,omitempty"`
}

// Slot is what one owner reported last.
type Slot struct {
	Facts []Fact `json:"facts"`
}

// Fact is one thing learnt. Exactly one of its kinds (Lease4, SLAAC,
// Router6, Health, Peer, Link, Prefix, Interface) is set.
type Fact struct {
	Lease4    *Lease4    `json:"lease4,omitempty"`
	SLAAC     *SLAAC     `json:"slaac,omitempty"`
	Router6   *Router6   `json:"router6,omitempty"`
	Health    *Health    `json:"health,omitempty"`
	Peer      *Peer      `json:"peer,omitempty"`
	Link      *Link      `json:"link,omitempty"`
	Prefix    *Prefix    `json:"prefix,omitempty"`
	Interface *Interface `json:"interface,omitempty"`

	// Expires is when the fact stops holding (a lease's end); zero means
	// it holds until its owner replaces it.
	Expires time.Time `json:"expires,omitzero"`
	// Process is set when the fact holds only while this braid process
	// runs (a health verdict, a link the session created, the peer's
	// reachability): it is never read back after a restart.
	Process bool `json:"process,omitempty"`
}

// Lease4 is a DHCPv4 lease on an uplink.
type Lease4 struct {
	// Uplink names the uplink (spec.uplinks[].name).
	Uplink string `json:"uplink"`
	// Address is the leased address with the subnet's prefix length
	// (option 1).
	Address netip.Prefix `json:"address"`
	// Gateway is the first router of option 3; invalid when none.
	Gateway netip.Addr `json:"gateway,omitzero"`
	// DNS are the resolvers of option 6.
	DNS []netip.Addr `json:"dns,omitempty"`
	// Server is the DHCP server that granted the lease.
	Server netip.Addr `json:"server,omitzero"`
	// Obtained is when the request that got the lease was first sent;
	// Renew (T1) and Rebind (T2) are when the client asks its server,
	// then any server, to extend it. The lease's end is the fact's
	// Expires. All zero for a lease that never ends.
	Obtained time.Time `json:"obtained,omitzero"`
	Renew    time.Time `json:"renew,omitzero"`
	Rebind   time.Time `json:"rebind,omitzero"`
}

// SLAAC is an IPv6 address an uplink formed itself (stateless address
// autoconfiguration, RFC 4862) from a prefix its routers advertise, and
// the resolvers those adverts name (RDNSS, RFC 8106). Its fact expires
// with the prefix's valid lifetime (never, for an infinite one); adverts
// extend it.
type SLAAC struct {
	// Uplink names the uplink; Link is its interface, where the address
	// was checked to be unique (duplicate address detection).
	Uplink string `json:"uplink"`
	Link   string `json:"link"`
	// Address is the address with the advertised prefix's length (/64).
	Address netip.Prefix `json:"address"`
	// Preferred is when the prefix's preferred lifetime ends (zero:
	// never): the address is deprecated after it.
	Preferred time.Time `json:"preferred,omitzero"`
	// DNS are the resolvers of the adverts' RDNSS options, in the order
	// they were advertised, each with the end of its lifetime.
	DNS []RDNSS `json:"dns,omitempty"`
}

// RDNSS is one recursive DNS server an advert named (RFC 8106).
type RDNSS struct {
	Addr netip.Addr `json:"addr"`
	// Expires is when its lifetime ends (zero: never).
	Expires time.Time `json:"expires,omitzero"`
}

// Router6 is an uplink's default IPv6 router, learnt from its router
// advertisements. Its fact expires with the advert's router lifetime, and
// goes at once when the router advertises a lifetime of zero.
type Router6 struct {
	// Uplink names the uplink.
	Uplink string `json:"uplink"`
	// Router is the router's link-local address (without a zone), the
	// gateway of the uplink's IPv6 default routes; Link is the interface
	// it is on, which a link-local gateway needs.
	Router netip.Addr `json:"router"`
	Link   string     `json:"link"`
}

// Health is the health tracker's verdict on an uplink.
type Health struct {
	// Uplink names the uplink.
	Uplink string `json:"uplink"`
	// Healthy: false takes the uplink's default route out of the main
	// table, so traffic moves to the other uplinks.
	Healthy bool `json:"healthy"`
}

// Peer is the aggregation peer's health, as the transparent proxy
// (session[proxy/aggregation]) judges it: it probes the peer out of each
// healthy uplink and watches whether the peer answers the connections it
// relays. The compiler steers LAN TCP into the proxy only while the peer
// is healthy; without a fact (the proxy has not judged yet) it steers
// nothing, so the LAN is never cut off by a peer nobody has proven up.
// The fact is bound to the process.
type Peer struct {
	// Address is the peer as the spec writes it
	// (aggregation.peer.address): a verdict on another address says
	// nothing of this one.
	Address string `json:"address"`
	// Healthy: false withdraws the steering, and LAN traffic goes direct.
	Healthy bool `json:"healthy"`
	// Reason says why the peer is down ("not reached over isp1
	// (connection refused)", "no answer on 3 connections in a row"), or
	// what a healthy verdict rests on ("on trial").
	Reason string `json:"reason,omitempty"`
	// Uplinks are the uplinks the peer was last reached over, by name.
	Uplinks []string `json:"uplinks,omitempty"`
	// NoIPv6 is set when the peer relays no IPv6 (it closed Misses
	// connections to IPv6 destinations in a row without a byte): LAN
	// IPv6 goes direct while IPv4 goes through the peer. The proxy's
	// status says why.
	NoIPv6 bool `json:"noIPv6,omitempty"`
}

// Link is a kernel link a session created (a TUN device): it exists only
// while the session holds it, so its fact is bound to the process.
type Link struct {
	// For names what the link carries: "tunnel/sixpe".
	For string `json:"for"`
	// Name is the kernel's name of the link.
	Name string `json:"name"`
	// Addresses are the link's own addresses that the session negotiated
	// (a PPP link's IPv6 link-local address).
	Addresses []netip.Prefix `json:"addresses,omitempty"`
	// Peer is the far end's address on the link, where it has one.
	Peer netip.Addr `json:"peer,omitzero"`
	// MTU is the link's MTU as the session set it (a tunnel's: the
	// uplink's less the tunnel's overhead), for what the compiler derives
	// from it (the TCP MSS clamp, the MTU advertised on the LAN); 0 when
	// unknown.
	MTU int `json:"mtu,omitempty"`
}

// Prefix is a prefix delegated to the box (DHCPv6 prefix delegation, RFC
// 8415), one fact per prefix. Its fact expires with the prefix's valid
// lifetime (never, for an infinite one) and survives a restart: the
// restarted client rebinds it.
type Prefix struct {
	// For names where it was delegated: "tunnel/sixpe" or "uplink/fibre".
	For string `json:"for"`
	// Prefix is the delegated prefix (a /56, a /60, ...).
	Prefix netip.Prefix `json:"prefix"`
	// Link is the interface the DHCPv6 client asked on.
	Link string `json:"link,omitempty"`
	// Preferred is when the prefix's preferred lifetime ends (zero:
	// never).
	Preferred time.Time `json:"preferred,omitzero"`
	// DNS are the resolvers of the server's DNS Recursive Name Server
	// option (RFC 3646).
	DNS []netip.Addr `json:"dns,omitempty"`
	// Server is the delegating server's DUID, in hex.
	Server string `json:"server,omitempty"`
	// IAID is the identity association the prefix belongs to (IA_PD),
	// in hex.
	IAID string `json:"iaid,omitempty"`
	// Obtained is when the exchange that last extended the prefix began;
	// Renew (T1) and Rebind (T2) are when the client asks its server,
	// then any server, to extend it (zero: never).
	Obtained time.Time `json:"obtained,omitzero"`
	Renew    time.Time `json:"renew,omitzero"`
	Rebind   time.Time `json:"rebind,omitzero"`
}

// Interface is what the kernel says of a link the spec names (an uplink's
// or the LAN's interface), whether it is there or not: a 4G modem that is
// not plugged in is a fact too. braid observes it rather than learns it,
// so it is bound to the process (observed again at every start) and a
// CLI plan observes it itself.
type Interface struct {
	// Name is the kernel's name of the link (spec.uplinks[].interface).
	Name string `json:"name"`
	// Present is false while the kernel has no link of that name: then
	// the rest is zero.
	Present bool `json:"present"`
	// Index is the link's interface index; a link removed and created
	// again under the same name has a new one.
	Index int `json:"index,omitempty"`
	// MAC is its hardware address as net.HardwareAddr writes it (lower
	// case, colons); empty for a link without one.
	MAC string `json:"mac,omitempty"`
	// Carrier is set while the link is up and its lower layer is too
	// (IFF_LOWER_UP: a cable, a radio, the far end of a veth up); it is
	// never set on a link that is administratively down.
	Carrier bool `json:"carrier,omitempty"`
}

// Kind names the kind of fact f is, for status and errors.
func (f Fact) Kind() string {
	switch {
	case f.Lease4 != nil:
		return "lease4"
	case f.SLAAC != nil:
		return "slaac"
	case f.Router6 != nil:
		return "router6"
	case f.Health != nil:
		return "health"
	case f.Peer != nil:
		return "peer"
	case f.Link != nil:
		return "link"
	case f.Prefix != nil:
		return "prefix"
	case f.Interface != nil:
		return "interface"
	}
	return "empty"
}

// Subject names what the fact is about: "uplink/fibre", "tunnel/sixpe".
func (f Fact) Subject() string {
	switch {
	case f.Lease4 != nil:
		return "uplink/" + f.Lease4.Uplink
	case f.SLAAC != nil:
		return "uplink/" + f.SLAAC.Uplink
	case f.Router6 != nil:
		return "uplink/" + f.Router6.Uplink
	case f.Health != nil:
		return "uplink/" + f.Health.Uplink
	case f.Peer != nil:
		return "peer/" + f.Peer.Address
	case f.Link != nil:
		return f.Link.For
	case f.Prefix != nil:
		return f.Prefix.For
	case f.Interface != nil:
		return "interface/" + f.Interface.Name
	}
	return ""
}

// Owners lists the owners in s, sorted: every lookup walks them in this
// order, so that two owners reporting on one subject resolve the same way
// every time.
func (s Set) Owners() []string {
	return slices.Sorted(maps.Keys(s.Slots))
}

// find returns the first fact, in owner order, that match accepts.
func (s Set) find(match func(Fact) bool) (Fact, bool) {
	for _, o := range s.Owners() {
		for _, f := range s.Slots[o].Facts {
			if match(f) {
				return f, true
			}
		}
	}
	return Fact{}, false
}

// Lease4 returns the DHCPv4 lease of an uplink.
func (s Set) Lease4(uplink string) (Lease4, bool) {
	f, ok := s.find(func(f Fact) bool { return f.Lease4 != nil && f.Lease4.Uplink == uplink })
	if !ok {
		return Lease4{}, false
	}
	return *f.Lease4, true
}

// SLAAC returns the address an uplink formed from router advertisements.
func (s Set) SLAAC(uplink string) (SLAAC, bool) {
	f, ok := s.find(func(f Fact) bool { return f.SLAAC != nil && f.SLAAC.Uplink == uplink })
	if !ok {
		return SLAAC{}, false
	}
	return *f.SLAAC, true
}

// Router6 returns the default IPv6 router an uplink learnt from router
// advertisements.
func (s Set) Router6(uplink string) (Router6, bool) {
	f, ok := s.find(func(f Fact) bool { return f.Router6 != nil && f.Router6.Uplink == uplink })
	if !ok {
		return Router6{}, false
	}
	return *f.Router6, true
}

// Healthy returns the health verdict of an uplink, and whether there is
// one: an uplink without a verdict is used.
func (s Set) Healthy(uplink string) (healthy, known bool) {
	f, ok := s.find(func(f Fact) bool { return f.Health != nil && f.Health.Uplink == uplink })
	if !ok {
		return false, false
	}
	return f.Health.Healthy, true
}

// Peer returns the health verdict on the aggregation peer at address
// (aggregation.peer.address), and whether there is one: without a
// verdict, the peer is not yet proven up.
func (s Set) Peer(address string) (Peer, bool) {
	f, ok := s.find(func(f Fact) bool { return f.Peer != nil && f.Peer.Address == address })
	if !ok {
		return Peer{}, false
	}
	return *f.Peer, true
}

// Link returns the link created for what ("tunnel/sixpe").
func (s Set) Link(what string) (Link, bool) {
	f, ok := s.find(func(f Fact) bool { return f.Link != nil && f.Link.For == what })
	if !ok {
		return Link{}, false
	}
	return *f.Link, true
}

// Prefix returns the prefix delegated for what ("tunnel/sixpe"): the
// first, when several were.
func (s Set) Prefix(what string) (Prefix, bool) {
	f, ok := s.find(func(f Fact) bool { return f.Prefix != nil && f.Prefix.For == what })
	if !ok {
		return Prefix{}, false
	}
	return *f.Prefix, true
}

// Interface returns what was observed of the kernel link name, and
// whether anything was. A link observed missing is (Interface{Present:
// false}, true): what is on it waits. No fact at all means nobody
// looked (a caller that does not observe links, such as a benchmark):
// the compiler then takes the link as the spec says, and the netlink
// driver fails loudly if it is missing, rather than silently planning
// the removal of everything on it.
func (s Set) Interface(name string) (Interface, bool) {
	f, ok := s.find(func(f Fact) bool { return f.Interface != nil && f.Interface.Name == name })
	if !ok {
		return Interface{}, false
	}
	return *f.Interface, true
}

// With returns a copy of s whose owner slot holds fs instead of what it
// held (none removes it), at the same version: a CLI plan puts its own
// observation of the links in place of the daemon's.
func (s Set) With(owner string, fs []Fact) Set {
	c := s.Clone()
	delete(c.Slots, owner)
	if len(fs) > 0 {
		if c.Slots == nil {
			c.Slots = map[string]Slot{}
		}
		c.Slots[owner] = Slot{Facts: cloneFacts(fs)}
	}
	return c
}

// Clone returns a deep copy of s.
func (s Set) Clone() Set {
	c := Set{Version: s.Version}
	if s.Slots != nil {
		c.Slots = make(map[string]Slot, len(s.Slots))
		for o, sl := range s.Slots {
			c.Slots[o] = Slot{Facts: cloneFacts(sl.Facts)}
		}
	}
	return c
}

func cloneFacts(fs []Fact) []Fact {
	out := make([]Fact, len(fs))
	for i, f := range fs {
		out[i] = f.clone()
	}
	return out
}

func (f Fact) clone() Fact {
	if f.Lease4 != nil {
		l := *f.Lease4
		l.DNS = slices.Clone(l.DNS)
		f.Lease4 = &l
	}
	if f.SLAAC != nil {
		a := *f.SLAAC
		a.DNS = slices.Clone(a.DNS)
		f.SLAAC = &a
	}
	if f.Router6 != nil {
		r := *f.Router6
		f.Router6 = &r
	}
	if f.Health != nil {
		h := *f.Health
		f.Health = &h
	}
	if f.Peer != nil {
		p := *f.Peer
		p.Uplinks = slices.Clone(p.Uplinks)
		f.Peer = &p
	}
	if f.Link != nil {
		l := *f.Link
		l.Addresses = slices.Clone(l.Addresses)
		f.Link = &l
	}
	if f.Prefix != nil {
		p := *f.Prefix
		p.DNS = slices.Clone(p.DNS)
		f.Prefix = &p
	}
	if f.Interface != nil {
		i := *f.Interface
		f.Interface = &i
	}
	return f
}

// Pruned returns s without the facts that have expired at now, and, when
// restarted is set, without those bound to a process (a set read back
// from disk). It reports whether anything was dropped.
func (s Set) Pruned(now time.Time, restarted bool) (Set, bool) {
	out := Set{Version: s.Version}
	dropped := false
	for o, sl := range s.Slots {
		var keep []Fact
		for _, f := range sl.Facts {
			if (!f.Expires.IsZero() && !now.Before(f.Expires)) || (restarted && f.Process) {
				dropped = true
				continue
			}
			keep = append(keep, f)
		}
		if len(keep) == 0 {
			dropped = dropped || len(sl.Facts) == 0
			continue
		}
		if out.Slots == nil {
			out.Slots = make(map[string]Slot, len(s.Slots))
		}
		out.Slots[o] = Slot{Facts: keep}
	}
	return out, dropped
}

// NextExpiry returns the earliest expiry of a fact in s, or zero.
func (s Set) NextExpiry() time.Time {
	var next time.Time
	for _, sl := range s.Slots {
		for _, f := range sl.Facts {
			if !f.Expires.IsZero() && (next.IsZero() || f.Expires.Before(next)) {
				next = f.Expires
			}
		}
	}
	return next
}

// Durable returns the part of s that survives a restart: the facts not
// bound to the process.
func (s Set) Durable() Set {
	out := Set{Version: s.Version}
	for o, sl := range s.Slots {
		var keep []Fact
		for _, f := range sl.Facts {
			if !f.Process {
				keep = append(keep, f)
			}
		}
		if len(keep) > 0 {
			if out.Slots == nil {
				out.Slots = map[string]Slot{}
			}
			out.Slots[o] = Slot{Facts: keep}
		}
	}
	return out
}

// Entry is one fact with its owner, for status.
type Entry struct {
	Owner   string    `json:"owner"`
	Kind    string    `json:"kind"`
	Subject string    `json:"subject"`
	Expires time.Time `json:"expires,omitzero"`
	Process bool      `json:"process,omitempty"`
	Fact    Fact      `json:"fact"`
}

// Entries lists every fact with its owner, sorted by owner, subject and
// kind.
func (s Set) Entries() []Entry {
	var out []Entry
	for _, o := range s.Owners() {
		for _, f := range s.Slots[o].Facts {
			out = append(out, Entry{Owner: o, Kind: f.Kind(), Subject: f.Subject(), Expires: f.Expires, Process: f.Process, Fact: f.clone()})
		}
	}
	slices.SortStableFunc(out, func(a, b Entry) int {
		return cmp.Or(cmp.Compare(a.Owner, b.Owner), cmp.Compare(a.Subject, b.Subject), cmp.Compare(a.Kind, b.Kind))
	})
	return out
}
