package packaging

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestOpenWrtInit runs the procd init script's start_service and
// reload_service under a shell that records the procd calls (procd itself
// does not run here): the instance runs `braid run -f` on the spec the
// systemd unit uses, after a validate that refuses a broken spec.
func TestOpenWrtInit(t *testing.T) {
	dir := t.TempDir()
	spec := filepath.Join(dir, "spec.yaml")
	data, err := os.ReadFile("../specs/peer.yaml")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(spec, data, 0o644)
	script, err := filepath.Abs("openwrt/braid.init")
	if err != nil {
		t.Fatal(err)
	}
	sh := func(fn, spec string) (string, error) {
		body := `procd_open_instance() { echo open; }
procd_close_instance() { echo close; }
procd_set_param() { echo "param $*"; }
procd_send_signal() { echo "signal $*"; }
. "$0"
PROG=$1 SPEC=$2
` + fn
		out, err := exec.Command("sh", "-c", body, script, braidBin, spec).CombinedOutput()
		return string(out), err
	}
	out, err := sh("start_service", spec)
	if err != nil {
		t.Fatalf("start_service: %v\n%s", err, out)
	}
	want := "param command " + braidBin + " run -f " + spec + "\n"
	if !strings.Contains(out, "open\n") || !strings.Contains(out, want) || !strings.HasSuffix(out, "close\n") {
		t.Errorf("start_service:\n%s\nwant an instance with %q", out, want)
	}
	if out, err := sh("reload_service", spec); err != nil || strings.TrimSpace(out) != "signal braid * HUP" {
		t.Errorf("reload_service: %v\n%s", err, out)
	}

	os.WriteFile(spec, []byte("apiVersion: braid/v1alpha1\nkind: Router\nspec: {lan: 3}\n"), 0o644)
	if out, err := sh("start_service", spec); err == nil || strings.Contains(out, "open") {
		t.Errorf("start_service with an invalid spec: %v\n%s", err, out)
	}
	if out, err := sh("start_service", filepath.Join(dir, "missing.yaml")); err == nil || !strings.Contains(out, "missing") {
		t.Errorf("start_service without a spec: %v\n%s", err, out)
	}

	// The spec path is the systemd unit's.
	init, _ := os.ReadFile("openwrt/braid.init")
	unit, _ := os.ReadFile("braid.service")
	if !strings.Contains(string(init), "SPEC=/etc/braid/spec.yaml") || !strings.Contains(string(unit), "run -f /etc/braid/spec.yaml") {
		t.Error("the init script and the unit name different specs")
	}
}
