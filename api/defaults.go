package api

import "net/netip"

// Default values filled in by SetDefaults.
const (
	DefaultHealthInterval     = "500ms"
	DefaultDNSPort            = 53
	DefaultHealthFailAfter    = 3
	DefaultHealthRecoverAfter = 5
	DefaultProto              = "tcp"
	DefaultProtocol           = "shadowsocks"
	DefaultCipher             = "chacha20-ietf-poly1305"
	DefaultAAAA               = "keep"
	DefaultPPPKeepalive       = "10s"
	// DefaultPPPKeepaliveFailures is what pppd setups commonly use
	// (lcp-echo-failure 4): with the 10s interval, a dead link is found
	// in about 40 seconds, and one or two lost echoes are not enough.
	DefaultPPPKeepaliveFailures = 4
	// DefaultLeaseTime is the LAN DHCP server's lease time: a host that
	// left gives its address back within half a day; one that stays
	// renews every 6 hours (at T1, half the lease).
	DefaultLeaseTime = "12h"
)

// SetDefaults fills in every default of d, in place. It is the only place
// defaults live; Parse calls it before validating, and a document built in
// Go should go through it before Validate. A field that is set is left as
// it is, so SetDefaults is idempotent; a zero number counts as unset.
//
// Router:
//   - uplinks[i].priority: (i+1)*10, so uplinks are preferred in the order
//     they are written
//   - uplinks[i].table: UplinkTableBase+i (7101, 7102, ...)
//   - uplinks[i].mptcp: {mode: subflow}; a given mptcp without mode gets
//     mode subflow
//   - uplinks[i].health, when given: interval 500ms, timeout the
//     interval, failAfter 3, recoverAfter 5; a dns probe's resolver
//     without a port gets port 53
//   - firewall.open[i].proto, firewall.forward[i].proto: tcp
//   - aggregation: tcp proxy, udp peer; aggregation.peer: protocol
//     shadowsocks, cipher chacha20-ietf-poly1305; its dns without a port
//     gets port 53
//   - lan.dhcp.leaseTime: 12h
//   - dns.aaaa: keep (AAAA answers are never filtered unless asked)
//   - tunnels[i].interface: the tunnel's name, when it fits an interface
//     name (15 bytes)
//   - tunnels[i].l2tp.ppp.keepalive: 10s, keepaliveFailures: 4
//   - tunnels[i].l2tp.server is left as written: without a port, the L2TP
//     client uses 1701
//
// Peer:
//   - cipher: chacha20-ietf-poly1305
func SetDefaults(d *Document) {
	if s := d.Peer; s != nil && s.Cipher == "" {
		s.Cipher = DefaultCipher
	}
	s := d.Router
	if s == nil {
		return
	}
	for i := range s.Uplinks {
		u := &s.Uplinks[i]
		if u.Priority == 0 {
			u.Priority = (i + 1) * 10
		}
		if u.Table == 0 {
			u.Table = UplinkTableBase + i
		}
		if u.MPTCP == nil {
			u.MPTCP = &MPTCP{}
		}
		if u.MPTCP.Mode == "" {
			u.MPTCP.Mode = MPTCPSubflow
		}
		if h := u.Health; h != nil {
			if h.Interval == "" {
				h.Interval = DefaultHealthInterval
			}
			if h.Timeout == "" && checkDuration(h.Interval) == "" {
				// A malformed interval is reported once, not again as
				// the timeout's.
				h.Timeout = h.Interval
			}
			for j := range h.Probes {
				h.Probes[j].DNS = withPort(h.Probes[j].DNS, DefaultDNSPort)
			}
			if h.FailAfter == 0 {
				h.FailAfter = DefaultHealthFailAfter
			}
			if h.RecoverAfter == 0 {
				h.RecoverAfter = DefaultHealthRecoverAfter
			}
		}
	}
	if fw := s.Firewall; fw != nil {
		for i := range fw.Open {
			if fw.Open[i].Proto == "" {
				fw.Open[i].Proto = DefaultProto
			}
		}
		for i := range fw.Forward {
			if fw.Forward[i].Proto == "" {
				fw.Forward[i].Proto = DefaultProto
			}
		}
	}
	if a := s.Aggregation; a != nil {
		if a.TCP == "" {
			a.TCP = TCPProxy
		}
		if a.UDP == "" {
			a.UDP = UDPPeer
		}
		if p := a.Peer; p != nil {
			if p.Protocol == "" {
				p.Protocol = DefaultProtocol
			}
			if p.Cipher == "" {
				p.Cipher = DefaultCipher
			}
			p.DNS = withPort(p.DNS, DefaultDNSPort)
		}
	}
	if l := s.LAN; l != nil && l.DHCP != nil && l.DHCP.LeaseTime == "" {
		l.DHCP.LeaseTime = DefaultLeaseTime
	}
	if dns := s.DNS; dns != nil && dns.AAAA == "" {
		dns.AAAA = DefaultAAAA
	}
	for i := range s.Tunnels {
		t := &s.Tunnels[i]
		if t.Interface == "" && t.Name != "" && len(t.Name) <= maxIfName {
			t.Interface = t.Name
		}
		if l := t.L2TP; l != nil && l.PPP != nil {
			if l.PPP.Keepalive == "" {
				l.PPP.Keepalive = DefaultPPPKeepalive
			}
			if l.PPP.KeepaliveFailures == 0 {
				l.PPP.KeepaliveFailures = DefaultPPPKeepaliveFailures
			}
		}
	}
}

// withPort returns s, an IP address, as ADDRESS:PORT with the given port.
// Anything else (already with a port, empty, malformed) is returned as it
// is, for Validate to judge.
func withPort(s string, port uint16) string {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return s
	}
	return netip.AddrPortFrom(a, port).String()
}
