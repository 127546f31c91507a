// Package dns is the box's DNS forwarder session, session[dns/resolver]:
// it answers the LAN on the addresses dns.listen names (UDP and TCP), from
// its cache (sessions/dns/cache) or by asking its upstreams
// (sessions/dns/upstream) in order, applies the AAAA policy and commits
// the per-domain egress elements of each answer to the kernel's egress
// sets before the answer leaves (sessions/dns/policy).
package dns

import (
	"net/netip"
	"strconv"
	"strings"

	"github.com/braid-router/braid/api"
	"github.com/braid-router/braid/reconcile/plan"
	"github.com/braid-router/braid/session"
	"github.com/braid-router/braid/sessions/dns/upstream"
)

// Kind is the session kind; Name the one session's name:
// "session[dns/resolver]".
const (
	Kind = "dns"
	Name = "resolver"
)

// Port is the port the forwarder serves, UDP and TCP.
const Port = 53

// InterceptPort is the port of the forwarder's transparent sockets, UDP
// and TCP, both families (dns.intercept): the kernel's tproxy hands them
// the LAN's DNS to other resolvers. The firewall keeps the WAN from it
// (the input chain drops what arrives on an uplink).
const InterceptPort = 7153

// Config is what the forwarder needs.
type Config struct {
	// Listen are the addresses it serves on, UDP and TCP on Port: the
	// LAN side's, never an uplink's or the tunnel's.
	Listen []netip.Addr
	// Port is the port (Port; tests may choose another).
	Port int
	// Upstreams are asked in order of preference; a dead one is skipped.
	Upstreams []upstream.Resolver
	// Fallback are the healthy uplinks' own resolvers, asked only when
	// every upstream is dead.
	Fallback []upstream.Resolver
	// Peer is the aggregation peer, for the "peer" upstream: nil without
	// it.
	Peer *Peer
	// AAAA is the AAAA policy (keep, filter) and FilterAAAA the names
	// filtered under keep (dns.aaaa, dns.filterAAAA).
	AAAA       string
	FilterAAAA []string
	// Egress lists the per-domain egress routes (routes[].domains).
	Egress []Egress
	// InterceptPort, when not 0, is where it also listens transparently
	// (IP_TRANSPARENT, every address of both families, UDP and TCP) for
	// the queries tproxy steers to it (dns.intercept: InterceptPort). It
	// answers each from the address and port its client asked.
	InterceptPort int
}

// Peer is how to reach the aggregation peer.
type Peer struct {
	// Address is the peer, HOST:PORT (aggregation.peer.address).
	Address string
	// Cipher is the shadowsocks AEAD cipher and Key the shared secret.
	Cipher string
	Key    *api.Secret
}

// Egress is one uplink's per-domain egress: the addresses names under
// Domains resolve to go into its nftables sets.
type Egress struct {
	// Uplink is the uplink (routes[].via).
	Uplink string
	// Domains are the names (routes[].domains).
	Domains []string
	// Set4 and Set6 are the sets of braid's table that take its IPv4 and
	// IPv6 addresses.
	Set4, Set6 string
}

// Fields implements session.Config. The peer's key shows as its
// reference.
func (c Config) Fields() []plan.Field {
	var listen []string
	for _, a := range c.Listen {
		listen = append(listen, a.String())
	}
	fs := session.Fields("listen", strings.Join(listen, ","), "port", strconv.Itoa(c.Port),
		"upstreams", resolvers(c.Upstreams), "fallback", resolvers(c.Fallback))
	if c.Peer != nil {
		fs = append(fs, session.Fields("peer", c.Peer.Address, "cipher", c.Peer.Cipher)...)
		if c.Peer.Key != nil {
			fs = append(fs, session.SecretField("key", c.Peer.Key))
		}
	}
	if c.InterceptPort != 0 {
		fs = append(fs, session.Fields("intercept", strconv.Itoa(c.InterceptPort))...)
	}
	fs = append(fs, session.Fields("aaaa", c.AAAA, "filter-aaaa", strings.Join(c.FilterAAAA, ","))...)
	for _, e := range c.Egress {
		fs = append(fs, session.Fields("egress-"+e.Uplink, strings.Join(e.Domains, ",")+" -> "+e.Set4+","+e.Set6)...)
	}
	return fs
}

// resolvers writes rs for a plan: NAME=ADDR/MARK, comma-separated.
func resolvers(rs []upstream.Resolver) string {
	var s []string
	for _, r := range rs {
		w := r.Name + "=" + r.Addr.String()
		if r.Mark != 0 {
			w += "/" + strconv.FormatUint(uint64(r.Mark), 10)
		}
		s = append(s, w)
	}
	return strings.Join(s, ",")
}

// Secrets implements session.Config: the peer's key.
func (c Config) Secrets() []*api.Secret {
	if c.Peer == nil || c.Peer.Key == nil {
		return nil
	}
	return []*api.Secret{c.Peer.Key}
}
