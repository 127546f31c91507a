package rfc8415

import (
	"net/netip"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv6"
	"github.com/insomniacslk/dhcp/iana"
)

// FuzzReceive feeds arbitrary bytes, decoded by dhcpv6.MessageFromBytes
// as the session does, to a client in every phase that reads messages,
// with the transaction ID and the Client Identifier made to match so that
// the bytes reach every decision. Whatever it reads, a client never
// panics, binds only usable prefixes with times in order, and sends only
// messages it can read back.
func FuzzReceive(f *testing.F) {
	c := New(ident, exact, 1)
	c, _ = c.Step(Start{}, t0)
	c, _ = c.Step(Timeout{}, t0)
	f.Add(answer(c, dhcpv6.MessageTypeAdvertise, server1, standard(), pref(255)).Msg.ToBytes())
	f.Add(answer(c, dhcpv6.MessageTypeReply, server1, standard()).Msg.ToBytes())
	f.Add(answer(c, dhcpv6.MessageTypeReply, server1, iapd(infinite, infinite, pd56, infinite, infinite)).Msg.ToBytes())
	f.Add(answer(c, dhcpv6.MessageTypeReply, server1, iapd(0, 0, pd56, 0, 0), status(iana.StatusNoBinding)).Msg.ToBytes())
	f.Add([]byte{})

	var clients []Client
	clients = append(clients, c) // soliciting
	sc := New(ident, exact, 1)
	sc, _ = sc.Step(Start{}, t0)
	sc, _ = sc.Step(Timeout{}, t0)
	sc, _ = sc.Step(Timeout{}, t0.Add(time.Second)) // past the first wait
	clients = append(clients, sc)
	req, _ := c.Step(answer(c, dhcpv6.MessageTypeAdvertise, server1, standard(), pref(255)), t0)
	clients = append(clients, req)
	b, _ := req.Step(answer(req, dhcpv6.MessageTypeReply, server1, standard()), t0)
	ren, _ := b.Step(Timeout{}, t0.Add(10*time.Second))
	rbd, _ := ren.Step(Timeout{}, t0.Add(20*time.Second))
	rel, _ := b.Step(Release{}, t0.Add(5*time.Second))
	clients = append(clients, ren, rbd, rel)

	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := dhcpv6.MessageFromBytes(data)
		if err != nil {
			return
		}
		for _, c := range clients {
			m.TransactionID = c.XID()
			m.Options.Update(dhcpv6.OptClientID(ident.DUID))
			now := t0.Add(21 * time.Second)
			next, acts := c.Step(Receive{Msg: m}, now)
			for _, a := range acts {
				switch a := a.(type) {
				case Bind:
					l := a.Lease
					if !l.Holds() || len(l.Server) == 0 {
						t.Fatalf("%s bound %+v", c.Phase(), l)
					}
					for _, p := range l.Prefixes {
						if !p.Prefix.IsValid() || !p.Prefix.Addr().Is6() || p.Prefix != p.Prefix.Masked() ||
							p.Prefix.Addr().IsLinkLocalUnicast() || p.Prefix.Addr().IsMulticast() {
							t.Fatalf("%s bound the prefix %v", c.Phase(), p.Prefix)
						}
						if !p.Valid.IsZero() && !p.Preferred.IsZero() && p.Preferred.After(p.Valid) ||
							!p.Valid.IsZero() && p.Preferred.IsZero() {
							t.Fatalf("%s bound lifetimes out of order: %+v", c.Phase(), p)
						}
					}
					// A zero Rebind with a Renew is T2 = infinity (section
					// 21.21: never rebind), which a server may send with a
					// finite T1.
					if !l.Rebind.IsZero() && (l.Renew.IsZero() || l.Renew.After(l.Rebind)) {
						t.Fatalf("%s bound T1 %v after T2 %v", c.Phase(), l.Renew, l.Rebind)
					}
					for _, d := range l.DNS {
						if !d.Is6() || !d.IsGlobalUnicast() {
							t.Fatalf("%s took the resolver %v", c.Phase(), d)
						}
					}
				case Send:
					if _, err := dhcpv6.MessageFromBytes(a.Msg.ToBytes()); err != nil {
						t.Fatalf("%s sends a message it cannot read back: %v", c.Phase(), err)
					}
				}
			}
			if d := next.Deadline(); next.Phase() != Stopped && next.Phase() != Bound && d.IsZero() {
				t.Fatalf("%s -> %s with no deadline", c.Phase(), next.Phase())
			}
			_ = next.Describe(now)
			_, _ = SolMaxRTOption(m)
		}
	})
}

// The fuzzer's invariants hold for a delegation of the whole IPv6 space
// too (a /1), which prefixOf accepts.
func TestWidePrefix(t *testing.T) {
	p, ok := prefixOf(iapd(0, 0, netip.MustParsePrefix("2000::/3"), 1, 2).Options.Prefixes()[0])
	if !ok || p.Bits() != 3 {
		t.Errorf("prefixOf(2000::/3) = %v %v", p, ok)
	}
}
