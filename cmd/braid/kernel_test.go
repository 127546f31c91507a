package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/braid-router/braid/internal/nstest"
)

func TestChangedSpecGivesExactPlan(t *testing.T) {
	b := newBox(t)
	b.must(0, "apply", "-f", writeSpec(t, labSpec))
	changed := strings.Replace(labSpec, "priority: 20", "priority: 5", 1)
	changed = strings.Replace(changed, "from: [192.168.50.50/32]", "from: [192.168.50.60/32]", 1)
	r := b.must(2, "plan", "-f", writeSpec(t, changed))
	var lines []string
	for _, l := range strings.Split(r.stdout, "\n") {
		if regexp.MustCompile(`^  [+~-] `).MatchString(l) {
			lines = append(lines, strings.TrimSpace(l))
		}
	}
	want := []string{
		"+ route[main 0.0.0.0/0 metric 5]  via=10.102.0.1 dev=wan2",
		"+ route[main ::/0 metric 5]  via=2001:db8:102::1 dev=wan2",
		"+ rule[inet pref 7100 from 192.168.50.60/32]  lookup=7102",
		"- rule[inet pref 7100 from 192.168.50.50/32]  lookup=7102",
		"- route[main ::/0 metric 20]  via=2001:db8:102::1 dev=wan2",
		"- route[main 0.0.0.0/0 metric 20]  via=10.102.0.1 dev=wan2",
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Errorf("plan:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
	if !strings.Contains(r.stdout, "Plan: 3 to add, 0 to change, 3 to remove.") {
		t.Errorf("summary:\n%s", r.stdout)
	}
	b.must(0, "apply", "-f", writeSpec(t, changed))
	b.must(0, "plan", "-f", writeSpec(t, changed))
}

func TestForeignObjectsSurvive(t *testing.T) {
	b := newBox(t)
	// Foreign state a careful administrator left: a route in its own table,
	// a rule, an nftables table.
	b.ip("link", "set", "wan2", "up")
	b.ip("addr", "add", "172.16.9.1/24", "dev", "wan2")
	b.ip("route", "add", "203.0.113.0/24", "via", "172.16.9.2", "table", "100")
	b.ip("-6", "route", "add", "2001:db8:9::/48", "dev", "wan2", "table", "100")
	b.ip("rule", "add", "pref", "5000", "from", "172.16.9.0/24", "lookup", "100")
	nstest.In(t, b.ns, "nft", "add", "table", "inet", "foreign")
	nstest.In(t, b.ns, "nft", "add", "chain", "inet", "foreign", "input", "{ type filter hook input priority 0; }")
	foreign := func() string {
		return normalizeJSON(t, b.ip("-j", "route", "show", "table", "100")) +
			normalizeJSON(t, b.ip("-j", "-6", "route", "show", "table", "100")) +
			normalizeJSON(t, b.ip("-j", "rule", "show", "pref", "5000")) +
			normalizeJSON(t, b.ip("-j", "addr", "show", "dev", "wan2", "scope", "global")) +
			nstest.In(t, b.ns, "nft", "-j", "list", "table", "inet", "foreign")
	}
	// wan2's address is the spec's own here, so use a spec without wan2.
	spec := writeSpec(t, strings.Split(labSpec, "  - name: isp2")[0])
	before := foreign()
	b.must(0, "apply", "-f", spec)
	if got := foreign(); got != before {
		t.Errorf("apply touched foreign objects:\n%s", diffLines(before, got))
	}
	b.must(0, "destroy", "--yes")
	if got := foreign(); got != before {
		t.Errorf("destroy touched foreign objects:\n%s", diffLines(before, got))
	}
}

func TestDriftIsPlannedAndRepaired(t *testing.T) {
	b := newBox(t)
	spec := writeSpec(t, labSpec)
	b.must(0, "apply", "-f", spec)
	// An address's prefix route, a default route and a rule, deleted by hand.
	b.ip("route", "del", "10.101.0.0/24", "dev", "wan1", "table", "main")
	b.ip("route", "del", "default", "via", "10.102.0.1", "table", "7102")
	b.ip("-6", "rule", "del", "pref", "7000")
	b.ip("link", "set", "wan2", "down")
	r := b.must(2, "plan", "-f", spec)
	for _, want := range []string{
		"+ route[main 10.101.0.0/24 metric 0]",
		"+ route[7102 0.0.0.0/0 metric 0]",
		"+ rule[inet6 pref 7000]",
		"~ link[wan2]  up: false -> true",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("plan lacks %q:\n%s", want, r.stdout)
		}
	}
	b.must(0, "apply", "-f", spec)
	b.must(0, "plan", "-f", spec)
}

func TestConflictWithForeignRoute(t *testing.T) {
	b := newBox(t)
	b.ip("link", "set", "wan1", "up")
	// The kernel flushes a link's IPv4 routes with its last IPv4 address;
	// a foreign address keeps the foreign route alive through destroy.
	b.ip("addr", "add", "172.16.1.1/24", "dev", "wan1")
	b.ip("route", "add", "default", "via", "10.101.0.1", "dev", "wan1", "metric", "10", "onlink", "proto", "static")
	foreign := b.ip("-4", "route", "show", "default")
	r := b.must(1, "plan", "-f", writeSpec(t, labSpec))
	if !strings.Contains(r.stdout, "! route[main 0.0.0.0/0 metric 10]: occupied by a foreign object") {
		t.Errorf("plan does not show the conflict:\n%s", r.stdout)
	}
	r = b.must(1, "apply", "-f", writeSpec(t, labSpec))
	if !strings.Contains(r.stderr, "route[main 0.0.0.0/0 metric 10]") {
		t.Errorf("apply does not name the conflict:\n%s", r.stderr)
	}
	if got := b.ip("-4", "route", "show", "default"); !strings.Contains(got, "default via 10.101.0.1 dev wan1 proto static metric 10 onlink") {
		t.Errorf("foreign route not intact:\n%s\nwas:\n%s", got, foreign)
	}
	// Everything else was applied: the rest of the plan is empty, and the
	// plan still reports the conflict with exit 1.
	r = b.must(1, "plan", "-f", writeSpec(t, labSpec))
	if !strings.Contains(r.stdout, "No changes.") {
		t.Errorf("the rest was not applied:\n%s", r.stdout)
	}
	b.must(0, "destroy", "--yes")
	if got := b.ip("-4", "route", "show", "default"); !strings.Contains(got, "proto static metric 10 onlink") {
		t.Errorf("destroy removed the foreign route:\n%s", got)
	}
}

func TestNoOpApplyWritesNothing(t *testing.T) {
	b := newBox(t)
	spec := writeSpec(t, labSpec)
	b.must(0, "apply", "-f", spec)
	poke, token := nstest.IPMarker(t, b.ns)
	m := nstest.NewMonitor(t, poke, token, "ip", "-n", b.ns, "monitor", "all")
	// Wait until the kernel has finished its own work after the apply
	// (carrier, DAD): an interval between two markers with no other event.
	deadline := time.Now().Add(time.Minute)
	for mark := m.Mark(t); ; {
		if extra := m.Since(t, mark); extra == "" {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("the namespace never went quiet:\n%s", extra)
		}
		time.Sleep(time.Second) // let the kernel's own work (DAD) finish
		mark = m.Mark(t)
	}
	// The monitor sees a write between two marks: it can prove silence.
	mark := m.Mark(t)
	b.ip("route", "add", "192.0.2.0/24", "dev", "lan0", "table", "200")
	b.ip("route", "del", "192.0.2.0/24", "dev", "lan0", "table", "200")
	if got := m.Since(t, mark); !strings.Contains(got, "192.0.2.0/24") {
		t.Fatalf("ip monitor did not see our own write between two marks:\n%s", got)
	}
	mark = m.Mark(t)
	r := b.must(0, "apply", "-f", spec)
	if !strings.Contains(r.stdout, "No changes.") {
		t.Errorf("no-op apply:\n%s", r.stdout)
	}
	if extra := m.Since(t, mark); extra != "" {
		t.Errorf("a no-op apply wrote to the kernel:\n%s", extra)
	}
}

func TestCrashMidApplyThenConverge(t *testing.T) {
	b := newBox(t)
	spec := writeSpec(t, labSpec)
	pristine := b.snapshot()
	// Count the writes of a full apply, then crash after each of them.
	b.must(0, "apply", "-f", spec)
	converged := b.snapshot()
	b.must(0, "destroy", "--yes")
	total := strings.Count(b.must(2, "plan", "-f", spec).stdout, "\n  + ")
	if total < 20 {
		t.Fatalf("only %d creates in the plan", total)
	}
	b.crashEachWrite(spec, 1, total, b.snapshot, pristine, converged)
}

// crashEachWrite checks crash recovery on a box where state() is pristine:
// for each write n from first to total, an apply that crashes right after
// write n (braid's failpoint), then a full apply, gives converged, and a
// destroy then gives pristine. Last, from converged, a destroy crashed at
// each of its writes in turn and run again until it completes gives
// pristine.
func (b *box) crashEachWrite(spec string, first, total int, state func() string, pristine, converged string) {
	t := b.t
	t.Helper()
	for n := first; n <= total; n++ {
		r := b.braid([]string{"BRAID_FAILPOINT_WRITES=" + strconv.Itoa(n)}, "apply", "-f", spec)
		if r.code != 86 {
			t.Fatalf("failpoint %d: exit %d, want 86\n%s%s", n, r.code, r.stdout, r.stderr)
		}
		b.must(0, "apply", "-f", spec)
		if got := state(); got != converged {
			t.Fatalf("after a crash at write %d and apply, state differs from a clean apply:\n%s", n, diffLines(converged, got))
		}
		b.must(0, "destroy", "--yes")
		if got := state(); got != pristine {
			t.Fatalf("after a crash at write %d, destroy did not restore:\n%s", n, diffLines(pristine, got))
		}
	}
	// Crashes in the middle of destroy too.
	b.must(0, "apply", "-f", spec)
	for n := 1; ; n++ {
		if n > 10*total+100 {
			t.Fatalf("destroy still crashing at write %d: it never completes", n)
		}
		r := b.braid([]string{"BRAID_FAILPOINT_WRITES=" + strconv.Itoa(n)}, "destroy", "--yes")
		if r.code == 0 {
			break
		}
		if r.code != 86 {
			t.Fatalf("destroy failpoint %d: exit %d\n%s", n, r.code, r.stderr)
		}
	}
	if got := state(); got != pristine {
		t.Fatalf("destroy interrupted by crashes did not restore:\n%s", diffLines(pristine, got))
	}
}

func TestRefusedWriteRestoresTheRun(t *testing.T) {
	b := newBox(t)
	// The kernel refuses IPv6 addresses on a link with IPv6 disabled.
	nstest.In(t, b.ns, "sysctl", "-qw", "net.ipv6.conf.wan2.disable_ipv6=1")
	before := b.snapshot()
	r := b.must(1, "apply", "-f", writeSpec(t, labSpec))
	if !strings.Contains(r.stderr, "address[wan2 2001:db8:102::2/64]") || !strings.Contains(r.stderr, "restored the") {
		t.Errorf("apply error does not name the refused object and the restore:\n%s", r.stderr)
	}
	if after := b.snapshot(); after != before {
		t.Errorf("the run was not restored:\n%s", diffLines(before, after))
	}
}

// A transaction the kernel refuses (a failpoint adds a jump to a chain
// that does not exist) restores the netlink half of the same run: links,
// addresses, routes, rules and MPTCP are back as they were.
func TestRefusedNftablesTransactionRestoresTheRun(t *testing.T) {
	b := newBox(t)
	before := b.snapshot()
	r := b.braid([]string{"BRAID_FAILPOINT_NFT_REFUSE=1"}, "apply", "-f", writeSpec(t, labSpec))
	if r.code != 1 || !strings.Contains(r.stderr, "nft.") || !strings.Contains(r.stderr, "restored the") {
		t.Fatalf("apply with a refused transaction: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stdout, "+ route[") {
		t.Fatalf("the plan had no netlink half to restore:\n%s", r.stdout)
	}
	if after := b.snapshot(); after != before {
		t.Errorf("the netlink half was not restored:\n%s", diffLines(before, after))
	}
	// Without the failpoint, the same apply converges.
	b.must(0, "apply", "-f", writeSpec(t, labSpec))
}

func TestSSHGuard(t *testing.T) {
	b := newBox(t)
	spec := writeSpec(t, labSpec)
	b.must(0, "apply", "-f", spec)
	// A session from the LAN: removing the LAN address cuts it.
	ssh := []string{"SSH_CONNECTION=192.168.50.10 50000 192.168.50.1 22"}
	noLAN := strings.Replace(labSpec, "addresses: [192.168.50.1/24, 2001:db8:50::1/64]", "addresses: [192.168.60.1/24, 2001:db8:50::1/64]", 1)
	before := b.snapshot()
	r := b.braid(ssh, "apply", "-f", writeSpec(t, noLAN))
	if r.code != 1 || !strings.Contains(r.stderr, "would cut your SSH session from 192.168.50.10") {
		t.Fatalf("exit %d:\n%s%s", r.code, r.stdout, r.stderr)
	}
	if after := b.snapshot(); after != before {
		t.Errorf("a refused apply changed the box:\n%s", diffLines(before, after))
	}
	// A change elsewhere is fine over SSH.
	other := strings.Replace(labSpec, "priority: 20", "priority: 30", 1)
	if r := b.braid(ssh, "apply", "-f", writeSpec(t, other)); r.code != 0 {
		t.Fatalf("unrelated change refused over SSH: %s", r.stderr)
	}
	// --force applies anyway.
	if r := b.braid(ssh, "apply", "--force", "-f", writeSpec(t, noLAN)); r.code != 0 {
		t.Fatalf("--force: %s", r.stderr)
	}
}

// Over SSH, a change the plan check lets through but that moves the path
// to the client (a new route that captures it) is undone at once after
// applying; destroy is refused when it would cut the session.
func TestSSHCheckAfterApplyAndDestroy(t *testing.T) {
	b := newBox(t)
	spec := writeSpec(t, labSpec)
	b.must(0, "apply", "-f", spec)
	before := b.snapshot()
	// A client beyond the uplinks, reached through isp1's default route;
	// the new spec sends its /25 out of isp2.
	ssh := []string{"SSH_CLIENT=198.51.100.77 50000 22"}
	captured := writeSpec(t, strings.Replace(labSpec, "  - to: [198.51.100.128/25, 2001:db8:ffff:1::/64]", "  - to: [198.51.100.0/25, 198.51.100.128/25, 2001:db8:ffff:1::/64]", 1))
	r := b.braid(ssh, "apply", "-f", captured)
	if r.code != 1 || !strings.Contains(r.stderr, "the path to your SSH client 198.51.100.77 changed") || !strings.Contains(r.stderr, "restored the") {
		t.Fatalf("apply that moves the SSH path: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if after := b.snapshot(); after != before {
		t.Errorf("the run was not undone:\n%s", diffLines(before, after))
	}
	if r := b.braid(ssh, "apply", "--force", "-f", captured); r.code != 0 {
		t.Fatalf("--force: exit %d %s", r.code, r.stderr)
	}
	// Destroy would remove the LAN address a LAN session uses.
	lan := []string{"SSH_CONNECTION=192.168.50.10 50000 192.168.50.1 22"}
	before = b.snapshot()
	r = b.braid(lan, "destroy", "--yes")
	if r.code != 1 || !strings.Contains(r.stderr, "would cut your SSH session from 192.168.50.10") {
		t.Fatalf("destroy over SSH: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if after := b.snapshot(); after != before {
		t.Errorf("a refused destroy changed the box:\n%s", diffLines(before, after))
	}
	b.must(0, "destroy", "--yes") // not over SSH
}

// A corrupt ownership record stops every write, naming the file and the
// way out; nothing is changed.
func TestCorruptOwnershipRecordStopsWrites(t *testing.T) {
	b := newBox(t)
	spec := writeSpec(t, labSpec)
	b.must(0, "apply", "-f", spec)
	path := filepath.Join(b.stateDir, b.ns, "owned.json")
	if err := os.WriteFile(path, []byte(`{"address": {"wan1 10.101.0.2/24": {`), 0o600); err != nil {
		t.Fatal(err)
	}
	before := b.snapshot()
	for _, args := range [][]string{{"apply", "-f", spec}, {"destroy", "--yes"}} {
		r := b.braid(nil, args...)
		if r.code != 1 || !strings.Contains(r.stderr, "the ownership record "+path+" is corrupt") || !strings.Contains(r.stderr, "move it aside (mv "+path) {
			t.Errorf("%s with a corrupt record: exit %d\n%s", args[0], r.code, r.stderr)
		}
	}
	if after := b.snapshot(); after != before {
		t.Errorf("something was changed:\n%s", diffLines(before, after))
	}
}

func TestLockKeepsWritersApart(t *testing.T) {
	b := newBox(t)
	// Hold the namespace's lock, as another braid would: an exclusive
	// flock on the lock file, released when the test closes it.
	os.MkdirAll(b.runDir+"/"+b.ns, 0o700)
	f, err := os.OpenFile(b.runDir+"/"+b.ns+"/lock", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	r := b.must(1, "apply", "-f", writeSpec(t, labSpec))
	if !strings.Contains(r.stderr, "another braid process") {
		t.Errorf("apply while locked:\n%s", r.stderr)
	}
	// Reading is not writing: plan works.
	b.must(2, "plan", "-f", writeSpec(t, labSpec))
}

func TestDefaultRuntimeLayout(t *testing.T) {
	nstest.RequireRoot(t)
	b := newBox(t)
	b.env = nil // the real /run/braid and /var/lib/braid
	t.Cleanup(func() {
		os.RemoveAll("/run/braid/" + b.ns)
		os.RemoveAll("/var/lib/braid/" + b.ns)
	})
	b.must(0, "apply", "-f", writeSpec(t, labSpec))
	for _, p := range []string{"/run/braid/" + b.ns + "/lock", "/var/lib/braid/" + b.ns + "/owned.json"} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("runtime file: %v", err)
		}
	}
	b.must(0, "destroy", "--yes")
}

func TestValidateAndPlanExitCodes(t *testing.T) {
	good := writeSpec(t, labSpec)
	bad := writeSpec(t, strings.Replace(labSpec, "priority: 10", "prority: 10", 1))
	cmd := exec.Command(braidBin, "validate", good)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("validate good: %v\n%s", err, out)
	}
	cmd = exec.Command(braidBin, "validate", good, bad)
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("validate bad: %v\n%s", err, out)
	}
	if !regexp.MustCompile(`spec.yaml:11:5: spec.uplinks\[0\]: unknown field "prority"; did you mean "priority"\?`).Match(out) {
		t.Errorf("validate output:\n%s", out)
	}
	b := newBox(t)
	if r := b.braid(nil, "plan", "-f", bad); r.code != 1 {
		t.Errorf("plan of an invalid spec: exit %d", r.code)
	}
	if r := b.braid(nil, "plan", "-f", "/nonexistent.yaml"); r.code != 1 {
		t.Errorf("plan of a missing file: exit %d", r.code)
	}
}

func TestPlanJSONAndEffective(t *testing.T) {
	b := newBox(t)
	spec := writeSpec(t, labSpec)
	r := b.must(2, "plan", "--json", "-f", spec)
	var doc struct {
		FormatVersion string `json:"format_version"`
		Namespace     string `json:"namespace"`
		Changes       []struct {
			Action  string            `json:"action"`
			Address string            `json:"address"`
			After   map[string]string `json:"after"`
		} `json:"changes"`
		Summary struct{ Add, Change, Remove int } `json:"summary"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil {
		t.Fatalf("plan --json: %v\n%s", err, r.stdout)
	}
	if doc.FormatVersion != "1" || doc.Namespace != b.ns || doc.Summary.Add == 0 || len(doc.Changes) != doc.Summary.Add+doc.Summary.Change+doc.Summary.Remove {
		t.Errorf("plan document: %+v", doc)
	}
	found := false
	for _, c := range doc.Changes {
		if c.Address == "route[main 0.0.0.0/0 metric 10]" && c.Action == "create" && c.After["via"] == "10.101.0.1" {
			found = true
		}
	}
	if !found {
		t.Error("the default route is not in the JSON plan")
	}
	r = b.must(0, "show", "--effective", "-f", spec)
	for _, want := range []string{"table: 7101", "table: 7102", "mode: subflow"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("--effective lacks %q:\n%s", want, r.stdout)
		}
	}
}

func TestMissingNamespace(t *testing.T) {
	nstest.RequireRoot(t)
	out, err := exec.Command(braidBin, "--netns", "bt-no-such-ns", "plan", "-f", "x.yaml").CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(string(out), "bt-no-such-ns: no such network namespace") {
		t.Fatalf("%v: %s", err, out)
	}
}

// Changing a static address within its subnet: the kernel would drop the
// new address with the old one unless secondaries are promoted.
func TestChangeAddressWithinItsSubnet(t *testing.T) {
	b := newBox(t)
	b.must(0, "apply", "-f", writeSpec(t, labSpec))
	moved := writeSpec(t, strings.Replace(labSpec, "10.101.0.2/24", "10.101.0.3/24", 1))
	r := b.must(0, "apply", "-f", moved)
	if !strings.Contains(r.stdout, "Verified") {
		t.Fatalf("apply:\n%s", r.stdout)
	}
	if got := b.ip("-4", "addr", "show", "dev", "wan1"); !strings.Contains(got, "10.101.0.3/24") || strings.Contains(got, "10.101.0.2/") {
		t.Errorf("wan1:\n%s", got)
	}
	b.must(0, "plan", "-f", moved)
}

// An uplink's macAddress through the binary: applied, a no-op plan
// afterwards, repaired when changed by hand, and put back by destroy with
// everything else.
func TestMACAddressApplyAndDestroy(t *testing.T) {
	b := newBox(t)
	mac := func() string {
		var l []struct {
			Address string `json:"address"`
		}
		if err := json.Unmarshal([]byte(b.ip("-j", "link", "show", "dev", "wan2")), &l); err != nil || len(l) != 1 {
			t.Fatalf("ip link show wan2: %v %v", l, err)
		}
		return l[0].Address
	}
	pristine, orig := b.snapshot(), mac()
	const want = "02:00:5e:10:00:02"
	if orig == want {
		t.Fatalf("wan2 already has %s", want)
	}
	spec := writeSpec(t, strings.Replace(labSpec, "    priority: 20\n", "    priority: 20\n    macAddress: "+want+"\n", 1))
	r := b.must(0, "apply", "-f", spec)
	if !strings.Contains(r.stdout, "mac: "+orig+" -> "+want) {
		t.Errorf("the plan does not show the address:\n%s", r.stdout)
	}
	if got := mac(); got != want {
		t.Fatalf("wan2 has %s after apply, want %s", got, want)
	}
	b.must(0, "plan", "-f", spec)
	b.ip("link", "set", "dev", "wan2", "address", "02:00:5e:10:00:99")
	b.must(2, "plan", "-f", spec)
	b.must(0, "apply", "-f", spec)
	if got := mac(); got != want {
		t.Fatalf("wan2 has %s after the repair, want %s", got, want)
	}
	b.must(0, "destroy", "--yes")
	if got := mac(); got != orig {
		t.Errorf("wan2 has %s after destroy, want its own %s back", got, orig)
	}
	if after := b.snapshot(); after != pristine {
		t.Errorf("destroy did not put the box back:\n%s", diffLines(pristine, after))
	}
}
