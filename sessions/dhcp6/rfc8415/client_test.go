package rfc8415

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv6"
	"github.com/insomniacslk/dhcp/iana"
)

var (
	t0      = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	hw      = net.HardwareAddr{0x00, 0x24, 0xd4, 0xaa, 0xbb, 0xcc}
	ident   = Identity{DUID: DUIDLL(hw), IAID: [4]byte{0, 0, 0, 1}}
	server1 = &dhcpv6.DUIDLLT{HWType: iana.HWTypeEthernet, Time: 7, LinkLayerAddr: net.HardwareAddr{2, 0, 0, 0, 0, 1}}
	server2 = &dhcpv6.DUIDLL{HWType: iana.HWTypeEthernet, LinkLayerAddr: net.HardwareAddr{2, 0, 0, 0, 0, 2}}
	pd56    = netip.MustParsePrefix("2001:db8:f100::/56")
	dns     = netip.MustParseAddr("2001:db8:102::53")
	// exact are RFC 8415's timers without randomization and without the
	// initial delay, so that deadlines are exact.
	exact = Timing{Jitter: -1, SolMaxDelay: -1}
)

// sent returns the one Send among acts, decoded back from its bytes.
func sent(t *testing.T, acts []Action) *dhcpv6.Message {
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
	m, err := dhcpv6.MessageFromBytes(out[0].Msg.ToBytes())
	if err != nil {
		t.Fatalf("the client's %s does not decode: %v", out[0].Msg.Type(), err)
	}
	return m
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

// answer builds a server's typ to the client's current exchange: the
// client's DUID, the server's, an IA_PD for the client's IAID with the
// prefixes given, and the resolver; mods change it further.
func answer(c Client, typ dhcpv6.MessageType, sid dhcpv6.DUID, pd *dhcpv6.OptIAPD, mods ...func(*dhcpv6.Message)) Receive {
	m := &dhcpv6.Message{MessageType: typ, TransactionID: c.XID()}
	m.Options.Add(dhcpv6.OptClientID(ident.DUID))
	m.Options.Add(dhcpv6.OptServerID(sid))
	if pd != nil {
		m.Options.Add(pd)
	}
	m.Options.Add(dhcpv6.OptDNS(dns.AsSlice()))
	for _, mod := range mods {
		mod(m)
	}
	back, err := dhcpv6.MessageFromBytes(m.ToBytes())
	if err != nil {
		panic(err)
	}
	return Receive{Msg: back}
}

// iapd is an IA_PD for the client's IAID with T1, T2 and one prefix
// with its lifetimes.
func iapd(t1, t2 time.Duration, p netip.Prefix, preferred, valid time.Duration) *dhcpv6.OptIAPD {
	pd := &dhcpv6.OptIAPD{IaId: ident.IAID, T1: t1, T2: t2}
	if p.IsValid() {
		pd.Options.Add(&dhcpv6.OptIAPrefix{PreferredLifetime: preferred, ValidLifetime: valid,
			Prefix: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), 128)}})
	}
	return pd
}

// standard is Kea's lab delegation: T1 10 s, T2 20 s, preferred 40 s,
// valid 60 s.
func standard() *dhcpv6.OptIAPD {
	return iapd(10*time.Second, 20*time.Second, pd56, 40*time.Second, time.Minute)
}

// bound returns a client bound to the standard delegation from server1,
// its Solicit sent at t0.
func bound(t *testing.T) Client {
	t.Helper()
	c := New(ident, exact, 1)
	c, _ = c.Step(Start{}, t0)
	c, _ = c.Step(Timeout{}, t0)
	c, _ = c.Step(answer(c, dhcpv6.MessageTypeAdvertise, server1, standard(), pref(255)), t0)
	c, acts := c.Step(answer(c, dhcpv6.MessageTypeReply, server1, standard()), t0)
	if c.Phase() != Bound {
		t.Fatalf("phase %s after the Reply, actions %v", c.Phase(), acts)
	}
	return c
}

func pref(p uint8) func(*dhcpv6.Message) {
	return func(m *dhcpv6.Message) { m.Options.Add(dhcpv6.OptPreference(p)) }
}

func status(code iana.StatusCode) func(*dhcpv6.Message) {
	return func(m *dhcpv6.Message) { m.Options.Add(&dhcpv6.OptStatusCode{StatusCode: code, StatusMessage: "no"}) }
}

func codes(m *dhcpv6.Message) []dhcpv6.OptionCode {
	var out []dhcpv6.OptionCode
	for _, o := range m.Options.Options {
		out = append(out, o.Code())
	}
	slices.Sort(out)
	return out
}

// Every message carries what RFC 8415 section 18.2 asks of it: the
// Client Identifier, Elapsed Time (zero in an exchange's first message),
// the Option Request option (not in Release), the Server Identifier in
// Request, Renew and Release only, and the IA_PD with the client's IAID
// and the prefixes it is about.
func TestMessagesFollowSection18(t *testing.T) {
	c := New(ident, exact, 1)
	c, _ = c.Step(Start{}, t0)
	c, acts := c.Step(Timeout{}, t0)
	solicit := sent(t, acts)
	c, acts = c.Step(answer(c, dhcpv6.MessageTypeAdvertise, server1, standard(), pref(255)), t0)
	request := sent(t, acts)
	c, _ = c.Step(answer(c, dhcpv6.MessageTypeReply, server1, standard()), t0)
	c, acts = c.Step(Timeout{}, t0.Add(10*time.Second))
	renew := sent(t, acts)
	_, acts = c.Step(Timeout{}, t0.Add(20*time.Second))
	rebind := sent(t, acts)
	_, acts = c.Step(Release{}, t0.Add(11*time.Second))
	release := sent(t, acts)

	ptr := func(d dhcpv6.DUID) []byte { return d.ToBytes() }
	oro, cid, sid, et, ia := dhcpv6.OptionORO, dhcpv6.OptionClientID, dhcpv6.OptionServerID, dhcpv6.OptionElapsedTime, dhcpv6.OptionIAPD
	for _, tc := range []struct {
		name     string
		m        *dhcpv6.Message
		typ      dhcpv6.MessageType
		opts     []dhcpv6.OptionCode
		server   []byte
		prefixes []netip.Prefix
	}{
		{"Solicit", solicit, dhcpv6.MessageTypeSolicit, []dhcpv6.OptionCode{cid, oro, et, ia}, nil, nil},
		{"Request", request, dhcpv6.MessageTypeRequest, []dhcpv6.OptionCode{cid, sid, oro, et, ia}, ptr(server1), []netip.Prefix{pd56}},
		{"Renew", renew, dhcpv6.MessageTypeRenew, []dhcpv6.OptionCode{cid, sid, oro, et, ia}, ptr(server1), []netip.Prefix{pd56}},
		{"Rebind", rebind, dhcpv6.MessageTypeRebind, []dhcpv6.OptionCode{cid, oro, et, ia}, nil, []netip.Prefix{pd56}},
		{"Release", release, dhcpv6.MessageTypeRelease, []dhcpv6.OptionCode{cid, sid, et, ia}, ptr(server1), []netip.Prefix{pd56}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := tc.m
			if m.Type() != tc.typ {
				t.Fatalf("type %s, want %s", m.Type(), tc.typ)
			}
			want := slices.Clone(tc.opts)
			slices.Sort(want)
			if got := codes(m); !slices.Equal(got, want) {
				t.Errorf("options %v, want %v", got, want)
			}
			if !bytes.Equal(m.Options.ClientID().ToBytes(), ident.DUID.ToBytes()) {
				t.Errorf("client ID %v", m.Options.ClientID())
			}
			if b := m.Options.ClientID().ToBytes(); !bytes.Equal(b, []byte{0, 3, 0, 1, 0x00, 0x24, 0xd4, 0xaa, 0xbb, 0xcc}) {
				t.Errorf("client ID %x, want a DUID-LL of the MAC", b)
			}
			if tc.server != nil && !bytes.Equal(m.Options.ServerID().ToBytes(), tc.server) {
				t.Errorf("server ID %x, want %x", m.Options.ServerID().ToBytes(), tc.server)
			}
			if m.Options.ElapsedTime() != 0 {
				t.Errorf("elapsed time %v in an exchange's first message", m.Options.ElapsedTime())
			}
			if oro := m.Options.RequestedOptions(); m.Type() != dhcpv6.MessageTypeRelease &&
				(!slices.Contains(oro, dhcpv6.OptionDNSRecursiveNameServer) || !slices.Contains(oro, dhcpv6.OptionSolMaxRT)) {
				t.Errorf("ORO %v, want DNS servers and SOL_MAX_RT", oro)
			}
			pd := m.Options.OneIAPD()
			if pd == nil || pd.IaId != ident.IAID || pd.T1 != 0 || pd.T2 != 0 {
				t.Fatalf("IA_PD %v", pd)
			}
			var got []netip.Prefix
			for _, p := range pd.Options.Prefixes() {
				if p.PreferredLifetime != 0 || p.ValidLifetime != 0 {
					t.Errorf("prefix %v with lifetimes", p)
				}
				q, _ := prefixOf(p)
				got = append(got, q)
			}
			if !slices.Equal(got, tc.prefixes) {
				t.Errorf("prefixes %v, want %v", got, tc.prefixes)
			}
		})
	}
}

// retransmissions returns the waits between the transmissions of the
// client's current exchange, following its deadlines n times.
func retransmissions(t *testing.T, c Client, now time.Time, n int) ([]time.Duration, Client, time.Time) {
	t.Helper()
	var waits []time.Duration
	for range n {
		d := c.Deadline()
		if d.IsZero() {
			t.Fatalf("%s: no deadline", c.Phase())
		}
		waits = append(waits, d.Sub(now))
		now = d
		c, _ = c.Step(Timeout{}, now)
	}
	return waits, c, now
}

func secs(ss ...float64) []time.Duration {
	var out []time.Duration
	for _, s := range ss {
		out = append(out, time.Duration(s*float64(time.Second)))
	}
	return out
}

// Section 15's retransmission, with RAND = 0: RT doubles from IRT up to
// MRT; Request gives up after REQ_MAX_RC and solicits again; Renew stops
// at T2 (MRD) and Rebind at the end of the valid lifetime.
func TestRetransmission(t *testing.T) {
	c := New(ident, exact, 1)
	c, acts := c.Step(Start{}, t0)
	if len(acts) != 0 || !c.Deadline().Equal(t0) {
		t.Fatalf("start without delay: %v, deadline %v", acts, c.Deadline())
	}
	c, _ = c.Step(Timeout{}, t0)
	waits, _, _ := retransmissions(t, c, t0, 14)
	if want := secs(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 3600, 3600); !slices.Equal(waits, want) {
		t.Errorf("Solicit waits %v, want %v", waits, want)
	}

	// Request: REQ_TIMEOUT doubling to REQ_MAX_RT, ten of them.
	c = New(ident, exact, 1)
	c, _ = c.Step(Start{}, t0)
	c, _ = c.Step(Timeout{}, t0)
	c, _ = c.Step(answer(c, dhcpv6.MessageTypeAdvertise, server1, standard(), pref(255)), t0)
	waits, c, _ = retransmissions(t, c, t0, 10)
	if want := secs(1, 2, 4, 8, 16, 30, 30, 30, 30, 30); !slices.Equal(waits, want) {
		t.Errorf("Request waits %v, want %v", waits, want)
	}
	if c.Phase() != Soliciting || !strings.Contains(c.Describe(t0.Add(200*time.Second)), "no Reply from server") {
		t.Errorf("after REQ_MAX_RC: %s, %q", c.Phase(), c.Describe(t0))
	}

	// Renew from T1 = 100 s, T2 = 1000 s: 10, 20, ..., cut at T2.
	long := iapd(100*time.Second, 1000*time.Second, pd56, 2000*time.Second, 3000*time.Second)
	c = New(ident, exact, 1)
	c, _ = c.Step(Start{}, t0)
	c, _ = c.Step(Timeout{}, t0)
	c, _ = c.Step(answer(c, dhcpv6.MessageTypeAdvertise, server1, long, pref(255)), t0)
	c, _ = c.Step(answer(c, dhcpv6.MessageTypeReply, server1, long), t0)
	if c.Phase() != Bound || !c.Deadline().Equal(t0.Add(100*time.Second)) {
		t.Fatalf("bound: %s until %v", c.Phase(), c.Deadline())
	}
	waits, c, now := retransmissions(t, c, t0, 7)
	if want := secs(100, 10, 20, 40, 80, 160, 320); !slices.Equal(waits, want) {
		t.Errorf("Renew waits %v, want %v", waits, want)
	}
	if c.Phase() != Renewing {
		t.Fatalf("phase %s", c.Phase())
	}
	// The next wait would be 640 s: cut at T2 (MRD), where Rebind starts.
	waits, c, now = retransmissions(t, c, now, 1)
	if !slices.Equal(waits, secs(1000-730)) || c.Phase() != Rebinding {
		t.Errorf("Renew's last wait %v, phase %s; want 270s to T2, rebinding", waits, c.Phase())
	}
	waits, c, _ = retransmissions(t, c, now, 9)
	if want := secs(10, 20, 40, 80, 160, 320, 600, 600, 3000-2830); !slices.Equal(waits, want) {
		t.Errorf("Rebind waits %v, want %v", waits, want)
	}
	if c.Phase() != Soliciting {
		t.Errorf("after the valid lifetime: %s", c.Phase())
	}
}

// RAND: every wait is within 10% of its RAND-less value, and the first
// Solicit's is strictly above IRT; the first Solicit waits up to
// SOL_MAX_DELAY.
func TestRetransmissionRandomized(t *testing.T) {
	for seed := range uint64(200) {
		c := New(ident, Timing{}, seed)
		c, _ = c.Step(Start{}, t0)
		delay := c.Deadline().Sub(t0)
		if delay < 0 || delay > SolMaxDelay {
			t.Fatalf("seed %d: first Solicit after %v", seed, delay)
		}
		start := c.Deadline()
		c, _ = c.Step(Timeout{}, start)
		waits, _, _ := retransmissions(t, c, start, 3)
		if waits[0] <= SolTimeout || waits[0] > SolTimeout*11/10 {
			t.Fatalf("seed %d: first Solicit wait %v, want in (1s, 1.1s]", seed, waits[0])
		}
		prev := waits[0]
		for _, w := range waits[1:] {
			if lo, hi := prev*19/10, prev*21/10; w < lo || w > hi {
				t.Fatalf("seed %d: wait %v after %v, want 2RT ± 0.1RT", seed, w, prev)
			}
			prev = w
		}
	}
}

// The client collects Advertises during the first wait and requests from
// the most preferred server (section 18.2.1); preference 255 is taken at
// once, and after the first wait the first Advertise is.
func TestAdvertiseSelection(t *testing.T) {
	start := func() Client {
		c := New(ident, exact, 1)
		c, _ = c.Step(Start{}, t0)
		c, _ = c.Step(Timeout{}, t0)
		return c
	}
	c := start()
	c, acts := c.Step(answer(c, dhcpv6.MessageTypeAdvertise, server2, standard(), pref(3)), t0.Add(100*time.Millisecond))
	if len(acts) != 0 || c.Phase() != Soliciting {
		t.Fatalf("first Advertise: %s %v; want to keep collecting", c.Phase(), acts)
	}
	c, _ = c.Step(answer(c, dhcpv6.MessageTypeAdvertise, server1, standard(), pref(7)), t0.Add(200*time.Millisecond))
	c, _ = c.Step(answer(c, dhcpv6.MessageTypeAdvertise, server2, standard(), pref(5)), t0.Add(300*time.Millisecond))
	c, acts = c.Step(Timeout{}, t0.Add(time.Second))
	if m := sent(t, acts); m.Type() != dhcpv6.MessageTypeRequest || !server1.Equal(m.Options.ServerID()) {
		t.Errorf("after the first wait: %s to %v, want a Request to the preferred server1", m.Type(), m.Options.ServerID())
	}

	c = start()
	_, acts = c.Step(answer(c, dhcpv6.MessageTypeAdvertise, server2, standard(), pref(255)), t0.Add(100*time.Millisecond))
	if m := sent(t, acts); m.Type() != dhcpv6.MessageTypeRequest {
		t.Errorf("preference 255: %s, want a Request at once", m.Type())
	}

	c = start()
	c, _ = c.Step(Timeout{}, t0.Add(time.Second)) // no Advertise: a second Solicit
	_, acts = c.Step(answer(c, dhcpv6.MessageTypeAdvertise, server2, standard()), t0.Add(1500*time.Millisecond))
	if m := sent(t, acts); m.Type() != dhcpv6.MessageTypeRequest {
		t.Errorf("after the first wait: %s, want a Request at once", m.Type())
	}
}

// What a client must not accept (section 16): another exchange's
// transaction ID, no Server Identifier, no or another Client Identifier,
// an Advertise without a prefix (NoPrefixAvail), an IA_PD of another
// IAID or with T1 after T2, prefixes it cannot use.
func TestIgnored(t *testing.T) {
	c := New(ident, exact, 1)
	c, _ = c.Step(Start{}, t0)
	c, _ = c.Step(Timeout{}, t0)
	other := &dhcpv6.DUIDLL{HWType: iana.HWTypeEthernet, LinkLayerAddr: net.HardwareAddr{2, 9, 9, 9, 9, 9}}
	for _, tc := range []struct {
		name string
		rx   Receive
	}{
		{"another xid", answer(c, dhcpv6.MessageTypeAdvertise, server1, standard(), pref(255), func(m *dhcpv6.Message) { m.TransactionID[0] ^= 1 })},
		{"no server ID", answer(c, dhcpv6.MessageTypeAdvertise, server1, standard(), pref(255), func(m *dhcpv6.Message) { m.Options.Del(dhcpv6.OptionServerID) })},
		{"no client ID", answer(c, dhcpv6.MessageTypeAdvertise, server1, standard(), pref(255), func(m *dhcpv6.Message) { m.Options.Del(dhcpv6.OptionClientID) })},
		{"another client ID", answer(c, dhcpv6.MessageTypeAdvertise, server1, standard(), pref(255), func(m *dhcpv6.Message) { m.Options.Update(dhcpv6.OptClientID(other)) })},
		{"NoPrefixAvail", answer(c, dhcpv6.MessageTypeAdvertise, server1, iapd(0, 0, netip.Prefix{}, 0, 0), pref(255), func(m *dhcpv6.Message) {
			pd := m.Options.OneIAPD()
			pd.Options.Add(&dhcpv6.OptStatusCode{StatusCode: iana.StatusNoPrefixAvail})
			m.Options.Update(pd)
		})},
		{"another IAID", answer(c, dhcpv6.MessageTypeAdvertise, server1, &dhcpv6.OptIAPD{IaId: [4]byte{9}, Options: standard().Options}, pref(255))},
		{"T1 after T2", answer(c, dhcpv6.MessageTypeAdvertise, server1, iapd(30*time.Second, 20*time.Second, pd56, 40*time.Second, time.Minute), pref(255))},
		{"preferred over valid", answer(c, dhcpv6.MessageTypeAdvertise, server1, iapd(0, 0, pd56, 2*time.Minute, time.Minute), pref(255))},
		{"link-local prefix", answer(c, dhcpv6.MessageTypeAdvertise, server1, iapd(0, 0, netip.MustParsePrefix("fe80::/64"), time.Minute, time.Minute), pref(255))},
		{"a Reply while soliciting", answer(c, dhcpv6.MessageTypeReply, server1, standard())},
	} {
		t.Run(tc.name, func(t *testing.T) {
			next, acts := c.Step(tc.rx, t0.Add(100*time.Millisecond))
			if len(acts) != 0 || next.Phase() != Soliciting {
				t.Errorf("-> %s %v, want it ignored", next.Phase(), acts)
			}
		})
	}
	next, _ := c.Step(answer(c, dhcpv6.MessageTypeAdvertise, server1, iapd(0, 0, netip.Prefix{}, 0, 0), pref(255), func(m *dhcpv6.Message) {
		pd := m.Options.OneIAPD()
		pd.Options.Add(&dhcpv6.OptStatusCode{StatusCode: iana.StatusNoPrefixAvail, StatusMessage: "out of prefixes"})
		m.Options.Update(pd)
	}), t0.Add(5*time.Second))
	if d := next.Describe(t0.Add(5 * time.Second)); !strings.Contains(d, "no Advertise in 5 s") || !strings.Contains(d, "NoPrefixAvail") {
		t.Errorf("status %q, want how long and why", d)
	}
}

// The Reply to a Request delegates: the prefix with its lifetimes, T1
// and T2 (the server's, or 0.5 and 0.8 of the preferred lifetime), the
// resolvers and the server.
func TestBind(t *testing.T) {
	for _, tc := range []struct {
		name          string
		pd            *dhcpv6.OptIAPD
		renew, rebind time.Duration // zero: never
		preferred     time.Duration
		valid         time.Duration
	}{
		{"server's T1 and T2", standard(), 10 * time.Second, 20 * time.Second, 40 * time.Second, time.Minute},
		// 0.5 and 0.8 of what is left of the preferred lifetime at the
		// Reply: 99 s.
		{"T1 and T2 of zero", iapd(0, 0, pd56, 100*time.Second, 200*time.Second), 49500 * time.Millisecond, 79200 * time.Millisecond, 100 * time.Second, 200 * time.Second},
		{"infinite", iapd(infinite, infinite, pd56, infinite, infinite), 0, 0, 0, 0},
		{"infinite lifetimes, T1 and T2 of zero", iapd(0, 0, pd56, infinite, infinite), 0, 0, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := New(ident, exact, 1)
			c, _ = c.Step(Start{}, t0)
			c, _ = c.Step(Timeout{}, t0)
			c, _ = c.Step(answer(c, dhcpv6.MessageTypeAdvertise, server1, tc.pd, pref(255)), t0.Add(time.Second))
			c, acts := c.Step(answer(c, dhcpv6.MessageTypeReply, server1, tc.pd), t0.Add(2*time.Second))
			b, ok := has[Bind](acts)
			if !ok || c.Phase() != Bound {
				t.Fatalf("%s %v, want bound", c.Phase(), acts)
			}
			l := b.Lease
			after := func(base time.Time, d time.Duration) time.Time {
				if d == 0 {
					return time.Time{}
				}
				return base.Add(d)
			}
			// Lifetimes from the Request's first transmission, T1 and
			// T2 from the Reply.
			at := func(d time.Duration) time.Time { return after(t0.Add(time.Second), d) }
			want := Lease{Prefixes: []Prefix{{Prefix: pd56, Preferred: at(tc.preferred), Valid: at(tc.valid)}},
				Server: server1.ToBytes(), DNS: []netip.Addr{dns}, Obtained: t0.Add(time.Second),
				Renew: after(t0.Add(2*time.Second), tc.renew), Rebind: after(t0.Add(2*time.Second), tc.rebind)}
			if !leaseEqual(l, want) {
				t.Errorf("lease\n%+v, want\n%+v", l, want)
			}
			if !c.Deadline().Equal(after(t0.Add(2*time.Second), tc.renew)) {
				t.Errorf("deadline %v, want T1", c.Deadline())
			}
		})
	}
}

func leaseEqual(a, b Lease) bool {
	return slices.Equal(a.Prefixes, b.Prefixes) && bytes.Equal(a.Server, b.Server) && slices.Equal(a.DNS, b.DNS) &&
		a.Obtained.Equal(b.Obtained) && a.Renew.Equal(b.Renew) && a.Rebind.Equal(b.Rebind)
}

// Renew at T1 extends the delegation; a prefix the Reply leaves out keeps
// its lifetimes, one with a valid lifetime of zero goes, a new one is
// added. Rebind at T2 takes any server's Reply, which becomes the
// delegation's server.
func TestRenewAndRebind(t *testing.T) {
	c := bound(t)
	c, acts := c.Step(Timeout{}, t0.Add(10*time.Second))
	if m := sent(t, acts); m.Type() != dhcpv6.MessageTypeRenew || c.Phase() != Renewing {
		t.Fatalf("at T1: %s, %s", m.Type(), c.Phase())
	}
	second := netip.MustParsePrefix("2001:db8:f200::/56")
	pd := iapd(10*time.Second, 20*time.Second, second, 40*time.Second, time.Minute)
	c, acts = c.Step(answer(c, dhcpv6.MessageTypeReply, server1, pd), t0.Add(11*time.Second))
	b, ok := has[Bind](acts)
	if !ok || len(b.Lease.Prefixes) != 2 || b.Lease.Prefixes[0].Prefix != pd56 || !b.Lease.Prefixes[0].Valid.Equal(t0.Add(time.Minute)) ||
		b.Lease.Prefixes[1].Prefix != second || !b.Lease.Prefixes[1].Valid.Equal(t0.Add(70*time.Second)) {
		t.Fatalf("after a Reply with another prefix: %+v", b.Lease)
	}
	if !c.Deadline().Equal(t0.Add(21 * time.Second)) {
		t.Errorf("deadline %v, want the new T1, 10 s after the Reply", c.Deadline())
	}
	// Renew again: the first prefix is withdrawn (valid 0).
	c, _ = c.Step(Timeout{}, t0.Add(21*time.Second))
	pd = iapd(10*time.Second, 20*time.Second, pd56, 0, 0)
	c, acts = c.Step(answer(c, dhcpv6.MessageTypeReply, server1, pd), t0.Add(21*time.Second))
	if b, ok := has[Bind](acts); !ok || len(b.Lease.Prefixes) != 1 || b.Lease.Prefixes[0].Prefix != second {
		t.Fatalf("after a valid lifetime of zero: %+v", b.Lease)
	}
	// T1 (31 s) and T2 (41 s) pass unanswered: Rebind, with no server
	// ID; server2 answers.
	c, _ = c.Step(Timeout{}, t0.Add(31*time.Second))
	c, _ = c.Step(Timeout{}, t0.Add(41*time.Second))
	c, acts = c.Step(Timeout{}, t0.Add(51*time.Second))
	if m := sent(t, acts); m.Type() != dhcpv6.MessageTypeRebind || m.Options.ServerID() != nil {
		t.Fatalf("after T2: %s with server %v", m.Type(), m.Options.ServerID())
	}
	c, acts = c.Step(answer(c, dhcpv6.MessageTypeReply, server2, iapd(10*time.Second, 20*time.Second, second, 40*time.Second, time.Minute)), t0.Add(52*time.Second))
	if b, ok := has[Bind](acts); !ok || !bytes.Equal(b.Lease.Server, server2.ToBytes()) || c.Phase() != Bound {
		t.Errorf("after the Rebind's Reply: %s %+v", c.Phase(), b.Lease)
	}
}

// T2 = infinity with a finite T1 (section 21.21): the client renews at
// T1, never rebinds, and keeps renewing until the delegation ends.
func TestInfiniteT2(t *testing.T) {
	c := New(ident, exact, 1)
	c, _ = c.Step(Start{}, t0)
	c, _ = c.Step(Timeout{}, t0)
	pd := iapd(10*time.Second, infinite, pd56, 40*time.Second, time.Minute)
	c, _ = c.Step(answer(c, dhcpv6.MessageTypeAdvertise, server1, pd, pref(255)), t0)
	c, acts := c.Step(answer(c, dhcpv6.MessageTypeReply, server1, pd), t0)
	b, ok := has[Bind](acts)
	if !ok || !b.Lease.Renew.Equal(t0.Add(10*time.Second)) || !b.Lease.Rebind.IsZero() {
		t.Fatalf("bound %+v, want Renew at T1 and no Rebind", b.Lease)
	}
	c, acts = c.Step(Timeout{}, t0.Add(10*time.Second))
	if m := sent(t, acts); m.Type() != dhcpv6.MessageTypeRenew {
		t.Fatalf("at T1: %s", m.Type())
	}
	for c.Phase() == Renewing {
		c, acts = c.Step(Timeout{}, c.Deadline())
		if m, ok := has[Send](acts); ok && m.Msg.Type() == dhcpv6.MessageTypeRebind {
			t.Fatal("a Rebind with T2 = infinity")
		}
	}
	if u, ok := has[Unbind](acts); !ok || !strings.Contains(u.Why, "expired") || c.Deadline().Before(t0.Add(time.Minute)) {
		t.Fatalf("after renewing: %s %v", c.Phase(), acts)
	}
}

// A Reply to a Renew whose IA_PD says NoBinding makes the client Request
// the delegation again from that server (section 18.2.10.1); the
// delegation stays in use meanwhile. A status in the Reply itself is
// ignored (the client retransmits).
func TestNoBindingRequestsAgain(t *testing.T) {
	c := bound(t)
	c, _ = c.Step(Timeout{}, t0.Add(10*time.Second))
	c2, acts := c.Step(answer(c, dhcpv6.MessageTypeReply, server1, nil, status(iana.StatusUnspecFail)), t0.Add(11*time.Second))
	if len(acts) != 0 || c2.Phase() != Renewing {
		t.Errorf("UnspecFail: %s %v", c2.Phase(), acts)
	}
	nb := &dhcpv6.OptIAPD{IaId: ident.IAID}
	nb.Options.Add(&dhcpv6.OptStatusCode{StatusCode: iana.StatusNoBinding})
	c, acts = c.Step(answer(c, dhcpv6.MessageTypeReply, server1, nb), t0.Add(11*time.Second))
	m := sent(t, acts)
	if m.Type() != dhcpv6.MessageTypeRequest || !server1.Equal(m.Options.ServerID()) || c.Phase() != Requesting {
		t.Fatalf("after NoBinding: %s to %v, %s", m.Type(), m.Options.ServerID(), c.Phase())
	}
	if _, ok := c.Lease(); !ok {
		t.Error("the delegation was dropped while it is requested again")
	}
	_, acts = c.Step(answer(c, dhcpv6.MessageTypeReply, server1, standard()), t0.Add(12*time.Second))
	if _, ok := has[Bind](acts); !ok {
		t.Errorf("the Request's Reply: %v", acts)
	}
}

// The delegation ends with its valid lifetime: withdrawn, and the client
// solicits again, asking for the same prefix.
func TestExpiry(t *testing.T) {
	c := bound(t)
	c, _ = c.Step(Timeout{}, t0.Add(10*time.Second))
	c, _ = c.Step(Timeout{}, t0.Add(20*time.Second))
	var acts []Action
	for c.Phase() == Rebinding {
		c, acts = c.Step(Timeout{}, c.Deadline())
	}
	if u, ok := has[Unbind](acts); !ok || !strings.Contains(u.Why, "expired") {
		t.Fatalf("at the end: %v", acts)
	}
	m := sent(t, acts)
	if m.Type() != dhcpv6.MessageTypeSolicit || len(m.Options.OneIAPD().Options.Prefixes()) != 1 {
		t.Fatalf("after expiry: %s %v, want a Solicit with the last prefix as a hint", m.Type(), m.Options.OneIAPD())
	}
	if _, ok := c.Lease(); ok {
		t.Error("a lease after expiry")
	}
}

// A client restarted with a delegation that is still valid keeps it in
// use and rebinds it at once (section 18.2.12); one that ended solicits.
func TestStartWithALease(t *testing.T) {
	l, _ := bound(t).Lease()
	c, acts := New(ident, exact, 2).Step(Start{Lease: &l}, t0.Add(30*time.Second))
	if _, ok := has[Bind](acts); !ok || c.Phase() != Rebinding {
		t.Fatalf("restart: %s %v", c.Phase(), acts)
	}
	if m := sent(t, acts); m.Type() != dhcpv6.MessageTypeRebind {
		t.Errorf("restart sends %s, want Rebind", m.Type())
	}
	if !c.Deadline().Equal(t0.Add(40 * time.Second)) {
		t.Errorf("deadline %v: want REB_TIMEOUT", c.Deadline())
	}
	c, acts = New(ident, exact, 2).Step(Start{Lease: &l}, t0.Add(time.Minute))
	if len(acts) != 0 || c.Phase() != Init {
		t.Errorf("restart after the end: %s %v", c.Phase(), acts)
	}
}

// Release gives the delegation back to its server, withdraws it at once,
// and ends the client on the server's Reply or after REL_MAX_RC
// transmissions.
func TestRelease(t *testing.T) {
	c := bound(t)
	c, acts := c.Step(Release{}, t0.Add(5*time.Second))
	if _, ok := has[Unbind](acts); !ok || sent(t, acts).Type() != dhcpv6.MessageTypeRelease {
		t.Fatalf("release: %v", acts)
	}
	next, _ := c.Step(answer(c, dhcpv6.MessageTypeReply, server1, nil), t0.Add(5*time.Second))
	if next.Phase() != Stopped {
		t.Errorf("after the Reply: %s", next.Phase())
	}
	waits, c, _ := retransmissions(t, c, t0.Add(5*time.Second), 4)
	if !slices.Equal(waits, secs(1, 2, 4, 8)) || c.Phase() != Stopped {
		t.Errorf("unanswered: waits %v, %s", waits, c.Phase())
	}
	c, acts = New(ident, exact, 1).Step(Release{}, t0)
	if len(acts) != 0 || c.Phase() != Stopped {
		t.Errorf("release with nothing held: %s %v", c.Phase(), acts)
	}
}

// A server's SOL_MAX_RT (option 82) replaces the client's when it is in
// 60..86400 s (section 21.24).
func TestSolMaxRTOption(t *testing.T) {
	opt := func(s uint32) func(*dhcpv6.Message) {
		return func(m *dhcpv6.Message) {
			m.Options.Add(&dhcpv6.OptionGeneric{OptionCode: dhcpv6.OptionSolMaxRT, OptionData: binary.BigEndian.AppendUint32(nil, s)})
		}
	}
	for _, tc := range []struct {
		s    uint32
		want time.Duration
	}{{120, 120 * time.Second}, {59, SolMaxRT}, {86401, SolMaxRT}} {
		c := New(ident, exact, 1)
		c, _ = c.Step(Start{}, t0)
		c, _ = c.Step(Timeout{}, t0)
		noPrefix := iapd(0, 0, netip.Prefix{}, 0, 0)
		c, _ = c.Step(answer(c, dhcpv6.MessageTypeAdvertise, server1, noPrefix, opt(tc.s)), t0)
		if c.solMaxRT != tc.want {
			t.Errorf("SOL_MAX_RT %d: %v, want %v", tc.s, c.solMaxRT, tc.want)
		}
	}
}

// The Elapsed Time option counts from the exchange's first message in
// hundredths of a second, and stops at 0xffff.
func TestElapsedTime(t *testing.T) {
	c := New(ident, exact, 1)
	c, _ = c.Step(Start{}, t0)
	c, _ = c.Step(Timeout{}, t0)
	c, acts := c.Step(Timeout{}, t0.Add(time.Second))
	if got := sent(t, acts).Options.ElapsedTime(); got != time.Second {
		t.Errorf("second Solicit: elapsed %v", got)
	}
	for c.Deadline().Before(t0.Add(2 * time.Hour)) {
		c, acts = c.Step(Timeout{}, c.Deadline())
	}
	if got := sent(t, acts).Options.ElapsedTime(); got != maxElapsed {
		t.Errorf("after an hour: elapsed %v, want %v", got, maxElapsed)
	}
}

// Status says what is held and when its times fall, or why nothing is.
func TestDescribe(t *testing.T) {
	c := bound(t)
	want := "prefix 2001:db8:f100::/56 preferred for 38s, valid for 58s, from server " + DUIDString(server1.ToBytes()) + ", dns [2001:db8:102::53]; renews in 8s, rebinds in 18s, expires in 58s"
	if got := c.Describe(t0.Add(2 * time.Second)); got != want {
		t.Errorf("bound: %q\nwant %q", got, want)
	}
	s := New(ident, exact, 1)
	s, _ = s.Step(Start{}, t0)
	s, _ = s.Step(Timeout{}, t0)
	if got := s.Describe(t0); got != "no prefix delegated: Solicit sent, waiting for an Advertise" {
		t.Errorf("soliciting: %q", got)
	}
	for s.Deadline().Before(t0.Add(30 * time.Second)) {
		s, _ = s.Step(Timeout{}, s.Deadline())
	}
	if got := s.Describe(t0.Add(31 * time.Second)); got != "no prefix delegated: no Advertise in 31 s (5 Solicits)" {
		t.Errorf("soliciting: %q", got)
	}
}
