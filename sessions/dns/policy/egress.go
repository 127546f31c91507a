package policy

import (
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/miekg/dns"
)

// MinEgressTimeout is the shortest timeout of an egress set element: an
// answer's short TTL must not end a flow's steering before the flow has
// started (the conntrack mark keeps it after that).
const MinEgressTimeout = 10 * time.Minute

// Route is one routes[] entry with domains: the names whose addresses
// leave by Uplink.
type Route struct {
	// Uplink names the uplink (routes[].via).
	Uplink string
	// Domains are the suffixes (routes[].domains).
	Domains []string
}

// Element is an address to add to an uplink's egress set.
type Element struct {
	// Uplink names the uplink whose set takes the address.
	Uplink string
	// Addr is the address, IPv4 or IPv6 (never IPv4-mapped).
	Addr netip.Addr
	// Timeout is the element's timeout: max(TTL, MinEgressTimeout).
	Timeout time.Duration
}

// Egress maps domain suffixes to uplinks. The zero Egress matches nothing.
type Egress struct {
	suffixes []string // lower-case, fully qualified
	uplinks  []string // uplinks[i] is suffixes[i]'s uplink
}

// NewEgress returns the egress policy of routes. A suffix listed for two
// different uplinks is an error; listed twice for the same one, it counts
// once. A name under several suffixes goes by the longest.
func NewEgress(routes []Route) (*Egress, error) {
	e := &Egress{}
	seen := map[string]string{}
	for _, r := range routes {
		if r.Uplink == "" {
			return nil, fmt.Errorf("dns policy: route with domains %v has no uplink", r.Domains)
		}
		s, err := normalize(r.Domains)
		if err != nil {
			return nil, fmt.Errorf("route via %s: %w", r.Uplink, err)
		}
		for _, d := range s {
			if prev, ok := seen[d]; ok {
				if prev != r.Uplink {
					return nil, fmt.Errorf("dns policy: domain %s is routed via both %s and %s", d, prev, r.Uplink)
				}
				continue
			}
			seen[d] = r.Uplink
			e.suffixes = append(e.suffixes, d)
			e.uplinks = append(e.uplinks, r.Uplink)
		}
	}
	return e, nil
}

// Uplink returns the uplink name's addresses leave by, and whether one
// does: the uplink of the longest listed suffix name is equal to or under.
func (e *Egress) Uplink(name string) (string, bool) {
	if e == nil {
		return "", false
	}
	i := matchIndex(dns.CanonicalName(name), e.suffixes)
	if i < 0 {
		return "", false
	}
	return e.uplinks[i], true
}

// Elements returns the egress set elements answer m calls for, in answer
// order, each address once (with the longest timeout its records give).
// It walks the CNAME chain from the question's name; the first name of the
// chain that matches a route chooses the uplink, and the addresses owned
// by that name or the names after it on the chain count: A and AAAA
// records, and the ipv4hint and ipv6hint of HTTPS and SVCB records. Only
// NOERROR answers of class IN count, and only addresses that can lie
// beyond an uplink (not unspecified, loopback, link-local or multicast).
// m is not modified.
func (e *Egress) Elements(m *dns.Msg) []Element {
	if e == nil || len(e.suffixes) == 0 || m == nil || m.Rcode != dns.RcodeSuccess {
		return nil
	}
	names := chain(m)
	uplink := ""
	for i, name := range names {
		if j := matchIndex(name, e.suffixes); j >= 0 {
			uplink = e.uplinks[j]
			names = names[i:]
			break
		}
	}
	if uplink == "" {
		return nil
	}
	var out []Element
	index := map[netip.Addr]int{}
	add := func(ip net.IP, ttl uint32) {
		a, ok := netip.AddrFromSlice(ip)
		if !ok {
			return
		}
		a = a.Unmap()
		if !routable(a) {
			return
		}
		timeout := max(time.Duration(ttl)*time.Second, MinEgressTimeout)
		if i, ok := index[a]; ok {
			out[i].Timeout = max(out[i].Timeout, timeout)
			return
		}
		index[a] = len(out)
		out = append(out, Element{Uplink: uplink, Addr: a, Timeout: timeout})
	}
	for _, rr := range m.Answer {
		h := rr.Header()
		if h.Class != dns.ClassINET || !contains(names, dns.CanonicalName(h.Name)) {
			continue
		}
		switch r := rr.(type) {
		case *dns.A:
			add(r.A, h.Ttl)
		case *dns.AAAA:
			add(r.AAAA, h.Ttl)
		case *dns.HTTPS:
			hints(r.Value, h.Ttl, add)
		case *dns.SVCB:
			hints(r.Value, h.Ttl, add)
		}
	}
	return out
}

// routable reports whether a can be a destination beyond an uplink: never
// the unspecified, loopback, link-local or multicast addresses an answer
// may hold (steering them to an uplink would be wrong or harmful).
func routable(a netip.Addr) bool {
	return a.IsValid() && !a.IsUnspecified() && !a.IsLoopback() &&
		!a.IsLinkLocalUnicast() && !a.IsMulticast()
}

// hints calls add for every address of kvs' ipv4hint and ipv6hint.
func hints(kvs []dns.SVCBKeyValue, ttl uint32, add func(net.IP, uint32)) {
	for _, kv := range kvs {
		switch h := kv.(type) {
		case *dns.SVCBIPv4Hint:
			for _, ip := range h.Hint {
				add(ip, ttl)
			}
		case *dns.SVCBIPv6Hint:
			for _, ip := range h.Hint {
				add(ip, ttl)
			}
		}
	}
}
