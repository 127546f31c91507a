package lab

import "net/netip"

// Role names one namespace of a lab. The namespace itself is called
// "<lab name>-<role>".
type Role string

// The roles of the standard topology.
const (
	// RoleLAN is a client on the box's LAN.
	RoleLAN Role = "lan"
	// RoleBox is braid's box: its links exist but braid configures them.
	RoleBox Role = "box"
	// RoleISP1 is the first (fast) access provider; it routes the LAN's
	// global IPv6 prefix to the box.
	RoleISP1 Role = "isp1"
	// RoleISP2 is the second (slow) access provider.
	RoleISP2 Role = "isp2"
	// RoleInet is the Internet core and its servers.
	RoleInet Role = "inet"
	// RolePeer is the aggregation peer, a server the user rents.
	RolePeer Role = "peer"
)

// Roles returns the roles of the standard topology, in creation order.
func Roles() []Role {
	return []Role{RoleLAN, RoleBox, RoleISP1, RoleISP2, RoleInet, RolePeer}
}

// Interface names, per namespace.
const (
	// LANDev is the LAN client's interface (RoleLAN).
	LANDev = "eth0"
	// BoxLANDev is the box's LAN interface, the other end of LANDev.
	BoxLANDev = "lan0"
	// BoxWAN1Dev is the box's interface to isp1.
	BoxWAN1Dev = "wan1"
	// BoxWAN2Dev is the box's interface to isp2.
	BoxWAN2Dev = "wan2"
	// ISPDownDev is an ISP's interface toward the box.
	ISPDownDev = "down"
	// ISPUpDev is an ISP's interface toward the Internet core.
	ISPUpDev = "up"
	// InetISP1Dev is the core's interface toward isp1.
	InetISP1Dev = "isp1"
	// InetISP2Dev is the core's interface toward isp2.
	InetISP2Dev = "isp2"
	// InetPeerDev is the core's interface toward the peer.
	InetPeerDev = "peer"
	// PeerDev is the peer's interface.
	PeerDev = "eth0"
)

// Addresses of the standard topology. They are the same in every lab (each
// lab lives in its own namespaces); specs/lab.yaml uses the Box* ones.
const (
	// LANPrefixV4 is the LAN's private IPv4 prefix. No ISP routes it: a LAN
	// client reaches the Internet over IPv4 only through the box's NAT.
	LANPrefixV4 = "192.168.50.0/24"
	// LANPrefixV6 is the LAN's global IPv6 prefix, routed by isp1 to the
	// box's wan1 address.
	LANPrefixV6 = "2001:db8:50::/64"
	// LANClientV4 is the LAN client's IPv4 address (prefix length 24).
	LANClientV4 = "192.168.50.10"
	// LANClientMAC is the LAN client's MAC address, fixed so that a spec
	// can give it a static DHCP lease on LANClientV4.
	LANClientMAC = "02:00:00:00:50:10"
	// LANClientV6 is the LAN client's IPv6 address (prefix length 64).
	LANClientV6 = "2001:db8:50::10"
	// BoxLANV4 is the box's LAN address, the client's IPv4 gateway. The lab
	// does not configure it: braid does.
	BoxLANV4 = "192.168.50.1"
	// BoxLANV6 is the box's LAN IPv6 address, the client's IPv6 gateway.
	BoxLANV6 = "2001:db8:50::1"

	// WAN1PrefixV4 is the network between the box's wan1 and isp1.
	WAN1PrefixV4 = "10.101.0.0/24"
	// WAN1PrefixV6 is the IPv6 network between the box's wan1 and isp1.
	WAN1PrefixV6 = "2001:db8:101::/64"
	// BoxWAN1V4 is the box's address on wan1 (braid configures it).
	BoxWAN1V4 = "10.101.0.2"
	// BoxWAN1V6 is the box's IPv6 address on wan1 (braid configures it).
	BoxWAN1V6 = "2001:db8:101::2"
	// ISP1GatewayV4 is isp1's address toward the box: the box's gateway.
	ISP1GatewayV4 = "10.101.0.1"
	// ISP1GatewayV6 is isp1's IPv6 address toward the box.
	ISP1GatewayV6 = "2001:db8:101::1"

	// WAN2PrefixV4 is the network between the box's wan2 and isp2.
	WAN2PrefixV4 = "10.102.0.0/24"
	// WAN2PrefixV6 is the IPv6 network between the box's wan2 and isp2.
	WAN2PrefixV6 = "2001:db8:102::/64"
	// BoxWAN2V4 is the box's address on wan2 (braid configures it).
	BoxWAN2V4 = "10.102.0.2"
	// BoxWAN2V6 is the box's IPv6 address on wan2 (braid configures it).
	BoxWAN2V6 = "2001:db8:102::2"
	// ISP2GatewayV4 is isp2's address toward the box.
	ISP2GatewayV4 = "10.102.0.1"
	// ISP2GatewayV6 is isp2's IPv6 address toward the box.
	ISP2GatewayV6 = "2001:db8:102::1"

	// ISP1UpV4 is isp1's address toward the core (a /30).
	ISP1UpV4 = "10.201.0.2"
	// ISP1UpV6 is isp1's IPv6 address toward the core (a /64).
	ISP1UpV6 = "2001:db8:201::2"
	// InetISP1V4 is the core's address toward isp1.
	InetISP1V4 = "10.201.0.1"
	// InetISP1V6 is the core's IPv6 address toward isp1.
	InetISP1V6 = "2001:db8:201::1"
	// ISP2UpV4 is isp2's address toward the core (a /30).
	ISP2UpV4 = "10.202.0.2"
	// ISP2UpV6 is isp2's IPv6 address toward the core (a /64).
	ISP2UpV6 = "2001:db8:202::2"
	// InetISP2V4 is the core's address toward isp2.
	InetISP2V4 = "10.202.0.1"
	// InetISP2V6 is the core's IPv6 address toward isp2.
	InetISP2V6 = "2001:db8:202::1"
	// InetPeerV4 is the core's address toward the peer: its gateway.
	InetPeerV4 = "10.203.0.1"
	// InetPeerV6 is the core's IPv6 address toward the peer.
	InetPeerV6 = "2001:db8:203::1"

	// ServerV4 is the Internet server's main address (on the core's lo).
	ServerV4 = "198.51.100.80"
	// ServerV6 is the Internet server's main IPv6 address.
	ServerV6 = "2001:db8:ffff::80"
	// SteeredServerV4 is a server address inside SteeredPrefixV4, which
	// specs/lab.yaml sends out of isp2.
	SteeredServerV4 = "198.51.100.200"
	// SteeredServerV6 is a server address inside SteeredPrefixV6.
	SteeredServerV6 = "2001:db8:ffff:1::80"
	// SteeredPrefixV4 is the destination specs/lab.yaml routes via isp2.
	SteeredPrefixV4 = "198.51.100.128/25"
	// SteeredPrefixV6 is the IPv6 destination specs/lab.yaml routes via isp2.
	SteeredPrefixV6 = "2001:db8:ffff:1::/64"
	// WhoamiPort is the TCP and UDP port of the whoami service on every
	// server address: it answers with the address it saw the client come
	// from (see Whoami).
	WhoamiPort = 7

	// PeerV4 is the aggregation peer's address (prefix length 24).
	PeerV4 = "10.203.0.2"
	// PeerV6 is the aggregation peer's IPv6 address (prefix length 64).
	PeerV6 = "2001:db8:203::2"
	// PeerPort is the aggregation peer's TCP port: braid's peer (kind:
	// Peer, see PeerSpec) listens there with Multipath TCP, on both
	// families. A whoami service answers on WhoamiPort of the peer's
	// addresses, as on the servers'.
	PeerPort = 65101
	// PeerCipher is the AEAD cipher of the lab's peer.
	PeerCipher = "chacha20-ietf-poly1305"

	// DownloadPort is the TCP port of the download service on every
	// server address: it sends bytes until the client closes (see
	// Download).
	DownloadPort = 9001
	// IperfPort is where iperf3's server listens in the Internet core, on
	// every address of both families.
	IperfPort = 5201
)

// Rates of the ISPs' rate limits (a tbf qdisc on both of their
// interfaces), in bit/s.
const (
	// ISP1Rate is isp1's rate limit: 50 Mbit/s.
	ISP1Rate = 50_000_000
	// ISP2Rate is isp2's rate limit: 10 Mbit/s.
	ISP2Rate = 10_000_000
)

// Uplink is one of the box's uplinks as the lab wires it: what a spec (or
// a test configuring the box by hand) needs to use it.
type Uplink struct {
	// Name is the uplink's name in specs/lab.yaml.
	Name string
	// ISP is the namespace role at the other end of the link.
	ISP Role
	// Interface is the box's interface.
	Interface string
	// Addr4 and Addr6 are the box's addresses, with their prefix lengths.
	Addr4, Addr6 netip.Prefix
	// Gateway4 and Gateway6 are the ISP's addresses on the link.
	Gateway4, Gateway6 netip.Addr
	// Rate is the ISP's rate limit in bit/s.
	Rate uint64
}

// Uplinks returns the box's uplinks, in the order of specs/lab.yaml.
func Uplinks() []Uplink {
	return []Uplink{
		{
			Name: "isp1", ISP: RoleISP1, Interface: BoxWAN1Dev,
			Addr4:    netip.PrefixFrom(netip.MustParseAddr(BoxWAN1V4), 24),
			Addr6:    netip.PrefixFrom(netip.MustParseAddr(BoxWAN1V6), 64),
			Gateway4: netip.MustParseAddr(ISP1GatewayV4),
			Gateway6: netip.MustParseAddr(ISP1GatewayV6),
			Rate:     ISP1Rate,
		},
		{
			Name: "isp2", ISP: RoleISP2, Interface: BoxWAN2Dev,
			Addr4:    netip.PrefixFrom(netip.MustParseAddr(BoxWAN2V4), 24),
			Addr6:    netip.PrefixFrom(netip.MustParseAddr(BoxWAN2V6), 64),
			Gateway4: netip.MustParseAddr(ISP2GatewayV4),
			Gateway6: netip.MustParseAddr(ISP2GatewayV6),
			Rate:     ISP2Rate,
		},
	}
}
