package compile

import (
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/braid-router/braid/api"
	nl "github.com/braid-router/braid/drivers/netlink"
	nft "github.com/braid-router/braid/drivers/nftables"
	"github.com/braid-router/braid/session"
	"github.com/braid-router/braid/sessions/tunnel"
)

// What a tunnel (tunnels[], the 6PE tunnel: IPv6 over PPP over L2TPv2)
// compiles to:
//
//   - session[l2tp/TUNNEL], with the via uplink's link, IPv4 address and
//     MAC address (its login is made of them), waiting until it has them;
//   - the tunnel's routing table, TunnelTable(i) from braid's own range:
//     `unreachable default` beneath everything, always, and `default dev
//     TUNNEL` above it while the session holds its TUN link (its fact);
//     the rule at nl.PrioDelegated sends the delegated prefix's traffic
//     there (delegation.go), so that it leaves by the tunnel or nowhere: a
//     down tunnel answers "no route" rather than let the prefix leak out of
//     another uplink, whose provider would drop it anyway;
//   - its firewall, as an uplink's (see firewall): DHCPv6 replies from
//     link-local addresses accepted, the LAN forwarded into it, anything
//     else that arrives on it dropped, no NAT; and, on the via uplink, the
//     LNS's L2TP accepted whatever its source port (RFC 2661 section 8.1:
//     the LNS may answer from another port than the one the LAC sent to,
//     which conntrack does not see as a reply); and the TCP MSS through
//     the TUN link clamped to its MTU.

// metricUnreachable is the metric of a tunnel's unreachable default
// route: beneath the TUN link's (metricTable6).
const metricUnreachable = 4096

// tunnelState is what the rest of the compile needs of a tunnel.
type tunnelState struct {
	name, link string
	table      int
	// via is the uplink it leaves by, and lns the LNS's address when the
	// server is written as one (a host name is resolved by the session).
	via, viaLink string
	lns          netip.Addr
	// mtu is the TUN link's, while the session holds it; 0 before.
	mtu int
}

// tunnels compiles the spec's tunnels: their sessions and tables. The
// firewall reads c.tunnelStates.
func (c *compiler) tunnels(spec *api.RouterSpec) error {
	for i := range spec.Tunnels {
		t := &spec.Tunnels[i]
		l := t.L2TP
		if l == nil || l.PPP == nil {
			return fmt.Errorf("tunnels[%s]: no l2tp.ppp", t.Name)
		}
		if t.Interface == "" {
			return fmt.Errorf("tunnels[%s].interface: empty (the spec's defaults give it the tunnel's name)", t.Name)
		}
		u, ok := c.uplinks[l.Via]
		if !ok {
			return fmt.Errorf("tunnels[%s].l2tp.via: no uplink %q", t.Name, l.Via)
		}
		table, ok := TunnelTable(i)
		if !ok {
			return fmt.Errorf("tunnels[%s]: the %dth tunnel: braid's tunnel tables (%d-%d) hold %d", t.Name, i+1, nl.TableProxy+1, nl.TableMax, nl.TableMax-nl.TableProxy)
		}
		ts := &tunnelState{name: t.Name, link: t.Interface, table: table, via: u.name, viaLink: u.link}
		server := tunnel.ServerAddr(l.Server)
		if host, _, err := net.SplitHostPort(server); err == nil {
			if a, err := netip.ParseAddr(host); err == nil {
				ts.lns = a.Unmap()
			}
		}
		c.tunnelStates = append(c.tunnelStates, ts)

		keepalive, err := time.ParseDuration(l.PPP.Keepalive)
		if err != nil && l.PPP.Keepalive != "" {
			return fmt.Errorf("tunnels[%s].l2tp.ppp.keepalive: %w", t.Name, err)
		}
		cfg := tunnel.Config{
			Tunnel: t.Name, Interface: t.Interface, Server: server,
			Via: u.name, Device: u.link, Local: u.addr4.Addr(),
			Secret: l.Secret, Username: l.PPP.Username, Password: l.PPP.Password,
			Keepalive: keepalive, KeepaliveFailures: l.PPP.KeepaliveFailures,
		}
		var mtu int
		for _, up := range spec.Uplinks {
			if up.Name == u.name {
				mtu = up.MTU
				if up.MACAddress != "" {
					if hw, err := net.ParseMAC(up.MACAddress); err == nil {
						cfg.MAC = hw.String()
					}
				}
			}
		}
		cfg.UplinkMTU = mtu
		if cfg.MAC == "" {
			if i, ok := c.facts.Interface(u.link); ok && i.Present {
				cfg.MAC = i.MAC
			}
		}
		var wait string
		switch {
		case u.missing != "":
			wait = "link " + u.link
		case !cfg.Local.Is4() && u.dhcp4:
			wait = "the DHCP lease of uplink " + u.name
		case !cfg.Local.Is4():
			wait = "an IPv4 address on uplink " + u.name
		case tunnel.UsesMAC(l.PPP.Username) && cfg.MAC == "":
			wait = "the MAC address of link " + u.link
		}
		c.specs = append(c.specs, session.Spec{Kind: tunnel.Kind, Name: t.Name, Config: cfg, Wait: wait})

		// The table: unreachable beneath, the TUN link above while it is
		// there.
		def6 := netip.PrefixFrom(netip.IPv6Unspecified(), 0)
		c.routes = append(c.routes, nl.Route{Table: ts.table, Dst: def6, Metric: metricUnreachable, Type: nl.Unreachable, Link: "lo"})
		if lk, ok := c.facts.Link("tunnel/" + t.Name); ok && lk.Name == t.Interface {
			c.routes = append(c.routes, nl.Route{Table: ts.table, Dst: def6, Metric: metricTable6, Link: t.Interface})
			ts.mtu = lk.MTU
		}
	}
	return nil
}

// tcpOverhead6 is what an IPv6 packet holds beside a TCP segment's data:
// the IPv6 header and the TCP header without options.
const tcpOverhead6 = 40 + 20

// clampMSS lowers the MSS option of TCP handshakes through a tunnel to
// what its MTU carries (the kernel never raises it), first in the forward
// chain: before the established accept, which a SYN-ACK meets. LAN hosts
// that heard the tunnel's MTU in the LAN's adverts already ask for no
// more; the clamp is for those that did not, and for the far ends.
func (c *compiler) clampMSS(rs *nft.Ruleset) {
	for _, t := range c.tunnelStates {
		if t.mtu <= tcpOverhead6 {
			continue
		}
		mss := t.mtu - tcpOverhead6
		rs.Add(nft.ChainForward, "mss-tunnel-"+t.name+"-out", nft.OIFName(t.link), nft.TCPSyn(), nft.SetMSS(mss))
		rs.Add(nft.ChainForward, "mss-tunnel-"+t.name+"-in", nft.IIFName(t.link), nft.TCPSyn(), nft.SetMSS(mss))
	}
}

// tunnelFirewall adds what the tunnels need of the via uplinks' input
// chain: the LNS's L2TP, from any source port, to the LAC's port. It
// comes before the uplinks' drops.
func (c *compiler) tunnelFirewall(rs *nft.Ruleset) {
	for _, t := range c.tunnelStates {
		stmts := []nft.Stmt{nft.IIFName(t.viaLink)}
		if t.lns.IsValid() {
			stmts = append(stmts, nft.SrcPrefix(netip.PrefixFrom(t.lns, t.lns.BitLen())))
		}
		stmts = append(stmts, nft.DPort("udp", tunnel.DefaultPort), nft.Accept())
		rs.Add(nft.ChainInput, "l2tp-"+t.name, stmts...)
	}
}
