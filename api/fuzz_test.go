package api

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// FuzzParse feeds arbitrary bytes to Parse. It must never panic, must
// return *Errors on failure, and a document it accepts must print (with
// Effective) a spec that parses again to the same effective spec.
func FuzzParse(f *testing.F) {
	for _, pattern := range []string{"testdata/errors/*.yaml", "testdata/valid/*.yaml", "../specs/*.yaml"} {
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
	f.Fuzz(func(t *testing.T, data []byte) {
		start := time.Now()
		defer func() {
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("took %v on %d bytes", d, len(data))
			}
		}()
		d, err := Parse("fuzz.yaml", data)
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
