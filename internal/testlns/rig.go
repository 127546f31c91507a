package testlns

// Rig names the four namespaces of a data plane test or benchmark:
//
//	LAN host ── box ══ LNS ── server
//	             (IPv4 uplink, the tunnel over it; plain IPv6 beside it)
//
// The LAN host is 2001:db8:1::2, behind the box's link lan
// (2001:db8:1::1). The box's uplink wan is 10.99.0.1/24 to the LNS's
// 10.99.0.2 (the tunnel's UDP), and carries plain IPv6 too, 2001:db8:ff::1
// to ::2. The server has two addresses behind the LNS: ServerTunnel, which
// the box routes into its tunnel link (TunnelRoutes), and ServerPlain,
// which it forwards over wan as plain IPv6, the alternative a benchmark
// measures in the same run; the LNS sends the replies back the way they
// came (from ServerPlain by a policy rule).
type Rig struct {
	LAN, Box, LNS, Server string
}

// The rig's addresses.
const (
	LANHost      = "2001:db8:1::2"
	BoxIPv4      = "10.99.0.1"
	LNSIPv4      = "10.99.0.2"
	ServerTunnel = "2001:db8:2::2"
	ServerPlain  = "2001:db8:3::2"
	// Uplink is the box's uplink link, LAN its LAN link, and HostLink the
	// LAN host's and the server's own link.
	Uplink   = "wan"
	LANLink  = "lan"
	HostLink = "eth0"
)

// Commands are the ip(8) and sysctl commands, each with its arguments,
// that build the rig in four existing namespaces (loopback up).
func (r Rig) Commands() [][]string {
	ip := func(ns string, args ...string) []string { return append([]string{"ip", "-n", ns}, args...) }
	fwd := func(ns string) []string {
		return []string{"ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"}
	}
	return [][]string{
		ip(r.Box, "link", "add", LANLink, "type", "veth", "peer", "name", HostLink, "netns", r.LAN),
		ip(r.Box, "link", "add", Uplink, "type", "veth", "peer", "name", HostLink, "netns", r.LNS),
		ip(r.LNS, "link", "add", "srv", "type", "veth", "peer", "name", HostLink, "netns", r.Server),
		fwd(r.Box), fwd(r.LNS),

		ip(r.LAN, "addr", "add", LANHost+"/64", "dev", HostLink, "nodad"),
		ip(r.LAN, "link", "set", HostLink, "up"),
		ip(r.LAN, "-6", "route", "add", "default", "via", "2001:db8:1::1"),

		ip(r.Box, "addr", "add", "2001:db8:1::1/64", "dev", LANLink, "nodad"),
		ip(r.Box, "addr", "add", BoxIPv4+"/24", "dev", Uplink),
		ip(r.Box, "addr", "add", "2001:db8:ff::1/64", "dev", Uplink, "nodad"),
		ip(r.Box, "link", "set", LANLink, "up"),
		ip(r.Box, "link", "set", Uplink, "up"),
		ip(r.Box, "-6", "route", "add", "2001:db8:3::/64", "via", "2001:db8:ff::2"),

		ip(r.LNS, "addr", "add", LNSIPv4+"/24", "dev", HostLink),
		ip(r.LNS, "addr", "add", "2001:db8:ff::2/64", "dev", HostLink, "nodad"),
		ip(r.LNS, "addr", "add", "2001:db8:2::1/64", "dev", "srv", "nodad"),
		ip(r.LNS, "addr", "add", "2001:db8:3::1/64", "dev", "srv", "nodad"),
		ip(r.LNS, "link", "set", HostLink, "up"),
		ip(r.LNS, "link", "set", "srv", "up"),
		ip(r.LNS, "-6", "rule", "add", "from", "2001:db8:3::/64", "lookup", "100"),
		ip(r.LNS, "-6", "route", "add", "2001:db8:1::/64", "via", "2001:db8:ff::1", "table", "100"),

		ip(r.Server, "addr", "add", ServerTunnel+"/64", "dev", HostLink, "nodad"),
		ip(r.Server, "addr", "add", ServerPlain+"/64", "dev", HostLink, "nodad"),
		ip(r.Server, "link", "set", HostLink, "up"),
		ip(r.Server, "-6", "route", "add", "default", "via", "2001:db8:2::1"),
	}
}

// TunnelRoutes are the commands that route the tunnel's traffic once its
// links exist: the box sends ServerTunnel's prefix into boxLink, the LNS
// sets its lnsLink up and sends the LAN's prefix into it.
func (r Rig) TunnelRoutes(boxLink, lnsLink string) [][]string {
	return [][]string{
		{"ip", "-n", r.LNS, "link", "set", lnsLink, "up"},
		{"ip", "-n", r.Box, "-6", "route", "add", "2001:db8:2::/64", "dev", boxLink},
		{"ip", "-n", r.LNS, "-6", "route", "add", "2001:db8:1::/64", "dev", lnsLink},
	}
}
