package netlink

import (
	"net/netip"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/braid-router/braid/reconcile/plan"
)

// Protocol is the route and rule protocol number that marks braid's own
// routes and rules (rtnetlink's RTPROT_*; 98 is free in iproute2's list).
const Protocol = 98

// Routing tables and rule priorities braid uses.
const (
	// TableMain is the kernel's main table.
	TableMain = 254
	// TableMin and TableMax bound braid's table range.
	TableMin = 7100
	TableMax = 7199
	// TableSteer holds the routes: destinations, each via its uplink.
	TableSteer = 7100
	// TableProxy delivers to the box itself what the transparent proxy's
	// steering marked with this number ("local default dev lo"). It is
	// reserved for braid: no uplink may use it.
	TableProxy = 7190

	// PrioProxy sends packets marked with TableProxy to that table, before
	// any other rule of braid's: the proxy's listener gets them whatever
	// the main table or an uplink's table would do with their destination.
	PrioProxy = 6900

	// PrioMain looks up the main table for everything but its default
	// routes, so connected and LAN routes win over steering.
	PrioMain = 7000
	// PrioMark sends packets marked with an uplink's table number (by
	// braid's nftables rules: per-domain egress) to that table.
	PrioMark = 7050
	// PrioFrom sends routes: sources to their uplink's table.
	PrioFrom = 7100
	// PrioDelegated sends traffic from a prefix delegated to the box
	// (DHCPv6 prefix delegation: the LAN's addresses in it) to the table
	// of the uplink or tunnel it was delegated over: no other ISP would
	// carry it.
	PrioDelegated = 7150
	// PrioUplink sends traffic from an uplink's address to its table (MPTCP
	// subflows and replies leave by the link they belong to).
	PrioUplink = 7200
	// PrioSteer looks up the table of routes: destinations.
	PrioSteer = 7300
)

// Link is the settings braid keeps on an interface it does not create.
type Link struct {
	Name string
	// Up is the wanted admin state.
	Up bool
	// MTU is the wanted MTU; 0 leaves it as it is.
	MTU int
	// MAC is the wanted hardware address, as net.HardwareAddr writes it
	// (lower case, colons); "" leaves it as it is.
	MAC string
}

// Address implements plan.Resource.
func (l Link) Address() string { return "link[" + l.Name + "]" }

// Fields implements plan.Resource.
func (l Link) Fields() []plan.Field {
	f := []plan.Field{{Name: "up", Value: strconv.FormatBool(l.Up)}}
	if l.MTU != 0 {
		f = append(f, plan.Field{Name: "mtu", Value: strconv.Itoa(l.MTU)})
	}
	if l.MAC != "" {
		f = append(f, plan.Field{Name: "mac", Value: l.MAC})
	}
	return f
}

// Sysctl is one /proc/sys value, named in dotted form
// (net.ipv4.conf.eth1.rp_filter).
type Sysctl struct {
	Name  string
	Value string
}

// Address implements plan.Resource.
func (s Sysctl) Address() string { return "sysctl[" + s.Name + "]" }

// Fields implements plan.Resource.
func (s Sysctl) Fields() []plan.Field {
	return []plan.Field{{Name: "value", Value: s.Value}}
}

// Addr is an address on a link, added with noprefixroute.
type Addr struct {
	Link   string
	Prefix netip.Prefix
}

// Address implements plan.Resource.
func (a Addr) Address() string { return "address[" + a.Link + " " + a.Prefix.String() + "]" }

// Fields implements plan.Resource.
func (a Addr) Fields() []plan.Field {
	return []plan.Field{{Name: "link", Value: a.Link}, {Name: "prefix", Value: a.Prefix.String()}}
}

// Route is a route braid owns: unicast, or local (Type). Its identity is
// (table, destination, metric), as the kernel's: the type is not part of
// it (the kernel holds one route per identity, whatever its type), so a
// change of type is an update, and a foreign route of another type with a
// desired route's identity is a conflict.
type Route struct {
	Table  int
	Dst    netip.Prefix
	Metric int
	// Type is the route's kind; the zero value is unicast. A local route
	// delivers what it matches to the box itself (braid's proxy table:
	// "local default dev lo"); an unreachable route answers what it
	// matches with ICMP destination unreachable (the unused rest of a
	// delegated IPv6 prefix: "unreachable 2001:db8:f100::/56 dev lo", which
	// the kernel puts on lo for IPv6).
	Type RouteType
	// Gateway is the next hop; invalid for a link-scope (connected) route.
	Gateway netip.Addr
	// Link is the outgoing interface.
	Link string
	// Src is the preferred source address; optional.
	Src netip.Addr
	// Proto is the protocol of a foreign route as observed (shown in a
	// conflict); zero for braid's own routes, desired or observed.
	Proto int
}

// RouteType is a route's kind, rtnetlink's RTN_* but for unicast, which is
// the zero value.
type RouteType uint8

// Route types. Observed routes may have others (blackhole, prohibit,
// ...), shown by their iproute2 names.
const (
	Unicast     RouteType = 0
	Local       RouteType = unix.RTN_LOCAL
	Unreachable RouteType = unix.RTN_UNREACHABLE
)

// routeTypeNames are iproute2's names of the RTN_* types.
var routeTypeNames = [...]string{
	unix.RTN_UNSPEC: "unspec", unix.RTN_UNICAST: "unicast", unix.RTN_LOCAL: "local",
	unix.RTN_BROADCAST: "broadcast", unix.RTN_ANYCAST: "anycast", unix.RTN_MULTICAST: "multicast",
	unix.RTN_BLACKHOLE: "blackhole", unix.RTN_UNREACHABLE: "unreachable", unix.RTN_PROHIBIT: "prohibit",
	unix.RTN_THROW: "throw", unix.RTN_NAT: "nat", unix.RTN_XRESOLVE: "xresolve",
}

// String is iproute2's name of the type ("unicast", "local").
func (t RouteType) String() string {
	k := t.kernel()
	if int(k) < len(routeTypeNames) {
		return routeTypeNames[k]
	}
	return strconv.Itoa(int(k))
}

// kernel is the type's RTN_* number.
func (t RouteType) kernel() uint8 {
	if t == Unicast {
		return unix.RTN_UNICAST
	}
	return uint8(t)
}

// routeTypeOf converts a kernel's RTN_* number.
func routeTypeOf(rtn uint8) RouteType {
	if rtn == unix.RTN_UNICAST {
		return Unicast
	}
	return RouteType(rtn)
}

// TableName renders a table number, "main" for the main table.
func TableName(t int) string {
	if t == TableMain {
		return "main"
	}
	return strconv.Itoa(t)
}

// Address implements plan.Resource.
// It is built without fmt: a large plan computes it tens of thousands
// of times per pass.
func (r Route) Address() string {
	b := make([]byte, 0, 64)
	b = append(b, "route["...)
	if r.Table == TableMain {
		b = append(b, "main"...)
	} else {
		b = strconv.AppendInt(b, int64(r.Table), 10)
	}
	b = append(b, ' ')
	b = appendPrefix(b, r.Dst)
	b = append(b, " metric "...)
	b = strconv.AppendInt(b, int64(r.Metric), 10)
	return string(append(b, ']'))
}

// appendPrefix appends p as p.String() renders it.
func appendPrefix(b []byte, p netip.Prefix) []byte {
	if !p.IsValid() {
		return append(b, p.String()...)
	}
	return p.AppendTo(b)
}

// Fields implements plan.Resource.
func (r Route) Fields() []plan.Field {
	f := make([]plan.Field, 0, 4)
	if r.Type != Unicast {
		f = append(f, plan.Field{Name: "type", Value: r.Type.String()})
	}
	if r.Gateway.IsValid() {
		f = append(f, plan.Field{Name: "via", Value: r.Gateway.String()})
	}
	f = append(f, plan.Field{Name: "dev", Value: r.Link})
	if r.Src.IsValid() {
		f = append(f, plan.Field{Name: "src", Value: r.Src.String()})
	}
	if r.Proto != 0 {
		f = append(f, plan.Field{Name: "proto", Value: ProtoName(r.Proto)})
	}
	return f
}

// Rule is a policy routing rule braid owns. Its identity is its priority,
// family and selectors.
type Rule struct {
	Priority int
	// IPv6 selects the family when neither From nor To is set.
	IPv6 bool
	// From and To are the selectors; invalid means "all".
	From netip.Prefix
	To   netip.Prefix
	// Mark, when not zero, selects packets with this firewall mark (all
	// 32 bits).
	Mark uint32
	// Table is looked up when the rule matches.
	Table int
	// SuppressPrefixlen, when non-negative, rejects the table's routes with
	// this prefix length or shorter (0: ignore default routes). -1 is unset.
	SuppressPrefixlen int
	// Proto is the protocol of a foreign rule as observed (shown in a
	// conflict); zero for braid's own rules, desired or observed.
	Proto int
}

// Family is "inet" or "inet6".
func (r Rule) Family() string {
	if r.IPv6 || r.From.Addr().Is6() || r.To.Addr().Is6() {
		return "inet6"
	}
	return "inet"
}

// Address implements plan.Resource.
func (r Rule) Address() string {
	b := make([]byte, 0, 64)
	b = append(b, "rule["...)
	b = append(b, r.Family()...)
	b = append(b, " pref "...)
	b = strconv.AppendInt(b, int64(r.Priority), 10)
	if r.From.IsValid() {
		b = appendPrefix(append(b, " from "...), r.From)
	}
	if r.To.IsValid() {
		b = appendPrefix(append(b, " to "...), r.To)
	}
	if r.Mark != 0 {
		b = append(b, " fwmark 0x"...)
		b = strconv.AppendUint(b, uint64(r.Mark), 16)
	}
	return string(append(b, ']'))
}

// Fields implements plan.Resource.
func (r Rule) Fields() []plan.Field {
	f := []plan.Field{{Name: "lookup", Value: TableName(r.Table)}}
	if r.SuppressPrefixlen >= 0 {
		f = append(f, plan.Field{Name: "suppress_prefixlength", Value: strconv.Itoa(r.SuppressPrefixlen)})
	}
	if r.Proto != 0 {
		f = append(f, plan.Field{Name: "proto", Value: ProtoName(r.Proto)})
	}
	return f
}

// ProtoName renders a route or rule protocol number as iproute2 names it
// (rt_protos), or as the number.
func ProtoName(p int) string {
	switch p {
	case 1:
		return "redirect"
	case 2:
		return "kernel"
	case 3:
		return "boot"
	case 4:
		return "static"
	case 9:
		return "ra"
	case 11:
		return "zebra"
	case 12:
		return "bird"
	case 16:
		return "dhcp"
	case 18:
		return "keepalived"
	case 42:
		return "babel"
	case Protocol:
		return "braid"
	case 186:
		return "bgp"
	case 187:
		return "isis"
	case 188:
		return "ospf"
	case 189:
		return "rip"
	}
	return strconv.Itoa(p)
}
