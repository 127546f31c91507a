// Package lnstest runs the real L2TPv2 LNS of the shared test peers
// (peers/lns/run-lns.sh: unmodified xl2tpd + pppd + Kea in a QEMU guest,
// see peers/README.md) for tests, and captures what crosses the tunnel's
// link with tshark.
//
//	lns := lnstest.Start(t, lnstest.Options{})     // stopped by t.Cleanup
//	lns.Attach(t, ns, "lac0", netip.MustParsePrefix("10.77.1.50/24"))
//	... dial lns.Addr from namespace ns, out of lac0 ...
//	lns.WaitLog(t, "Connection established", time.Minute)
//
// # Isolation
//
// Each LNS runs in a network namespace of its own (created and removed by
// the script, unless Options.Netns names one the caller made) with a work
// directory of its own (pid file, console log), its guest image
// hard-linked from the shared cache (/var/cache/braid-lns, built there
// once under the lock). LNS tests in every package still run one after
// another: Start takes an exclusive lock (flock on
// /run/lock/braid-lnstest.lock) that Stop releases, since each guest is a
// QEMU under software emulation and the machine has two cores. A test
// killed before its cleanup leaves its guest running: the next Start,
// holding the lock, stops it and removes its directory
// (/var/cache/braid-lnstest/*).
//
// # Where the script is
//
// $BRAID_SHARED/peers/lns/run-lns.sh, BRAID_SHARED defaulting to
// ../shared beside the repository (where CI has it). Without it the test skips, saying so, except under
// CI=true, where it fails. It needs root.
package lnstest

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/braid-router/braid/internal/nstest"
)

// Options are the LNS's settings (run-lns.sh's LNS_* variables); the zero
// value is SFR's 6PE: secret 6pe, challenge both ways, CHAP for user
// test/testpass, IPv6 only.
type Options struct {
	// Secret is the tunnel secret (LNS_SECRET, "6pe" when empty).
	Secret string
	// NoChallenge: the LNS does not challenge the LAC (LNS_CHALLENGE=no);
	// it still answers a LAC's challenge.
	NoChallenge bool
	// Auth is the PPP authentication it requires: "chap" (default) or
	// "pap" (LNS_AUTH).
	Auth string
	// User and Pass are the PPP login it accepts (LNS_USER, LNS_PASS;
	// test/testpass when empty).
	User, Pass string
	// IPv4: the LNS offers IPCP too (LNS_IPV4=yes).
	IPv4 bool
	// Netns hosts the LNS in this existing namespace (LNS_NETNS), which
	// the script does not remove; empty: a namespace of its own.
	Netns string
	// Env are more run-lns.sh settings ("LNS_IP=10.77.1.2").
	Env []string
}

// LNS is a running LNS.
type LNS struct {
	// Addr is where xl2tpd listens.
	Addr netip.AddrPort
	// Netns is the namespace of its bridge.
	Netns string
	// Bridge is the guest's bridge in Netns, BridgeIP its address there
	// (the guest's gateway).
	Bridge   string
	BridgeIP netip.Prefix

	t      testing.TB
	script string
	env    []string
	work   string
	lock   *os.File
	start  string
}

// Script returns run-lns.sh's path, skipping the test (failing it under
// CI=true) when the shared peers are missing.
func Script(t testing.TB) string {
	t.Helper()
	shared := os.Getenv("BRAID_SHARED")
	if shared == "" {
		shared = besideRepo("shared")
	}
	p := filepath.Join(shared, "peers", "lns", "run-lns.sh")
	if _, err := os.Stat(p); err != nil {
		msg := fmt.Sprintf("the real LNS needs %s (the shared test peers; set BRAID_SHARED): %v", p, err)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg + " (CI=true: not skipping)")
		}
		t.Skip(msg)
	}
	return p
}

const (
	lockPath  = "/run/lock/braid-lnstest.lock"
	sharedDir = "/var/cache/braid-lns"
	workRoot  = "/var/cache/braid-lnstest"
	// netnsFile, in a work directory, names the LNS's namespace.
	netnsFile = "lnstest.netns"
)

// Start boots an LNS with opts and stops it when the test ends. It waits
// for the lock other LNS tests hold, builds the guest image if needed
// (~25 s once), and returns once xl2tpd listens (~5 s).
func Start(t testing.TB, opts Options) *LNS {
	t.Helper()
	nstest.RequireRoot(t)
	script := Script(t)

	l := &LNS{t: t, script: script, Netns: opts.Netns, Bridge: "br-lns"}
	if l.Netns == "" {
		l.Netns = nstest.Name("blns-")
	}
	l.lock = acquire(t)
	t.Cleanup(l.Stop)
	l.reap(t)

	l.run(t, []string{"LNS_WORK=" + sharedDir}, "build")
	var id [4]byte
	rand.Read(id[:])
	l.work = filepath.Join(workRoot, hex.EncodeToString(id[:]))
	if err := os.MkdirAll(l.work, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"vmlinux", "initrd.img", "image.key"} {
		if err := os.Link(filepath.Join(sharedDir, f), filepath.Join(l.work, f)); err != nil {
			t.Fatalf("share the LNS image: %v", err)
		}
	}
	if err := os.WriteFile(filepath.Join(l.work, netnsFile), []byte(l.Netns), 0o644); err != nil {
		t.Fatal(err)
	}
	l.env = []string{"LNS_WORK=" + l.work, "LNS_NETNS=" + l.Netns}
	set := func(k, v string) {
		if v != "" {
			l.env = append(l.env, k+"="+v)
		}
	}
	set("LNS_SECRET", opts.Secret)
	set("LNS_AUTH", opts.Auth)
	set("LNS_USER", opts.User)
	set("LNS_PASS", opts.Pass)
	if opts.NoChallenge {
		set("LNS_CHALLENGE", "no")
	}
	if opts.IPv4 {
		set("LNS_IPV4", "yes")
	}
	l.env = append(l.env, opts.Env...)
	l.start = l.run(t, l.env, "start")
	m := regexp.MustCompile(`LNS=(\S+) .*bridge=(\S+)/([0-9.]+),`).FindStringSubmatch(l.start)
	if m == nil {
		t.Fatalf("run-lns.sh start said no LNS address:\n%s", l.start)
	}
	var err error
	if l.Addr, err = netip.ParseAddrPort(m[1]); err != nil {
		t.Fatal(err)
	}
	l.Bridge = m[2]
	l.BridgeIP = netip.PrefixFrom(netip.MustParseAddr(m[3]), 24)
	t.Logf("LNS at %s in namespace %s (%s)", l.Addr, l.Netns, strings.Join(l.env[2:], " "))
	return l
}

// reap stops the LNSes of tests killed before their cleanup ran: with the
// lock held, every work directory left is one of theirs.
func (l *LNS) reap(t testing.TB) {
	dirs, _ := filepath.Glob(filepath.Join(workRoot, "*"))
	for _, dir := range dirs {
		ns, err := os.ReadFile(filepath.Join(dir, netnsFile))
		if err != nil {
			// Not one of Start's (or from before it wrote the
			// file): never guess a namespace to clean up.
			continue
		}
		t.Logf("stopping the LNS a killed test left in %s", dir)
		cmd := exec.Command(l.script, "stop")
		cmd.Env = append(os.Environ(), "LNS_WORK="+dir, "LNS_NETNS="+string(ns))
		cmd.Run()
		os.RemoveAll(dir)
	}
}

// acquire takes the lock all LNS tests share.
func acquire(t testing.TB) *os.File {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(lockPath), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(lockPath, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) != nil {
		t.Logf("waiting for another test's LNS (%s)", lockPath)
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
			f.Close()
			t.Fatalf("lock %s: %v", lockPath, err)
		}
	}
	return f
}

// run runs the script with env and returns its output.
func (l *LNS) run(t testing.TB, env []string, args ...string) string {
	t.Helper()
	cmd := exec.Command(l.script, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", l.script, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// Stop stops the guest and removes what the script set up, the work
// directory, and releases the lock. Start registers it with t.Cleanup;
// calling it earlier (to see the LAC notice) is fine. When the test
// failed, it logs the end of the guest's console first.
func (l *LNS) Stop() {
	if l.lock == nil {
		return
	}
	if l.work != "" {
		if l.t.Failed() {
			l.t.Logf("the LNS's console, last lines:\n%s", tail(l.Log(), 60))
		}
		cmd := exec.Command(l.script, "stop")
		cmd.Env = append(os.Environ(), l.env...)
		cmd.Run()
		os.RemoveAll(l.work)
	}
	l.lock.Close() // releases the flock
	l.lock = nil
}

// Log is the guest's console so far: xl2tpd's and pppd's logs.
func (l *LNS) Log() string {
	b, _ := os.ReadFile(filepath.Join(l.work, "lns.console"))
	return string(b)
}

// WaitLog waits until the console shows a line matching pattern (a
// regular expression) after the first skip bytes, and returns that line.
// Use len(l.Log()) as skip to wait for something new.
func (l *LNS) WaitLog(t testing.TB, pattern string, skip int, timeout time.Duration) string {
	t.Helper()
	re := regexp.MustCompile(pattern)
	deadline := time.Now().Add(timeout)
	for {
		log := l.Log()
		if skip < len(log) {
			sc := bufio.NewScanner(strings.NewReader(log[skip:]))
			for sc.Scan() {
				if re.MatchString(sc.Text()) {
					return sc.Text()
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the LNS's log never matched %q in %v; its end:\n%s", pattern, timeout, tail(log, 40))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Attach connects namespace ns to the LNS's bridge by a veth pair: ifname
// in ns, with addr (in BridgeIP's subnet, e.g. 10.77.1.50/24), the other
// end a port of the bridge. The LNS is then one hop away from ns. The
// pair goes with the namespaces.
func (l *LNS) Attach(t testing.TB, ns, ifname string, addr netip.Prefix) {
	t.Helper()
	peer := nstest.Name("vl")
	nstest.Run(t, "ip", "-n", l.Netns, "link", "add", peer, "type", "veth", "peer", "name", ifname, "netns", ns)
	nstest.Run(t, "ip", "-n", l.Netns, "link", "set", peer, "master", l.Bridge, "up")
	nstest.Run(t, "ip", "-n", ns, "addr", "add", addr.String(), "dev", ifname)
	nstest.Run(t, "ip", "-n", ns, "link", "set", ifname, "up")
	t.Cleanup(func() { exec.Command("ip", "-n", l.Netns, "link", "del", peer).Run() })
}

// Console types a shell command line on the guest's serial console (a
// root shell): "killall pppd" ends the PPP sessions, "killall -9 xl2tpd"
// makes the LNS vanish. It returns once the shell echoed the line; the
// command's output goes to the console (Log).
func (l *LNS) Console(t testing.TB, line string) {
	t.Helper()
	mark := len(l.Log())
	c, err := net.Dial("unix", filepath.Join(l.work, "lns.sock"))
	if err != nil {
		t.Fatalf("the LNS's console: %v", err)
	}
	// QEMU drops what it has not passed to the guest's UART yet when the
	// connection closes: keep it open until the shell echoed the line.
	defer c.Close()
	// The shell's line editor asks the terminal where the cursor is
	// (ESC [ 6 n) at each prompt and eats what comes until the answer:
	// answer first.
	if _, err := io.WriteString(c, "\x1b[1;1R"+line+"\n"); err != nil {
		t.Fatalf("the LNS's console: %v", err)
	}
	l.WaitLog(t, regexp.QuoteMeta(line), mark, time.Minute)
}

// besideRepo is the path of name in the directory that holds the
// repository (the module root, found from this file's location).
func besideRepo(name string) string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return filepath.Join("..", name)
	}
	dir := filepath.Dir(file)
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(filepath.Dir(dir), name)
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return filepath.Join("..", name)
		}
		dir = parent
	}
}
