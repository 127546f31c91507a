package packaging

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// braidBin is braid built once for the tests that run it.
var braidBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "braid-packaging-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	braidBin = filepath.Join(dir, "braid")
	build := exec.Command("go", "build", "-trimpath", "-o", braidBin, "../cmd/braid")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build braid: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}
