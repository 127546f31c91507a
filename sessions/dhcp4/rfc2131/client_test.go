package rfc2131

import (
	"bytes"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

var (
	t0     = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	hw     = net.HardwareAddr{0x00, 0x24, 0xd4, 0xaa, 0xbb, 0xcc}
	cid    = []byte{0x01, 0x00, 0x24, 0xd4, 0xaa, 0xbb, 0xcc}
	server = netip.MustParseAddr("10.101.0.1")
	yi     = netip.MustParseAddr("10.101.0.2")
	ident  = Identity{HWAddr: hw, ClientID: cid, VendorClass: "neufbox_braid", Hostname: "box"}
	// exact are RFC 2131's timers without jitter, so that deadlines are
	// exact; the address check is on.
	exact = Timing{Jitter: -1}
)

// step is c.Step, as a test helper.
func step(t *testing.T, c Client, ev Event, now time.Time) (Client, []Action) {
	t.Helper()
	return c.Step(ev, now)
}

// sent returns the one Send among acts.
func sent(t *testing.T, acts []Action) Send {
	t.Helper()
	var out []Send
	for _, a := range acts {
		if s, ok := a.(Send); ok {
			out = append(out, s)
		}
	}
	if len(out) != 1 {
		t.Fatalf("actions %#v: want exactly one Send", acts)
	}
	// Every message the client builds survives its own encoding.
	b := out[0].Msg.ToBytes()
	back, err := dhcpv4.FromBytes(b)
	if err != nil {
		t.Fatalf("the client's %s does not decode: %v", out[0].Msg.MessageType(), err)
	}
	out[0].Msg = back
	return out[0]
}

func has[T Action](acts []Action) (T, bool) {
	for _, a := range acts {
		if v, ok := a.(T); ok {
			return v, true
		}
	}
	var zero T
	return zero, false
}

// reply is a server's answer to the client's current exchange.
func reply(c Client, typ dhcpv4.MessageType, mods ...dhcpv4.Modifier) Receive {
	m := &dhcpv4.DHCPv4{OpCode: dhcpv4.OpcodeBootReply, HWType: 1, TransactionID: c.XID(),
		ClientIPAddr: net.IPv4zero, YourIPAddr: net.IPv4zero, ServerIPAddr: net.IPv4zero, GatewayIPAddr: net.IPv4zero,
		ClientHWAddr: hw, Options: dhcpv4.Options{}}
	m.UpdateOption(dhcpv4.OptMessageType(typ))
	m.UpdateOption(dhcpv4.OptServerIdentifier(server.AsSlice()))
	if typ != dhcpv4.MessageTypeNak {
		m.YourIPAddr = yi.AsSlice()
		m.UpdateOption(dhcpv4.OptSubnetMask(net.CIDRMask(24, 32)))
		m.UpdateOption(dhcpv4.OptRouter(server.AsSlice()))
		m.UpdateOption(dhcpv4.OptDNS(net.IPv4(10, 101, 0, 53)))
		m.UpdateOption(dhcpv4.OptIPAddressLeaseTime(time.Hour))
	}
	for _, mod := range mods {
		mod(m)
	}
	// What the client reads went through the wire format.
	back, err := dhcpv4.FromBytes(m.ToBytes())
	if err != nil {
		panic(err)
	}
	return Receive{Msg: back}
}

// bound returns a client bound to a one-hour lease obtained at t0, with
// the address check skipped.
func bound(t *testing.T, mods ...dhcpv4.Modifier) Client {
	t.Helper()
	c := New(ident, Timing{Jitter: -1, CheckWait: -1}, 1)
	c, _ = step(t, c, Start{}, t0)
	c, _ = step(t, c, reply(c, dhcpv4.MessageTypeOffer), t0)
	c, acts := step(t, c, reply(c, dhcpv4.MessageTypeAck, mods...), t0)
	if c.Phase() != Bound {
		t.Fatalf("phase %s after the ACK, actions %v", c.Phase(), acts)
	}
	return c
}

func options(m *dhcpv4.DHCPv4) []uint8 {
	var out []uint8
	for code := range m.Options {
		out = append(out, code)
	}
	slices.Sort(out)
	return out
}

// Every message carries what RFC 2131's Table 5 asks of it, and nothing
// it forbids.
func TestMessagesFollowTable5(t *testing.T) {
	c := New(ident, exact, 1)
	c, acts := step(t, c, Start{}, t0)
	discover := sent(t, acts)

	c, acts = step(t, c, reply(c, dhcpv4.MessageTypeOffer), t0.Add(2*time.Second))
	request := sent(t, acts)

	c, _ = step(t, c, reply(c, dhcpv4.MessageTypeAck), t0.Add(2*time.Second))
	c, acts = step(t, c, Conflict{Addr: yi}, t0.Add(2500*time.Millisecond))
	decline := sent(t, acts)
	if c.Phase() != Init || !c.Deadline().Equal(t0.Add(2500*time.Millisecond+DefaultDeclineWait)) {
		t.Errorf("after DECLINE: %s until %v; want INIT for 10 s", c.Phase(), c.Deadline())
	}

	b := bound(t)
	b, acts = step(t, b, Timeout{}, t0.Add(30*time.Minute))
	renew := sent(t, acts)
	b, acts = step(t, b, Timeout{}, t0.Add(3150*time.Second))
	rebind := sent(t, acts)
	_, acts = step(t, b, Release{}, t0.Add(3200*time.Second))
	release := sent(t, acts)

	l, _ := bound(t).Lease()
	r := New(ident, exact, 2)
	_, acts = step(t, r, Start{Lease: &l}, t0.Add(time.Minute))
	reboot := sent(t, acts)

	zero := netip.IPv4Unspecified()
	all := []uint8{12, 53, 55, 60, 61}
	tests := []struct {
		name      string
		s         Send
		typ       dhcpv4.MessageType
		to, from  netip.Addr
		ciaddr    netip.Addr
		broadcast bool
		options   []uint8
	}{
		{"DISCOVER", discover, dhcpv4.MessageTypeDiscover, Broadcast, zero, zero, true, all},
		{"REQUEST (selecting)", request, dhcpv4.MessageTypeRequest, Broadcast, zero, zero, true, []uint8{12, 50, 53, 54, 55, 60, 61}},
		{"REQUEST (init-reboot)", reboot, dhcpv4.MessageTypeRequest, Broadcast, zero, zero, true, []uint8{12, 50, 53, 55, 60, 61}},
		{"REQUEST (renewing)", renew, dhcpv4.MessageTypeRequest, server, yi, yi, false, all},
		{"REQUEST (rebinding)", rebind, dhcpv4.MessageTypeRequest, Broadcast, yi, yi, false, all},
		{"DECLINE", decline, dhcpv4.MessageTypeDecline, Broadcast, zero, zero, false, []uint8{50, 53, 54, 61}},
		{"RELEASE", release, dhcpv4.MessageTypeRelease, server, yi, yi, false, []uint8{53, 54, 61}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := tt.s.Msg
			if m.MessageType() != tt.typ || m.OpCode != dhcpv4.OpcodeBootRequest {
				t.Errorf("type %s op %s, want %s BOOTREQUEST", m.MessageType(), m.OpCode, tt.typ)
			}
			if tt.s.To != tt.to || tt.s.From != tt.from {
				t.Errorf("sent %s -> %s, want %s -> %s", tt.s.From, tt.s.To, tt.from, tt.to)
			}
			if got, _ := addr4(m.ClientIPAddr); got != tt.ciaddr {
				t.Errorf("ciaddr %s, want %s", got, tt.ciaddr)
			}
			if m.IsBroadcast() != tt.broadcast {
				t.Errorf("broadcast flag %v, want %v", m.IsBroadcast(), tt.broadcast)
			}
			if got := options(m); !slices.Equal(got, tt.options) {
				t.Errorf("options %v, want %v", got, tt.options)
			}
			if !bytes.Equal(m.ClientHWAddr, hw) || !bytes.Equal(m.Options.Get(dhcpv4.OptionClientIdentifier), cid) {
				t.Errorf("chaddr %s, client ID %x", m.ClientHWAddr, m.Options.Get(dhcpv4.OptionClientIdentifier))
			}
			if m.Options.Has(dhcpv4.OptionClassIdentifier) && m.ClassIdentifier() != "neufbox_braid" {
				t.Errorf("vendor class %q", m.ClassIdentifier())
			}
			if m.Options.Has(dhcpv4.OptionHostName) && m.HostName() != "box" {
				t.Errorf("hostname %q", m.HostName())
			}
			if m.Options.Has(dhcpv4.OptionRequestedIPAddress) && !m.RequestedIPAddress().Equal(yi.AsSlice()) {
				t.Errorf("requested address %s", m.RequestedIPAddress())
			}
			if m.Options.Has(dhcpv4.OptionServerIdentifier) && !m.ServerIdentifier().Equal(server.AsSlice()) {
				t.Errorf("server identifier %s", m.ServerIdentifier())
			}
		})
	}
	if discover.Msg.TransactionID != request.Msg.TransactionID {
		t.Errorf("the REQUEST for an offer changed the DISCOVER's xid")
	}
	if renew.Msg.TransactionID == discover.Msg.TransactionID {
		t.Errorf("a renewal reused the first exchange's xid")
	}
}

// Without options, and without a vendor class, the messages carry none of
// them.
func TestMessagesWithoutOptionalOptions(t *testing.T) {
	c := New(Identity{HWAddr: hw}, exact, 1)
	_, acts := step(t, c, Start{}, t0)
	if got := options(sent(t, acts).Msg); !slices.Equal(got, []uint8{53, 55}) {
		t.Errorf("DISCOVER options %v, want 53 and 55 only", got)
	}
}

// RFC 2131 4.1: retransmissions wait 4 s, doubling up to 64 s, ±1 s; the
// REQUEST for an offer repeats its DISCOVER's secs.
func TestRetransmission(t *testing.T) {
	c := New(ident, exact, 1)
	now := t0
	c, _ = step(t, c, Start{}, now)
	var waits []time.Duration
	for range 7 {
		waits = append(waits, c.Deadline().Sub(now))
		now = c.Deadline()
		var acts []Action
		c, acts = step(t, c, Timeout{}, now)
		if s := sent(t, acts); s.Msg.MessageType() != dhcpv4.MessageTypeDiscover || s.Msg.NumSeconds != uint16(now.Sub(t0)/time.Second) {
			t.Fatalf("retransmission %s secs %d at %v", s.Msg.MessageType(), s.Msg.NumSeconds, now.Sub(t0))
		}
	}
	want := []time.Duration{4, 8, 16, 32, 64, 64, 64}
	for i := range want {
		want[i] *= time.Second
	}
	if !slices.Equal(waits, want) {
		t.Errorf("waits %v, want %v", waits, want)
	}
	if got := c.Describe(now); !strings.HasPrefix(got, "no offer in 252 s (8 DISCOVERs): the server may not answer vendor class \"neufbox_braid\"") {
		t.Errorf("status %q", got)
	}
	c, acts := step(t, c, reply(c, dhcpv4.MessageTypeOffer), now.Add(time.Second))
	if s := sent(t, acts); s.Msg.NumSeconds != 252 {
		t.Errorf("REQUEST secs %d, want the DISCOVER's 252", s.Msg.NumSeconds)
	}
	if c.Phase() != Requesting {
		t.Fatalf("phase %s", c.Phase())
	}
	// The lease counts from the REQUEST, not from the first DISCOVER.
	c, _ = step(t, c, reply(c, dhcpv4.MessageTypeAck), now.Add(2*time.Second))
	c, _ = step(t, c, Timeout{}, c.Deadline())
	if l, ok := c.Lease(); !ok || !l.Obtained.Equal(now.Add(time.Second)) || !l.Expiry.Equal(now.Add(time.Second+time.Hour)) {
		t.Errorf("lease obtained %v, expires %v; want from the REQUEST at %v", l.Obtained, l.Expiry, now.Add(time.Second))
	}

	// With jitter, every wait is within a second of the schedule.
	for seed := range uint64(200) {
		c := New(ident, Timing{}, seed)
		now := t0
		c, _ = c.Step(Start{}, now)
		for i, base := range want {
			d := c.Deadline().Sub(now)
			if d < base-time.Second || d > base+time.Second {
				t.Fatalf("seed %d: wait %d is %v, want %v ± 1 s", seed, i, d, base)
			}
			now = c.Deadline()
			c, _ = c.Step(Timeout{}, now)
		}
	}
}

// A reply that is not for this exchange is ignored.
func TestStrangersAreIgnored(t *testing.T) {
	c := New(ident, exact, 1)
	c, _ = step(t, c, Start{}, t0)
	otherXID := reply(c, dhcpv4.MessageTypeOffer)
	otherXID.Msg.TransactionID[0]++
	otherHW := reply(c, dhcpv4.MessageTypeOffer, dhcpv4.WithHwAddr(net.HardwareAddr{2, 0, 0, 0, 0, 1}))
	request := reply(c, dhcpv4.MessageTypeOffer)
	request.Msg.OpCode = dhcpv4.OpcodeBootRequest
	noAddr := reply(c, dhcpv4.MessageTypeOffer, dhcpv4.WithYourIP(net.IPv4zero))
	noServer := reply(c, dhcpv4.MessageTypeOffer, dhcpv4.WithoutOption(dhcpv4.OptionServerIdentifier))
	ack := reply(c, dhcpv4.MessageTypeAck)
	for name, ev := range map[string]Receive{"other xid": otherXID, "other chaddr": otherHW, "a request": request,
		"no address": noAddr, "no server": noServer, "an ACK while selecting": ack, "nil": {}} {
		if next, acts := c.Step(ev, t0.Add(time.Second)); next.Phase() != Selecting || len(acts) != 0 {
			t.Errorf("%s: phase %s, actions %v", name, next.Phase(), acts)
		}
	}
}

// The lease's times: the server's T1 and T2 when they are in order, else
// RFC 2131 4.4.5's 0.5 and 0.875 of the lease, counted from the first
// REQUEST.
func TestLeaseTimes(t *testing.T) {
	tests := []struct {
		name           string
		mods           []dhcpv4.Modifier
		t1, t2, expiry time.Duration
	}{
		{"defaults", nil, 30 * time.Minute, 3150 * time.Second, time.Hour},
		{"given", []dhcpv4.Modifier{dhcpv4.WithOption(dhcpv4.OptRenewTimeValue(10 * time.Second)), dhcpv4.WithOption(dhcpv4.OptRebindingTimeValue(20 * time.Second))},
			10 * time.Second, 20 * time.Second, time.Hour},
		{"T1 after T2", []dhcpv4.Modifier{dhcpv4.WithOption(dhcpv4.OptRenewTimeValue(50 * time.Minute)), dhcpv4.WithOption(dhcpv4.OptRebindingTimeValue(40 * time.Minute))},
			1371428571428, 40 * time.Minute, time.Hour}, // 4/7 of T2
		{"T2 past the lease", []dhcpv4.Modifier{dhcpv4.WithOption(dhcpv4.OptRebindingTimeValue(2 * time.Hour))},
			30 * time.Minute, 3150 * time.Second, time.Hour},
		{"only T1", []dhcpv4.Modifier{dhcpv4.WithOption(dhcpv4.OptRenewTimeValue(5 * time.Second))},
			5 * time.Second, 3150 * time.Second, time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, _ := bound(t, tt.mods...).Lease()
			if l.Renew.Sub(t0) != tt.t1 || l.Rebind.Sub(t0) != tt.t2 || l.Expiry.Sub(t0) != tt.expiry {
				t.Errorf("T1 %v T2 %v expiry %v, want %v %v %v", l.Renew.Sub(t0), l.Rebind.Sub(t0), l.Expiry.Sub(t0), tt.t1, tt.t2, tt.expiry)
			}
			want := Lease{Address: netip.MustParsePrefix("10.101.0.2/24"), Gateway: server, Server: server,
				DNS: []netip.Addr{netip.MustParseAddr("10.101.0.53")}, Obtained: t0}
			l.Renew, l.Rebind, l.Expiry = time.Time{}, time.Time{}, time.Time{}
			if l.Address != want.Address || l.Gateway != want.Gateway || l.Server != want.Server || !slices.Equal(l.DNS, want.DNS) || !l.Obtained.Equal(t0) {
				t.Errorf("lease %+v, want %+v", l, want)
			}
		})
	}
}

// An infinite lease is never renewed.
func TestInfiniteLease(t *testing.T) {
	c := bound(t, dhcpv4.WithOption(dhcpv4.OptIPAddressLeaseTime(infinite)))
	if l, _ := c.Lease(); !l.Infinite() || !c.Deadline().IsZero() {
		t.Errorf("lease %+v, deadline %v", l, c.Deadline())
	}
	if got := c.Describe(t0); !strings.Contains(got, "infinite lease") {
		t.Errorf("status %q", got)
	}
}

// A missing subnet mask falls back to the address's class.
func TestNoSubnetMask(t *testing.T) {
	l, _ := bound(t, dhcpv4.WithoutOption(dhcpv4.OptionSubnetMask)).Lease()
	if l.Address != netip.MustParsePrefix("10.101.0.2/8") {
		t.Errorf("address %s", l.Address)
	}
}

// The life of a lease: the ARP check, T1 (unicast to the server), a
// renewal that goes unanswered, T2 (broadcast), and the expiry.
func TestLeaseLife(t *testing.T) {
	c := New(ident, exact, 1)
	c, _ = step(t, c, Start{}, t0)
	c, _ = step(t, c, reply(c, dhcpv4.MessageTypeOffer), t0)
	c, acts := step(t, c, reply(c, dhcpv4.MessageTypeAck), t0)
	if chk, ok := has[Check](acts); !ok || chk.Addr != yi || c.Phase() != Checking || !c.Deadline().Equal(t0.Add(time.Second)) {
		t.Fatalf("after the ACK: %s, %v", c.Phase(), acts)
	}
	if _, acts = step(t, c, Conflict{Addr: netip.MustParseAddr("10.101.0.3")}, t0); len(acts) != 0 {
		t.Errorf("a conflict on another address: %v", acts)
	}
	c, acts = step(t, c, Timeout{}, t0.Add(time.Second))
	b, ok := has[Bind](acts)
	if !ok || c.Phase() != Bound || !c.Deadline().Equal(t0.Add(30*time.Minute)) {
		t.Fatalf("after the check: %s until %v, %v", c.Phase(), c.Deadline(), acts)
	}
	if !strings.HasPrefix(c.Describe(t0), "bound 10.101.0.2/24 via 10.101.0.1 from server 10.101.0.1; renews at ") {
		t.Errorf("status %q", c.Describe(t0))
	}
	// A timeout before the deadline does nothing.
	if next, acts := c.Step(Timeout{}, t0.Add(time.Minute)); len(acts) != 0 || next.Phase() != Bound {
		t.Errorf("early timeout: %v", acts)
	}
	// T1: unicast; each next try after half the time left until T2, a
	// minute at least, never past T2.
	c, acts = step(t, c, Timeout{}, b.Lease.Renew)
	if s := sent(t, acts); s.To != server || s.From != yi || c.Phase() != Renewing {
		t.Fatalf("T1: %s, %+v", c.Phase(), s)
	}
	if got := c.Deadline().Sub(b.Lease.Renew); got != 675*time.Second {
		t.Errorf("renewal retry after %v, want 675 s", got)
	}
	for now := c.Deadline(); now.Before(b.Lease.Rebind); now = c.Deadline() {
		c, acts = step(t, c, Timeout{}, now)
		if s := sent(t, acts); s.To != server || c.Phase() != Renewing {
			t.Fatalf("renewal retry at %v: %s, %+v", now.Sub(t0), c.Phase(), s)
		}
		want := now.Add(max(b.Lease.Rebind.Sub(now)/2, time.Minute))
		if want.After(b.Lease.Rebind) {
			want = b.Lease.Rebind
		}
		if !c.Deadline().Equal(want) {
			t.Fatalf("after the retry at %v: next at %v, want %v", now.Sub(t0), c.Deadline().Sub(t0), want.Sub(t0))
		}
	}
	// T2: broadcast from the lease's address.
	c, acts = step(t, c, Timeout{}, b.Lease.Rebind)
	if s := sent(t, acts); s.To != Broadcast || s.From != yi || c.Phase() != Rebinding {
		t.Fatalf("T2: %s, %+v", c.Phase(), s)
	}
	if got := c.Deadline(); !got.Equal(t0.Add(3375 * time.Second)) {
		t.Errorf("rebinding retry at %v, want 3375 s (half of the 450 s left)", got.Sub(t0))
	}
	c, _ = step(t, c, Timeout{}, c.Deadline()) // 225 s left: 112.5 s
	c, _ = step(t, c, Timeout{}, c.Deadline()) // 112.5 s left: a minute
	if got := c.Deadline(); !got.Equal(t0.Add(3547500 * time.Millisecond)) {
		t.Errorf("rebinding retry at %v, want 3547.5 s (a minute)", got.Sub(t0))
	}
	c, _ = step(t, c, Timeout{}, c.Deadline())
	if got := c.Deadline(); !got.Equal(b.Lease.Expiry) {
		t.Errorf("last rebinding retry at %v, want the expiry", got.Sub(t0))
	}
	// The expiry: the lease goes, and the client looks for another.
	c, acts = step(t, c, Timeout{}, b.Lease.Expiry)
	if u, ok := has[Unbind](acts); !ok || !strings.Contains(u.Why, "expired") || c.Phase() != Selecting {
		t.Fatalf("expiry: %s, %v", c.Phase(), acts)
	}
	if s := sent(t, acts); s.Msg.MessageType() != dhcpv4.MessageTypeDiscover {
		t.Errorf("after the expiry: %s", s.Msg.MessageType())
	}
	if _, ok := c.Lease(); ok {
		t.Errorf("a lease after the expiry")
	}
	if got := c.Describe(b.Lease.Expiry); !strings.Contains(got, "expired") {
		t.Errorf("status %q", got)
	}
}

// An ACK while renewing or rebinding extends the lease from the time of
// the exchange's first REQUEST.
func TestRenewed(t *testing.T) {
	for _, at := range []time.Duration{30 * time.Minute, 3150 * time.Second} {
		c := bound(t)
		c, _ = step(t, c, Timeout{}, t0.Add(at))
		c, acts := step(t, c, reply(c, dhcpv4.MessageTypeAck), t0.Add(at+time.Second))
		b, ok := has[Bind](acts)
		if !ok || c.Phase() != Bound || !b.Lease.Expiry.Equal(t0.Add(at+time.Hour)) {
			t.Errorf("ACK at %v: %s, %v", at, c.Phase(), acts)
		}
	}
}

// A NAK ends a held lease at once; while requesting, the client starts
// over at once, then after the retransmission waits when NAKs follow one
// another.
func TestNAK(t *testing.T) {
	for _, phase := range []string{"renewing", "rebinding"} {
		c := bound(t)
		at := 30 * time.Minute
		if phase == "rebinding" {
			at = 3150 * time.Second
		}
		c, _ = step(t, c, Timeout{}, t0.Add(at))
		if phase == "renewing" {
			other := reply(c, dhcpv4.MessageTypeNak, dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.IPv4(10, 9, 9, 9))))
			if _, acts := c.Step(other, t0.Add(at)); len(acts) != 0 {
				t.Errorf("a NAK from another server while renewing: %v", acts)
			}
		}
		c, acts := step(t, c, reply(c, dhcpv4.MessageTypeNak, dhcpv4.WithOption(dhcpv4.OptMessage("wrong network"))), t0.Add(at))
		if u, ok := has[Unbind](acts); !ok || u.Why != `NAK from 10.101.0.1 ("wrong network")` || c.Phase() != Selecting {
			t.Errorf("%s NAK: %s, %v", phase, c.Phase(), acts)
		}
	}

	c := New(ident, exact, 1)
	c, _ = step(t, c, Start{}, t0)
	c, _ = step(t, c, reply(c, dhcpv4.MessageTypeOffer), t0)
	c, acts := step(t, c, reply(c, dhcpv4.MessageTypeNak), t0)
	if s := sent(t, acts); s.Msg.MessageType() != dhcpv4.MessageTypeDiscover || c.Phase() != Selecting {
		t.Fatalf("first NAK: %s", c.Phase())
	}
	c, _ = step(t, c, reply(c, dhcpv4.MessageTypeOffer), t0)
	c, acts = step(t, c, reply(c, dhcpv4.MessageTypeNak), t0)
	if len(acts) != 0 || c.Phase() != Init || !c.Deadline().Equal(t0.Add(4*time.Second)) {
		t.Fatalf("second NAK: %s until %v, %v", c.Phase(), c.Deadline(), acts)
	}
	if got := c.Describe(t0); !strings.HasPrefix(got, "NAK from 10.101.0.1; asking again at ") {
		t.Errorf("status %q", got)
	}
	c, acts = step(t, c, Timeout{}, c.Deadline())
	if s := sent(t, acts); s.Msg.MessageType() != dhcpv4.MessageTypeDiscover {
		t.Errorf("after the wait: %s", s.Msg.MessageType())
	}
}

// A REQUEST for an offer that stays unanswered: the client starts over.
func TestRequestUnanswered(t *testing.T) {
	c := New(ident, exact, 1)
	c, _ = step(t, c, Start{}, t0)
	c, _ = step(t, c, reply(c, dhcpv4.MessageTypeOffer), t0)
	for range DefaultRequestTries - 1 {
		var acts []Action
		c, acts = step(t, c, Timeout{}, c.Deadline())
		if s := sent(t, acts); s.Msg.MessageType() != dhcpv4.MessageTypeRequest {
			t.Fatalf("retransmission %s", s.Msg.MessageType())
		}
	}
	c, acts := step(t, c, Timeout{}, c.Deadline())
	if s := sent(t, acts); s.Msg.MessageType() != dhcpv4.MessageTypeDiscover || c.Phase() != Selecting {
		t.Errorf("after %d REQUESTs: %s", DefaultRequestTries, c.Phase())
	}
}

// After a restart, the client confirms the lease it held (INIT-REBOOT):
// an ACK extends it, a NAK ends it, silence keeps it until it expires
// (RFC 2131 3.2); an expired one is not asked for.
func TestInitReboot(t *testing.T) {
	held, _ := bound(t, dhcpv4.WithOption(dhcpv4.OptRenewTimeValue(5*time.Minute+30*time.Second))).Lease()
	restart := t0.Add(5 * time.Minute)
	start := func() Client {
		c, acts := New(ident, exact, 7).Step(Start{Lease: &held}, restart)
		if s := sent(t, acts); s.Msg.MessageType() != dhcpv4.MessageTypeRequest || c.Phase() != Rebooting {
			t.Fatalf("start: %s", c.Phase())
		}
		if l, ok := c.Lease(); !ok || l.Address != held.Address {
			t.Fatalf("rebooting holds %v", l)
		}
		return c
	}

	c := start()
	c, acts := step(t, c, reply(c, dhcpv4.MessageTypeAck), restart.Add(time.Second))
	if b, ok := has[Bind](acts); !ok || !b.Lease.Expiry.Equal(restart.Add(time.Hour)) || c.Phase() != Bound {
		t.Errorf("ACK: %s %v", c.Phase(), acts)
	}

	c = start()
	c, acts = step(t, c, reply(c, dhcpv4.MessageTypeNak), restart.Add(time.Second))
	if _, ok := has[Unbind](acts); !ok || c.Phase() != Selecting {
		t.Errorf("NAK: %s %v", c.Phase(), acts)
	}

	c = start()
	now := restart
	for range DefaultRequestTries - 1 {
		now = c.Deadline()
		c, _ = step(t, c, Timeout{}, now)
	}
	// The last wait ends past T1 (5 min 30 s): the client binds what it had
	// and renews at once.
	now = c.Deadline()
	c, acts = step(t, c, Timeout{}, now)
	if b, ok := has[Bind](acts); !ok || b.Lease.Address != held.Address || c.Phase() != Renewing {
		t.Errorf("silence: %s %v", c.Phase(), acts)
	}
	if s := sent(t, acts); s.To != server || s.From != yi {
		t.Errorf("the renewal after silence: %+v", s)
	}

	c, acts = New(ident, exact, 7).Step(Start{Lease: &held}, held.Expiry)
	if s := sent(t, acts); s.Msg.MessageType() != dhcpv4.MessageTypeDiscover || c.Phase() != Selecting {
		t.Errorf("an expired lease at start: %s", c.Phase())
	}
}

// RELEASE goes only from a client that holds a lease; after Release,
// nothing.
func TestRelease(t *testing.T) {
	c := New(ident, exact, 1)
	c, _ = step(t, c, Start{}, t0)
	c, acts := step(t, c, Release{}, t0)
	if len(acts) != 0 || c.Phase() != Stopped {
		t.Errorf("release while selecting: %s %v", c.Phase(), acts)
	}
	if _, acts := c.Step(reply(c, dhcpv4.MessageTypeOffer), t0); len(acts) != 0 {
		t.Errorf("a stopped client acted: %v", acts)
	}
	b := bound(t)
	b, acts = step(t, b, Release{}, t0)
	if s := sent(t, acts); s.Msg.MessageType() != dhcpv4.MessageTypeRelease || b.Phase() != Stopped || !b.Deadline().IsZero() {
		t.Errorf("release while bound: %s", b.Phase())
	}
}
