package api

import (
	"errors"
	"flag"
	"os"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/errors")

// TestErrorsGolden parses every testdata/errors/*.yaml and compares the
// errors, exactly, with the .golden file next to it. Run with -update to
// rewrite the golden files, then review the diff.
func TestErrorsGolden(t *testing.T) {
	eachYAML(t, "testdata/errors/*.yaml", func(t *testing.T, f string) {
		d, err := Load(f)
		if err == nil {
			b, _ := Effective(d)
			t.Fatalf("Load(%s) succeeded; want errors. Effective:\n%s", f, b)
		}
		var errs *Errors
		if !errors.As(err, &errs) {
			t.Fatalf("Load(%s) = %T %v; want *Errors", f, err, err)
		}
		got := err.Error() + "\n"
		for _, secret := range []string{"hunter2", "s3cr3t"} {
			if strings.Contains(got, secret) {
				t.Errorf("errors show the secret %q", secret)
			}
		}
		golden := strings.TrimSuffix(f, ".yaml") + ".golden"
		if *update {
			if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
				t.Fatal(err)
			}
			return
		}
		want, err := os.ReadFile(golden)
		if err != nil {
			t.Fatalf("%v (run go test ./api -run TestErrorsGolden -update)", err)
		}
		if got != string(want) {
			t.Errorf("errors for %s differ from %s\ngot:\n%s\nwant:\n%s", f, golden, got, want)
		}
	})
}

// TestValid checks that every testdata/valid/*.yaml parses, and that its
// effective form is stable.
func TestValid(t *testing.T) { eachYAML(t, "testdata/valid/*.yaml", loadsAndRoundTrips) }
