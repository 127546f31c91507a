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

// TestDeb builds the Debian package as `make deb` does, with a release
// version stamped in, checks its metadata and contents, installs it with
// dpkg into a throwaway root (--root, maintainer scripts run outside a
// chroot with DPKG_ROOT set, so they must leave the real system alone),
// runs the installed binary, and removes the package again. The machine's
// own root is never touched.
func TestDeb(t *testing.T) {
	nstest.RequireRoot(t)
	nstest.RequireBinary(t, "dpkg-deb")
	pkg := "github.com/braid-router/braid/internal/version"
	ldflags := "-X " + pkg + ".version=v1.2.3-4-gabcdef0 -X " + pkg + ".commit=abcdef0123"
	out := t.TempDir()
	cmd := exec.Command("bash", "../scripts/deb.sh", ldflags, "v1.2.3-4-gabcdef0", out)
	cmd.Env = append(os.Environ(), "GOARCH=amd64")
	built, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("scripts/deb.sh: %v\n%s", err, built)
	}
	lines := strings.Split(strings.TrimSpace(string(built)), "\n")
	deb := lines[len(lines)-1]
	if filepath.Base(deb) != "braid_1.2.3+4+gabcdef0_amd64.deb" {
		t.Errorf("package file %s", deb)
	}

	for field, want := range map[string]string{"Package": "braid", "Version": "1.2.3+4+gabcdef0", "Architecture": "amd64"} {
		if got := strings.TrimSpace(run(t, "dpkg-deb", "--field", deb, field)); got != want {
			t.Errorf("%s: %q, want %q", field, got, want)
		}
	}
	contents := run(t, "dpkg-deb", "--contents", deb)
	for _, path := range []string{"./usr/bin/braid", "./lib/systemd/system/braid.service",
		"./usr/share/man/man8/braid.8.gz", "./usr/share/doc/braid/examples/peer.yaml", "./etc/braid/"} {
		if !strings.Contains(contents, " "+path+"\n") {
			t.Errorf("the package lacks %s:\n%s", path, contents)
		}
	}
	if strings.Contains(contents, "examples/lab") {
		t.Errorf("the package ships the lab's specs:\n%s", contents)
	}

	root := t.TempDir()
	for _, d := range []string{"var/lib/dpkg/info", "var/lib/dpkg/updates"} {
		os.MkdirAll(filepath.Join(root, d), 0o755)
	}
	os.WriteFile(filepath.Join(root, "var/lib/dpkg/status"), nil, 0o644)
	dpkg := func(args ...string) string {
		return run(t, "dpkg", append([]string{"--root=" + root, "--force-script-chrootless", "--log=/dev/null"}, args...)...)
	}
	dpkg("--install", deb)
	if s := dpkg("--status", "braid"); !strings.Contains(s, "Status: install ok installed") {
		t.Fatalf("after dpkg --install:\n%s", s)
	}
	bin := filepath.Join(root, "usr/bin/braid")
	if v := run(t, bin, "version"); !strings.HasPrefix(v, "braid v1.2.3-4-gabcdef0 (commit abcdef0123, go") {
		t.Errorf("installed braid version: %q", v)
	}
	examples, _ := filepath.Glob(filepath.Join(root, "usr/share/doc/braid/examples/*.yaml"))
	if len(examples) == 0 {
		t.Fatal("no examples installed")
	}
	run(t, bin, append([]string{"validate"}, examples...)...)
	unit, _ := os.ReadFile(filepath.Join(root, "lib/systemd/system/braid.service"))
	shipped, _ := os.ReadFile("braid.service")
	if !bytes.Equal(unit, shipped) {
		t.Error("the installed unit differs from packaging/braid.service")
	}
	if man := run(t, "sh", "-c", "zcat "+filepath.Join(root, "usr/share/man/man8/braid.8.gz")); !strings.HasPrefix(man, ".TH BRAID 8") || !strings.Contains(man, ".SS braid run") {
		t.Errorf("man page:\n%.300s", man)
	}

	dpkg("--purge", "braid")
	if _, err := os.Stat(bin); !os.IsNotExist(err) {
		t.Errorf("after dpkg --purge, %s: %v", bin, err)
	}
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}
