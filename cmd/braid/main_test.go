package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/braid-router/braid/internal/linediff"
	"github.com/braid-router/braid/internal/nstest"
	"github.com/braid-router/braid/lab"
)

// braidBin is the braid binary under test, built once by TestMain.
var braidBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "braid-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	braidBin = filepath.Join(dir, "braid")
	// A test build: stand-in sessions (standins.go) replace the real ones
	// when BRAID_STANDINS is set.
	build := exec.Command("go", "build", "-tags", "braidtest", "-o", braidBin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build braid: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// commandTimeout bounds every run of the binary by a test: a hang fails
// the test instead of the whole suite's timeout.
const commandTimeout = 2 * time.Minute

// result is one run of the braid binary.
type result struct {
	code           int
	stdout, stderr string
}

// box is a throwaway namespace shaped like the lab's box: lan0, wan1 and
// wan2, each a veth whose other end is in a second namespace, all down and
// unaddressed. Its runtime and state directories are the test's own.
type box struct {
	t        *testing.T
	ns, far  string
	runDir   string
	stateDir string
	env      []string
}

func newBox(t *testing.T) *box {
	t.Helper()
	b := &box{t: t, ns: nstest.New(t), far: nstest.New(t)}
	for _, l := range []string{"lan0", "wan1", "wan2"} {
		nstest.Run(t, "ip", "-n", b.ns, "link", "add", l, "type", "veth", "peer", "name", l+"p", "netns", b.far)
		// No kernel link-local addresses: their DAD and neighbour traffic
		// would be noise in "the kernel saw no write" checks.
		nstest.Run(t, "ip", "-n", b.ns, "link", "set", l, "addrgenmode", "none")
		nstest.Run(t, "ip", "-n", b.far, "link", "set", l+"p", "addrgenmode", "none")
		nstest.Run(t, "ip", "-n", b.far, "link", "set", l+"p", "up")
	}
	b.runDir, b.stateDir = t.TempDir(), t.TempDir()
	b.env = []string{"BRAID_RUN_DIR=" + b.runDir, "BRAID_STATE_DIR=" + b.stateDir}
	return b
}

// labBoxOf is the box of lab l as a *box: its namespace, with runtime and
// state directories of the test's own.
func labBoxOf(t *testing.T, l *lab.Lab) *box {
	return nsBox(t, l.NS(lab.RoleBox))
}

// nsBox is namespace ns as a *box, with runtime and state directories of
// the test's own.
func nsBox(t *testing.T, ns string) *box {
	b := &box{t: t, ns: ns, runDir: t.TempDir(), stateDir: t.TempDir()}
	b.env = []string{"BRAID_RUN_DIR=" + b.runDir, "BRAID_STATE_DIR=" + b.stateDir}
	return b
}

// braid runs the binary inside the box with extra environment.
func (b *box) braid(env []string, args ...string) result {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, braidBin, append([]string{"--netns", b.ns}, args...)...)
	cmd.Env = append(append(os.Environ(), b.env...), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		b.t.Fatalf("braid %s did not finish within %s\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), commandTimeout, r.stdout, r.stderr)
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		b.t.Fatalf("run braid: %v", err)
	}
	return r
}

// must runs braid and fails the test unless it exits with code.
func (b *box) must(code int, args ...string) result {
	b.t.Helper()
	r := b.braid(nil, args...)
	if r.code != code {
		b.t.Fatalf("braid %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.code, code, r.stdout, r.stderr)
	}
	return r
}

func (b *box) ip(args ...string) string {
	b.t.Helper()
	return nstest.Run(b.t, "ip", append([]string{"-n", b.ns}, args...)...)
}

// writeSpec writes a spec into the test's directory and returns its path.
func writeSpec(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "spec.yaml")
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// writeSpecTo replaces the spec file at path atomically, as an editor
// does, so that a watching daemon reads it whole.
func writeSpecTo(t *testing.T, path, body string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// labSpec is the lab's router spec with a routes: entry each way.
const labSpec = `apiVersion: braid/v1alpha1
kind: Router
metadata: {name: test}
spec:
  lan:
    interface: lan0
    addresses: [192.168.50.1/24, 2001:db8:50::1/64]
  uplinks:
  - name: isp1
    interface: wan1
    priority: 10
    ipv4: {static: {address: 10.101.0.2/24, gateway: 10.101.0.1}}
    ipv6: {static: {address: 2001:db8:101::2/64, gateway: 2001:db8:101::1}}
  - name: isp2
    interface: wan2
    priority: 20
    ipv4: {static: {address: 10.102.0.2/24, gateway: 10.102.0.1}}
    ipv6: {static: {address: 2001:db8:102::2/64, gateway: 2001:db8:102::1}}
  routes:
  - to: [198.51.100.128/25, 2001:db8:ffff:1::/64]
    via: isp2
  - from: [192.168.50.50/32]
    via: isp2
`

// snapshot is the namespace's state as iproute2 and /proc/sys report it,
// for "left as it was found" comparisons.
func (b *box) snapshot() string {
	b.t.Helper()
	var out strings.Builder
	for _, args := range [][]string{
		{"-j", "link", "show"},
		{"-j", "addr", "show"},
		{"-j", "-4", "route", "show", "table", "all"},
		{"-j", "-6", "route", "show", "table", "all"},
		{"-j", "-4", "rule", "show"},
		{"-j", "-6", "rule", "show"},
	} {
		out.WriteString(strings.Join(args, " ") + "\n" + normalizeJSON(b.t, b.ip(args...)) + "\n")
	}
	// Every sysctl braid writes on these links, and MPTCP's.
	for _, s := range []string{"net/ipv4/ip_forward", "net/ipv6/conf/all/forwarding",
		"net/ipv4/conf/lan0/promote_secondaries", "net/ipv4/conf/wan1/promote_secondaries", "net/ipv4/conf/wan2/promote_secondaries",
		"net/ipv4/conf/wan1/rp_filter", "net/ipv4/conf/wan2/rp_filter",
		"net/mptcp/enabled", "net/mptcp/pm_type"} {
		out.WriteString(s + "=" + nstest.In(b.t, b.ns, "cat", "/proc/sys/"+s))
	}
	out.WriteString("mptcp endpoints\n" + b.ip("mptcp", "endpoint", "show") + "mptcp limits\n" + b.ip("mptcp", "limits", "show"))
	// The whole nftables ruleset, without counters and handles (-s).
	out.WriteString("nft\n" + nstest.In(b.t, b.ns, "nft", "-s", "list", "ruleset"))
	return out.String()
}

// normalizeJSON re-encodes an iproute2 JSON dump without what is not
// braid's to restore: statistics and timers, carrier and operational state
// (they follow the far end and arrive late), DAD's tentative flag, the
// default qdisc the kernel attaches the first time a link goes up, and
// interface indexes (a link unplugged and plugged in again has new ones).
func normalizeJSON(t *testing.T, s string) string {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("parse %q: %v", s, err)
	}
	var strip func(any)
	strip = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for _, k := range []string{"stats", "stats64", "valid_life_time", "preferred_life_time", "operstate", "qdisc", "tentative", "ifindex", "link_index"} {
				delete(v, k)
			}
			if flags, ok := v["flags"].([]any); ok {
				kept := flags[:0]
				for _, f := range flags {
					if f != "NO-CARRIER" && f != "LOWER_UP" && f != "M-DOWN" {
						kept = append(kept, f)
					}
				}
				v["flags"] = kept
			}
			for _, x := range v {
				strip(x)
			}
		case []any:
			for _, x := range v {
				strip(x)
			}
		}
	}
	strip(v)
	// IPv6 link-local addresses are the kernel's own: they come (late, with
	// carrier) when a link goes up and go when it goes down.
	if links, ok := v.([]any); ok {
		for _, l := range links {
			m, _ := l.(map[string]any)
			infos, ok := m["addr_info"].([]any)
			if !ok {
				continue
			}
			kept := infos[:0]
			for _, a := range infos {
				if am, _ := a.(map[string]any); am["family"] == "inet6" && am["scope"] == "link" {
					continue
				}
				kept = append(kept, a)
			}
			// The order of a link's addresses is the order they were
			// added in; a restore adds them again, so order is not state.
			slices.SortFunc(kept, func(a, b any) int {
				return strings.Compare(fmt.Sprint(a.(map[string]any)["local"]), fmt.Sprint(b.(map[string]any)["local"]))
			})
			m["addr_info"] = kept
		}
	}
	// Nor is the order in which a dump lists its objects (routes of
	// several tables come in the order the tables were made).
	if list, ok := v.([]any); ok {
		slices.SortFunc(list, func(a, b any) int {
			ja, _ := json.Marshal(a)
			jb, _ := json.Marshal(b)
			return strings.Compare(string(ja), string(jb))
		})
	}
	out, _ := json.MarshalIndent(v, "", " ")
	return string(out)
}

func TestApplyShowPlanDestroy(t *testing.T) {
	b := newBox(t)
	spec := writeSpec(t, labSpec)
	before := b.snapshot()

	r := b.must(2, "plan", "-f", spec)
	if !strings.Contains(r.stdout, "+ route[main 0.0.0.0/0 metric 10]") || !strings.Contains(r.stdout, "Plan: ") {
		t.Fatalf("plan output:\n%s", r.stdout)
	}
	r = b.must(0, "apply", "-f", spec)
	if !strings.Contains(r.stdout, "Verified") {
		t.Errorf("apply output lacks verification:\n%s", r.stdout)
	}
	// The kernel has what the spec says, marked as braid's.
	if got := b.ip("-4", "route", "show", "default"); !strings.Contains(got, "default via 10.101.0.1 dev wan1 proto 98 metric 10") ||
		!strings.Contains(got, "default via 10.102.0.1 dev wan2 proto 98 metric 20") {
		t.Errorf("main default routes:\n%s", got)
	}
	if got := b.ip("-4", "addr", "show", "dev", "wan1"); !strings.Contains(got, "10.101.0.2/24") || !strings.Contains(got, "noprefixroute") {
		t.Errorf("wan1 address without noprefixroute:\n%s", got)
	}
	if got := b.ip("-4", "rule", "show"); !strings.Contains(got, "7100:\tfrom 192.168.50.50 lookup 7102 proto 98") ||
		!strings.Contains(got, "7200:\tfrom 10.101.0.2 lookup 7101 proto 98") {
		t.Errorf("rules:\n%s", got)
	}
	if got := b.ip("-6", "route", "show", "table", "7100"); !strings.Contains(got, "2001:db8:ffff:1::/64 via 2001:db8:102::1 dev wan2 proto 98") {
		t.Errorf("steering table:\n%s", got)
	}

	r = b.must(0, "plan", "-f", spec)
	if !strings.Contains(r.stdout, "No changes.") {
		t.Errorf("plan after apply:\n%s", r.stdout)
	}
	r = b.must(0, "show", "--json")
	var shown showDocument
	if err := json.Unmarshal([]byte(r.stdout), &shown); err != nil {
		t.Fatal(err)
	}
	addrs := map[string]bool{}
	for _, o := range shown.Objects {
		addrs[o.Address] = true
	}
	for _, want := range []string{"link[wan1]", "sysctl[net.ipv4.ip_forward]", "address[wan2 2001:db8:102::2/64]", "route[7102 0.0.0.0/0 metric 0]", "rule[inet6 pref 7000]"} {
		if !addrs[want] {
			t.Errorf("show lacks %s", want)
		}
	}

	b.must(1, "destroy")
	b.must(0, "destroy", "--yes")
	if after := b.snapshot(); after != before {
		t.Errorf("destroy did not restore the namespace:\n%s", diffLines(before, after))
	}
	r = b.must(0, "destroy", "--yes")
	if !strings.Contains(r.stdout, "Nothing to destroy") {
		t.Errorf("second destroy: %s", r.stdout)
	}
}

// diffLines shows the lines of a that are not in b, and the reverse.
func diffLines(a, b string) string { return linediff.Diff(a, b) }

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
