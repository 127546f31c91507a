package facts

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)

func lease(uplink, addr string) *Lease4 {
	return &Lease4{Uplink: uplink, Address: netip.MustParsePrefix(addr), Gateway: netip.MustParsePrefix(addr).Masked().Addr().Next()}
}

func TestLookupsWalkOwnersInOrder(t *testing.T) {
	s := Set{Slots: map[string]Slot{
		"dhcp4/b": {Facts: []Fact{{Lease4: lease("fibre", "10.0.0.9/24")}}},
		"dhcp4/a": {Facts: []Fact{{Lease4: lease("fibre", "10.0.0.2/24")}, {Health: &Health{Uplink: "lte", Healthy: false}}}},
		"l2tp/x":  {Facts: []Fact{{Link: &Link{For: "tunnel/sixpe", Name: "sixpe"}}, {Prefix: &Prefix{For: "tunnel/sixpe", Prefix: netip.MustParsePrefix("2001:db8:e000::/56")}}}},
	}}
	l, ok := s.Lease4("fibre")
	if !ok || l.Address.String() != "10.0.0.2/24" {
		t.Errorf("Lease4(fibre) = %v %v, want the first owner's 10.0.0.2/24", l, ok)
	}
	if _, ok := s.Lease4("lte"); ok {
		t.Error("Lease4(lte): found a lease nobody reported")
	}
	if h, known := s.Healthy("lte"); !known || h {
		t.Errorf("Healthy(lte) = %v %v, want false known", h, known)
	}
	if _, known := s.Healthy("fibre"); known {
		t.Error("Healthy(fibre): a verdict nobody reported")
	}
	if lk, ok := s.Link("tunnel/sixpe"); !ok || lk.Name != "sixpe" {
		t.Errorf("Link = %v %v", lk, ok)
	}
	if p, ok := s.Prefix("tunnel/sixpe"); !ok || p.Prefix.Bits() != 56 {
		t.Errorf("Prefix = %v %v", p, ok)
	}
	entries := s.Entries()
	if len(entries) != 5 || entries[0].Owner != "dhcp4/a" || entries[len(entries)-1].Owner != "l2tp/x" {
		t.Errorf("Entries not sorted by owner: %+v", entries)
	}
}

func TestPruned(t *testing.T) {
	s := Set{Version: 7, Slots: map[string]Slot{
		"dhcp4/fibre":  {Facts: []Fact{{Lease4: lease("fibre", "10.0.0.2/24"), Expires: t0.Add(time.Hour)}}},
		"dhcp4/old":    {Facts: []Fact{{Lease4: lease("old", "10.1.0.2/24"), Expires: t0}}},
		"health/fibre": {Facts: []Fact{{Health: &Health{Uplink: "fibre", Healthy: true}, Process: true}}},
	}}
	tests := []struct {
		name      string
		now       time.Time
		restarted bool
		want      []string
	}{
		{"running, before any expiry", t0.Add(-time.Second), false, []string{"dhcp4/fibre", "dhcp4/old", "health/fibre"}},
		{"running, at the old lease's end", t0, false, []string{"dhcp4/fibre", "health/fibre"}},
		{"restarted: process-bound facts go", t0.Add(-time.Second), true, []string{"dhcp4/fibre", "dhcp4/old"}},
		{"restarted after every lease ended", t0.Add(2 * time.Hour), true, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, dropped := s.Pruned(tt.now, tt.restarted)
			if owners := got.Owners(); strings.Join(owners, ",") != strings.Join(tt.want, ",") {
				t.Errorf("owners %v, want %v", owners, tt.want)
			}
			if dropped != (len(tt.want) != 3) {
				t.Errorf("dropped = %v", dropped)
			}
			if got.Version != 7 {
				t.Errorf("version %d, want 7 (pruning is not a new version by itself)", got.Version)
			}
		})
	}
	if next := s.NextExpiry(); !next.Equal(t0) {
		t.Errorf("NextExpiry = %v, want %v", next, t0)
	}
}

func TestHubPublishVersionsPersistsAndNotifies(t *testing.T) {
	dir := t.TempDir()
	now := t0
	h, err := Open(Options{Dir: dir, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	ch, cancel := h.Subscribe()
	defer cancel()
	ch2, cancel2 := h.Subscribe()
	defer cancel2()

	leaseFact := Fact{Lease4: lease("fibre", "10.0.0.2/24"), Expires: t0.Add(time.Hour)}
	if err := h.Publish("dhcp4/fibre", []Fact{leaseFact}); err != nil {
		t.Fatal(err)
	}
	for i, c := range []<-chan struct{}{ch, ch2} {
		select {
		case <-c:
		default:
			t.Errorf("subscriber %d was not told", i)
		}
	}
	if v := h.Set().Version; v != 1 {
		t.Errorf("version %d, want 1", v)
	}
	// The same facts again: no change.
	if err := h.Publish("dhcp4/fibre", []Fact{leaseFact}); err != nil {
		t.Fatal(err)
	}
	if v := h.Set().Version; v != 1 {
		t.Errorf("republishing the same facts made version %d", v)
	}
	info, err := os.Stat(filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	// A process-bound fact changes the version but not the file.
	if err := h.Publish("health/fibre", []Fact{{Health: &Health{Uplink: "fibre", Healthy: false}, Process: true}}); err != nil {
		t.Fatal(err)
	}
	if v := h.Set().Version; v != 2 {
		t.Errorf("version %d, want 2", v)
	}
	info2, _ := os.Stat(filepath.Join(dir, FileName))
	if !info2.ModTime().Equal(info.ModTime()) || info2.Size() != info.Size() {
		t.Error("a process-bound fact was written to disk")
	}
	b, _ := os.ReadFile(filepath.Join(dir, FileName))
	if strings.Contains(string(b), "health") {
		t.Errorf("the file holds a process-bound fact:\n%s", b)
	}

	// A restart reads the lease back, not the verdict.
	h2, err := Open(Options{Dir: dir, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	defer h2.Close()
	s := h2.Set()
	if _, ok := s.Lease4("fibre"); !ok {
		t.Error("the lease did not survive a restart")
	}
	if _, known := s.Healthy("fibre"); known {
		t.Error("a health verdict survived a restart")
	}
	// Nor after the lease's end.
	now = t0.Add(2 * time.Hour)
	set, warn, err := Load(dir, now)
	if err != nil || warn != nil {
		t.Fatal(err, warn)
	}
	if _, ok := set.Lease4("fibre"); ok {
		t.Error("Load returned an expired lease")
	}

	// Removing a slot.
	if err := h.Publish("dhcp4/fibre", nil); err != nil {
		t.Fatal(err)
	}
	if _, ok := h.Set().Lease4("fibre"); ok {
		t.Error("the lease is still there after its owner published none")
	}
}

func TestHubExpiresFactsOnItsOwn(t *testing.T) {
	h, err := Open(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	ch, cancel := h.Subscribe()
	defer cancel()
	if err := h.Publish("dhcp4/fibre", []Fact{{Lease4: lease("fibre", "10.0.0.2/24"), Expires: time.Now().Add(20 * time.Millisecond)}}); err != nil {
		t.Fatal(err)
	}
	// What the hub holds, read without Set (which prunes): the lease
	// must go with nobody asking. The publish and the expiry may come
	// as one notification (a busy machine runs the timer before the
	// first read), so the state is checked before each wait.
	held := func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		_, ok := h.set.Lease4("fibre")
		return ok
	}
	ctx, cancelCtx := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancelCtx()
	for held() {
		select {
		case <-ch:
		case <-ctx.Done():
			t.Fatal("the expired lease was never dropped")
		}
	}
}

func TestHubCorruptFileIsDroppedWithAWarning(t *testing.T) {
	for name, content := range map[string]string{
		"truncated":       `{"version": 3, "slots": {"dhcp4/fibre": {"facts": [{"lease4": {"uplink": "fib`,
		"two kinds":       `{"version": 3, "slots": {"x": {"facts": [{"lease4": {"uplink": "a"}, "health": {"uplink": "a"}}]}}}`,
		"peer and health": `{"version": 3, "slots": {"x": {"facts": [{"peer": {"address": "a:1"}, "health": {"uplink": "a"}}]}}}`,
		"no kind":         `{"version": 3, "slots": {"x": {"facts": [{}]}}}`,
		"bad address":     `{"version": 3, "slots": {"x": {"facts": [{"lease4": {"uplink": "a", "address": "300.1.1.1/24"}}]}}}`,
		"not an object":   `[1, 2]`,
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, FileName), []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			set, warn, err := Load(dir, t0)
			if err != nil {
				t.Fatalf("Load: %v (a corrupt file is a warning, not an error)", err)
			}
			if warn == nil || !strings.Contains(warn.Error(), FileName) {
				t.Errorf("warning %v does not name the file", warn)
			}
			if len(set.Slots) != 0 {
				t.Errorf("facts from a corrupt file: %+v", set)
			}
			if _, err := Open(Options{Dir: dir}); err != nil {
				t.Errorf("Open: %v", err)
			}
		})
	}
}

func TestPublishRejectsAFactOfNoKind(t *testing.T) {
	h, _ := Open(Options{})
	defer h.Close()
	if err := h.Publish("x/y", []Fact{{}}); err == nil {
		t.Error("a fact with no kind was accepted")
	}
}

// What an uplink learns from router advertisements is two facts that
// expire apart: the default router with the router lifetime, the address
// with the prefix's valid lifetime. Pruning the first leaves the second.
func TestRouterAdvertFactsExpireApart(t *testing.T) {
	addr := Fact{SLAAC: &SLAAC{Uplink: "isp2", Link: "wan2", Address: netip.MustParsePrefix("2001:db8:102::1234/64"),
		Preferred: t0.Add(30 * time.Minute), DNS: []RDNSS{{Addr: netip.MustParseAddr("2001:db8:102::53"), Expires: t0.Add(time.Minute)}}},
		Expires: t0.Add(time.Hour)}
	router := Fact{Router6: &Router6{Uplink: "isp2", Router: netip.MustParseAddr("fe80::1"), Link: "wan2"}, Expires: t0.Add(90 * time.Second)}
	s := Set{Slots: map[string]Slot{"ra/isp2": {Facts: []Fact{addr, router}}}}
	if err := s.check(); err != nil {
		t.Fatal(err)
	}
	if a, ok := s.SLAAC("isp2"); !ok || a.Address != addr.SLAAC.Address {
		t.Errorf("SLAAC(isp2) = %v %v", a, ok)
	}
	if r, ok := s.Router6("isp2"); !ok || r.Router != router.Router6.Router || r.Link != "wan2" {
		t.Errorf("Router6(isp2) = %v %v", r, ok)
	}
	if _, ok := s.Router6("isp1"); ok {
		t.Error("Router6(isp1): a router nobody reported")
	}
	if next := s.NextExpiry(); !next.Equal(router.Expires) {
		t.Errorf("NextExpiry = %v, want the router lifetime's end %v", next, router.Expires)
	}
	later, dropped := s.Pruned(t0.Add(2*time.Minute), false)
	if !dropped {
		t.Fatal("the router's lifetime ended and nothing was dropped")
	}
	if _, ok := later.Router6("isp2"); ok {
		t.Error("the router outlived its lifetime")
	}
	if _, ok := later.SLAAC("isp2"); !ok {
		t.Error("the address went with the router: it holds until its valid lifetime ends")
	}
	for _, e := range s.Entries() {
		if e.Subject != "uplink/isp2" || (e.Kind != "slaac" && e.Kind != "router6") {
			t.Errorf("entry %+v", e)
		}
	}
	// Clones do not share the resolvers.
	c := s.Clone()
	c.Slots["ra/isp2"].Facts[0].SLAAC.DNS[0].Addr = netip.MustParseAddr("2001:db8::1")
	if s.Slots["ra/isp2"].Facts[0].SLAAC.DNS[0].Addr != netip.MustParseAddr("2001:db8:102::53") {
		t.Error("a clone shares its SLAAC fact's resolvers with the original")
	}
}

func TestInterfaces(t *testing.T) {
	s := Set{Slots: map[string]Slot{
		"kernel/links": {Facts: []Fact{
			{Interface: &Interface{Name: "wan1", Present: true, Index: 3, MAC: "02:00:00:00:00:01", Carrier: true}, Process: true},
			{Interface: &Interface{Name: "wwan0"}, Process: true},
		}},
		"dhcp4/fibre": {Facts: []Fact{{Lease4: lease("fibre", "10.0.0.2/24")}}},
	}}
	if i, ok := s.Interface("wan1"); !ok || !i.Present || i.Index != 3 || !i.Carrier {
		t.Errorf("Interface(wan1) = %+v %v", i, ok)
	}
	// Observed missing is a fact; never observed is none.
	if i, ok := s.Interface("wwan0"); !ok || i.Present {
		t.Errorf("Interface(wwan0) = %+v %v, want observed missing", i, ok)
	}
	if _, ok := s.Interface("eth9"); ok {
		t.Error("Interface(eth9): a link nobody observed")
	}
	if e := s.Entries()[1]; e.Kind != "interface" || e.Subject != "interface/wan1" {
		t.Errorf("entry %+v, want kind interface, subject interface/wan1", e)
	}

	// With replaces one slot, and leaves the original alone.
	w := s.With("kernel/links", []Fact{{Interface: &Interface{Name: "wwan0", Present: true, Index: 9}, Process: true}})
	if i, ok := w.Interface("wwan0"); !ok || !i.Present || i.Index != 9 {
		t.Errorf("after With: Interface(wwan0) = %+v %v", i, ok)
	}
	if _, ok := w.Interface("wan1"); ok {
		t.Error("With kept a fact of the slot it replaced")
	}
	if _, ok := w.Lease4("fibre"); !ok {
		t.Error("With dropped another owner's facts")
	}
	if i, _ := s.Interface("wwan0"); i.Present {
		t.Error("With changed the set it was called on")
	}
	if w := s.With("kernel/links", nil); len(w.Slots) != 1 {
		t.Errorf("With(owner, none) left slots %v", w.Owners())
	}
	c := s.Clone()
	c.Slots["kernel/links"].Facts[0].Interface.Present = false
	if i, _ := s.Interface("wan1"); !i.Present {
		t.Error("Clone shares Interface facts")
	}
	// An interface fact is one kind of fact: the hub accepts it.
	h, err := Open(Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Publish("kernel/links", s.Slots["kernel/links"].Facts); err != nil {
		t.Fatal(err)
	}
}

// The aggregation peer's verdict is looked up by the peer's address: a
// verdict on another address says nothing of the spec's peer. It is one
// kind of fact, bound to the process, and a clone shares nothing.
func TestPeer(t *testing.T) {
	const addr = "203.0.113.7:65101"
	verdict := Fact{Peer: &Peer{Address: addr, Healthy: true, Uplinks: []string{"isp1", "isp2"}}, Process: true}
	s := Set{Slots: map[string]Slot{"proxy/aggregation": {Facts: []Fact{verdict}}}}
	if err := s.check(); err != nil {
		t.Fatal(err)
	}
	if p, ok := s.Peer(addr); !ok || !p.Healthy || len(p.Uplinks) != 2 {
		t.Errorf("Peer(%s) = %+v %v", addr, p, ok)
	}
	if _, ok := s.Peer("203.0.113.8:65101"); ok {
		t.Error("a verdict on another peer counts for this one")
	}
	if e := s.Entries()[0]; e.Kind != "peer" || e.Subject != "peer/"+addr {
		t.Errorf("entry %+v, want kind peer, subject peer/%s", e, addr)
	}
	c := s.Clone()
	c.Slots["proxy/aggregation"].Facts[0].Peer.Uplinks[0] = "lte"
	c.Slots["proxy/aggregation"].Facts[0].Peer.Healthy = false
	if p, _ := s.Peer(addr); p.Uplinks[0] != "isp1" || !p.Healthy {
		t.Error("a clone shares its peer fact with the original")
	}
	if d := s.Durable(); len(d.Slots) != 0 {
		t.Errorf("a process-bound peer verdict is durable: %+v", d)
	}
	two := Fact{Peer: verdict.Peer, Health: &Health{Uplink: "isp1"}}
	if err := (Set{Slots: map[string]Slot{"x": {Facts: []Fact{two}}}}).check(); err == nil {
		t.Error("a fact with a peer verdict and a health verdict was accepted")
	}
	h, err := Open(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if err := h.Publish("proxy/aggregation", []Fact{verdict}); err != nil {
		t.Fatal(err)
	}
	if _, ok := h.Set().Peer(addr); !ok {
		t.Error("the hub lost the peer verdict")
	}
}
