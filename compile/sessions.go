package compile

import (
	"fmt"
	"time"

	"github.com/braid-router/braid/api"
	"github.com/braid-router/braid/probe"
	"github.com/braid-router/braid/session"
	"github.com/braid-router/braid/sessions/dhcp4"
	"github.com/braid-router/braid/sessions/health"
	"github.com/braid-router/braid/sessions/ra"
)

// sessions compiles the protocol sessions the spec asks for: a DHCPv4
// client per uplink whose IPv4 comes from DHCP, an RA session per uplink
// whose IPv6 comes from router advertisements, a health tracker per
// uplink with health probes, a DHCPv6 prefix delegation client per uplink
// and tunnel that asks for a prefix, the LAN's DHCPv4 server, the LAN's
// router advertisements.
func (c *compiler) sessions(spec *api.RouterSpec) error {
	for i := range spec.Uplinks {
		u := &spec.Uplinks[i]
		// A session on an uplink whose link is missing waits for it.
		var linkWait string
		if st := c.uplinks[u.Name]; st != nil && st.missing != "" {
			linkWait = "link " + u.Interface
		}
		if u.IPv4 != nil && u.IPv4.DHCP != nil {
			d := u.IPv4.DHCP
			c.specs = append(c.specs, session.Spec{Kind: dhcp4.Kind, Name: u.Name, Config: dhcp4.Config{
				Uplink: u.Name, Interface: u.Interface,
				VendorClass: d.VendorClass, ClientID: d.ClientID, Hostname: d.Hostname,
			}, Wait: linkWait})
		}
		if u.IPv6 != nil && u.IPv6.RA != nil {
			c.specs = append(c.specs, session.Spec{Kind: ra.Kind, Name: u.Name, Config: ra.Config{
				Uplink: u.Name, Interface: u.Interface,
			}, Wait: linkWait})
		}
		if h := u.Health; h != nil {
			interval, err := time.ParseDuration(h.Interval)
			if err != nil {
				return fmt.Errorf("uplinks[%s].health.interval: %w", u.Name, err)
			}
			timeout, err := time.ParseDuration(h.Timeout)
			if err != nil {
				return fmt.Errorf("uplinks[%s].health.timeout: %w", u.Name, err)
			}
			cfg := health.Config{
				Uplink: u.Name, Interface: u.Interface, Probes: h.Probes,
				Interval: interval, Timeout: timeout,
				FailAfter: h.FailAfter, RecoverAfter: h.RecoverAfter,
			}
			var wait string
			if st := c.uplinks[u.Name]; st != nil {
				for _, p := range st.addrs() {
					cfg.Sources = append(cfg.Sources, p.Addr())
				}
				switch {
				case linkWait != "":
					wait = linkWait
				case len(cfg.Sources) > 0:
				case st.dhcp4:
					wait = "the DHCP lease of uplink " + u.Name
				case st.ra6:
					wait = "the router advertisements of uplink " + u.Name
				}
			}
			c.specs = append(c.specs, session.Spec{Kind: health.Kind, Name: u.Name, Config: cfg, Wait: wait})
		}
	}
	c.dhcp6Sessions(spec)
	if err := c.dhcpServer(spec); err != nil {
		return err
	}
	return c.advertise(spec)
}

// Targets lists what must keep answering after a change of spec: its
// management probes and a TCP connect to its aggregation peer.
func Targets(spec *api.RouterSpec) []probe.Target {
	if spec == nil {
		return nil
	}
	ts := managementTargets(spec.Management)
	if a := spec.Aggregation; a != nil && a.Peer != nil && a.Peer.Address != "" {
		ts = append(ts, probe.Target{Kind: probe.TCP, Addr: a.Peer.Address})
	}
	return ts
}

// managementTargets are the management probes, a router's or a peer's.
func managementTargets(m *api.Management) []probe.Target {
	if m == nil {
		return nil
	}
	var ts []probe.Target
	for _, p := range m.Probes {
		switch {
		case p.TCP != "":
			ts = append(ts, probe.Target{Kind: probe.TCP, Addr: p.TCP})
		case p.ICMP != "":
			ts = append(ts, probe.Target{Kind: probe.ICMP, Addr: p.ICMP})
		}
	}
	return ts
}
