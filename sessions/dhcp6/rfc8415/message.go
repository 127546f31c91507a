package rfc8415

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv6"
	"github.com/insomniacslk/dhcp/iana"
)

// Requested are the options the client asks for (the Option Request
// option): the resolvers, and SOL_MAX_RT, which RFC 8415 section 18.2.1
// says a client MUST request.
var Requested = []dhcpv6.OptionCode{dhcpv6.OptionDNSRecursiveNameServer, dhcpv6.OptionSolMaxRT}

// infinite is the lifetime that never ends (RFC 8415 section 7.7).
const infinite = time.Duration(0xffffffff) * time.Second

// maxElapsed is the largest Elapsed Time option: 0xffff hundredths of a
// second (section 21.9). The library's encoder wraps what is larger.
const maxElapsed = 0xffff * 10 * time.Millisecond

// message builds the message of type typ for the current exchange, with
// what section 18.2 asks of it.
func (c *Client) message(typ dhcpv6.MessageType, now time.Time) *dhcpv6.Message {
	m := &dhcpv6.Message{MessageType: typ, TransactionID: c.xid}
	m.Options.Add(dhcpv6.OptClientID(c.id.DUID))
	switch typ {
	case dhcpv6.MessageTypeRequest:
		m.Options.Add(dhcpv6.OptServerID(rawDUID(c.offer.Server)))
	case dhcpv6.MessageTypeRenew, dhcpv6.MessageTypeRelease:
		m.Options.Add(dhcpv6.OptServerID(rawDUID(c.lease.Server)))
	}
	// Elapsed Time: since the exchange's first message (zero in it).
	m.Options.Add(dhcpv6.OptElapsedTime(min(max(now.Sub(c.began), 0), maxElapsed)))
	if typ != dhcpv6.MessageTypeRelease {
		m.Options.Add(dhcpv6.OptRequestedOption(Requested...))
	}
	pd := &dhcpv6.OptIAPD{IaId: c.id.IAID}
	var prefixes []netip.Prefix
	switch typ {
	case dhcpv6.MessageTypeSolicit:
		// The prefix held last, as a hint: a restarted box asks for the
		// same prefix again.
		if c.hint.IsValid() {
			prefixes = append(prefixes, c.hint)
		}
	case dhcpv6.MessageTypeRequest:
		for _, p := range c.offer.Prefixes {
			prefixes = append(prefixes, p.Prefix)
		}
	default:
		for _, p := range c.lease.Prefixes {
			prefixes = append(prefixes, p.Prefix)
		}
	}
	for _, p := range prefixes {
		// Lifetimes of zero: the client states no preference (section
		// 21.22).
		pd.Options.Add(&dhcpv6.OptIAPrefix{Prefix: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), 128)}})
	}
	m.Options.Add(pd)
	return m
}

// iapd returns the IA_PD of m that is the client's (its IAID), or nil.
func (c *Client) iapd(m *dhcpv6.Message) *dhcpv6.OptIAPD {
	for _, pd := range m.Options.IAPD() {
		if pd.IaId == c.id.IAID {
			return pd
		}
	}
	return nil
}

// leaseOf reads the delegation of an Advertise or a Reply from server,
// whose exchange began at obtained and which came at now: the lifetimes
// count from obtained (the server may have started them as early as
// that), T1 and T2 from now (an exchange that took longer than T1 must
// not renew at once). The client's IA_PD is merged into prev
// (what a Renew or Rebind extends: a prefix the server leaves out keeps
// its lifetimes, one with a valid lifetime of zero goes). It says why
// when the result holds no prefix.
func (c *Client) leaseOf(m *dhcpv6.Message, server []byte, obtained, now time.Time, prev Lease) (Lease, string) {
	pd := c.iapd(m)
	if pd == nil {
		return Lease{}, "no IA_PD for IAID " + hex.EncodeToString(c.id.IAID[:])
	}
	if st := pd.Options.Status(); st != nil && st.StatusCode != 0 {
		return Lease{}, statusString(st)
	}
	if pd.T1 > pd.T2 && pd.T2 > 0 {
		// Section 21.21: the client discards such an IA_PD.
		return Lease{}, fmt.Sprintf("T1 %v after T2 %v", pd.T1, pd.T2)
	}
	l := prev.clone()
	l.Server = bytes.Clone(server)
	l.Obtained = obtained
	after := func(base time.Time, d time.Duration) time.Time {
		if d >= infinite {
			return time.Time{}
		}
		return base.Add(d)
	}
	at := func(d time.Duration) time.Time { return after(obtained, d) }
	for _, o := range pd.Options.Prefixes() {
		p, ok := prefixOf(o)
		if !ok || o.PreferredLifetime > o.ValidLifetime {
			continue // section 21.22: discarded
		}
		if st := o.Options.Status(); st != nil && st.StatusCode != 0 {
			continue
		}
		i := -1
		for j, h := range l.Prefixes {
			if h.Prefix == p {
				i = j
			}
		}
		if o.ValidLifetime == 0 {
			if i >= 0 {
				l.Prefixes = append(l.Prefixes[:i], l.Prefixes[i+1:]...)
			}
			continue
		}
		np := Prefix{Prefix: p, Preferred: at(o.PreferredLifetime), Valid: at(o.ValidLifetime)}
		if i >= 0 {
			l.Prefixes[i] = np
		} else {
			l.Prefixes = append(l.Prefixes, np)
		}
	}
	if !l.Holds() {
		return Lease{}, "no usable prefix in the IA_PD"
	}
	t1, t2 := timers(pd.T1, pd.T2, l.shortest(now))
	l.Renew, l.Rebind = after(now, t1), after(now, t2)
	var dns []netip.Addr
	for _, ip := range m.Options.DNS() {
		if a, ok := netip.AddrFromSlice(ip); ok && a.Is6() && !a.Is4In6() && a.IsGlobalUnicast() {
			dns = append(dns, a)
		}
	}
	if m.Options.GetOne(dhcpv6.OptionDNSRecursiveNameServer) != nil {
		l.DNS = dns
	}
	return l, ""
}

// shortest is what is left at now of the shortest preferred lifetime of
// l's prefixes (of the valid lifetime, for a deprecated one); infinite
// when none ends.
func (l Lease) shortest(now time.Time) time.Duration {
	s := infinite
	for _, p := range l.Prefixes {
		end := p.Preferred
		if !end.IsZero() && !now.Before(end) || end.IsZero() && !p.Valid.IsZero() {
			end = p.Valid
		}
		if !end.IsZero() {
			s = min(s, max(end.Sub(now), 0))
		}
	}
	return s
}

// timers returns T1 and T2: the server's, or, for those it leaves at
// zero, 0.5 and 0.8 of the shortest preferred lifetime (section 14.2).
// Divisions come before multiplications: an infinite lifetime in
// nanoseconds times 4 overflows.
func timers(t1, t2, shortest time.Duration) (time.Duration, time.Duration) {
	if shortest >= infinite {
		shortest = infinite
	}
	if t2 == 0 {
		t2 = shortest / 5 * 4
		if shortest >= infinite {
			t2 = infinite
		}
	}
	if t1 == 0 {
		t1 = shortest / 2
		if shortest >= infinite {
			t1 = infinite
		}
	}
	return min(t1, t2), t2
}

// prefixOf converts a delegated prefix: an IPv6 unicast prefix of 1 to
// 128 bits, host bits cleared.
func prefixOf(o *dhcpv6.OptIAPrefix) (netip.Prefix, bool) {
	if o.Prefix == nil {
		return netip.Prefix{}, false
	}
	a, ok := netip.AddrFromSlice(o.Prefix.IP)
	ones, bits := o.Prefix.Mask.Size()
	if !ok || !a.Is6() || a.Is4In6() || bits != 128 || ones < 1 {
		return netip.Prefix{}, false
	}
	p := netip.PrefixFrom(a, ones).Masked()
	if b := p.Addr(); b.IsMulticast() || b.IsLinkLocalUnicast() || b.IsLoopback() || b.IsUnspecified() {
		return netip.Prefix{}, false
	}
	return p, true
}

// SolMaxRTOption returns the SOL_MAX_RT option of m (RFC 8415 section
// 21.24: four octets, seconds), when it holds a value the client accepts
// (60 to 86400 s).
func SolMaxRTOption(m *dhcpv6.Message) (time.Duration, bool) {
	o := m.Options.GetOne(dhcpv6.OptionSolMaxRT)
	if o == nil {
		return 0, false
	}
	b := o.ToBytes()
	if len(b) != 4 {
		return 0, false
	}
	s := binary.BigEndian.Uint32(b)
	if s < 60 || s > 86400 {
		return 0, false
	}
	return time.Duration(s) * time.Second, true
}

// statusString renders a Status Code option.
func statusString(st *dhcpv6.OptStatusCode) string {
	s := st.StatusCode.String()
	if st.StatusMessage != "" {
		s += fmt.Sprintf(" (%q)", st.StatusMessage)
	}
	return s
}

// DUIDString renders a DUID's bytes as hex, as braid's facts and status
// show a server.
func DUIDString(b []byte) string { return hex.EncodeToString(b) }

// rawDUID is a DUID as the octets a server sent: echoed back byte for
// byte in the Server Identifier option, whatever its type.
type rawDUID []byte

func (d rawDUID) String() string         { return DUIDString(d) }
func (d rawDUID) ToBytes() []byte        { return []byte(d) }
func (d rawDUID) FromBytes([]byte) error { return nil }
func (d rawDUID) DUIDType() dhcpv6.DUIDType {
	if len(d) < 2 {
		return 0
	}
	return dhcpv6.DUIDType(binary.BigEndian.Uint16(d))
}
func (d rawDUID) Equal(e dhcpv6.DUID) bool { return e != nil && bytes.Equal(d, e.ToBytes()) }

// DUIDLL returns the DUID-LL (RFC 8415 section 11.4) of an Ethernet
// address.
func DUIDLL(hw net.HardwareAddr) dhcpv6.DUID {
	return &dhcpv6.DUIDLL{HWType: iana.HWTypeEthernet, LinkLayerAddr: bytes.Clone(hw)}
}
