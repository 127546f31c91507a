package leases

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

const (
	a = "02:00:00:00:00:0a"
	b = "02:00:00:00:00:0b"
	c = "02:00:00:00:00:0c"
	s = "02:00:00:00:00:05" // has a static lease
)

var t0 = time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)

func testConfig() Config {
	return Config{
		Server:    netip.MustParseAddr("192.168.1.1"),
		Subnet:    netip.MustParsePrefix("192.168.1.0/24"),
		First:     netip.MustParseAddr("192.168.1.100"),
		Last:      netip.MustParseAddr("192.168.1.102"),
		Reserved:  []netip.Addr{netip.MustParseAddr("192.168.1.1")},
		Static:    []Static{{MAC: s, Addr: netip.MustParseAddr("192.168.1.10"), Hostname: "nas"}},
		LeaseTime: time.Hour,
	}
}

// step is one message to the table: op is discover, select (REQUEST
// with option 54 server), reboot (REQUEST with option 50 alone), renew
// (REQUEST with ciaddr), release or decline; want is the offered address
// or "none" for discover, "ACK ADDR", "NAK" or "ignore" for requests.
type step struct {
	at     time.Duration
	op     string
	mac    string
	addr   string
	server string
	want   string
}

func addr(s string) netip.Addr {
	if s == "" {
		return netip.Addr{}
	}
	return netip.MustParseAddr(s)
}

func run(t *testing.T, tab *Table, steps []step) {
	t.Helper()
	for i, st := range steps {
		now := t0.Add(st.at)
		var got string
		switch st.op {
		case "discover":
			got = "none"
			if a, ok := tab.Discover(st.mac, addr(st.addr), now); ok {
				got = a.String()
			}
		case "select", "reboot", "renew":
			var r Request
			switch st.op {
			case "select":
				r = Request{Server: addr(st.server), Requested: addr(st.addr)}
			case "reboot":
				r = Request{Requested: addr(st.addr)}
			case "renew":
				r = Request{Client: addr(st.addr)}
			}
			l, v := tab.Request(st.mac, r, now)
			got = v.String()
			if v == Ack {
				got += " " + l.Addr.String()
				if want := now.Add(time.Hour); !l.Expires.Equal(want) {
					t.Errorf("step %d: lease expires %v, want %v", i, l.Expires, want)
				}
			}
		case "release":
			tab.Release(st.mac, addr(st.addr), now)
			continue
		case "decline":
			tab.Decline(st.mac, addr(st.addr), now)
			continue
		default:
			t.Fatalf("step %d: unknown op %q", i, st.op)
		}
		if got != st.want {
			t.Fatalf("step %d (%s %s %s at %v): got %q, want %q", i, st.op, st.mac, st.addr, st.at, got, st.want)
		}
	}
}

// TestTable plays RFC 2131's exchanges (section 3.1 allocation, 3.2
// reuse, 4.3.1 to 4.3.4 server behaviour) against a pool of three.
func TestTable(t *testing.T) {
	const srv = "192.168.1.1"
	tests := []struct {
		name  string
		steps []step
	}{
		{"3.1 discover, offer, request, ack", []step{
			{op: "discover", mac: a, want: "192.168.1.100"},
			{op: "select", mac: a, addr: "192.168.1.100", server: srv, want: "ACK 192.168.1.100"},
			{op: "discover", mac: b, want: "192.168.1.101"},
		}},
		{"4.3.1 an offer is held for its client, then freed", []step{
			{op: "discover", mac: a, want: "192.168.1.100"},
			{op: "discover", mac: b, want: "192.168.1.101"},
			{op: "discover", mac: a, want: "192.168.1.100"},
			{at: 2 * time.Minute, op: "discover", mac: c, want: "192.168.1.100"},
		}},
		{"4.3.1 the requested address when free", []step{
			{op: "discover", mac: a, addr: "192.168.1.102", want: "192.168.1.102"},
			{op: "discover", mac: b, addr: "192.168.1.102", want: "192.168.1.100"},
			{op: "discover", mac: c, addr: "192.168.1.10", want: "192.168.1.101"}, // another's static
		}},
		{"4.3.2 selecting another server frees our offer", []step{
			{op: "discover", mac: a, want: "192.168.1.100"},
			{op: "select", mac: a, addr: "192.168.1.100", server: "192.168.1.254", want: "ignore"},
			{op: "discover", mac: b, want: "192.168.1.100"},
		}},
		{"4.3.2 selecting an address another holds", []step{
			{op: "discover", mac: a, want: "192.168.1.100"},
			{op: "select", mac: b, addr: "192.168.1.100", server: srv, want: "NAK"},
		}},
		{"4.3.2 init-reboot", []step{
			{op: "reboot", mac: a, addr: "192.168.1.100", want: "ignore"}, // no record of the client
			{op: "discover", mac: a, want: "192.168.1.100"},
			{op: "select", mac: a, addr: "192.168.1.100", server: srv, want: "ACK 192.168.1.100"},
			{at: time.Minute, op: "reboot", mac: a, addr: "192.168.1.100", want: "ACK 192.168.1.100"},
			{op: "reboot", mac: a, addr: "192.168.1.101", want: "NAK"}, // not its address
			{op: "reboot", mac: a, addr: "10.0.0.5", want: "NAK"},      // on another network
			{op: "reboot", mac: s, addr: "192.168.1.10", want: "ACK 192.168.1.10"},
			{op: "reboot", mac: s, addr: "192.168.1.100", want: "NAK"},
		}},
		{"4.3.2 renewing and rebinding extend the lease", []step{
			{op: "discover", mac: a, want: "192.168.1.100"},
			{op: "select", mac: a, addr: "192.168.1.100", server: srv, want: "ACK 192.168.1.100"},
			{at: 30 * time.Minute, op: "renew", mac: a, addr: "192.168.1.100", want: "ACK 192.168.1.100"},
			{at: 80 * time.Minute, op: "discover", mac: b, want: "192.168.1.101"}, // still a's after the renewal
			{at: 85 * time.Minute, op: "renew", mac: a, addr: "192.168.1.101", want: "NAK"},
			{op: "renew", mac: c, addr: "192.168.1.102", want: "ignore"}, // another server's client
		}},
		{"4.3.4 release frees the address", []step{
			{op: "discover", mac: a, want: "192.168.1.100"},
			{op: "select", mac: a, addr: "192.168.1.100", server: srv, want: "ACK 192.168.1.100"},
			{op: "discover", mac: b, want: "192.168.1.101"},
			{at: 30 * time.Second, op: "release", mac: a, addr: "192.168.1.100"},
			{at: 30 * time.Second, op: "discover", mac: c, want: "192.168.1.102"}, // never leased first
			{at: 30 * time.Second, op: "discover", mac: "02:00:00:00:00:0d", want: "192.168.1.100"},
		}},
		{"4.3.1 a released address goes back to its client", []step{
			{op: "discover", mac: a, want: "192.168.1.100"},
			{op: "select", mac: a, addr: "192.168.1.100", server: srv, want: "ACK 192.168.1.100"},
			{at: time.Minute, op: "release", mac: a, addr: "192.168.1.100"},
			{at: 2 * time.Minute, op: "discover", mac: a, want: "192.168.1.100"},
		}},
		{"4.3.3 decline keeps the address out of the pool", []step{
			{op: "discover", mac: a, want: "192.168.1.100"},
			{op: "decline", mac: a, addr: "192.168.1.100"},
			{op: "discover", mac: a, want: "192.168.1.101"},
			{op: "discover", mac: b, want: "192.168.1.102"},
			{at: 11 * time.Minute, op: "discover", mac: c, want: "192.168.1.100"},
		}},
		{"static lease by MAC, outside the pool, never to another", []step{
			{op: "discover", mac: s, addr: "192.168.1.101", want: "192.168.1.10"},
			{op: "select", mac: s, addr: "192.168.1.10", server: srv, want: "ACK 192.168.1.10"},
			{op: "select", mac: a, addr: "192.168.1.10", server: srv, want: "NAK"},
			{op: "renew", mac: s, addr: "192.168.1.10", want: "ACK 192.168.1.10"},
		}},
		{"exhausted pool, then expiry frees the oldest", []step{
			{op: "discover", mac: a, want: "192.168.1.100"},
			{op: "select", mac: a, addr: "192.168.1.100", server: srv, want: "ACK 192.168.1.100"},
			{at: time.Minute, op: "discover", mac: b, want: "192.168.1.101"},
			{at: time.Minute, op: "select", mac: b, addr: "192.168.1.101", server: srv, want: "ACK 192.168.1.101"},
			{at: 2 * time.Minute, op: "discover", mac: c, want: "192.168.1.102"},
			{at: 2 * time.Minute, op: "select", mac: c, addr: "192.168.1.102", server: srv, want: "ACK 192.168.1.102"},
			{at: 3 * time.Minute, op: "discover", mac: "02:00:00:00:00:0d", want: "none"},
			{at: 62 * time.Minute, op: "discover", mac: "02:00:00:00:00:0d", want: "192.168.1.100"}, // a's and b's ended; a's longest ago
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tab, err := New(testConfig(), nil)
			if err != nil {
				t.Fatal(err)
			}
			run(t, tab, tt.steps)
		})
	}
}

// TestSavedLeases: a table made from saved leases gives clients their
// addresses back, and drops what no longer fits the configuration.
func TestSavedLeases(t *testing.T) {
	tab, _ := New(testConfig(), nil)
	run(t, tab, []step{
		{op: "discover", mac: a, want: "192.168.1.100"},
		{op: "select", mac: a, addr: "192.168.1.100", server: "192.168.1.1", want: "ACK 192.168.1.100"},
		{op: "discover", mac: b, addr: "192.168.1.102", want: "192.168.1.102"},
		{op: "select", mac: b, addr: "192.168.1.102", server: "192.168.1.1", want: "ACK 192.168.1.102"},
	})
	saved := append(tab.Leases(),
		Lease{MAC: c, Addr: netip.MustParseAddr("192.168.1.10"), Expires: t0.Add(time.Hour)}, // now s's static
		Lease{MAC: c, Addr: netip.MustParseAddr("192.168.1.50"), Expires: t0.Add(time.Hour)}, // outside the pool
	)
	b2, err := Marshal(saved)
	if err != nil {
		t.Fatal(err)
	}
	loaded, err := Unmarshal(b2)
	if err != nil {
		t.Fatal(err)
	}
	tab2, err := New(testConfig(), loaded)
	if err != nil {
		t.Fatal(err)
	}
	if got := len(tab2.Leases()); got != 2 {
		t.Errorf("restored %d leases, want 2: %+v", got, tab2.Leases())
	}
	run(t, tab2, []step{
		{at: time.Minute, op: "discover", mac: c, want: "192.168.1.101"},
		{at: time.Minute, op: "discover", mac: b, want: "192.168.1.102"},
		{at: time.Minute, op: "renew", mac: a, addr: "192.168.1.100", want: "ACK 192.168.1.100"},
	})
	if got := tab2.Bound(t0.Add(time.Minute)); len(got) != 2 || got[0].MAC != a || got[1].MAC != b {
		t.Errorf("bound = %+v; want a's and b's", got)
	}
}

func TestUnmarshalRefuses(t *testing.T) {
	for _, in := range []string{
		`{"version": 2, "leases": []}`,
		`{"version": 1, "leases": [{"mac": "02:00:00:00:00:0A", "address": "192.168.1.100", "expires": "2026-12-06T00:00:00Z"}]}`,
		`{"version": 1, "leases": [{"mac": "02:00:00:00:00:0a", "address": "2001:db8::1", "expires": "2026-12-06T00:00:00Z"}]}`,
		`{"version": 1, "leases": [{"mac": "02:00:00:00:00:0a", "address": "192.168.1.100"}]}`,
		`{"version": 1, "leases": [{"mac": "02:00:00:00:00:0a", "address": "192.168.1.300", "expires": "2026-12-06T00:00:00Z"}]}`,
		`not json`,
	} {
		if _, err := Unmarshal([]byte(in)); err == nil {
			t.Errorf("Unmarshal(%s) succeeded", in)
		} else if strings.Contains(err.Error(), "%!") {
			t.Errorf("Unmarshal(%s): malformed error %v", in, err)
		}
	}
}

func FuzzUnmarshal(f *testing.F) {
	b, _ := Marshal([]Lease{{MAC: a, Addr: netip.MustParseAddr("192.168.1.100"), Hostname: "pc", Expires: t0}})
	f.Add(b)
	f.Add([]byte(`{"version":1,"leases":null}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		ls, err := Unmarshal(in)
		if err != nil {
			return
		}
		out, err := Marshal(ls)
		if err != nil {
			t.Fatalf("Marshal of what Unmarshal accepted: %v", err)
		}
		again, err := Unmarshal(out)
		if err != nil || len(again) != len(ls) {
			t.Fatalf("round trip: %v, %d leases, want %d", err, len(again), len(ls))
		}
		// Whatever the file says, a table made from it keeps to its pool.
		tab, err := New(testConfig(), ls)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range tab.Leases() {
			if !tab.leasable(l.MAC, l.Addr) {
				t.Fatalf("kept lease %+v outside what the configuration leases", l)
			}
		}
	})
}
