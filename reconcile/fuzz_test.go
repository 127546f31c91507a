package reconcile

import (
	"encoding/json"
	"testing"
)

// FuzzDecodeGood feeds arbitrary bytes to the reader of last-good.json:
// it never panics, and what it accepts holds a revision and a spec that
// parses.
func FuzzDecodeGood(f *testing.F) {
	spec := []byte("apiVersion: braid/v1alpha1\nkind: Router\nmetadata: {name: a}\nspec:\n  uplinks:\n  - name: u\n    interface: eth0\n    ipv4: {static: {address: 10.0.0.2/24, gateway: 10.0.0.1}}\n")
	good, _ := json.Marshal(goodState{Revision: "abc", Name: "a.yaml", Spec: spec, Quarantined: []Quarantined{{Revision: "def", Reason: "r"}}})
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add([]byte(`{"revision": "abc", "spec": "bm90IHlhbWw="}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, b []byte) {
		g, doc, err := decodeGood(b)
		if err != nil {
			return
		}
		if g.Revision == "" || doc == nil {
			t.Fatalf("accepted a last good spec without a revision or a document: %+v", g)
		}
	})
}
