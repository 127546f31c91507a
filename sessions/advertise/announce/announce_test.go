package announce

import (
	"math/rand/v2"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/mdlayher/ndp"

	"github.com/braid-router/braid/sessions/ra/advert"
)

var (
	t0       = time.Date(2026, 12, 5, 20, 0, 0, 0, time.UTC)
	static   = netip.MustParsePrefix("2001:db8:10::/64")
	deleg    = netip.MustParsePrefix("2001:db8:e000:1201::/64")
	resolver = netip.MustParseAddr("2001:db8:10::1")
	upstream = netip.MustParseAddr("2001:db8:e000::53")
)

func seeded(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, seed)) }

// lanConfig is a LAN with a static /64, a /64 of a delegated prefix
// valid for another hour and preferred for another half hour, braid's
// resolver, the tunnel's MTU, a default router.
func lanConfig(now time.Time) Config {
	return Config{
		Prefixes: []Prefix{
			{Prefix: static},
			{Prefix: deleg, ValidUntil: now.Add(time.Hour), PreferredUntil: now.Add(30 * time.Minute)},
		},
		DNS:           []netip.Addr{resolver},
		MTU:           1460,
		DefaultRouter: true,
	}
}

// wire checks that the codec writes a, and that it reads back the same.
func wire(t *testing.T, a *advert.Advert) {
	t.Helper()
	msg, err := advert.Advertisement(a)
	if err != nil {
		t.Fatalf("the codec refuses %+v: %v", a, err)
	}
	b, err := ndp.MarshalMessage(msg)
	if err != nil {
		t.Fatal(err)
	}
	m, err := advert.Parse(b, netip.MustParseAddr("fe80::1"), advert.HopLimit)
	if err != nil || m.Advert == nil {
		t.Fatalf("braid's advert does not read back: %v", err)
	}
	got := *m.Advert
	got.Router = netip.Addr{}
	if !reflect.DeepEqual(&got, a) {
		t.Fatalf("read back\n%+v\nwant\n%+v", got, *a)
	}
}

// The first advert goes at once and says what RFC 4861 6.2.1, RFC 9096
// and RFC 8106 give: hop limit 64, a router lifetime of three
// MaxRtrAdvIntervals, the static /64 at RFC 9096's limits, the delegated
// one at the rest of its own lifetimes, the resolver for three
// MaxRtrAdvIntervals, the MTU.
func TestFirstAdvert(t *testing.T) {
	m := New(lanConfig(t0), seeded(1))
	if a := m.Tick(t0); a != nil || !m.Next().IsZero() {
		t.Fatalf("before Start: %+v, next %v", a, m.Next())
	}
	m.Start(t0)
	if m.Next() != t0 {
		t.Fatalf("first advert due %v, want at once", m.Next())
	}
	a := m.Tick(t0.Add(10 * time.Millisecond))
	want := &advert.Advert{
		HopLimit: 64, RouterLifetime: 1800 * time.Second, MTU: 1460,
		Prefixes: []advert.Prefix{
			{Prefix: static, OnLink: true, Autonomous: true, Valid: 5400 * time.Second, Preferred: 2700 * time.Second},
			{Prefix: deleg, OnLink: true, Autonomous: true, Valid: 3599 * time.Second, Preferred: 1799 * time.Second},
		},
		DNS: []advert.RDNSS{{Lifetime: 1800 * time.Second, Servers: []netip.Addr{resolver}}},
	}
	if !reflect.DeepEqual(a, want) {
		t.Fatalf("first advert\n%+v\nwant\n%+v", a, want)
	}
	wire(t, a)
	if a := m.Tick(t0.Add(time.Second)); a != nil {
		t.Errorf("a second advert a second later: %+v", a)
	}
}

// A delegated prefix is never advertised beyond its own lifetimes:
// preferred 0 once its preferred lifetime has ended, and gone once its
// valid lifetime has (hosts lost it with the lifetime braid gave).
func TestDelegatedLifetimes(t *testing.T) {
	tests := []struct {
		name                string
		valid, preferred    time.Duration // from now; 0: not bounded
		wantValid, wantPref time.Duration
		wantPrefix          bool
	}{
		{"longer than the limits", 30 * 24 * time.Hour, 7 * 24 * time.Hour, 5400 * time.Second, 2700 * time.Second, true},
		{"forever (no bounds)", 0, 0, 5400 * time.Second, 2700 * time.Second, true},
		{"shorter", 1000 * time.Second, 400 * time.Second, 1000 * time.Second, 400 * time.Second, true},
		{"preferred ended", 1000 * time.Second, -time.Second, 1000 * time.Second, 0, true},
		{"preferred longer than valid", 100 * time.Second, 200 * time.Second, 100 * time.Second, 100 * time.Second, true},
		{"a fraction of a second: whole seconds", 1500 * time.Millisecond, 900 * time.Millisecond, time.Second, 0, true},
		{"valid ended", -time.Second, -time.Second, 0, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := Prefix{Prefix: deleg}
			if tt.valid != 0 {
				p.ValidUntil = t0.Add(tt.valid)
			}
			if tt.preferred != 0 {
				p.PreferredUntil = t0.Add(tt.preferred)
			}
			m := New(Config{Prefixes: []Prefix{p}, DefaultRouter: true}, seeded(2))
			m.Start(t0)
			a := m.Tick(t0)
			if !tt.wantPrefix {
				if len(a.Prefixes) != 0 {
					t.Fatalf("an expired prefix advertised: %+v", a.Prefixes)
				}
				return
			}
			want := []advert.Prefix{{Prefix: deleg, OnLink: true, Autonomous: true, Valid: tt.wantValid, Preferred: tt.wantPref}}
			if !reflect.DeepEqual(a.Prefixes, want) {
				t.Fatalf("prefixes %+v, want %+v", a.Prefixes, want)
			}
			wire(t, a)
		})
	}
}

// RFC 4861 6.2.4: the first three adverts at most 16 s apart, then at
// random between MinRtrAdvInterval and MaxRtrAdvInterval, never two
// within MIN_DELAY_BETWEEN_RAS.
func TestSchedule(t *testing.T) {
	for seed := range uint64(200) {
		m := New(Config{Prefixes: []Prefix{{Prefix: static}}, DefaultRouter: true}, seeded(seed))
		m.Start(t0)
		now := t0
		var gaps []time.Duration
		for range 8 {
			if a := m.Tick(now); a == nil {
				t.Fatalf("seed %d: nothing due at %v", seed, now)
			}
			if m.Tick(now) != nil {
				t.Fatalf("seed %d: two adverts at once", seed)
			}
			gaps = append(gaps, m.Next().Sub(now))
			now = m.Next()
		}
		for i, g := range gaps {
			lo, hi := 200*time.Second, 600*time.Second
			if i < MaxInitialAdverts-1 {
				lo, hi = MinDelayBetweenRAs, MaxInitialInterval
			}
			if g < lo || g > hi {
				t.Fatalf("seed %d: gap %d is %v, want %v to %v (gaps %v)", seed, i, g, lo, hi, gaps)
			}
		}
	}
}

// A change goes out at once, or MIN_DELAY_BETWEEN_RAS after the last
// advert, and is followed by fast adverts again.
func TestUpdateAdvertisesAtOnce(t *testing.T) {
	m := New(Config{Prefixes: []Prefix{{Prefix: static}}, DefaultRouter: true}, seeded(3))
	m.Start(t0)
	for now := t0; m.Tick(now) != nil || now == t0; now = m.Next() {
		if now.Sub(t0) > time.Hour {
			break
		}
	}
	last := m.last
	m.Update(Config{Prefixes: []Prefix{{Prefix: static}, {Prefix: deleg}}, DefaultRouter: true}, last.Add(time.Second))
	if want := last.Add(MinDelayBetweenRAs); m.Next() != want {
		t.Fatalf("a change a second after an advert is due %v after it, want %v", m.Next().Sub(last), MinDelayBetweenRAs)
	}
	a := m.Tick(m.Next())
	if len(a.Prefixes) != 2 {
		t.Fatalf("after the change: %+v", a.Prefixes)
	}
	if g := m.Next().Sub(m.last); g > MaxInitialInterval {
		t.Errorf("the advert after a change is %v later, want fast (at most %v)", g, MaxInitialInterval)
	}
	m.Update(Config{Prefixes: []Prefix{{Prefix: static}}}, m.last.Add(time.Minute))
	if m.Next() != m.last.Add(time.Minute) {
		t.Errorf("a change a minute after the last advert is due at %v, want at once", m.Next())
	}
}

// RFC 4861 6.2.6: an answer within MAX_RA_DELAY_TIME, or
// MIN_DELAY_BETWEEN_RAS after the last advert plus that delay; an advert
// already due sooner answers.
func TestSolicited(t *testing.T) {
	for seed := range uint64(100) {
		m := New(Config{Prefixes: []Prefix{{Prefix: static}}, DefaultRouter: true}, seeded(seed))
		m.Start(t0)
		m.Tick(t0)
		// One second after the first advert: after the rate limit.
		m.Solicited(t0.Add(time.Second))
		if d := m.Next().Sub(t0); d < MinDelayBetweenRAs || d > MinDelayBetweenRAs+MaxRADelay {
			t.Fatalf("seed %d: answer %v after the last advert, want %v to %v", seed, d, MinDelayBetweenRAs, MinDelayBetweenRAs+MaxRADelay)
		}
		at := m.Next()
		m.Tick(at)
		m.Tick(m.Next())
		m.Tick(m.Next())
		// After the fast adverts, an hour-long quiet: an answer within
		// half a second.
		now := m.last.Add(10 * time.Second)
		m.Solicited(now)
		if d := m.Next().Sub(now); d < 0 || d > MaxRADelay {
			t.Fatalf("seed %d: answer %v after the solicitation, want at most %v", seed, d, MaxRADelay)
		}
		// Another solicitation: the one already due answers it, unless
		// its own delay is shorter.
		due := m.Next()
		m.Solicited(now.Add(time.Millisecond))
		if m.Next().After(due) || m.Next().Before(now.Add(time.Millisecond)) {
			t.Fatalf("seed %d: a second solicitation moved the answer from %v to %v", seed, due, m.Next())
		}
	}
	if m := New(Config{}, seeded(1)); true {
		m.Solicited(t0)
		if !m.Next().IsZero() {
			t.Error("a solicitation before Start scheduled an advert")
		}
	}
}

// A prefix that leaves is advertised deprecated (preferred 0) with what
// is left of the longest valid lifetime braid gave it, until that has
// run out; a resolver that leaves is advertised with lifetime 0 as long
// as hosts may hold it; a prefix that comes back is advertised again.
func TestWithdrawn(t *testing.T) {
	cfg := Config{Prefixes: []Prefix{{Prefix: static}, {Prefix: deleg}}, DNS: []netip.Addr{resolver}, DefaultRouter: true}
	m := New(cfg, seeded(4))
	m.Start(t0)
	m.Tick(t0)
	later := t0.Add(1000 * time.Second)
	m.Tick(later) // renews both to 5400 s from later
	now := later.Add(10 * time.Second)
	m.Update(Config{Prefixes: []Prefix{{Prefix: static}}, DNS: []netip.Addr{upstream}, DefaultRouter: true}, now)
	a := m.Tick(now)
	want := []advert.Prefix{
		{Prefix: static, OnLink: true, Autonomous: true, Valid: 5400 * time.Second, Preferred: 2700 * time.Second},
		{Prefix: deleg, OnLink: true, Autonomous: true, Valid: 5390 * time.Second, Preferred: 0},
	}
	if !reflect.DeepEqual(a.Prefixes, want) {
		t.Fatalf("after the delegated prefix left:\n%+v\nwant\n%+v", a.Prefixes, want)
	}
	wantDNS := []advert.RDNSS{{Lifetime: 1800 * time.Second, Servers: []netip.Addr{upstream}}, {Lifetime: 0, Servers: []netip.Addr{resolver}}}
	if !reflect.DeepEqual(a.DNS, wantDNS) {
		t.Fatalf("resolvers %+v, want %+v", a.DNS, wantDNS)
	}
	wire(t, a)
	if a.RouterLifetime != 1800*time.Second {
		t.Errorf("router lifetime %v", a.RouterLifetime)
	}
	// Once the resolver's lifetime has run out, it is no longer named;
	// once the prefix's has, neither is it.
	a = m.Tick(later.Add(1800 * time.Second))
	if len(a.DNS) != 1 || len(a.Prefixes) != 2 || a.Prefixes[1].Valid != 3600*time.Second {
		t.Errorf("half an hour later: %+v", a)
	}
	a = m.Tick(later.Add(5400 * time.Second))
	if len(a.Prefixes) != 1 || a.Prefixes[0].Prefix != static {
		t.Errorf("after its valid lifetime: %+v", a.Prefixes)
	}
	// Back again: advertised as any other.
	now = m.last.Add(time.Minute)
	m.Update(cfg, now)
	a = m.Tick(now)
	if len(a.Prefixes) != 2 || a.Prefixes[1].Preferred != 2700*time.Second {
		t.Errorf("the prefix back: %+v", a.Prefixes)
	}
}

// RFC 4861 6.2.5: the final advert, as soon as the rate limit allows,
// has a router lifetime of 0, every prefix deprecated with what hosts
// may hold of it, every resolver withdrawn; nothing follows it. A
// machine that never advertised is done at once.
func TestFinal(t *testing.T) {
	m := New(lanConfig(t0), seeded(5))
	m.Start(t0)
	m.Tick(t0)
	m.Stop(t0.Add(time.Second))
	if m.Next() != t0.Add(MinDelayBetweenRAs) || m.Done() {
		t.Fatalf("final advert due %v (done %v), want %v", m.Next(), m.Done(), t0.Add(MinDelayBetweenRAs))
	}
	m.Solicited(t0.Add(2 * time.Second))
	m.Update(lanConfig(t0), t0.Add(2*time.Second))
	a := m.Tick(t0.Add(MinDelayBetweenRAs))
	want := &advert.Advert{
		HopLimit: 64, MTU: 1460,
		Prefixes: []advert.Prefix{
			{Prefix: static, OnLink: true, Autonomous: true, Valid: 5397 * time.Second},
			{Prefix: deleg, OnLink: true, Autonomous: true, Valid: 3597 * time.Second},
		},
		DNS: []advert.RDNSS{{Lifetime: 0, Servers: []netip.Addr{resolver}}},
	}
	if !reflect.DeepEqual(a, want) {
		t.Fatalf("final advert\n%+v\nwant\n%+v", a, want)
	}
	wire(t, a)
	if !m.Done() || !m.Next().IsZero() || m.Tick(t0.Add(time.Hour)) != nil {
		t.Error("something after the final advert")
	}
	m.Start(t0.Add(time.Hour))
	if !m.Next().IsZero() {
		t.Error("Start after Stop scheduled an advert")
	}

	quiet := New(lanConfig(t0), seeded(6))
	quiet.Stop(t0)
	if !quiet.Done() || quiet.Tick(t0) != nil {
		t.Error("a machine that never advertised has a final advert")
	}
}

// Paused, the machine sends nothing; started again, it advertises at once
// and still deprecates what hosts hold.
func TestPause(t *testing.T) {
	m := New(Config{Prefixes: []Prefix{{Prefix: static}}, DefaultRouter: true}, seeded(7))
	m.Start(t0)
	m.Tick(t0)
	m.Pause()
	m.Solicited(t0.Add(time.Minute))
	if !m.Next().IsZero() || m.Tick(t0.Add(time.Hour)) != nil {
		t.Fatal("adverts while paused")
	}
	m.Update(Config{DefaultRouter: true}, t0.Add(time.Minute))
	if !m.Next().IsZero() {
		t.Fatal("an update while paused scheduled an advert")
	}
	now := t0.Add(10 * time.Minute)
	m.Start(now)
	a := m.Tick(now)
	if len(a.Prefixes) != 1 || a.Prefixes[0].Preferred != 0 || a.Prefixes[0].Valid != 4800*time.Second {
		t.Errorf("after the pause: %+v", a.Prefixes)
	}
}

// No default route: a router lifetime of 0, the prefixes as usual.
func TestNotADefaultRouter(t *testing.T) {
	cfg := lanConfig(t0)
	cfg.DefaultRouter = false
	m := New(cfg, seeded(8))
	m.Start(t0)
	a := m.Tick(t0)
	if a.RouterLifetime != 0 || len(a.Prefixes) != 2 || a.Prefixes[0].Preferred == 0 {
		t.Errorf("%+v", a)
	}
}

func TestCheck(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{"defaults", lanConfig(t0), ""},
		{"the tests' fast intervals", Config{MaxInterval: 4 * time.Second, MinInterval: 3 * time.Second}, ""},
		{"MaxRtrAdvInterval under 4 s", Config{MaxInterval: 3 * time.Second}, "MaxRtrAdvInterval"},
		{"MaxRtrAdvInterval over 1800 s", Config{MaxInterval: 1801 * time.Second}, "MaxRtrAdvInterval"},
		{"MinRtrAdvInterval over 3/4 of Max", Config{MaxInterval: 8 * time.Second, MinInterval: 7 * time.Second}, "MinRtrAdvInterval"},
		{"preferred limit over valid", Config{ValidLimit: time.Minute, PreferredLimit: time.Hour}, "limits"},
		{"a /48", Config{Prefixes: []Prefix{{Prefix: netip.MustParsePrefix("2001:db8::/48")}}}, "/64"},
		{"host bits", Config{Prefixes: []Prefix{{Prefix: netip.MustParsePrefix("2001:db8::1/64")}}}, "/64"},
		{"IPv4", Config{Prefixes: []Prefix{{Prefix: netip.MustParsePrefix("10.0.0.0/24")}}}, "/64"},
		{"twice", Config{Prefixes: []Prefix{{Prefix: static}, {Prefix: static}}}, "twice"},
		{"a multicast resolver", Config{DNS: []netip.Addr{netip.MustParseAddr("ff02::1")}}, "resolver"},
		{"an IPv4 resolver", Config{DNS: []netip.Addr{netip.MustParseAddr("10.0.0.1")}}, "resolver"},
		{"MTU 1000", Config{MTU: 1000}, "MTU"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Check()
			if (err == nil) != (tt.wantErr == "") || err != nil && !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Check = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

// An advert with nothing to say (no prefix, no resolver, not a default
// router: the delegated prefix has not come yet) is not sent; the first
// configuration with something goes out at once.
func TestNothingToSay(t *testing.T) {
	m := New(Config{}, seeded(9))
	m.Start(t0)
	if a := m.Tick(t0); a != nil {
		t.Fatalf("an empty advert: %+v", a)
	}
	if m.Next().IsZero() {
		t.Fatalf("next look at %v", m.Next())
	}
	now := t0.Add(time.Second)
	m.Update(Config{Prefixes: []Prefix{{Prefix: static}}}, now)
	if a := m.Tick(now); a == nil || len(a.Prefixes) != 1 {
		t.Fatalf("the first prefix: %+v", a)
	}
	m.Stop(now.Add(time.Hour))
	if a := m.Tick(now.Add(time.Hour)); a == nil || a.Prefixes[0].Preferred != 0 {
		t.Errorf("final advert %+v", a)
	}
}
