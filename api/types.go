package api

import (
	"slices"
	"strconv"
)

// APIVersion is the only apiVersion this build understands.
const APIVersion = "braid/v1alpha1"

// Routing tables. braid owns tables TableMin..TableMax. TableMin is its
// steering table (routes: to); uplinks use UplinkTableBase..UplinkTableMax,
// and uplink i (0-based) gets table UplinkTableBase+i unless it sets one;
// OwnTableMin..TableMax are reserved for the tables of braid's own
// listeners and links (the transparent proxy, tunnels), which no uplink
// may take.
const (
	TableMin        = 7100
	TableMax        = 7199
	UplinkTableBase = 7101
	UplinkTableMax  = 7189
	OwnTableMin     = 7190
	// MaxTunnels is how many tunnels a spec may declare: each takes one
	// of the tables after the proxy's (7191..7199).
	MaxTunnels = TableMax - OwnTableMin
)

// Kinds of documents.
const (
	KindRouter = "Router"
	KindPeer   = "Peer"
)

// Document is one spec file: a Router (the box) or a Peer (the aggregation
// server). In YAML it has four fields, apiVersion, kind, metadata and spec;
// spec decodes into Router or Peer according to kind, and the other one is
// nil.
type Document struct {
	// APIVersion must be "braid/v1alpha1".
	APIVersion string `json:"apiVersion" required:"true"`
	// Kind is "Router" or "Peer".
	Kind string `json:"kind" required:"true" enum:"Router,Peer"`
	// Metadata names the document.
	Metadata Metadata `json:"metadata" required:"true"`
	// Router is the spec when Kind is "Router".
	Router *RouterSpec `json:"-"`
	// Peer is the spec when Kind is "Peer".
	Peer *PeerSpec `json:"-"`

	// file and pos say where Parse read each value (see Position); both
	// are empty for a document built in Go.
	file string
	pos  map[string]position
}

// Position is where a value was written in a spec file.
type Position struct {
	// File is the file's name as given to Parse or Load.
	File string
	// Line and Col are 1-based.
	Line, Col int
}

// String is FILE:LINE, the form editors and terminals jump to.
func (p Position) String() string { return p.File + ":" + strconv.Itoa(p.Line) }

// Position returns where the value at path was written: path names a
// field as errors do ("spec.uplinks[1].interface"). It reports false for
// a value that was not in the file (a default) and for a document built
// in Go, which has no positions.
func (d *Document) Position(path string) (Position, bool) {
	if d == nil {
		return Position{}, false
	}
	at, ok := d.pos[path]
	if !ok {
		return Position{}, false
	}
	return Position{File: d.file, Line: at.line, Col: at.col}, true
}

// Interfaces lists the kernel links the spec names, in spec order without
// repeats: a router's LAN and uplink interfaces, which braid does not
// create, then its tunnels' TUN links, which their sessions create (what
// runs on one, the tunnel's DHCPv6 client, waits until it is there and
// up). A Peer names none.
func (d *Document) Interfaces() []string {
	if d == nil || d.Router == nil {
		return nil
	}
	var names []string
	add := func(n string) {
		if n != "" && !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	if l := d.Router.LAN; l != nil {
		add(l.Interface)
	}
	for _, u := range d.Router.Uplinks {
		add(u.Interface)
	}
	for _, t := range d.Router.Tunnels {
		add(t.Interface)
	}
	return names
}

// Metadata identifies a document.
type Metadata struct {
	// Name is a short label for logs and status: a lowercase DNS label.
	Name string `json:"name" required:"true" format:"name"`
}

// RouterSpec is the desired state of a box with several uplinks.
type RouterSpec struct {
	// Management says who may always reach the box, and what must keep
	// answering after a change.
	Management *Management `json:"management,omitempty"`
	// LAN is the local network the box routes for.
	LAN *LAN `json:"lan,omitempty"`
	// Uplinks are the Internet access links.
	Uplinks []Uplink `json:"uplinks" required:"true"`
	// Routes steer destinations or sources out of a given uplink.
	Routes []RouteRule `json:"routes,omitempty"`
	// Firewall opens ports on the box and forwards ports to LAN hosts.
	Firewall *Firewall `json:"firewall,omitempty"`
	// Tunnels are L2TPv2 tunnels (SFR's 6PE).
	Tunnels []Tunnel `json:"tunnels,omitempty"`
	// Aggregation sends traffic through an aggregation peer over MPTCP.
	Aggregation *Aggregation `json:"aggregation,omitempty"`
	// DNS is the resolver the box offers the LAN.
	DNS *DNS `json:"dns,omitempty"`
}

// Management keeps the box reachable.
type Management struct {
	// Allow lists prefixes that may always reach the box.
	Allow []string `json:"allow,omitempty" format:"cidr"`
	// Probes must keep answering after a change, or it is rolled back.
	Probes []Probe `json:"probes,omitempty"`
}

// Probe is one reachability check: exactly one of ICMP, TCP and DNS is
// set. DNS probes are for uplinks' health only; management probes are ICMP
// or TCP.
type Probe struct {
	// ICMP pings an address.
	ICMP string `json:"icmp,omitempty" format:"ip"`
	// TCP connects to HOST:PORT.
	TCP string `json:"tcp,omitempty" format:"hostport"`
	// DNS asks the resolver at ADDRESS or ADDRESS:PORT (port 53 when
	// not written) for Name; any reply carrying the query's ID answers.
	// The resolver is an IP address, never a name.
	DNS string `json:"dns,omitempty" format:"resolver"`
	// Name is the name a DNS probe asks for; required with DNS, and only
	// with it.
	Name string `json:"name,omitempty" format:"domain"`
}

// LAN is the local network.
type LAN struct {
	// Interface is the LAN-facing link (a bridge, a VLAN, a port).
	Interface string `json:"interface" required:"true" format:"ifname"`
	// Addresses are the box's addresses on the LAN, IPv4 or IPv6, in CIDR
	// form (192.168.1.1/24, 2001:db8:1::1/64).
	Addresses []string `json:"addresses,omitempty" format:"ifaddr"`
	// MTU of the LAN link; 0 leaves it as it is.
	MTU int `json:"mtu,omitempty"`
	// IPv6 is the routed IPv6 prefix on the LAN.
	IPv6 *LANIPv6 `json:"ipv6,omitempty"`
	// DHCP runs braid's DHCPv4 server on the LAN.
	DHCP *LANDHCP `json:"dhcp,omitempty"`
}

// LANDHCP is the LAN's DHCPv4 server: it leases addresses of Range, and
// the Static ones to their MACs, with the box as the router and DNS
// resolver (braid's when it listens on the LAN, else the uplinks').
type LANDHCP struct {
	// Range is [FIRST, LAST]: the addresses leased to any host, inside
	// one IPv4 subnet of lan.addresses, without the box's own address,
	// the subnet's network and broadcast addresses.
	Range []string `json:"range" required:"true" format:"ip"`
	// LeaseTime is how long a lease lasts (Go duration, at least 1m;
	// default 12h).
	LeaseTime string `json:"leaseTime,omitempty" format:"duration"`
	// Static leases a fixed address to a MAC, inside or outside Range.
	Static []StaticLease `json:"static,omitempty"`
}

// StaticLease is one fixed lease.
type StaticLease struct {
	// MAC is the host's MAC address (00:24:d4:aa:bb:cc).
	MAC string `json:"mac" required:"true" format:"mac"`
	// Address is the IPv4 address it always gets, in the range's subnet.
	Address string `json:"address" required:"true" format:"ip"`
	// Hostname is a name for status and logs (option 12 is not sent).
	Hostname string `json:"hostname,omitempty"`
}

// LANIPv6 describes the LAN's routed IPv6 prefixes: at most one of
// FromTunnel and FromUplink (a /64 of a delegated prefix), and Advertise.
// IPv6 is routed, never NATed.
type LANIPv6 struct {
	// FromTunnel takes a /64 of the prefix delegated over this tunnel,
	// which must ask for one (l2tp.ipv6.dhcpv6.prefixDelegation).
	FromTunnel string `json:"fromTunnel,omitempty"`
	// FromUplink takes a /64 of the prefix delegated by this uplink, which
	// must ask for one (ipv6.ra.dhcpv6.prefixDelegation).
	FromUplink string `json:"fromUplink,omitempty"`
	// Subnet is which /64 of the delegated prefix to use; it must fit the
	// delegated length, which is only known when the prefix arrives.
	Subnet int `json:"subnet,omitempty"`
	// Advertise sends router advertisements (SLAAC and RDNSS) on the LAN:
	// for the delegated /64, and for the IPv6 /64s of lan.addresses.
	Advertise bool `json:"advertise,omitempty"`
}

// Uplink is one Internet access link.
type Uplink struct {
	// Name identifies the uplink in routes, tunnels and status.
	Name string `json:"name" required:"true" format:"name"`
	// Interface is the kernel link name (eth1, wwan0).
	Interface string `json:"interface" required:"true" format:"ifname"`
	// Priority orders the main table's default routes: lower is preferred.
	// It is the route metric.
	Priority int `json:"priority,omitempty"`
	// Table is the routing table that holds this uplink's default route, in
	// braid's range; defaulted from the uplink's position.
	Table int `json:"table,omitempty"`
	// MTU of the link; 0 leaves it as it is.
	MTU int `json:"mtu,omitempty"`
	// MACAddress is the link's MAC address (00:24:d4:aa:bb:cc: a unicast
	// 48-bit address, lower case, colons); empty leaves it as it is.
	// braid records the previous one and destroy puts it back.
	MACAddress string `json:"macAddress,omitempty" format:"mac"`
	// IPv4 configuration: dhcp or static.
	IPv4 *UplinkIPv4 `json:"ipv4,omitempty"`
	// IPv6 configuration.
	IPv6 *UplinkIPv6 `json:"ipv6,omitempty"`
	// MPTCP says how this uplink carries subflows to the peer.
	MPTCP *MPTCP `json:"mptcp,omitempty"`
	// Health tracks the uplink and moves traffic away when it fails.
	Health *Health `json:"health,omitempty"`
}

// UplinkIPv4 is exactly one of DHCP or Static.
type UplinkIPv4 struct {
	// DHCP leases an address.
	DHCP *DHCPv4 `json:"dhcp,omitempty"`
	// Static sets an address and gateway.
	Static *Static `json:"static,omitempty"`
}

// DHCPv4 configures the uplink's DHCP client.
type DHCPv4 struct {
	// VendorClass is option 60 (SFR's ONT wants it to start with "neufbox").
	VendorClass string `json:"vendorClass,omitempty"`
	// ClientID is option 61 as hex octets separated by colons
	// ("01:00:24:d4:aa:bb:cc": type 1, then a MAC address), 2..255 of
	// them, either case; empty sends type 1 and the uplink's MAC.
	ClientID string `json:"clientID,omitempty"`
	// Hostname is option 12.
	Hostname string `json:"hostname,omitempty"`
}

// Static is a fixed address and its gateway.
type Static struct {
	// Address in CIDR form.
	Address string `json:"address" required:"true" format:"ifaddr"`
	// Gateway is the next hop of the uplink's default route.
	Gateway string `json:"gateway,omitempty" format:"ip"`
}

// UplinkIPv6 is the uplink's IPv6 configuration: exactly one of Static or
// RA.
type UplinkIPv6 struct {
	// Static sets an address and gateway.
	Static *Static `json:"static,omitempty"`
	// RA takes an address and the default router from the router
	// advertisements on the link.
	RA *RA `json:"ra,omitempty"`
}

// RA configures an uplink from router advertisements, which braid
// handles itself: an address by SLAAC from the prefix information, the
// advertising router as the default gateway ("ra: {}" alone).
type RA struct {
	// DHCPv6 also asks the uplink's DHCPv6 server; with prefixDelegation,
	// for a delegated prefix (lan.ipv6.fromUplink).
	DHCPv6 *DHCPv6 `json:"dhcpv6,omitempty"`
}

// MPTCP modes.
const (
	MPTCPSubflow = "subflow"
	MPTCPBackup  = "backup"
	MPTCPOff     = "off"
)

// MPTCP is an uplink's Multipath TCP role.
type MPTCP struct {
	// Mode is subflow (default), backup or off.
	Mode string `json:"mode,omitempty" enum:"subflow,backup,off"`
	// Fullmesh adds the fullmesh flag to the endpoint.
	Fullmesh bool `json:"fullmesh,omitempty"`
}

// Health configures uplink tracking. Every Interval, a round sends every
// probe out of the uplink; the round succeeds if any probe answers within
// Timeout.
type Health struct {
	// Probes are checked out of this uplink.
	Probes []Probe `json:"probes,omitempty"`
	// Interval between rounds (Go duration: 500ms, 2s).
	Interval string `json:"interval,omitempty" format:"duration"`
	// Timeout is how long a round waits for an answer; at most Interval,
	// so that rounds never overlap.
	Timeout string `json:"timeout,omitempty" format:"duration"`
	// FailAfter consecutive failed rounds mark the uplink down.
	FailAfter int `json:"failAfter,omitempty"`
	// RecoverAfter consecutive successful rounds mark it up again.
	RecoverAfter int `json:"recoverAfter,omitempty"`
}

// RouteRule steers traffic out of one uplink: To (destinations), From
// (sources) or Domains (destinations by name). A From entry wins over a To
// entry. Domains share an entry with neither.
type RouteRule struct {
	// To lists destination prefixes.
	To []string `json:"to,omitempty" format:"cidr"`
	// From lists source prefixes.
	From []string `json:"from,omitempty" format:"cidr"`
	// Domains lists DNS names: the addresses they resolve to leave by Via.
	// A name matches itself and every name under it (netflix.com matches
	// www.netflix.com).
	Domains []string `json:"domains,omitempty" format:"domain"`
	// Via names the uplink.
	Via string `json:"via" required:"true"`
}

// Firewall is what the WAN side may reach.
type Firewall struct {
	// Open lists services on the box the WAN side may reach.
	Open []OpenPort `json:"open,omitempty"`
	// Forward lists port forwards to LAN hosts.
	Forward []PortForward `json:"forward,omitempty"`
}

// OpenPort opens one port on the box.
type OpenPort struct {
	// Port number.
	Port int `json:"port" required:"true"`
	// Proto is tcp or udp.
	Proto string `json:"proto,omitempty" enum:"tcp,udp"`
	// From limits the sources; empty means anyone.
	From []string `json:"from,omitempty" format:"cidr"`
}

// PortForward forwards a WAN port to a LAN host.
type PortForward struct {
	// Port on the WAN side.
	Port int `json:"port" required:"true"`
	// Proto is tcp or udp.
	Proto string `json:"proto,omitempty" enum:"tcp,udp"`
	// To is the LAN host's ADDRESS:PORT.
	To string `json:"to" required:"true" format:"hostport"`
	// From limits the sources; empty means anyone.
	From []string `json:"from,omitempty" format:"cidr"`
}

// Tunnel is an L2TPv2 tunnel carrying PPP.
type Tunnel struct {
	// Name identifies the tunnel.
	Name string `json:"name" required:"true" format:"name"`
	// Interface is the tunnel's TUN link, which braid creates: 1..15
	// bytes, claimed once like the uplinks' and the LAN's interfaces.
	// It defaults to the tunnel's name when that fits.
	Interface string `json:"interface,omitempty" format:"ifname"`
	// L2TP configures the tunnel.
	L2TP *L2TP `json:"l2tp" required:"true"`
}

// L2TP is an L2TPv2 tunnel to an LNS.
type L2TP struct {
	// Server is the LNS address (HOST or HOST:PORT, port 1701 by default).
	Server string `json:"server" required:"true"`
	// Via names the uplink the tunnel leaves by.
	Via string `json:"via" required:"true"`
	// Secret is the tunnel secret (SFR: the shared "6pe").
	Secret *Secret `json:"secret,omitempty"`
	// PPP is the session's login.
	PPP *PPP `json:"ppp" required:"true"`
	// IPv6 says what to run over the PPP link.
	IPv6 *TunnelIPv6 `json:"ipv6,omitempty"`
}

// PPP is the PPP login inside the tunnel.
type PPP struct {
	// Username is the login, with placeholders filled in from the uplink
	// the tunnel leaves by (l2tp.via) when the session starts: {ipv4} its
	// current IPv4 address, {mac} and {MAC} its MAC address without
	// colons, in lower and upper case. SFR's is "dhcp/{ipv4}@{mac}". Any
	// other {...} is an error.
	Username string `json:"username" required:"true"`
	// Password is a secret.
	Password *Secret `json:"password" required:"true"`
	// Keepalive is the LCP echo interval.
	Keepalive string `json:"keepalive,omitempty" format:"duration"`
	// KeepaliveFailures is how many LCP echoes in a row may go unanswered
	// before the link is declared dead (pppd's lcp-echo-failure).
	KeepaliveFailures int `json:"keepaliveFailures,omitempty"`
}

// TunnelIPv6 says how IPv6 is obtained over the tunnel.
type TunnelIPv6 struct {
	// DHCPv6 asks for a delegated prefix.
	DHCPv6 *DHCPv6 `json:"dhcpv6,omitempty"`
}

// DHCPv6 configures the DHCPv6 client.
type DHCPv6 struct {
	// PrefixDelegation asks for a prefix (IA_PD).
	PrefixDelegation bool `json:"prefixDelegation,omitempty"`
}

// Aggregation policies.
const (
	TCPProxy  = "proxy"
	TCPDirect = "direct"
	UDPPeer   = "peer"
	UDPDirect = "direct"
	UDPDrop   = "drop"
)

// Aggregation sends LAN traffic through the aggregation peer.
type Aggregation struct {
	// Peer is the aggregation server.
	Peer *AggregationPeer `json:"peer" required:"true"`
	// TCP is proxy (terminate LAN TCP on the box, re-originate at the peer)
	// or direct.
	TCP string `json:"tcp,omitempty" enum:"proxy,direct"`
	// UDP is peer (through the peer), direct (out of the uplinks) or drop:
	// UDP to port 443 (QUIC) is rejected, so that browsers fall back to
	// TCP, which the proxy aggregates; other UDP goes direct.
	UDP string `json:"udp,omitempty" enum:"peer,direct,drop"`
	// Bypass lists destinations that never go through the peer.
	Bypass []string `json:"bypass,omitempty" format:"cidr"`
}

// AggregationPeer is how the box reaches the peer.
type AggregationPeer struct {
	// Address is HOST:PORT.
	Address string `json:"address" required:"true" format:"hostport"`
	// Protocol is shadowsocks.
	Protocol string `json:"protocol,omitempty" enum:"shadowsocks"`
	// Cipher is the AEAD cipher.
	Cipher string `json:"cipher,omitempty" enum:"chacha20-ietf-poly1305,aes-256-gcm,aes-128-gcm"`
	// Key is the shadowsocks password (as ss-server -k), not a raw key:
	// the cipher's key is derived from it.
	Key *Secret `json:"key" required:"true"`
	// DNS is a resolver the peer reaches, ADDRESS or ADDRESS:PORT (port 53
	// when not written): dns.upstreams "peer" asks it through the peer.
	DNS string `json:"dns,omitempty" format:"resolver"`
}

// DNS is the box's resolver policy.
type DNS struct {
	// Listen lists where the resolver listens: IP addresses, or "lan" for
	// the LAN addresses braid holds (delegated ones included); never an
	// uplink's address.
	Listen []string `json:"listen,omitempty"`
	// Upstreams are "peer" (aggregation.peer.dns, through the peer),
	// "uplink:<name>" (the resolvers the uplink learns by DHCP or router
	// advertisements) or an address, in order of preference. The peer's
	// own address is never resolved through the peer. Empty: the
	// uplinks' learnt resolvers alone, which are also the fallback when
	// every upstream is dead.
	Upstreams []string `json:"upstreams,omitempty"`
	// AAAA is keep (default) or filter.
	AAAA string `json:"aaaa,omitempty" enum:"keep,filter"`
	// FilterAAAA lists DNS names whose AAAA answers are filtered, with
	// AAAA keep: a name and every name under it.
	FilterAAAA []string `json:"filterAAAA,omitempty" format:"domain"`
	// Intercept redirects the LAN's DNS queries to other resolvers to
	// braid's, which answers each from the address it was sent to: it
	// needs no listen address.
	Intercept bool `json:"intercept,omitempty"`
}

// Secret is a reference to a secret: exactly one field is set. Value is for
// what is not really secret (SFR's shared "6pe"); File and Env are resolved
// at apply time.
type Secret struct {
	// Value is the secret inline.
	Value string `json:"value,omitempty" secret:"true"`
	// File is a path whose content (trailing newline trimmed) is the secret.
	File string `json:"file,omitempty"`
	// Env names an environment variable holding the secret.
	Env string `json:"env,omitempty"`
}

// PeerSpec is the aggregation server's desired state.
type PeerSpec struct {
	// Listen is the address the peer listens on.
	Listen string `json:"listen,omitempty" format:"hostport"`
	// Cipher is the AEAD cipher.
	Cipher string `json:"cipher,omitempty" enum:"chacha20-ietf-poly1305,aes-256-gcm,aes-128-gcm"`
	// Key is the shadowsocks password the boxes use (as ss-server -k), a
	// secret.
	Key *Secret `json:"key" required:"true"`
	// Management is the same as a router's: who may always reach the
	// peer, and what must keep answering after a change. Without allow,
	// braid adds no input drops on the peer.
	Management *Management `json:"management,omitempty"`
	// AllowLocal lists the local destinations (ADDRESS:PORT) the boxes'
	// connections may reach, such as the peer's resolver
	// (aggregation.peer.dns); every other local, loopback and link-local
	// destination is refused.
	AllowLocal []string `json:"allowLocal,omitempty" format:"addrport"`
}
