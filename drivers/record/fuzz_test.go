package record

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzOpen feeds arbitrary bytes to the loader of owned.json: it never
// panics; what it cannot read is a *CorruptError that names the file and
// says how to recover; what it reads survives a write and a read back.
func FuzzOpen(f *testing.F) {
	f.Add([]byte(`{"address": {"wan1 10.0.0.2/24": {}}, "sysctl": {"net.ipv4.ip_forward": "0"}}`))
	f.Add([]byte(`{"link": {"wan1": {"up": false, "mtu": 1500}}}`))
	f.Add([]byte(`{"address": {"wan1 10.0.0.2/`))
	f.Add([]byte(`null`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		path := filepath.Join(dir, FileName)
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		r, err := Open(dir)
		if err != nil {
			var ce *CorruptError
			if !errors.As(err, &ce) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "move it aside") {
				t.Fatalf("unreadable record: %v, want a CorruptError naming %s and the way out", err, path)
			}
			return
		}
		kinds := map[string][]string{}
		for kind := range r.data {
			kinds[kind] = r.Keys(kind)
		}
		// A write puts it back as read.
		if err := r.Put("fuzz", "key", 1); err != nil {
			t.Fatal(err)
		}
		if err := r.Delete("fuzz", "key"); err != nil {
			t.Fatal(err)
		}
		back, err := Open(dir)
		if err != nil {
			t.Fatalf("a record written back cannot be read: %v", err)
		}
		for kind, keys := range kinds {
			if got := back.Keys(kind); strings.Join(got, "\x00") != strings.Join(keys, "\x00") {
				t.Fatalf("kind %q: keys %q, then %q", kind, keys, got)
			}
			for _, k := range keys {
				var v json.RawMessage
				if ok, err := back.Get(kind, k, &v); !ok || err != nil {
					t.Fatalf("%s %q lost: %v", kind, k, err)
				}
			}
		}
	})
}
