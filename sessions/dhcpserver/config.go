// Package dhcpserver is the LAN's DHCPv4 server, session[dhcpserver/lan],
// for `lan.dhcp`: it leases the addresses of the configured range, and
// static ones by MAC, with the box as router and the resolvers the
// compiler chose (braid's own when it listens on the LAN, else the
// uplinks'). Its leases live in its own state file, never in facts: a
// lease is nothing the compiler acts on, so it must not cause a pass.
// `braid status` shows them in the session's detail.
//
// Which address a client gets is the pure package leases; this package
// owns the socket (server4's UDP socket bound to the LAN's link), the
// clock and the file. The messages are insomniacslk/dhcp's dhcpv4.
package dhcpserver

import (
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/braid-router/braid/api"
	"github.com/braid-router/braid/reconcile/plan"
	"github.com/braid-router/braid/session"
	"github.com/braid-router/braid/sessions/dhcpserver/leases"
)

// Kind is the session kind: "session[dhcpserver/lan]".
const Kind = "dhcpserver"

// Name is the session's name: there is one LAN.
const Name = "lan"

// Config is what the server leases, and where. The compiler writes it;
// a new one restarts the session, which reads its leases back from its
// state file.
type Config struct {
	// Interface is the LAN's link.
	Interface string
	// Server is the box's address on the LAN: the server identifier
	// (option 54), and where the server listens.
	Server netip.Addr
	// Subnet is the LAN's subnet (option 1 is its mask).
	Subnet netip.Prefix
	// First and Last bound the pool.
	First, Last netip.Addr
	// LeaseTime is option 51.
	LeaseTime time.Duration
	// Static leases by MAC.
	Static []leases.Static
	// Router is option 3: the box.
	Router netip.Addr
	// DNS is option 6; none: no option.
	DNS []netip.Addr
}

// leases returns the lease table's configuration.
func (c Config) leases() leases.Config {
	return leases.Config{Server: c.Server, Subnet: c.Subnet.Masked(), First: c.First, Last: c.Last,
		Reserved: []netip.Addr{c.Server}, Static: c.Static, LeaseTime: c.LeaseTime}
}

// Check reports what the server cannot serve: a range or a static lease
// outside the subnet, a server address outside it, no interface.
func (c Config) Check() error {
	if c.Interface == "" {
		return fmt.Errorf("no interface")
	}
	if !c.Server.Is4() || !c.Subnet.Contains(c.Server) {
		return fmt.Errorf("server address %s is not an IPv4 address of %s", c.Server, c.Subnet)
	}
	return c.leases().Check()
}

// Fields implements session.Config.
func (c Config) Fields() []plan.Field {
	var static, dns []string
	for _, s := range c.Static {
		e := s.MAC + " " + s.Addr.String()
		if s.Hostname != "" {
			e += " (" + s.Hostname + ")"
		}
		static = append(static, e)
	}
	for _, d := range c.DNS {
		dns = append(dns, d.String())
	}
	var rng, router, lt string
	if c.First.IsValid() {
		rng = c.First.String() + "-" + c.Last.String()
	}
	if c.Router.IsValid() {
		router = c.Router.String()
	}
	if c.LeaseTime != 0 {
		lt = c.LeaseTime.String()
	}
	var server, subnet string
	if c.Server.IsValid() {
		server = c.Server.String()
	}
	if c.Subnet.IsValid() {
		subnet = c.Subnet.Masked().String()
	}
	return session.Fields("interface", c.Interface, "server", server, "subnet", subnet,
		"range", rng, "lease time", lt, "static", strings.Join(static, ", "),
		"router", router, "dns", strings.Join(dns, ", "))
}

// Secrets implements session.Config: the session has none.
func (Config) Secrets() []*api.Secret { return nil }
