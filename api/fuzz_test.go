package api

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse feeds arbitrary bytes to Parse. It must never panic, must
// return *Errors on failure, and a document it accepts must print (with
// Effective) a spec that parses again to the same effective spec.
func FuzzParse(f *testing.F) {
	addSpecSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		var d *Document
		var err error
		if work := allocated(func() { d, err = Parse("fuzz.yaml", data) }); work > maxParseAlloc {
			t.Errorf("Parse allocated %d MiB on %d bytes", work>>20, len(data))
		}
		if err != nil {
			if _, ok := err.(*Errors); !ok {
				t.Fatalf("Parse error is %T, want *Errors: %v", err, err)
			}
			if d != nil {
				t.Fatal("Parse returned a document and an error")
			}
			return
		}
		roundTrip(t, d)
	})
}

// addSpecSeeds adds every spec the tests and the examples hold, malformed
// and valid, to f's corpus.
func addSpecSeeds(f *testing.F) {
	for _, pattern := range []string{"testdata/errors/*.yaml", "testdata/valid/*.yaml", "../specs/*.yaml", "../specs/fleet/boxes/*.yaml"} {
		files, err := filepath.Glob(pattern)
		if err != nil {
			f.Fatal(err)
		}
		for _, file := range files {
			data, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(data)
		}
	}
}
