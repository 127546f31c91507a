package packaging

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/braid-router/braid/internal/netns"
	"github.com/braid-router/braid/internal/nstest"
)

// unitCaps returns the shipped unit's capability set in setpriv's
// spelling ("+net_admin,+net_raw").
func unitCaps(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile("braid.service")
	if err != nil {
		t.Fatal(err)
	}
	var caps []string
	for _, c := range readUnit(t, string(data)).Words("Service", "CapabilityBoundingSet") {
		caps = append(caps, "+"+strings.ToLower(strings.TrimPrefix(c, "CAP_")))
	}
	return strings.Join(caps, ",")
}

// confined runs braid as the unit does, as far as setpriv can: root with
// only caps (bounding, inheritable and ambient sets), no new privileges,
// root's special treatment on exec locked off (SecureBits=noroot-locked),
// in namespace ns (or the caller's when ns is ""), with the runtime and
// state directories in dirs.
func confined(t *testing.T, ns string, dirs []string, caps string, args ...string) (string, error) {
	t.Helper()
	nstest.RequireBinary(t, "setpriv")
	argv := append(append(setprivArgs(caps), braidBin), args...)
	if ns != "" {
		argv = append([]string{"ip", "netns", "exec", ns}, argv...)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), dirs...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// setprivArgs is setpriv confining what it runs to caps, as the unit
// does: root with only caps (bounding, inheritable and ambient sets), no
// new privileges, root's special treatment on exec locked off
// (SecureBits=noroot-locked).
func setprivArgs(caps string) []string {
	return []string{"setpriv", "--reuid=0", "--regid=0", "--clear-groups",
		"--securebits=+noroot,+noroot_locked,+no_setuid_fixup,+no_setuid_fixup_locked",
		"--bounding-set=-all," + caps, "--inh-caps=-all," + caps, "--ambient-caps=-all," + caps,
		"--no-new-privs", "--"}
}

// testDirs are braid's runtime and state directories for one test.
func testDirs(t *testing.T) []string {
	return []string{"BRAID_RUN_DIR=" + t.TempDir(), "BRAID_STATE_DIR=" + t.TempDir()}
}

// capsSpec is a small router on veths: a LAN, two static uplinks, a
// route, an open port and a port forward (addresses, routes, rules,
// sysctls and the nftables table).
const capsSpec = `apiVersion: braid/v1alpha1
kind: Router
metadata:
  name: caps
spec:
  lan:
    interface: lan0
    addresses: [192.168.50.1/24, 2001:db8:50::1/64]
  uplinks:
  - name: isp1
    interface: wan1
    priority: 10
    ipv4:
      static: {address: 10.101.0.2/24, gateway: 10.101.0.1}
  - name: isp2
    interface: wan2
    priority: 20
    ipv4:
      static: {address: 10.102.0.2/24, gateway: 10.102.0.1}
  routes:
  - to: [198.51.100.128/25]
    via: isp2
  firewall:
    open: [{port: 2222, proto: tcp}]
    forward:
    - {port: 8080, proto: tcp, to: "192.168.50.10:8080"}
`

// TestCapabilities applies a spec with exactly the unit's capabilities
// inside a throwaway namespace, and checks the kernel holds the result;
// without CAP_NET_ADMIN the same apply fails, so the run proves the set
// is what braid needs rather than that nothing is checked.
func TestCapabilities(t *testing.T) {
	ns, far := nstest.New(t), nstest.New(t)
	for _, l := range []string{"lan0", "wan1", "wan2"} {
		nstest.Run(t, "ip", "-n", ns, "link", "add", l, "type", "veth", "peer", "name", l+"p", "netns", far)
		nstest.Run(t, "ip", "-n", far, "link", "set", l+"p", "up")
	}
	spec := filepath.Join(t.TempDir(), "spec.yaml")
	if err := os.WriteFile(spec, []byte(capsSpec), 0o644); err != nil {
		t.Fatal(err)
	}
	caps := unitCaps(t)
	dirs := testDirs(t)

	out, err := confined(t, ns, dirs, strings.ReplaceAll(caps, "+net_admin", "-net_admin"), "apply", "-f", spec)
	if err == nil {
		t.Fatalf("apply without CAP_NET_ADMIN succeeded:\n%s", out)
	}
	t.Logf("without CAP_NET_ADMIN, as expected: %v\n%s", err, lastLines(out, 3))

	out, err = confined(t, ns, dirs, caps, "apply", "-f", spec)
	if err != nil {
		t.Fatalf("braid apply with the unit's capabilities (%s): %v\n%s", caps, err, out)
	}
	if addr := nstest.In(t, ns, "ip", "-4", "addr", "show", "dev", "wan1"); !strings.Contains(addr, "10.101.0.2/24") {
		t.Errorf("wan1 lacks its address:\n%s", addr)
	}
	if fwd := nstest.In(t, ns, "sysctl", "-n", "net.ipv4.ip_forward"); strings.TrimSpace(fwd) != "1" {
		t.Errorf("net.ipv4.ip_forward = %s", fwd)
	}
	if table := nstest.In(t, ns, "nft", "list", "table", "inet", "braid"); !strings.Contains(table, "8080") {
		t.Errorf("table inet braid lacks the port forward:\n%s", table)
	}
	// A second apply under the same confinement finds nothing to do:
	// reading the kernel back works too.
	if out, err := confined(t, ns, dirs, caps, "plan", "-f", spec); err != nil {
		t.Errorf("plan after apply: %v (exit 2 means changes left)\n%s", err, out)
	}
}

// TestCapabilitiesHostName: under the unit's capabilities PID 1's
// namespace cannot be looked at (that needs CAP_SYS_PTRACE), yet braid
// in the host's namespace must still call it "host", or the daemon's
// directories would not be those `braid status` looks in.
func TestCapabilitiesHostName(t *testing.T) {
	nstest.RequireRoot(t)
	var st syscallStat
	if err := st.of("/proc/self/ns/net"); err != nil || st.ino != netns.InitInode {
		t.Skipf("not in the initial network namespace of a Linux 6.18 or later kernel, whose inode is fixed (here: %d, %v)", st.ino, err)
	}
	out, err := confined(t, "", testDirs(t), unitCaps(t), "show", "--json")
	if err != nil {
		t.Fatalf("braid show: %v\n%s", err, lastLines(out, 5))
	}
	var doc struct{ Namespace string }
	if err := json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &doc); err != nil {
		t.Fatalf("braid show --json: %v\n%s", err, lastLines(out, 5))
	}
	if doc.Namespace != "host" {
		t.Errorf("confined braid names the host's namespace %q, want host", doc.Namespace)
	}
}
