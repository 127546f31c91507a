package rfc2131

import (
	"net/netip"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// FuzzReceive feeds arbitrary bytes, decoded by dhcpv4.FromBytes as the
// session does, to a client in every phase that reads messages, with the
// transaction ID and chaddr made to match so that the bytes reach every
// decision. Whatever it reads, a client never panics, binds only a
// usable IPv4 address with times in order, and sends only what it may.
func FuzzReceive(f *testing.F) {
	c := New(ident, exact, 1)
	c, _ = c.Step(Start{}, t0)
	for _, typ := range []dhcpv4.MessageType{dhcpv4.MessageTypeOffer, dhcpv4.MessageTypeAck, dhcpv4.MessageTypeNak} {
		f.Add(reply(c, typ).Msg.ToBytes())
	}
	f.Add(reply(c, dhcpv4.MessageTypeAck,
		dhcpv4.WithOption(dhcpv4.OptRenewTimeValue(10*time.Second)),
		dhcpv4.WithOption(dhcpv4.OptRebindingTimeValue(5*time.Second)),
		dhcpv4.WithOption(dhcpv4.OptIPAddressLeaseTime(infinite))).Msg.ToBytes())
	f.Add(reply(c, dhcpv4.MessageTypeAck, dhcpv4.WithOption(dhcpv4.OptIPAddressLeaseTime(0))).Msg.ToBytes())
	f.Add([]byte{})

	// One client per phase that reads messages.
	var clients []Client
	sel := New(ident, exact, 1)
	sel, _ = sel.Step(Start{}, t0)
	clients = append(clients, sel)
	req, _ := sel.Step(reply(sel, dhcpv4.MessageTypeOffer), t0)
	clients = append(clients, req)
	b := New(ident, Timing{Jitter: -1, CheckWait: -1}, 1)
	b, _ = b.Step(Start{}, t0)
	b, _ = b.Step(reply(b, dhcpv4.MessageTypeOffer), t0)
	b, _ = b.Step(reply(b, dhcpv4.MessageTypeAck), t0)
	l, _ := b.Lease()
	reb, _ := New(ident, exact, 2).Step(Start{Lease: &l}, t0.Add(time.Minute))
	ren, _ := b.Step(Timeout{}, l.Renew)
	rbd, _ := b.Step(Timeout{}, l.Rebind)
	clients = append(clients, reb, ren, rbd)

	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := dhcpv4.FromBytes(data)
		if err != nil {
			return
		}
		for _, c := range clients {
			m.TransactionID = c.XID()
			m.ClientHWAddr = hw
			now := t0.Add(2 * time.Minute)
			next, acts := c.Step(Receive{Msg: m}, now)
			for _, a := range acts {
				switch a := a.(type) {
				case Bind:
					l := a.Lease
					if !usable(l.Address.Addr()) || l.Address.Bits() < 0 || l.Address.Bits() > 32 || !usable(l.Server) {
						t.Fatalf("%s bound %+v", c.Phase(), l)
					}
					if !l.Infinite() && (!l.Renew.Before(l.Rebind) || !l.Rebind.Before(l.Expiry)) {
						t.Fatalf("%s bound a lease with times out of order: %+v", c.Phase(), l)
					}
				case Send:
					if a.To != Broadcast && !usable(a.To) || a.From != netip.IPv4Unspecified() && !usable(a.From) {
						t.Fatalf("%s sends %s -> %s", c.Phase(), a.From, a.To)
					}
					if _, err := dhcpv4.FromBytes(a.Msg.ToBytes()); err != nil {
						t.Fatalf("%s sends a message it cannot read back: %v", c.Phase(), err)
					}
				}
			}
			if d := next.Deadline(); next.Phase() != Bound && next.Phase() != Stopped && d.IsZero() {
				t.Fatalf("%s -> %s with no deadline", c.Phase(), next.Phase())
			}
			_ = next.Describe(now)
		}
	})
}
