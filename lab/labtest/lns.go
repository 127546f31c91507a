package labtest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/braid-router/braid/internal/nstest"
	"github.com/braid-router/braid/lab"
)

// The real LNS (xl2tpd + pppd + Kea in a QEMU guest) lives outside this
// repository, with the other real peers: ../shared/peers/lns/run-lns.sh
// from the checkout, or where BRAID_LNS_SCRIPT says. Neither the lab nor
// make demo depend on it; the tests that need it skip without it, and fail
// under CI=true.
const (
	// LNSScriptEnv names the variable that points at run-lns.sh.
	LNSScriptEnv = "BRAID_LNS_SCRIPT"
	// lnsCache is where run-lns.sh builds and caches its guest image.
	lnsCache = "/var/cache/braid-lns"
)

// Where the LNS sits behind the lab's isp1 (run-lns.sh's defaults): the
// guest on the bridge br-lns in isp1's namespace.
const (
	// LNSAddr is the LNS's IPv4 address, where the box sends L2TP.
	LNSAddr = "10.77.1.2"
	// LNSDelegated is the aggregate the LNS delegates prefixes from: a
	// /56 of 2001:db8:e000::/48 for its first session, and so on. The
	// lab uses it nowhere else.
	LNSDelegated = "2001:db8:e000::/40"
)

// LNSOptions are the LNS's settings (run-lns.sh's LNS_* variables); the
// zero value is the script's defaults: secret "6pe", CHAP with a
// challenge, user "test", password "testpass", no IPv4.
type LNSOptions struct {
	Secret, User, Password string
	// Auth is "chap" or "pap".
	Auth string
	// Challenge is "yes" or "no": tunnel authentication asked by the LNS.
	Challenge string
	// IPv4 is "yes" for an LNS that offers IPCP too.
	IPv4 string
}

func (o LNSOptions) env() []string {
	var env []string
	for _, kv := range [][2]string{{"LNS_SECRET", o.Secret}, {"LNS_USER", o.User}, {"LNS_PASS", o.Password},
		{"LNS_AUTH", o.Auth}, {"LNS_CHALLENGE", o.Challenge}, {"LNS_IPV4", o.IPv4}} {
		if kv[1] != "" {
			env = append(env, kv[0]+"="+kv[1])
		}
	}
	return env
}

// LNS is a real LNS running behind a lab's isp1.
type LNS struct {
	t      testing.TB
	script string
	env    []string
	// Work is the LNS's own directory (its console log, its PID).
	Work string
}

// LNSScript returns the path of run-lns.sh, or skips the test (fails it
// under CI=true) when it is not there.
func LNSScript(t testing.TB) string {
	t.Helper()
	p := os.Getenv(LNSScriptEnv)
	if p == "" {
		wd, err := os.Getwd()
		if err != nil {
			t.Fatal(err)
		}
		// From a package directory up to the checkout's parent, which
		// holds shared/ beside the worktrees.
		for d := wd; d != filepath.Dir(d); d = filepath.Dir(d) {
			c := filepath.Join(d, "shared", "peers", "lns", "run-lns.sh")
			if _, err := os.Stat(c); err == nil {
				p = c
				break
			}
		}
	}
	if p == "" {
		msg := "the real LNS (shared/peers/lns/run-lns.sh beside the checkout, or " + LNSScriptEnv + ") is not here"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg + " (CI=true: not skipping)")
		}
		t.Skip(msg)
	}
	return p
}

// StartLNS boots the real LNS behind the lab's isp1 (run-lns.sh with
// LNS_NETNS=<lab>-isp1), routes the prefixes it delegates from the
// lab's Internet core to isp1, and stops it when the test ends (before
// the lab goes: cleanups run in reverse).
//
// Each LNS gets a work directory of its own, seeded with the guest image
// run-lns.sh built in its shared cache (built there first, under a lock,
// if it is not yet): so LNSes of several tests, each behind its own lab,
// never share a PID file or a console.
func StartLNS(t testing.TB, l *lab.Lab, o LNSOptions) *LNS {
	t.Helper()
	nstest.RequireRoot(t)
	script := LNSScript(t)
	nstest.RequireBinary(t, "qemu-system-x86_64")
	work, err := os.MkdirTemp("", "braid-lns-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(work) })
	n := &LNS{t: t, script: script, Work: work,
		env: append(o.env(), "LNS_NETNS="+l.NS(lab.RoleISP1), "LNS_WORK="+work)}
	n.seed()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out, err := n.run(ctx, "start")
	t.Cleanup(n.stop)
	if err != nil {
		t.Fatalf("run-lns.sh start: %v\n%s\n%s", err, out, n.Console())
	}
	t.Logf("LNS behind %s: %s", l.NS(lab.RoleISP1), strings.TrimSpace(out))
	// The core routes what the LNS delegates to isp1, which routes it to
	// the LNS (run-lns.sh added that route there).
	if _, err := l.Run(ctx, lab.RoleInet, "ip", "-6", "route", "replace", LNSDelegated, "via", lab.ISP1UpV6); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		l.Run(context.Background(), lab.RoleInet, "ip", "-6", "route", "del", LNSDelegated)
	})
	return n
}

// seed copies the cached guest image into the LNS's work directory,
// building it in the shared cache first if needed.
func (n *LNS) seed() {
	t := n.t
	t.Helper()
	if err := os.MkdirAll(lnsCache, 0o755); err != nil {
		t.Fatal(err)
	}
	lock, err := os.OpenFile(filepath.Join(lnsCache, "braid-test.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, n.script, "build")
	cmd.Env = append(os.Environ(), "LNS_WORK="+lnsCache)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("run-lns.sh build: %v\n%s", err, out)
	}
	for _, f := range []string{"vmlinux", "vmlinuz", "initrd.img", "image.key"} {
		b, err := os.ReadFile(filepath.Join(lnsCache, f))
		if err != nil {
			t.Fatalf("the LNS's image: %v", err)
		}
		if err := os.WriteFile(filepath.Join(n.Work, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func (n *LNS) run(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, n.script, args...)
	cmd.Env = append(os.Environ(), n.env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (n *LNS) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if out, err := n.run(ctx, "stop"); err != nil {
		n.t.Errorf("run-lns.sh stop: %v\n%s", err, out)
	}
}

// Restart stops the LNS and boots it again, as an LNS that restarts
// under its sessions: it forgets them all.
func (n *LNS) Restart() {
	n.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	for _, step := range []string{"stop", "start"} {
		if out, err := n.run(ctx, step); err != nil {
			n.t.Fatalf("run-lns.sh %s: %v\n%s\n%s", step, err, out, n.Console())
		}
	}
}

// Console returns the guest's console: xl2tpd's, pppd's and Kea's logs.
func (n *LNS) Console() string {
	b, _ := os.ReadFile(filepath.Join(n.Work, "lns.console"))
	return string(b)
}

// String describes the LNS for test logs.
func (n *LNS) String() string { return fmt.Sprintf("LNS at %s (%s)", LNSAddr, n.Work) }
