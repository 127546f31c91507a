package dhcpserver

import (
	"net"
	"net/netip"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"

	"github.com/braid-router/braid/sessions/dhcpserver/leases"
)

// Ports of RFC 2131 section 4.1.
const (
	serverPort = 67
	clientPort = 68
)

// broadcast is where replies to a client without an address go.
var broadcast = netip.AddrPortFrom(netip.AddrFrom4([4]byte{255, 255, 255, 255}), clientPort)

// answer is what the server does with one message: the reply and where
// it goes (none: nothing), and whether the lease table changed.
type answer struct {
	reply   *dhcpv4.DHCPv4
	to      netip.AddrPort
	changed bool
	// note says what happened, for the log.
	note string
}

// handle answers one message from the LAN with the table at now. It
// takes no relayed messages (giaddr set: braid serves its own link) and
// only Ethernet clients.
func handle(cfg Config, t *leases.Table, req *dhcpv4.DHCPv4, now time.Time) answer {
	if req.OpCode != dhcpv4.OpcodeBootRequest || req.HWType != iana.HWTypeEthernet || len(req.ClientHWAddr) != 6 {
		return answer{note: "not an Ethernet client's request"}
	}
	if gi := req.GatewayIPAddr; gi != nil && !gi.IsUnspecified() {
		return answer{note: "relayed (giaddr " + gi.String() + "): braid serves its own link only"}
	}
	mac := req.ClientHWAddr.String()
	requested := addr4(req.RequestedIPAddress())
	ciaddr := addr4(req.ClientIPAddr)
	switch req.MessageType() {
	case dhcpv4.MessageTypeDiscover:
		a, ok := t.Discover(mac, requested, now)
		if !ok {
			return answer{note: "no address to offer " + mac}
		}
		return reply(cfg, req, dhcpv4.MessageTypeOffer, a, "offer "+a.String()+" to "+mac)
	case dhcpv4.MessageTypeRequest:
		l, v := t.Request(mac, leases.Request{Server: addr4(req.ServerIdentifier()), Requested: requested,
			Client: ciaddr, Hostname: hostname(req.HostName())}, now)
		switch v {
		case leases.Ack:
			ans := reply(cfg, req, dhcpv4.MessageTypeAck, l.Addr, "ack "+l.Addr.String()+" to "+mac)
			ans.changed = true
			return ans
		case leases.Nak:
			n, _ := dhcpv4.NewReplyFromRequest(req, dhcpv4.WithMessageType(dhcpv4.MessageTypeNak),
				dhcpv4.WithOption(dhcpv4.OptServerIdentifier(cfg.Server.AsSlice())))
			// RFC 2131 4.3.2: a NAK is broadcast when no relay is involved.
			return answer{reply: n, to: broadcast, note: "nak to " + mac}
		}
		return answer{note: "request from " + mac + " not for this server"}
	case dhcpv4.MessageTypeRelease:
		if t.Release(mac, ciaddr, now) {
			return answer{changed: true, note: "release of " + ciaddr.String() + " by " + mac}
		}
		return answer{note: "release of an address " + mac + " does not hold"}
	case dhcpv4.MessageTypeDecline:
		t.Decline(mac, requested, now)
		return answer{changed: true, note: "decline of " + requested.String() + " by " + mac}
	case dhcpv4.MessageTypeInform:
		// RFC 2131 4.3.5: the configuration, no lease, to ciaddr.
		ans := reply(cfg, req, dhcpv4.MessageTypeAck, netip.Addr{}, "inform from "+mac)
		return ans
	}
	return answer{note: "message type " + req.MessageType().String() + " ignored"}
}

// reply builds an OFFER or ACK of yiaddr (none for an INFORM's ACK),
// with options 1, 3, 6, 51, 54, 58 and 59, and where it goes: to ciaddr
// when the client has one, else broadcast (RFC 2131 4.1: the server
// could unicast to yiaddr only by adding the client to its ARP cache
// first, which a UDP socket cannot; broadcast is what the RFC allows
// then).
func reply(cfg Config, req *dhcpv4.DHCPv4, typ dhcpv4.MessageType, yiaddr netip.Addr, note string) answer {
	mods := []dhcpv4.Modifier{
		dhcpv4.WithMessageType(typ),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(cfg.Server.AsSlice())),
		dhcpv4.WithOption(dhcpv4.OptSubnetMask(net.CIDRMask(cfg.Subnet.Bits(), 32))),
	}
	if yiaddr.IsValid() {
		mods = append(mods, dhcpv4.WithYourIP(yiaddr.AsSlice()),
			dhcpv4.WithOption(dhcpv4.OptIPAddressLeaseTime(cfg.LeaseTime)),
			dhcpv4.WithOption(dhcpv4.OptRenewTimeValue(cfg.LeaseTime/2)),
			dhcpv4.WithOption(dhcpv4.OptRebindingTimeValue(cfg.LeaseTime*7/8)))
	}
	if cfg.Router.IsValid() {
		mods = append(mods, dhcpv4.WithOption(dhcpv4.OptRouter(cfg.Router.AsSlice())))
	}
	if len(cfg.DNS) > 0 {
		var ips []net.IP
		for _, d := range cfg.DNS {
			ips = append(ips, d.AsSlice())
		}
		mods = append(mods, dhcpv4.WithOption(dhcpv4.OptDNS(ips...)))
	}
	r, err := dhcpv4.NewReplyFromRequest(req, mods...)
	if err != nil {
		return answer{note: "cannot build the reply: " + err.Error()}
	}
	to := broadcast
	if ci := addr4(req.ClientIPAddr); ci.IsValid() {
		to = netip.AddrPortFrom(ci, clientPort)
	}
	return answer{reply: r, to: to, note: note}
}

// addr4 returns ip as an IPv4 address; the zero Addr for none, 0.0.0.0
// or anything else.
func addr4(ip net.IP) netip.Addr {
	a, ok := netip.AddrFromSlice(ip.To4())
	if !ok || a.IsUnspecified() {
		return netip.Addr{}
	}
	return a
}

// maxHostname is the longest client hostname kept: a DNS label.
const maxHostname = 63

// hostname keeps what a client's option 12 may show in status and logs:
// letters, digits, '-' and '.', at most maxHostname of them; anything
// else (a terminal's escape sequences) is dropped.
func hostname(s string) string {
	b := make([]byte, 0, min(len(s), maxHostname))
	for i := 0; i < len(s) && len(b) < maxHostname; i++ {
		if c := s[i]; 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' {
			b = append(b, c)
		}
	}
	return string(b)
}
