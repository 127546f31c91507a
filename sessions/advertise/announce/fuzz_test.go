package announce

import (
	"net/netip"
	"testing"
	"time"

	"github.com/braid-router/braid/sessions/ra/advert"
)

// FuzzMachine drives a machine with arbitrary sequences of events (time
// passing, adverts due, solicitations, new configurations, pauses, the
// stop) and checks what holds of every advert: the codec writes it; two
// go at least MinDelayBetweenRAs apart; a configured prefix is never
// advertised beyond its limits or its delegation's lifetimes, nor
// preferred beyond its validity; a prefix that left is only advertised
// deprecated, never past the end braid gave hosts; the final advert
// withdraws everything, and nothing follows it.
func FuzzMachine(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 0, 0, 4, 0, 5, 0})
	f.Add([]byte{3, 0, 7, 0, 1, 0, 9, 3, 0, 2, 0, 5, 0})
	f.Add([]byte{2, 2, 2, 0, 0, 0, 6, 0, 4, 0})
	prefixes := []netip.Prefix{static, deleg, netip.MustParsePrefix("fd00:50::/64")}
	servers := []netip.Addr{resolver, upstream}
	f.Fuzz(func(t *testing.T, ops []byte) {
		now := t0
		var cfg Config
		config := func(b byte) Config {
			c := Config{DefaultRouter: b&1 != 0, MaxInterval: 20 * time.Second, MinInterval: 10 * time.Second,
				ValidLimit: 90 * time.Second, PreferredLimit: 60 * time.Second}
			for i, p := range prefixes {
				if b&(2<<i) == 0 {
					continue
				}
				pr := Prefix{Prefix: p}
				if i == 1 {
					pr.ValidUntil = now.Add(time.Duration(b>>4) * 7 * time.Second)
					pr.PreferredUntil = now.Add(time.Duration(b>>5) * 9 * time.Second)
				}
				c.Prefixes = append(c.Prefixes, pr)
			}
			for i, s := range servers {
				if b&(0x10<<i) != 0 {
					c.DNS = append(c.DNS, s)
				}
			}
			return c
		}
		cfg = config(0xff)
		m := New(cfg, seeded(uint64(len(ops))))
		m.Start(now)
		var last time.Time
		held := map[netip.Prefix]time.Time{}
		final := false
		for i := 0; i < len(ops); i++ {
			op := ops[i]
			arg := byte(0)
			if i+1 < len(ops) {
				arg = ops[i+1]
			}
			switch op % 8 {
			case 0, 1: // the next advert
				if n := m.Next(); !n.IsZero() && n.After(now) {
					now = n
				}
			case 2:
				m.Solicited(now)
			case 3:
				cfg = config(arg)
				m.Update(cfg, now)
				i++
			case 4:
				now = now.Add(time.Duration(arg) * time.Second)
				i++
			case 5:
				m.Stop(now)
			case 6:
				m.Pause()
			case 7:
				m.Start(now)
			}
			a := m.Tick(now)
			if a == nil {
				continue
			}
			if final {
				t.Fatalf("an advert after the final one: %+v", a)
			}
			if !last.IsZero() && now.Sub(last) < MinDelayBetweenRAs {
				t.Fatalf("two adverts %v apart", now.Sub(last))
			}
			last = now
			if _, err := advert.Advertisement(a); err != nil {
				t.Fatalf("the codec refuses %+v: %v", a, err)
			}
			final = m.Done()
			if final && a.RouterLifetime != 0 {
				t.Fatalf("final advert with router lifetime %v", a.RouterLifetime)
			}
			for _, d := range a.DNS {
				if final && d.Lifetime != 0 {
					t.Fatalf("final advert names resolvers for %v", d.Lifetime)
				}
			}
			configured := map[netip.Prefix]Prefix{}
			for _, p := range cfg.Prefixes {
				configured[p.Prefix] = p
			}
			for _, p := range a.Prefixes {
				if p.Preferred > p.Valid || !p.OnLink || !p.Autonomous {
					t.Fatalf("prefix %+v", p)
				}
				c, ok := configured[p.Prefix]
				if final || !ok {
					if p.Preferred != 0 || now.Add(p.Valid).After(held[p.Prefix]) {
						t.Fatalf("withdrawn prefix %+v, hosts hold it until %v", p, held[p.Prefix])
					}
					continue
				}
				if p.Valid > 90*time.Second || p.Preferred > 60*time.Second ||
					!c.ValidUntil.IsZero() && now.Add(p.Valid).After(c.ValidUntil) ||
					p.Preferred > 0 && !c.PreferredUntil.IsZero() && now.Add(p.Preferred).After(c.PreferredUntil) {
					t.Fatalf("prefix %+v beyond its bounds %+v", p, c)
				}
				if end := now.Add(p.Valid); end.After(held[p.Prefix]) {
					held[p.Prefix] = end
				}
			}
		}
	})
}
