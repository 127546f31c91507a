package main

import (
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/braid-router/braid/internal/gittest"
	"github.com/braid-router/braid/lab"
	"github.com/braid-router/braid/reconcile"
)

// End to end: `braid run --git` against a repository served over file://,
// ssh (Debian's sshd) and https (git http-backend behind TLS), with braid
// run where no program at all is on PATH, so neither git nor
// git-upload-pack can be what fetches.

// gitSpecPath is where the tests keep the spec in their repositories.
const gitSpecPath = "specs/box.yaml"

// noPath makes every braid process of b run with a PATH that is an empty
// directory. braid itself needs no program: netlink, nftables, probes and
// git are all in the process.
func noPath(b *box) string {
	b.t.Helper()
	empty := b.t.TempDir()
	b.env = append(b.env, "PATH="+empty) // the last PATH wins over os.Environ's
	return empty
}

// commitSpec commits body as the spec and returns the commit's hash.
func commitSpec(r *gittest.Repo, body string) string {
	return r.Commit(map[string][]byte{gitSpecPath: []byte(body)}).String()
}

// startGitDaemon runs braid run on url, fetched every 200ms, with PATH an
// empty directory, and checks that this is the only PATH the process has.
func (b *box) startGitDaemon(url string, args ...string) *daemon {
	b.t.Helper()
	empty := noPath(b)
	d := b.startDaemon(append([]string{"--git", url, "--path", gitSpecPath, "--interval", "200ms"}, args...)...)
	// The environment shows once the new process has executed braid.
	var env []byte
	for deadline := time.Now().Add(time.Minute); ; {
		var err error
		env, err = os.ReadFile(fmt.Sprintf("/proc/%d/environ", d.cmd.Process.Pid))
		if err != nil {
			b.t.Fatal(err)
		}
		if len(env) > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	var paths []string
	for _, kv := range strings.Split(string(env), "\x00") {
		if strings.HasPrefix(kv, "PATH=") {
			paths = append(paths, kv)
		}
	}
	if len(paths) != 1 || paths[0] != "PATH="+empty {
		b.t.Fatalf("braid run's PATH: %q, want only PATH=%s", paths, empty)
	}
	return d
}

// applied waits until the daemon has loaded revision rev, a pass that
// changed the kernel has ended since the status before (the status shows
// a new revision as soon as a pass loads it, before it applies it; other
// passes, say for kernel events, change nothing on a converged box), the
// last pass converged, and nothing is on trial any more (a trial starts
// before its pass is counted).
func (d *daemon) applied(rev string, before reconcile.Status) reconcile.Status {
	d.b.t.Helper()
	return d.until("revision "+rev+" applied", func(st reconcile.Status) bool {
		return st.Revision == rev && st.SpecError == "" && st.Trial == nil && st.Applying > before.Applying && converged(st)
	})
}

// followCommits starts braid run on url, where r is served, and checks
// that r's commit converges the box and that a new commit is applied, each
// with its hash as the status's revision. It returns the daemon and its
// status after the new commit.
func followCommits(b *box, r *gittest.Repo, url string, args ...string) (*daemon, reconcile.Status) {
	b.t.Helper()
	d := b.startGitDaemon(url, args...)
	st := d.applied(r.Head().String(), reconcile.Status{})
	if want := "git " + url + " ref main path " + gitSpecPath; st.Source != want {
		b.t.Errorf("status source %q, want %q", st.Source, want)
	}
	wantRoute(b, "default via 10.102.0.1 dev wan2 proto 98 metric 20")
	c2 := commitSpec(r, strings.Replace(labSpec, "priority: 20", "priority: 30", 1))
	st = d.applied(c2, st)
	wantRoute(b, "default via 10.102.0.1 dev wan2 proto 98 metric 30")
	return d, st
}

// wantRoute fails unless `ip -4 route show default` in b has want.
func wantRoute(b *box, want string) {
	b.t.Helper()
	if got := b.ip("-4", "route", "show", "default"); !strings.Contains(got, want) {
		b.t.Errorf("main default routes lack %q:\n%s", want, got)
	}
}

// TestGitRunFile: over file://, the first commit converges the box and its
// hash is the status's revision; a new commit is applied; a commit with an
// invalid spec is refused, the kernel keeps the last good state and status
// says why; the commit after it is applied again.
func TestGitRunFile(t *testing.T) {
	b := newBox(t)
	r := gittest.NewRepo(t, map[string][]byte{gitSpecPath: []byte(labSpec), "README": []byte("the box\n")})
	url := "file://" + r.Dir
	d, st := followCommits(b, r, url)
	c2 := st.Revision
	if r := b.must(0, "status"); !strings.Contains(r.stdout, "revision:   "+c2) || !strings.Contains(r.stdout, "source:     git "+url) {
		t.Errorf("status text does not show the source and revision %s:\n%s", c2, r.stdout)
	}

	// An invalid spec: refused, the kernel keeps c2's state.
	before := b.snapshot()
	good := st
	c3 := commitSpec(r, strings.Replace(labSpec, "priority: 10", "prority: 10", 1))
	st = d.until("the rejection of "+c3, func(st reconcile.Status) bool { return st.RejectedRev == c3 })
	if st.Revision != c2 || !strings.Contains(st.SpecError, url+"@"+c3[:12]+":"+gitSpecPath) ||
		!strings.Contains(st.SpecError, `did you mean "priority"`) {
		t.Errorf("after an invalid commit: revision %s (want %s), error %q", st.Revision, c2, st.SpecError)
	}
	if st.Applying != good.Applying {
		t.Errorf("an invalid commit led to %d applying passes", st.Applying-good.Applying)
	}
	if r := b.must(0, "status"); !strings.Contains(r.stdout, "rejected:   "+c3) || !strings.Contains(r.stdout, "revision:   "+c2) {
		t.Errorf("status text does not show the rejected commit:\n%s", r.stdout)
	}
	// Read again (SIGHUP, as a poll would): the rejected commit stays
	// rejected.
	d.reload(st)
	if after := b.snapshot(); after != before {
		t.Errorf("an invalid commit changed the kernel:\n%s", diffLines(before, after))
	}
	if st, _ := d.status(); st.Applying != good.Applying || st.Revision != c2 {
		t.Errorf("after more polls: %d applying passes, revision %s", st.Applying-good.Applying, st.Revision)
	}

	// The fix is applied, and the rejection is gone from status.
	c4 := commitSpec(r, strings.Replace(labSpec, "priority: 20", "priority: 40", 1))
	st = d.applied(c4, st)
	wantRoute(b, "default via 10.102.0.1 dev wan2 proto 98 metric 40")
	if st.RejectedRev != "" {
		t.Errorf("status still shows rejected revision %s", st.RejectedRev)
	}
}

// TestGitRunRevertsACommitThatCutsAProbe: in a lab, a commit whose
// gateways are wrong cuts the box off a management probe (the peer, which
// the box reaches through its uplinks); braid run reverts it within the
// probe window, the kernel's routes come back exactly, and the commit is
// quarantined: later polls do not apply it again, and the next commit is
// applied.
func TestGitRunRevertsACommitThatCutsAProbe(t *testing.T) {
	l := labWithPeer(t)
	b := labBoxOf(t, l)
	const probe = "10.203.0.2:65101"
	good := labSpecWithProbes(t, `[{tcp: "`+probe+`"}]`)
	r := gittest.NewRepo(t, map[string][]byte{gitSpecPath: []byte(good)})
	c1 := r.Head().String()
	d := b.startGitDaemon("file://"+r.Dir, "--probe-window", "2s")
	st := d.applied(c1, reconcile.Status{})
	if err := connectFrom(l, lab.RoleBox, probe); err != nil {
		t.Fatalf("the probe does not answer before the change: %v", err)
	}
	before := b.routes()
	c2 := commitSpec(r, unreachableGateways(good))
	// Reverted: quarantined, and a pass that started after that (so with
	// c1's spec) converged. Kernel events may trigger passes after it.
	// The trial itself may be over before a status request sees it on a
	// busy machine: the logs say it began.
	applying := st.Applying
	st = d.until("the revert of "+c2, revertedOnce)
	// The bad commit was applied, then undone (a revert of nothing would
	// prove nothing).
	if st.Applying < applying+2 || !strings.Contains(d.logs.String(), "change on trial") {
		t.Errorf("the bad commit was not applied before its revert: %d applying passes since, logs:\n%s", st.Applying-applying, d.logs.String())
	}
	if q := st.Quarantined[0]; q.Revision != c2 || !strings.Contains(q.Reason, "tcp "+probe) {
		t.Errorf("quarantined %+v, want %s for the probe tcp %s", q, c2, probe)
	}
	if st.Revision != c1 || st.RejectedRev != c2 || !strings.Contains(st.SpecError, "quarantined") {
		t.Errorf("after the revert: revision %s (want %s), rejected %s (want %s), error %q", st.Revision, c1, st.RejectedRev, c2, st.SpecError)
	}
	if after := b.routes(); after != before {
		t.Errorf("routes after the revert:\n%s\nbefore:\n%s", after, before)
	}
	if r := b.must(0, "status"); !strings.Contains(r.stdout, "quarantined: "+c2) {
		t.Errorf("status text does not show the quarantine:\n%s", r.stdout)
	}
	if !strings.Contains(d.logs.String(), "reverting the change") {
		t.Errorf("the logs do not say so:\n%s", d.logs.String())
	}

	// Quarantined: the remote still points at it, and polls do not bring
	// it back.
	reverted := st
	d.reload(st)
	if st, _ := d.status(); st.Applying != reverted.Applying || st.Revision != c1 {
		t.Errorf("after the revert, %d more applying passes, revision %s", st.Applying-reverted.Applying, st.Revision)
	}
	if after := b.routes(); after != before {
		t.Errorf("the quarantined commit came back:\n%s", diffLines(before, after))
	}

	// A restarted daemon keeps the quarantine: the remote's commit is
	// still c2, and c1 is what it converges to.
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := d.cmd.Wait(); err != nil {
		t.Fatalf("braid run exited with %v", err)
	}
	d = b.startGitDaemon("file://"+r.Dir, "--probe-window", "2s")
	st = d.until("the restart", func(st reconcile.Status) bool { return converged(st) && st.RejectedRev == c2 })
	if st.Revision != c1 || len(st.Quarantined) != 1 || st.Trial != nil {
		t.Errorf("after a restart: revision %s (want %s), trial %+v, quarantined %+v", st.Revision, c1, st.Trial, st.Quarantined)
	}
	if after := b.routes(); after != before {
		t.Errorf("the quarantined commit came back after a restart:\n%s", diffLines(before, after))
	}

	// The next commit is a new revision: applied, and accepted once the
	// probe answers after it.
	c3 := commitSpec(r, strings.Replace(good, "priority: 20", "priority: 30", 1))
	d.applied(c3, st)
	wantRoute(b, "default via 10.102.0.1 dev wan2 proto 98 metric 30")
}

// TestGitRunSSH: over ssh to Debian's sshd, listening on the loopback of
// the box's own namespace, with a test key and known_hosts.
func TestGitRunSSH(t *testing.T) {
	b := newBox(t)
	keyFile := filepath.Join(t.TempDir(), "id_ed25519")
	s := gittest.StartSSHD(t, gittest.Listen(t, b.ns), gittest.SSHKey(t, keyFile))
	known := gittest.KnownHostsFile(t, s.Addr, s.HostKey)
	me, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	r := gittest.NewRepo(t, map[string][]byte{gitSpecPath: []byte(labSpec)})
	followCommits(b, r, fmt.Sprintf("ssh://%s@%s%s", me.Username, s.Addr, r.Dir), "--git-ssh-key", keyFile, "--git-known-hosts", known)
}

// TestGitRunHTTPS: over https to git http-backend behind a TLS server
// whose certificate comes from the test's own CA (--git-ca-file), with a
// token (--git-token-file), listening on the loopback of the box's own
// namespace.
func TestGitRunHTTPS(t *testing.T) {
	b := newBox(t)
	r := gittest.NewRepo(t, map[string][]byte{gitSpecPath: []byte(labSpec)})
	ca := gittest.NewCA(t, "braid test CA")
	const token = "s3cret-token-e2e-71c2"
	s := gittest.StartHTTPS(t, gittest.Listen(t, b.ns), gittest.HTTPBackend(t), filepath.Dir(r.Dir), ca.ServerCert(t), token)
	dir := t.TempDir()
	caFile, tokenFile := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "token")
	if err := os.WriteFile(caFile, ca.PEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	d, _ := followCommits(b, r, s.URL+"/"+filepath.Base(r.Dir), "--git-token-file", tokenFile, "--git-ca-file", caFile)
	if s.Authed.Load() == 0 || s.Denied.Load() != 0 {
		t.Errorf("the server saw %d requests with the token and %d without", s.Authed.Load(), s.Denied.Load())
	}
	if strings.Contains(d.logs.String(), token) || strings.Contains(b.must(0, "status", "--json").stdout, token) {
		t.Error("the token shows in the daemon's logs or status")
	}
}
