package packaging

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/braid-router/braid/internal/nstest"
)

// maxExposure is the highest `systemd-analyze security` exposure the unit
// may have, in its tenths (the shipped unit scores 3.3).
const maxExposure = "40"

// testUnit writes the shipped unit to a temporary directory with
// /usr/bin/braid replaced by the binary under test, since verify checks
// that every command exists.
func testUnit(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile("braid.service")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "braid.service")
	text := strings.ReplaceAll(string(data), "/usr/bin/braid", braidBin)
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// analyze runs systemd-analyze, skipping (failing under CI=true) where it
// is missing.
func analyze(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	nstest.RequireBinary(t, "systemd-analyze")
	cmd := exec.Command("systemd-analyze", args...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}

// TestUnitVerify: systemd loads the unit without a warning. It runs
// offline (no systemd needed as PID 1); man pages are not looked up, as
// braid's is not installed here.
func TestUnitVerify(t *testing.T) {
	unit := testUnit(t)
	stdout, stderr, err := analyze(t, "verify", "--man=no", unit)
	if err != nil || strings.TrimSpace(stdout+stderr) != "" {
		t.Fatalf("systemd-analyze verify %s: %v\n%s%s", unit, err, stdout, stderr)
	}
	// The check sees what it should: an unknown key is a warning.
	bad := filepath.Join(t.TempDir(), "braid.service")
	data, _ := os.ReadFile(unit)
	os.WriteFile(bad, bytes.Replace(data, []byte("\n[Service]\n"), []byte("\n[Service]\nProtectKernelTunabels=yes\n"), 1), 0o644)
	if stdout, stderr, _ := analyze(t, "verify", "--man=no", bad); !strings.Contains(stdout+stderr, "ProtectKernelTunabels") {
		t.Errorf("a misspelt key went unreported:\n%s%s", stdout, stderr)
	}
}

// TestUnitSecurity: the unit's exposure, as `systemd-analyze security`
// scores it offline, stays at or below maxExposure, so a setting dropped
// by mistake fails here.
func TestUnitSecurity(t *testing.T) {
	unit := testUnit(t)
	stdout, stderr, err := analyze(t, "security", "--offline=true", "--threshold="+maxExposure, unit)
	t.Logf("systemd-analyze security:\n%s", lastLines(stdout, 2))
	if err != nil {
		t.Fatalf("systemd-analyze security --offline=true --threshold=%s: %v\n%s%s", maxExposure, err, stdout, stderr)
	}
	// Without the hardening the same threshold fails.
	data, _ := os.ReadFile(unit)
	soft, _, _ := strings.Cut(string(data), "# /run/braid")
	path := filepath.Join(t.TempDir(), "braid.service")
	os.WriteFile(path, []byte(soft+"\n[Install]\nWantedBy=multi-user.target\n"), 0o644)
	if _, _, err := analyze(t, "security", "--offline=true", "--threshold="+maxExposure, path); err == nil {
		t.Errorf("an unhardened unit passed --threshold=%s", maxExposure)
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
