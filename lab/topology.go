package lab

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// Topology describes a lab as data: its namespaces and what each is
// configured with, the veth links between them, and the processes started
// in them. Up builds it in that order; Default returns the standard one,
// which later needs (a DHCP server, a real peer, an LNS) extend by adding
// entries rather than code.
type Topology struct {
	// Namespaces are created in order, each named "<lab>-<role>".
	Namespaces []Namespace `json:"namespaces"`
	// Links are veth pairs between two namespaces.
	Links []Link `json:"links"`
	// Processes are started, in order, once every namespace is configured.
	Processes []Process `json:"processes"`
}

// Namespace is one network namespace and the configuration the lab applies
// in it. Loopback is always brought up.
type Namespace struct {
	// Role names the namespace.
	Role Role `json:"role"`
	// Sysctls are written before any link is created, so that defaults
	// (net.ipv6.conf.default.*) apply to the lab's links too.
	Sysctls []Sysctl `json:"sysctls,omitempty"`
	// Addrs are added to interfaces (links' ends, or "lo").
	Addrs []Addr `json:"addrs,omitempty"`
	// Routes are added to the main table after the addresses.
	Routes []Route `json:"routes,omitempty"`
	// Qdiscs are rate limits on interfaces' egress.
	Qdiscs []Qdisc `json:"qdiscs,omitempty"`
}

// Sysctl is a kernel setting of a namespace, as sysctl(8) names it
// ("net.ipv4.ip_forward").
type Sysctl struct {
	// Key uses dots as separators; interface names with dots are not
	// supported.
	Key string `json:"key"`
	// Value is written as is.
	Value string `json:"value"`
}

// Addr is an interface address with its prefix length.
type Addr struct {
	// Dev is the interface.
	Dev string `json:"dev"`
	// Prefix is the address and its prefix length ("10.101.0.1/24").
	// IPv6 addresses are added with nodad: usable at once.
	Prefix netip.Prefix `json:"prefix"`
}

// Route is a route in a namespace's main table: to Dst via the gateway
// Via, or straight out of Dev when Via is not set.
type Route struct {
	// Dst is the destination ("0.0.0.0/0" for a default route).
	Dst netip.Prefix `json:"dst"`
	// Via is the gateway, if any.
	Via netip.Addr `json:"via,omitzero"`
	// Dev is the outgoing interface, if given.
	Dev string `json:"dev,omitempty"`
}

// Qdisc is a token bucket (tc-tbf) rate limit on an interface's egress.
type Qdisc struct {
	// Dev is the interface whose egress is limited.
	Dev string `json:"dev"`
	// Rate is in bit/s.
	Rate uint64 `json:"rate"`
}

// Link is a veth pair between two namespaces.
type Link struct {
	// A and B are the two ends.
	A Endpoint `json:"a"`
	B Endpoint `json:"b"`
}

// Endpoint is one end of a Link.
type Endpoint struct {
	// Role is the namespace the end lives in.
	Role Role `json:"role"`
	// Dev is the interface's name there (at most 15 characters).
	Dev string `json:"dev"`
	// Down leaves the interface administratively down (for the box, whose
	// links braid configures). Other ends are brought up.
	Down bool `json:"down,omitempty"`
	// MAC is the interface's MAC address; empty leaves the kernel's
	// random one.
	MAC string `json:"mac,omitempty"`
}

// Process is a long-running program the lab starts in a namespace and
// stops on Down. Exactly one of Serve, Command and Braid is set.
type Process struct {
	// Name identifies the process in the lab's run directory and status;
	// unique within the lab.
	Name string `json:"name"`
	// Role is the namespace the process runs in.
	Role Role `json:"role"`
	// Serve are the flags of braid's own lab services (see Serve), run
	// through Config.Helper. Up waits until they listen.
	Serve []string `json:"serve,omitempty"`
	// Command is an external program and its arguments (say, dnsmasq in
	// the foreground). Up does not wait for it to be ready. In its
	// arguments, {conf} stands for the path of its Config and {pidfile}
	// for a PID file of its own, both in the lab's run directory, {dir}
	// for the directory of the lab's processes and {lab} for the lab's
	// run directory.
	Command []string `json:"command,omitempty"`
	// Braid are the arguments of braid itself (Config.Braid), expanded
	// as a Command's: the peer is `braid run -f {conf}`. Up does not
	// wait for it to be ready. A lab without a braid binary (a test
	// binary's, unless it sets Config.Braid) leaves such processes out.
	Braid []string `json:"braid,omitempty"`
	// Config, for a Command or Braid, is written to {conf} before it
	// starts (radvd reads its configuration from a file, braid its
	// spec); {dir} and {lab} in it are expanded. Lab.Reload replaces it.
	Config string `json:"config,omitempty"`
	// Files, for a Command, are more files it reads, by name, written
	// to the directory of the lab's processes ({dir}) before it starts,
	// {dir} and {lab} expanded as in Config (unbound's zone file).
	Files map[string]string `json:"files,omitempty"`
}

// Default returns the standard topology:
//
//	lan (eth0) ── (lan0) box (wan1) ── (down) isp1 (up) ── (isp1)
//	                        (wan2) ── (down) isp2 (up) ── (isp2) inet (peer) ── (eth0) peer
//
// The box's links are down and unaddressed, and its kernel ignores router
// advertisements; isp1 limits to 50 Mbit/s and routes the LAN's IPv6
// prefix to the box, and runs dnsmasq as its ONT's DHCP server
// (ISP1DHCP4); isp2 limits to 10 Mbit/s, advertises its IPv6 prefix
// and a resolver (radvd, see ISP2Adverts) and delegates prefixes (Kea,
// see ISP2DHCP6); inet holds the servers on its loopback and runs
// whoami and the download service on them (WhoamiPort, DownloadPort),
// iperf3's server (IperfPort) and the resolver (unbound, see
// ResolverConfig); the peer runs braid's peer on
// PeerPort (PeerProcess, PeerSpec) and a whoami on WhoamiPort.
func Default() Topology {
	p := netip.MustParsePrefix
	a := netip.MustParseAddr
	// ifaddr builds an interface address from an address and a length.
	ifaddr := func(addr string, bits int) netip.Prefix { return netip.PrefixFrom(a(addr), bits) }
	host := func(addr string) netip.Prefix { return netip.PrefixFrom(a(addr), a(addr).BitLen()) }
	def4, def6 := p("0.0.0.0/0"), p("::/0")

	hostSysctls := []Sysctl{
		// Addresses are usable at once: no duplicate address detection.
		{"net.ipv6.conf.all.accept_dad", "0"},
		{"net.ipv6.conf.default.accept_dad", "0"},
	}
	// Routers forward, and do not drop by reverse path whatever the host's
	// defaults (a namespace inherits the initial one's IPv4 settings).
	routerSysctls := append([]Sysctl{
		{"net.ipv4.ip_forward", "1"},
		{"net.ipv6.conf.all.forwarding", "1"},
		{"net.ipv4.conf.all.rp_filter", "0"},
		{"net.ipv4.conf.default.rp_filter", "0"},
	}, hostSysctls...)

	whoami := func(addrs ...string) []string {
		var args []string
		for _, s := range addrs {
			ap := netip.AddrPortFrom(a(s), WhoamiPort).String()
			args = append(args, "-whoami", ap, "-whoami-udp", ap)
		}
		return args
	}
	download := func(addrs ...string) []string {
		var args []string
		for _, s := range addrs {
			args = append(args, "-download", netip.AddrPortFrom(a(s), DownloadPort).String())
		}
		return args
	}

	return Topology{
		Namespaces: []Namespace{
			{
				Role:    RoleLAN,
				Sysctls: hostSysctls,
				Addrs: []Addr{
					{LANDev, ifaddr(LANClientV4, 24)},
					{LANDev, ifaddr(LANClientV6, 64)},
				},
				Routes: []Route{
					{Dst: def4, Via: a(BoxLANV4)},
					{Dst: def6, Via: a(BoxLANV6)},
				},
			},
			{
				// The box: links present, down, unaddressed. braid
				// configures the rest. DAD is off, as everywhere in the
				// lab, so that its link-local addresses (and any address
				// added without nodad) skip duplicate detection. The
				// kernel ignores router advertisements (isp2 sends them):
				// a default route of its own would be the lab
				// configuring the box, which is braid's job.
				Role:    RoleBox,
				Sysctls: append(slices.Clone(hostSysctls), Sysctl{"net.ipv6.conf.default.accept_ra", "0"}),
			},
			{
				Role:    RoleISP1,
				Sysctls: routerSysctls,
				Addrs: []Addr{
					{ISPDownDev, ifaddr(ISP1GatewayV4, 24)},
					{ISPDownDev, ifaddr(ISP1GatewayV6, 64)},
					{ISPUpDev, ifaddr(ISP1UpV4, 30)},
					{ISPUpDev, ifaddr(ISP1UpV6, 64)},
				},
				Routes: []Route{
					{Dst: def4, Via: a(InetISP1V4)},
					{Dst: def6, Via: a(InetISP1V6)},
					// The prefix isp1 delegates to the box. No route to
					// the LAN's private IPv4 prefix, ever.
					{Dst: p(LANPrefixV6), Via: a(BoxWAN1V6)},
				},
				Qdiscs: []Qdisc{{ISPDownDev, ISP1Rate}, {ISPUpDev, ISP1Rate}},
			},
			{
				Role:    RoleISP2,
				Sysctls: routerSysctls,
				// isp2 also advertises its prefix (radvd): the box's
				// accept_ra is off, so only braid's RA session, when a
				// spec asks for it, reads the adverts.
				Addrs: []Addr{
					{ISPDownDev, ifaddr(ISP2GatewayV4, 24)},
					{ISPDownDev, ifaddr(ISP2GatewayV6, 64)},
					{ISPUpDev, ifaddr(ISP2UpV4, 30)},
					{ISPUpDev, ifaddr(ISP2UpV6, 64)},
				},
				Routes: []Route{
					{Dst: def4, Via: a(InetISP2V4)},
					{Dst: def6, Via: a(InetISP2V6)},
				},
				Qdiscs: []Qdisc{{ISPDownDev, ISP2Rate}, {ISPUpDev, ISP2Rate}},
			},
			{
				Role:    RoleInet,
				Sysctls: routerSysctls,
				Addrs: []Addr{
					{InetISP1Dev, ifaddr(InetISP1V4, 30)},
					{InetISP1Dev, ifaddr(InetISP1V6, 64)},
					{InetISP2Dev, ifaddr(InetISP2V4, 30)},
					{InetISP2Dev, ifaddr(InetISP2V6, 64)},
					{InetPeerDev, ifaddr(InetPeerV4, 24)},
					{InetPeerDev, ifaddr(InetPeerV6, 64)},
					{"lo", host(ServerV4)},
					{"lo", host(SteeredServerV4)},
					{"lo", host(ServerV6)},
					{"lo", host(SteeredServerV6)},
					{"lo", host(ResolverV4)},
					{"lo", host(ResolverV6)},
				},
				Routes: []Route{
					{Dst: p(WAN1PrefixV4), Via: a(ISP1UpV4)},
					{Dst: p(WAN1PrefixV6), Via: a(ISP1UpV6)},
					{Dst: p(LANPrefixV6), Via: a(ISP1UpV6)},
					{Dst: p(WAN2PrefixV4), Via: a(ISP2UpV4)},
					{Dst: p(WAN2PrefixV6), Via: a(ISP2UpV6)},
					{Dst: p(ISP2DelegationPool), Via: a(ISP2UpV6)},
				},
			},
			{
				Role:    RolePeer,
				Sysctls: hostSysctls,
				Addrs: []Addr{
					{PeerDev, ifaddr(PeerV4, 24)},
					{PeerDev, ifaddr(PeerV6, 64)},
				},
				Routes: []Route{
					{Dst: def4, Via: a(InetPeerV4)},
					{Dst: def6, Via: a(InetPeerV6)},
				},
			},
		},
		Links: []Link{
			{Endpoint{Role: RoleLAN, Dev: LANDev, MAC: LANClientMAC}, Endpoint{Role: RoleBox, Dev: BoxLANDev, Down: true}},
			{Endpoint{Role: RoleISP1, Dev: ISPDownDev}, Endpoint{Role: RoleBox, Dev: BoxWAN1Dev, Down: true}},
			{Endpoint{Role: RoleISP2, Dev: ISPDownDev}, Endpoint{Role: RoleBox, Dev: BoxWAN2Dev, Down: true}},
			{Endpoint{Role: RoleISP1, Dev: ISPUpDev}, Endpoint{Role: RoleInet, Dev: InetISP1Dev}},
			{Endpoint{Role: RoleISP2, Dev: ISPUpDev}, Endpoint{Role: RoleInet, Dev: InetISP2Dev}},
			{Endpoint{Role: RolePeer, Dev: PeerDev}, Endpoint{Role: RoleInet, Dev: InetPeerDev}},
		},
		Processes: []Process{
			{Name: "whoami", Role: RoleInet, Serve: append(whoami(ServerV4, SteeredServerV4, ServerV6, SteeredServerV6),
				download(ServerV4, SteeredServerV4, ServerV6, SteeredServerV6)...)},
			// iperf3 listens on every address of the core, both families.
			{Name: IperfProcess, Role: RoleInet, Command: []string{"iperf3", "--server", "--port", strconv.Itoa(IperfPort)}},
			// isp1's ONT: a DHCP server for vendor classes that begin
			// with "neufbox". A box with a static address never asks.
			{Name: DHCP4Process, Role: RoleISP1, Command: ISP1DHCP4().Command()},
			{Name: PeerProcess, Role: RolePeer, Braid: []string{"run", "-f", "{conf}"}, Config: PeerSpec("{lab}/" + PeerKeyFile)},
			{Name: "peer-whoami", Role: RolePeer, Serve: whoami(PeerV4, PeerV6)},
			{Name: ISP2AdvertsProcess, Role: RoleISP2, Config: ISP2Adverts(ISP2RouterLifetime),
				Command: []string{"radvd", "--nodaemon", "--config", "{conf}", "--pidfile", "{pidfile}", "--logmethod", "stderr"}},
			// The resolver the ISPs hand out, serving the test zone.
			resolverProcess(),
			// isp2's DHCPv6 server: prefix delegation (Kea).
			{Name: DHCP6Process, Role: RoleISP2, Config: ISP2DHCP6("{dir}").Config(),
				Command: ISP2DHCP6("{dir}").Command("{conf}", "{dir}")},
		},
	}
}

// The lab's peer and servers.
const (
	// PeerProcess names the lab's peer: `braid run -f` with PeerSpec in
	// the peer's namespace.
	PeerProcess = "peer"
	// PeerKeyFile is the file, in the lab's run directory, that holds
	// the peer's key: random, written by Up. A box's spec names it
	// (aggregation.peer.key: {file: ...}, see (*Lab).PeerKeyPath).
	PeerKeyFile = "peer.key"
	// IperfProcess names iperf3's server in the Internet core.
	IperfProcess = "iperf3"
)

// PeerSpec is the lab peer's spec (kind: Peer): Multipath TCP on
// PeerPort of every address, both families, PeerCipher, the key read
// from keyFile. No management section: braid adds no input drops.
func PeerSpec(keyFile string) string {
	return fmt.Sprintf(`# The lab's aggregation peer (braid lab up writes it).
apiVersion: braid/v1alpha1
kind: Peer
metadata:
  name: lab
spec:
  listen: "[::]:%d"
  cipher: %s
  key: {file: %s}
`, PeerPort, PeerCipher, keyFile)
}

// isp2's router advertisements, sent by radvd on its link to the box.
const (
	// ISP2AdvertsProcess names the radvd process.
	ISP2AdvertsProcess = "radvd"
	// ISP2RouterLifetime is the router lifetime of isp2's adverts, in
	// seconds; they come every 10 to 30 s, and at once to a solicitation.
	ISP2RouterLifetime = 90
	// ISP2ValidLifetime and ISP2PreferredLifetime are the lifetimes of
	// the prefix WAN2PrefixV6 in them, in seconds (radvd's defaults).
	ISP2ValidLifetime     = 86400
	ISP2PreferredLifetime = 14400
	// ISP2ResolverV6 is the resolver isp2 announces (RDNSS), for
	// ISP2RouterLifetime seconds, and names in its delegations: the
	// lab's resolver in the core.
	ISP2ResolverV6 = ResolverV6
)

// ISP2Adverts is radvd's configuration for isp2's adverts on its link to
// the box: WAN2PrefixV6 on-link and for SLAAC, ISP2ResolverV6, and
// routerLifetime (seconds; 0 says isp2 is not a default router).
func ISP2Adverts(routerLifetime int) string {
	return fmt.Sprintf(`interface %s {
  AdvSendAdvert on;
  MinRtrAdvInterval 10;
  MaxRtrAdvInterval 30;
  AdvDefaultLifetime %d;
  prefix %s {
    AdvOnLink on;
    AdvAutonomous on;
    AdvValidLifetime %d;
    AdvPreferredLifetime %d;
  };
  RDNSS %s {
    AdvRDNSSLifetime %d;
  };
};
`, ISPDownDev, routerLifetime, WAN2PrefixV6, ISP2ValidLifetime, ISP2PreferredLifetime, ISP2ResolverV6, ISP2RouterLifetime)
}

// maxIfName is the longest interface name Linux accepts (IFNAMSIZ - 1).
const maxIfName = 15

// Validate reports the first inconsistency in t: an unknown or duplicate
// role, an interface name too long or used twice in a namespace, an
// address on an interface the namespace does not have, a process without
// exactly one of Serve, Command and Braid.
func (t Topology) Validate() error {
	roles := map[Role]bool{}
	for _, ns := range t.Namespaces {
		if err := validRole(ns.Role); err != nil {
			return err
		}
		if roles[ns.Role] {
			return fmt.Errorf("topology: namespace role %q appears twice", ns.Role)
		}
		roles[ns.Role] = true
	}
	devs := map[Role]map[string]bool{}
	for r := range roles {
		devs[r] = map[string]bool{"lo": true}
	}
	for i, l := range t.Links {
		for _, e := range []Endpoint{l.A, l.B} {
			if !roles[e.Role] {
				return fmt.Errorf("topology: link %d: no namespace with role %q", i, e.Role)
			}
			if e.Dev == "" || len(e.Dev) > maxIfName || strings.ContainsAny(e.Dev, "/ \t\n:") {
				return fmt.Errorf("topology: link %d: invalid interface name %q (at most %d characters)", i, e.Dev, maxIfName)
			}
			if devs[e.Role][e.Dev] {
				return fmt.Errorf("topology: link %d: interface %s appears twice in namespace role %q", i, e.Dev, e.Role)
			}
			devs[e.Role][e.Dev] = true
			if mac, err := net.ParseMAC(e.MAC); e.MAC != "" && (err != nil || len(mac) != 6 || mac[0]&1 != 0) {
				return fmt.Errorf("topology: link %d: interface %s: %q is not a unicast Ethernet address", i, e.Dev, e.MAC)
			}
		}
	}
	for _, ns := range t.Namespaces {
		for _, s := range ns.Sysctls {
			if s.Key == "" || strings.ContainsAny(s.Key, "/ ") || strings.Contains(s.Key, "..") {
				return fmt.Errorf("topology: namespace role %q: invalid sysctl %q", ns.Role, s.Key)
			}
		}
		for _, ad := range ns.Addrs {
			if !devs[ns.Role][ad.Dev] {
				return fmt.Errorf("topology: namespace role %q: address %s on unknown interface %q", ns.Role, ad.Prefix, ad.Dev)
			}
			if !ad.Prefix.IsValid() {
				return fmt.Errorf("topology: namespace role %q: invalid address on %s", ns.Role, ad.Dev)
			}
		}
		for _, rt := range ns.Routes {
			if !rt.Dst.IsValid() || (!rt.Via.IsValid() && rt.Dev == "") {
				return fmt.Errorf("topology: namespace role %q: route to %s needs a destination and a gateway or an interface", ns.Role, rt.Dst)
			}
			if rt.Dev != "" && !devs[ns.Role][rt.Dev] {
				return fmt.Errorf("topology: namespace role %q: route to %s via unknown interface %q", ns.Role, rt.Dst, rt.Dev)
			}
		}
		for _, q := range ns.Qdiscs {
			if !devs[ns.Role][q.Dev] || q.Dev == "lo" {
				return fmt.Errorf("topology: namespace role %q: qdisc on unknown interface %q", ns.Role, q.Dev)
			}
			if q.Rate == 0 {
				return fmt.Errorf("topology: namespace role %q: qdisc on %s has no rate", ns.Role, q.Dev)
			}
		}
	}
	names := map[string]bool{}
	for _, p := range t.Processes {
		if p.Name == "" || strings.ContainsAny(p.Name, "/ .") {
			return fmt.Errorf("topology: invalid process name %q", p.Name)
		}
		if names[p.Name] {
			return fmt.Errorf("topology: process %q appears twice", p.Name)
		}
		names[p.Name] = true
		if !roles[p.Role] {
			return fmt.Errorf("topology: process %q: no namespace with role %q", p.Name, p.Role)
		}
		set := 0
		for _, args := range [][]string{p.Serve, p.Command, p.Braid} {
			if len(args) > 0 {
				set++
			}
		}
		if set != 1 {
			return fmt.Errorf("topology: process %q: set exactly one of Serve, Command and Braid", p.Name)
		}
		if p.Config != "" && len(p.Serve) > 0 {
			return fmt.Errorf("topology: process %q: a Config is for a Command or Braid", p.Name)
		}
	}
	return nil
}

// validRole accepts short lowercase names: they end namespace names.
func validRole(r Role) error {
	if r == "" || len(r) > 16 {
		return fmt.Errorf("topology: invalid role %q: 1 to 16 characters", r)
	}
	for _, c := range r {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			return fmt.Errorf("topology: invalid role %q: only a-z and 0-9", r)
		}
	}
	return nil
}

// namespaceBatch returns the `ip -batch` lines that configure ns once its
// links exist: loopback and links up, addresses, routes.
func (t Topology) namespaceBatch(ns Namespace) []string {
	lines := []string{"link set dev lo up"}
	for _, l := range t.Links {
		for _, e := range []Endpoint{l.A, l.B} {
			if e.Role == ns.Role && e.MAC != "" {
				lines = append(lines, "link set dev "+e.Dev+" address "+e.MAC)
			}
			if e.Role == ns.Role && !e.Down {
				lines = append(lines, "link set dev "+e.Dev+" up")
			}
		}
	}
	for _, ad := range ns.Addrs {
		line := fmt.Sprintf("addr add %s dev %s", ad.Prefix, ad.Dev)
		if ad.Prefix.Addr().Is6() {
			// Even with accept_dad=0 the kernel keeps an address tentative
			// (unusable) until its DAD work item runs, which under load is
			// after a service tried to bind it; nodad skips that state.
			line += " nodad"
		}
		lines = append(lines, line)
	}
	for _, rt := range ns.Routes {
		line := "route add " + rt.Dst.String()
		if rt.Via.IsValid() {
			line += " via " + rt.Via.String()
		}
		if rt.Dev != "" {
			line += " dev " + rt.Dev
		}
		lines = append(lines, line)
	}
	return lines
}

// qdiscBatch returns the `tc -batch` lines of ns's rate limits.
func qdiscBatch(ns Namespace) []string {
	var lines []string
	for _, q := range ns.Qdiscs {
		lines = append(lines, "qdisc add dev "+q.Dev+" root tbf rate "+strconv.FormatUint(q.Rate, 10)+
			"bit burst "+strconv.FormatUint(tbfBurst(q.Rate), 10)+" latency 50ms")
	}
	return lines
}

// tbfBurst is the bucket size for a rate: 10 ms worth of bytes, and never
// less than 64 KiB so that a full-size GSO packet from a veth passes whole.
func tbfBurst(rate uint64) uint64 {
	return max(rate/8/100, 64*1024)
}

// linkBatch returns the `ip -batch` lines, run in the initial namespace,
// that create the veth pairs directly inside their namespaces under their
// final names, so that no name is ever taken in the initial namespace.
func (t Topology) linkBatch(nsName func(Role) string) []string {
	var lines []string
	for _, l := range t.Links {
		lines = append(lines, fmt.Sprintf("link add name %s netns %s type veth peer name %s netns %s",
			l.A.Dev, nsName(l.A.Role), l.B.Dev, nsName(l.B.Role)))
	}
	return lines
}

// roles returns the roles of t's namespaces.
func (t Topology) roles() []Role {
	rs := make([]Role, len(t.Namespaces))
	for i, ns := range t.Namespaces {
		rs[i] = ns.Role
	}
	return rs
}
