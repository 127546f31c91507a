package autoconf

import (
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/braid-router/braid/sessions/ra/advert"
)

var (
	t0     = time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	router = netip.MustParseAddr("fe80::1")
	other  = netip.MustParseAddr("fe80::2")
	lab    = netip.MustParsePrefix("2001:db8:102::/64")
	key    = []byte("a secret key")
	ns53   = netip.MustParseAddr("2001:db8:102::53")
)

// middle is a Rand without jitter: Float64 is the middle of [0, 1), so
// ±10% jitter is zero and the first solicitation waits half a second.
type middle struct{ n uint64 }

func (middle) Float64() float64  { return 0.5 }
func (m *middle) Uint64() uint64 { m.n++; return m.n << 16 }

func newMachine(t *testing.T) *Machine {
	t.Helper()
	return New(Config{Interface: "wan2", Secret: key, Rand: &middle{}}, Learnt{}, t0)
}

// addrIn is the address RFC 7217 forms in p for the test's key and wan2.
func addrIn(p netip.Prefix, counter uint8) netip.Prefix {
	a, _ := StableAddress(p, "wan2", counter, key)
	return netip.PrefixFrom(a, 64)
}

// labAdvert is what radvd sends in the lab: router lifetime 30 min, the
// prefix for an hour (preferred 30 min), a resolver for 10 min.
func labAdvert() *advert.Advert {
	return &advert.Advert{Router: router, RouterLifetime: 30 * time.Minute,
		Prefixes: []advert.Prefix{{Prefix: lab, OnLink: true, Autonomous: true, Valid: time.Hour, Preferred: 30 * time.Minute}},
		DNS:      []advert.RDNSS{{Lifetime: 10 * time.Minute, Servers: []netip.Addr{ns53}}}}
}

// probed returns the target of the one probe in acts.
func probed(t *testing.T, acts []Action) netip.Addr {
	t.Helper()
	if len(acts) != 1 || acts[0].Kind != Probe || len(acts[0].Nonce) != advert.NonceLen {
		t.Fatalf("actions %+v, want one probe with a nonce", acts)
	}
	return acts[0].Target
}

// The lab's advert, end to end: solicit, learn the router and the
// resolver at once, probe the address, learn it after RetransTimer of
// silence.
func TestAdvertLearnsRouterAddressAndResolvers(t *testing.T) {
	m := newMachine(t)
	if acts := m.Start(t0); acts != nil {
		t.Fatalf("Start sent %+v before its delay", acts)
	}
	if next := m.Next(); !next.Equal(t0.Add(MaxRtrSolicitationDelay / 2)) {
		t.Fatalf("first solicitation at %v, want after half of MaxRtrSolicitationDelay", next)
	}
	now := m.Next()
	if acts := m.Tick(now); len(acts) != 1 || acts[0].Kind != Solicit {
		t.Fatalf("Tick = %+v, want a solicitation", acts)
	}
	now = now.Add(100 * time.Millisecond)
	target := probed(t, m.Advert(now, labAdvert()))
	if want := addrIn(lab, 0); target != want.Addr() || m.Tentative() != target {
		t.Fatalf("probed %s, want %s", target, want)
	}
	if m.Soliciting() {
		t.Error("still soliciting after an advert")
	}
	got := m.Learnt()
	want := Learnt{Router: router, RouterExpires: now.Add(30 * time.Minute), DNS: []DNS{{Addr: ns53, Expires: now.Add(10 * time.Minute)}}}
	if !got.Equal(want) {
		t.Fatalf("during DAD: %+v\nwant %+v", got, want)
	}
	if next := m.Next(); !next.Equal(now.Add(RetransTimer)) {
		t.Fatalf("DAD ends at %v, want RetransTimer later", next)
	}
	if acts := m.Tick(now.Add(RetransTimer - time.Millisecond)); acts != nil || m.Learnt().Address.IsValid() {
		t.Fatal("the address was learnt before DAD ended")
	}
	m.Tick(now.Add(RetransTimer))
	want.Address, want.Valid, want.Preferred = addrIn(lab, 0), now.Add(time.Hour), now.Add(30*time.Minute)
	if got := m.Learnt(); !got.Equal(want) {
		t.Fatalf("after DAD: %+v\nwant %+v", got, want)
	}
	if m.Tentative().IsValid() {
		t.Error("still tentative")
	}
}

// RFC 4861 6.3.4: a router lifetime of zero takes the router away at
// once; the address follows its own lifetimes, and the resolvers theirs.
func TestRouterLifetimeZero(t *testing.T) {
	m := learnt(t)
	before := m.Learnt()
	a := labAdvert()
	a.RouterLifetime = 0
	now := t0.Add(time.Minute)
	if acts := m.Advert(now, a); acts != nil {
		t.Fatalf("actions %+v", acts)
	}
	got := m.Learnt()
	if got.Router.IsValid() {
		t.Error("the router stayed")
	}
	if got.Address != before.Address || !got.Valid.Equal(now.Add(time.Hour)) || len(got.DNS) != 1 {
		t.Errorf("the address or resolvers changed with the router: %+v", got)
	}
	if m.Soliciting() {
		t.Error("soliciting a router that said it is none")
	}
	// Another router's withdrawal is not ours.
	m = learnt(t)
	a.Router = other
	m.Advert(now, a)
	if got := m.Learnt(); got.Router != router {
		t.Errorf("another router's lifetime of zero took %s away", router)
	}
}

// learnt returns a machine that learnt the lab's advert at t0.
func learnt(t *testing.T) *Machine {
	t.Helper()
	m := newMachine(t)
	m.Start(t0)
	probed(t, m.Advert(t0, labAdvert()))
	m.Tick(t0.Add(RetransTimer))
	if !m.Learnt().Address.IsValid() {
		t.Fatal("no address")
	}
	return m
}

// A router whose lifetime runs out without an advert is dropped, and the
// machine solicits again; the next advert brings it back.
func TestRouterExpires(t *testing.T) {
	m := learnt(t)
	end := m.Learnt().RouterExpires
	if next := m.Next(); !next.Equal(t0.Add(10 * time.Minute)) {
		t.Fatalf("next = %v, want the resolver's end first", next)
	}
	m.Tick(end)
	if m.Learnt().Router.IsValid() || !m.Soliciting() {
		t.Fatalf("at the router lifetime's end: %+v, soliciting %v", m.Learnt(), m.Soliciting())
	}
	if acts := m.Tick(m.Next()); len(acts) != 1 || acts[0].Kind != Solicit {
		t.Fatalf("no solicitation after losing the router: %+v", acts)
	}
	later := end.Add(5 * time.Second)
	m.Advert(later, labAdvert())
	if got := m.Learnt(); got.Router != router || !got.RouterExpires.Equal(later.Add(30*time.Minute)) {
		t.Errorf("router after a new advert: %+v", got)
	}
	// A second router is not taken while the first lives.
	a := labAdvert()
	a.Router = other
	m.Advert(later.Add(time.Second), a)
	if got := m.Learnt().Router; got != router {
		t.Errorf("router %s, want the first one kept", got)
	}
}

// RFC 7559: solicitations until an advert comes, 4 s then doubling, up
// to an hour.
func TestSolicitationBackoff(t *testing.T) {
	m := newMachine(t)
	m.Start(t0)
	var waits []time.Duration
	now := m.Next()
	for range 13 {
		if acts := m.Tick(now); len(acts) != 1 || acts[0].Kind != Solicit {
			t.Fatalf("at %v: %+v, want a solicitation", now, acts)
		}
		next := m.Next()
		waits = append(waits, next.Sub(now))
		now = next
	}
	want := []time.Duration{4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 3600, 3600, 3600}
	for i := range want {
		want[i] *= time.Second
	}
	if !reflect.DeepEqual(waits, want) {
		t.Errorf("waits %v, want %v", waits, want)
	}
	m.Stop()
	if acts := m.Tick(now.Add(time.Hour)); acts != nil {
		t.Errorf("solicited on a link that is down: %+v", acts)
	}
}

// Duplicate address detection: an answer, or another node's probe, for
// the tentative address makes braid form the next one (RFC 7217); its own
// probe looped back, or address resolution, does not; after IDGenRetries
// more, it gives the prefix up.
func TestDuplicateAddressDetection(t *testing.T) {
	m := newMachine(t)
	m.Start(t0)
	first := probed(t, m.Advert(t0, labAdvert()))
	nonce := append([]byte(nil), m.nonce...)
	unspec := netip.IPv6Unspecified()
	ignored := []*advert.Neighbor{
		{Target: first, Source: unspec, Nonce: nonce},                // braid's own probe
		{Target: first, Source: netip.MustParseAddr("fe80::9")},      // address resolution
		{Advertisement: true, Target: addrIn(lab, 7).Addr()},         // another address
		{Target: netip.MustParseAddr("2001:db8::1"), Source: unspec}, // another target
	}
	for _, n := range ignored {
		if acts := m.Neighbor(t0, n); acts != nil || m.Tentative() != first {
			t.Fatalf("%+v made braid move from %s: %+v", n, first, acts)
		}
	}
	seen := []netip.Addr{first}
	now := t0
	for i := range IDGenRetries {
		now = now.Add(100 * time.Millisecond)
		var n *advert.Neighbor
		if i%2 == 0 {
			n = &advert.Neighbor{Advertisement: true, Target: m.Tentative(), Source: netip.MustParseAddr("fe80::9")}
		} else {
			n = &advert.Neighbor{Target: m.Tentative(), Source: unspec, Nonce: []byte{9, 9, 9, 9, 9, 9}}
		}
		next := probed(t, m.Neighbor(now, n))
		if want := addrIn(lab, uint8(i+1)).Addr(); next != want {
			t.Fatalf("after duplicate %d: %s, want RFC 7217's address with counter %d, %s", i+1, next, i+1, want)
		}
		for _, s := range seen {
			if s == next {
				t.Fatalf("formed %s twice", next)
			}
		}
		seen = append(seen, next)
		if !m.Next().Equal(now.Add(RetransTimer)) {
			t.Fatal("DAD did not start over")
		}
	}
	if acts := m.Neighbor(now, &advert.Neighbor{Advertisement: true, Target: m.Tentative()}); acts != nil {
		t.Fatalf("a fifth address: %+v", acts)
	}
	if m.Tentative().IsValid() || m.Problem() == "" {
		t.Fatalf("after %d duplicates: tentative %s, problem %q", IDGenRetries+1, m.Tentative(), m.Problem())
	}
	// The same prefix again: given up. Another: tried.
	if acts := m.Advert(now.Add(time.Second), labAdvert()); acts != nil {
		t.Errorf("tried the prefix given up again: %+v", acts)
	}
	a := labAdvert()
	a.Prefixes[0].Prefix = netip.MustParsePrefix("2001:db8:103::/64")
	if got := probed(t, m.Advert(now.Add(2*time.Second), a)); got != addrIn(a.Prefixes[0].Prefix, 0).Addr() {
		t.Errorf("new prefix: probed %s", got)
	}
	if m.Problem() != "" {
		t.Errorf("problem %q stayed with a new prefix", m.Problem())
	}
}

// DAD interrupted by the link going down probes again when it comes up.
func TestDADAcrossLinkDown(t *testing.T) {
	m := newMachine(t)
	m.Start(t0)
	target := probed(t, m.Advert(t0, labAdvert()))
	m.Stop()
	m.Tick(t0.Add(time.Minute))
	if m.Learnt().Address.IsValid() {
		t.Fatal("an address learnt while the link was down, without DAD's silence")
	}
	later := t0.Add(2 * time.Minute)
	if got := probed(t, m.Start(later)); got != target {
		t.Errorf("probed %s after the link came back, want %s", got, target)
	}
	m.Tick(later.Add(RetransTimer))
	if got := m.Learnt().Address; got.Addr() != target {
		t.Errorf("address %s", got)
	}
}

// Only the first prefix that allows SLAAC forms an address.
func TestFirstAutonomousPrefix(t *testing.T) {
	p := func(s string, a bool, valid, preferred time.Duration) advert.Prefix {
		return advert.Prefix{Prefix: netip.MustParsePrefix(s), OnLink: true, Autonomous: a, Valid: valid, Preferred: preferred}
	}
	a := &advert.Advert{Router: router, RouterLifetime: time.Minute, Prefixes: []advert.Prefix{
		p("2001:db8:1::/64", false, time.Hour, time.Hour),            // no A flag
		p("2001:db8:2::/56", true, time.Hour, time.Hour),             // not a /64
		p("fe80::/64", true, time.Hour, time.Hour),                   // link-local
		p("2001:db8:3::/64", true, time.Hour, 2*time.Hour),           // preferred beyond valid
		p("2001:db8:4::/64", true, 0, 0),                             // valid lifetime zero
		p("2001:db8:5::/64", true, advert.Infinite, advert.Infinite), // this one
		p("2001:db8:6::/64", true, time.Hour, time.Hour),             // a second: ignored
	}}
	m := newMachine(t)
	m.Start(t0)
	target := probed(t, m.Advert(t0, a))
	if want := addrIn(netip.MustParsePrefix("2001:db8:5::/64"), 0).Addr(); target != want {
		t.Fatalf("probed %s, want %s", target, want)
	}
	m.Tick(t0.Add(RetransTimer))
	got := m.Learnt()
	if !got.Valid.IsZero() || !got.Preferred.IsZero() {
		t.Errorf("infinite lifetimes became %v, %v", got.Valid, got.Preferred)
	}
	if next := m.Next(); !next.Equal(t0.Add(time.Minute)) {
		t.Errorf("next = %v: an infinite address never expires, the router does", next)
	}
}

// RFC 4862 5.5.3 e: an advert sets the valid lifetime when it is over two
// hours or beyond what remains; else under two hours remaining are kept,
// and more are cut to two hours.
func TestRefreshValid(t *testing.T) {
	h := time.Hour
	tests := []struct {
		name      string
		remaining time.Duration // 0: infinite
		recv      time.Duration
		want      time.Duration // 0: infinite
	}{
		{"over two hours: taken", 10 * h, 3 * h, 3 * h},
		{"beyond what remains: taken", h, 90 * time.Minute, 90 * time.Minute},
		{"shorter, two hours or less remain: ignored", h, 30 * time.Minute, h},
		{"shorter, more than two hours remain: two hours", 10 * h, h, 2 * h},
		{"zero, more than two hours remain: two hours", 3 * h, 0, 2 * h},
		{"zero, under two hours remain: ignored", 90 * time.Minute, 0, 90 * time.Minute},
		{"shorter than forever: two hours", 0, h, 2 * h},
		{"forever", 3 * h, advert.Infinite, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var cur time.Time
			if tt.remaining != 0 {
				cur = t0.Add(tt.remaining)
			}
			got := refreshValid(t0, cur, tt.recv)
			var want time.Time
			if tt.want != 0 {
				want = t0.Add(tt.want)
			}
			if !got.Equal(want) {
				t.Errorf("refreshValid = %v, want %v", got, want)
			}
		})
	}
	// Through Advert: the preferred lifetime is the advert's, within the
	// valid one.
	m := learnt(t)
	a := labAdvert()
	a.Prefixes[0].Valid, a.Prefixes[0].Preferred = time.Minute, time.Minute
	m.Advert(t0.Add(time.Minute), a)
	if got := m.Learnt(); !got.Valid.Equal(t0.Add(time.Hour)) || !got.Preferred.Equal(t0.Add(2*time.Minute)) {
		t.Errorf("after a short advert: valid %v preferred %v", got.Valid, got.Preferred)
	}
}

// The address goes when its valid lifetime ends; the next advert forms
// it again, through DAD.
func TestAddressExpires(t *testing.T) {
	m := learnt(t)
	end := m.Learnt().Valid
	m.Tick(end)
	if m.Learnt().Address.IsValid() {
		t.Fatal("the address outlived its valid lifetime")
	}
	later := end.Add(time.Second)
	if got := probed(t, m.Advert(later, labAdvert())); got != addrIn(lab, 0).Addr() {
		t.Errorf("probed %s", got)
	}
}

// RFC 8106 5.3.1: lifetimes per server, zero removes, at most MaxRDNSS
// kept (a new one replaces the one that expires first).
func TestResolvers(t *testing.T) {
	m := newMachine(t)
	srv := func(s string) netip.Addr { return netip.MustParseAddr(s) }
	m.Advert(t0, &advert.Advert{Router: router, DNS: []advert.RDNSS{
		{Lifetime: time.Minute, Servers: []netip.Addr{srv("2001:db8::1"), srv("2001:db8::2")}},
		{Lifetime: advert.Infinite, Servers: []netip.Addr{srv("2001:db8::3")}},
	}})
	m.Advert(t0.Add(time.Second), &advert.Advert{Router: router, DNS: []advert.RDNSS{
		{Lifetime: 2 * time.Minute, Servers: []netip.Addr{srv("2001:db8::2"), srv("2001:db8::4")}},
	}})
	want := []DNS{{srv("2001:db8::2"), t0.Add(time.Second + 2*time.Minute)}, {srv("2001:db8::3"), time.Time{}},
		{srv("2001:db8::4"), t0.Add(time.Second + 2*time.Minute)}}
	if got := m.Learnt().DNS; !(Learnt{DNS: got}).Equal(Learnt{DNS: want}) {
		t.Fatalf("resolvers %v, want %v (::1 expired first and made room)", got, want)
	}
	m.Advert(t0.Add(2*time.Second), &advert.Advert{Router: router, DNS: []advert.RDNSS{{Servers: []netip.Addr{srv("2001:db8::3")}}}})
	m.Tick(t0.Add(time.Hour))
	if got := m.Learnt().DNS; len(got) != 0 {
		t.Errorf("resolvers %v, want none: ::3 withdrawn, the others expired", got)
	}
}

// A restart restores what was learnt, minus what expired meanwhile, and
// solicits again.
func TestRestore(t *testing.T) {
	prev := Learnt{Address: addrIn(lab, 0), Valid: t0.Add(time.Hour), Preferred: t0.Add(time.Minute),
		Router: router, RouterExpires: t0.Add(-time.Second),
		DNS: []DNS{{Addr: ns53, Expires: t0.Add(time.Minute)}, {Addr: netip.MustParseAddr("2001:db8::99"), Expires: t0}}}
	m := New(Config{Interface: "wan2", Secret: key, Rand: &middle{}}, prev, t0)
	want := Learnt{Address: prev.Address, Valid: prev.Valid, Preferred: prev.Preferred, DNS: prev.DNS[:1]}
	if got := m.Learnt(); !got.Equal(want) {
		t.Fatalf("restored %+v\nwant %+v", got, want)
	}
	m.Start(t0)
	if acts := m.Tick(m.Next()); len(acts) != 1 || acts[0].Kind != Solicit {
		t.Errorf("no solicitation after a restart: %+v", acts)
	}
	// The restored address is kept, without DAD, when its prefix is
	// advertised again.
	if acts := m.Advert(t0.Add(2*time.Second), labAdvert()); acts != nil {
		t.Errorf("the restored address was probed again: %+v", acts)
	}
	if got := m.Learnt(); got.Address != prev.Address || got.Router != router {
		t.Errorf("after the first advert: %+v", got)
	}
}
