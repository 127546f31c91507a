package facts

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// FuzzLoad feeds arbitrary bytes to the loader of facts.json: it never
// panics, never returns an error for content (only a warning), and what it
// accepts survives a round trip.
func FuzzLoad(f *testing.F) {
	f.Add([]byte(`{"version": 3, "slots": {"dhcp4/fibre": {"facts": [{"lease4": {"uplink": "fibre", "address": "10.0.0.2/24", "gateway": "10.0.0.1"}, "expires": "2030-01-01T00:00:00Z"}]}}}`))
	f.Add([]byte(`{"version": 4, "slots": {"dhcp4/isp1": {"facts": [{"lease4": {"uplink": "isp1", "address": "10.101.0.2/24", "gateway": "10.101.0.1", "dns": ["10.101.0.1"], "server": "10.101.0.1", "obtained": "2029-12-31T23:58:00Z", "renew": "2029-12-31T23:58:10Z", "rebind": "2029-12-31T23:59:00Z"}, "expires": "2030-01-01T00:00:00Z"}]}}}`))
	f.Add([]byte(`{"slots": {"l2tp/sixpe": {"facts": [{"link": {"for": "tunnel/sixpe", "name": "sixpe"}, "process": true}, {"prefix": {"for": "tunnel/sixpe", "prefix": "2001:db8::/56"}}]}}}`))
	f.Add([]byte(`{"slots": {"ra/isp2": {"facts": [{"slaac": {"uplink": "isp2", "link": "wan2", "address": "2001:db8:102::1234/64", "preferred": "2030-01-01T00:00:00Z", "dns": [{"addr": "2001:db8:102::53", "expires": "2029-01-01T00:00:00Z"}]}, "expires": "2031-01-01T00:00:00Z"}, {"router6": {"uplink": "isp2", "router": "fe80::1", "link": "wan2"}, "expires": "2030-01-01T00:00:00Z"}]}}}`))
	f.Add([]byte(`{"slots": {"dhcp6/isp2": {"facts": [{"prefix": {"for": "uplink/isp2", "prefix": "2001:db8:f100::/56", "link": "wan2", "preferred": "2030-01-01T00:00:00Z", "dns": ["2001:db8:102::53"], "server": "000100012c", "iaid": "0a0b0c0d", "obtained": "2029-12-31T00:00:00Z", "renew": "2029-12-31T00:00:10Z", "rebind": "2029-12-31T00:00:20Z"}, "expires": "2031-01-01T00:00:00Z"}]}}}`))
	f.Add([]byte(`{"slots": {"kernel/links": {"facts": [{"interface": {"name": "wan2", "present": true, "index": 4, "mac": "02:00:00:00:00:02", "carrier": true}, "process": true}, {"interface": {"name": "wwan0"}}]}}}`))
	f.Add([]byte(`{"slots": {"proxy/aggregation": {"facts": [{"peer": {"address": "203.0.113.7:65101", "healthy": false, "reason": "no answer on 3 connections in a row", "uplinks": ["isp1", "isp2"]}, "process": true}]}}}`))
	f.Add([]byte(`{`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, FileName), data, 0o600); err != nil {
			t.Fatal(err)
		}
		set, warn, err := Load(dir, t0)
		if err != nil {
			t.Fatalf("Load returned an error for content: %v", err)
		}
		if warn != nil {
			return
		}
		for _, e := range set.Entries() {
			if e.Process {
				t.Fatalf("a process-bound fact survived loading: %+v", e)
			}
			if !e.Expires.IsZero() && !t0.Before(e.Expires) {
				t.Fatalf("an expired fact survived loading: %+v", e)
			}
		}
		b, err := json.Marshal(set)
		if err != nil {
			t.Fatal(err)
		}
		var back Set
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("accepted facts do not round-trip: %v\n%s", err, b)
		}
	})
}
