// Package proxy is the transparent proxy's session: LAN TCP connections
// steered to its listener are terminated on the box and carried, one
// Multipath TCP connection each, in the shadowsocks AEAD stream
// (outline-sdk's), to the aggregation peer, which re-originates them.
//
// Steering into the listener is process-bound (see the README: process-bound
// objects fail open): nftables tproxy rules hand LAN TCP to the socket
// listening with IP_TRANSPARENT on Port, and mark it with
// netlink.TableProxy, which a policy rule sends to a table that delivers
// it locally. The daemon keeps those objects only while this session
// runs; when its process is gone, tproxy finds no transparent socket and
// lets the packets through unmarked, to plain routing.
package proxy

import (
	"net/netip"
	"strconv"
	"strings"

	"github.com/braid-router/braid/api"
	"github.com/braid-router/braid/reconcile/plan"
	"github.com/braid-router/braid/session"
)

// Kind is the session kind; Name the one session's name:
// "session[proxy/aggregation]".
const (
	Kind = "proxy"
	Name = "aggregation"
)

// Port is the TCP port the listener takes, on every address of the box,
// IPv4 and IPv6. It is never reachable from the WAN: braid's input chain
// drops what arrives on an uplink, and only packets from the LAN are
// steered to it. It is the number of braid's proxy table and mark, to be
// remembered once.
const Port = 7190

// Config is what the proxy needs.
type Config struct {
	// Port is where it listens (TCP, IPv4 and IPv6, IP_TRANSPARENT). An
	// accepted connection's local address is the destination the LAN
	// client asked for, which the peer connects to. A connection whose
	// local address is the box's own was not steered (a client that
	// connected to the port itself): the proxy must not relay it.
	Port int
	// Peer is the aggregation peer, HOST:PORT; a name is resolved by the
	// proxy.
	Peer string
	// Protocol is the box-to-peer protocol (shadowsocks), Cipher its
	// AEAD cipher and Key the secret shared with the peer.
	Protocol string
	Cipher   string
	Key      *api.Secret
	// TCP is the aggregation's TCP policy: direct, and the session does
	// not listen for TCP (it runs for UDP alone); proxy or empty, it
	// does.
	TCP string
	// UDP is the aggregation's UDP policy (peer, direct, drop): with peer,
	// the proxy relays LAN UDP too, from a transparent UDP socket on Port.
	UDP string
	// Uplinks are the uplinks the peer's health is probed over: the
	// healthy ones, by priority. None: the probe takes the box's routing.
	Uplinks []Uplink
	// DNS is a resolver the peer reaches, ADDRESS:PORT
	// (aggregation.peer.dns): when set, the probe is end to end, a DNS
	// query over TCP relayed by the peer to it.
	DNS string
}

// Uplink is an uplink the peer is probed over.
type Uplink struct {
	// Name is the uplink's name (spec.uplinks[].name).
	Name string
	// Mark is the socket mark (SO_MARK) that sends a socket out of the
	// uplink: its table's number, which a policy rule of braid looks up
	// for packets so marked while the uplink is healthy.
	Mark uint32
	// Endpoints are the addresses of the uplink's MPTCP endpoints (none
	// with mptcp.mode off): the kernel opens a subflow from each, and a
	// subflow from one of them is the uplink's. Whether they establish
	// is judged per uplink for the status (package subflows).
	Endpoints []netip.Addr
}

// Fields implements session.Config. The key shows as its reference.
func (c Config) Fields() []plan.Field {
	fs := session.Fields("port", strconv.Itoa(c.Port), "peer", c.Peer, "protocol", c.Protocol, "cipher", c.Cipher)
	if c.Key != nil {
		fs = append(fs, session.SecretField("key", c.Key))
	}
	var ups, eps []string
	for _, u := range c.Uplinks {
		ups = append(ups, u.Name+"/"+strconv.FormatUint(uint64(u.Mark), 10))
		if len(u.Endpoints) > 0 {
			var as []string
			for _, a := range u.Endpoints {
				as = append(as, a.String())
			}
			eps = append(eps, u.Name+"@"+strings.Join(as, "+"))
		}
	}
	return append(fs, session.Fields("tcp", c.TCP, "udp", c.UDP, "probe-uplinks", strings.Join(ups, ","),
		"mptcp-endpoints", strings.Join(eps, ","), "dns", c.DNS)...)
}

// Secrets implements session.Config: the key.
func (c Config) Secrets() []*api.Secret {
	if c.Key == nil {
		return nil
	}
	return []*api.Secret{c.Key}
}
