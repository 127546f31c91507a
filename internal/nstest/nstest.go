// Package nstest gives tests throwaway network namespaces. Tests that need
// root skip outside CI when not root, and fail in CI (CI=true), where every
// test must run.
package nstest

import (
	"crypto/rand"
	"encoding/hex"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/braid-router/braid/internal/netns"
)

// RequireRoot fails the test in CI and skips it elsewhere when the process
// is not root.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("this test needs root (CI=true: not skipping)")
	}
	t.Skip("needs root")
}

// RequireBinary fails the test in CI and skips it elsewhere when a program
// the test needs (on its side, never the code under test's) is missing. It
// returns the program's path.
func RequireBinary(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	msg := name + " is missing: run scripts/deps.sh (as root) to install the test dependencies"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg + " (CI=true: not skipping)")
	}
	t.Skip(msg)
	return ""
}

// Name returns a fresh name with the given prefix, short enough for
// interface names derived from it.
func Name(prefix string) string {
	b := make([]byte, 3)
	rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// New creates a named network namespace, brings its loopback up, and
// removes it when the test ends.
func New(t testing.TB) string {
	t.Helper()
	RequireRoot(t)
	name := Name("bt-")
	Run(t, "ip", "netns", "add", name)
	t.Cleanup(func() {
		exec.Command("ip", "netns", "del", name).Run()
	})
	Run(t, "ip", "-n", name, "link", "set", "lo", "up")
	return name
}

// Run runs a command and fails the test if it fails. It returns the output.
func Run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// In runs a command inside namespace ns (ip netns exec) and fails the test
// if it fails. It returns the output.
func In(t testing.TB, ns string, name string, args ...string) string {
	t.Helper()
	return Run(t, "ip", append([]string{"netns", "exec", ns, name}, args...)...)
}

// Do runs fn inside namespace ns on a locked OS thread and fails the test
// if fn fails.
func Do(t testing.TB, ns string, fn func() error) {
	t.Helper()
	if err := netns.Do(ns, fn); err != nil {
		t.Fatal(err)
	}
}

// MAC returns the MAC address of link in namespace ns.
func MAC(t testing.TB, ns, link string) string {
	t.Helper()
	var mac string
	Do(t, ns, func() error {
		ifi, err := net.InterfaceByName(link)
		if err != nil {
			return err
		}
		mac = ifi.HardwareAddr.String()
		return nil
	})
	return mac
}
