package linklocal

import (
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/braid-router/braid/internal/nstest"
)

// No link-local address, a tentative one (no carrier: DAD cannot end),
// then one past DAD (nodad), each as the kernel has it.
func TestUsable(t *testing.T) {
	ns := nstest.New(t)
	nstest.Run(t, "ip", "-n", ns, "link", "add", "ll0", "type", "veth", "peer", "name", "ll1")
	nstest.Run(t, "ip", "-n", ns, "link", "set", "ll0", "addrgenmode", "none")
	nstest.Run(t, "ip", "-n", ns, "link", "set", "ll0", "up") // ll1 stays down: no carrier
	usable := func() (string, error) {
		var got string
		var err error
		nstest.Do(t, ns, func() error {
			ifi, e := net.InterfaceByName("ll0")
			if e != nil {
				return e
			}
			a, e := Usable(ifi)
			got, err = a.String(), e
			return nil
		})
		return got, err
	}
	if _, err := usable(); err == nil || !strings.Contains(err.Error(), "no link-local address on ll0") {
		t.Errorf("without a link-local address: %v", err)
	}
	nstest.Run(t, "ip", "-n", ns, "addr", "add", "fe80::2/64", "dev", "ll0")
	if _, err := usable(); err == nil || !strings.Contains(err.Error(), "tentative") {
		t.Errorf("with a tentative link-local address: %v", err)
	}
	nstest.Run(t, "ip", "-n", ns, "addr", "add", "fe80::1/64", "dev", "ll0", "nodad")
	if got, err := usable(); err != nil || got != "fe80::1" {
		t.Errorf("with fe80::1 past DAD: %q, %v", got, err)
	}
}

// Check follows the link as the kernel changes it: carrier lost, link
// down, the link-local address gone, the link made again under its name.
func TestCheck(t *testing.T) {
	ns := nstest.New(t)
	nstest.Run(t, "ip", "-n", ns, "link", "add", "ll0", "type", "veth", "peer", "name", "ll1")
	nstest.Run(t, "ip", "-n", ns, "link", "set", "ll0", "addrgenmode", "none")
	nstest.Run(t, "ip", "-n", ns, "addr", "add", "fe80::1/64", "dev", "ll0", "nodad")
	nstest.Run(t, "ip", "-n", ns, "link", "set", "ll1", "up")
	nstest.Run(t, "ip", "-n", ns, "link", "set", "ll0", "up")
	var ifi *net.Interface
	nstest.Do(t, ns, func() (err error) { ifi, err = net.InterfaceByName("ll0"); return err })
	ll := netip.MustParseAddr("fe80::1")
	check := func() error {
		var err error
		nstest.Do(t, ns, func() error { err = Check(ifi, ll); return nil })
		return err
	}
	want := func(what, sub string) {
		t.Helper()
		// The kernel reports carrier changes through linkwatch, up to a
		// second later: wait for the state, not a sleep.
		deadline := time.Now().Add(30 * time.Second)
		for {
			err := check()
			if sub == "" && err == nil || sub != "" && err != nil && strings.Contains(err.Error(), sub) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: Check = %v, want %q", what, err, sub)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	want("up with carrier", "")
	nstest.Run(t, "ip", "-n", ns, "link", "set", "ll1", "down")
	want("the far end down", "lost its carrier")
	nstest.Run(t, "ip", "-n", ns, "link", "set", "ll1", "up")
	want("the far end up again", "")
	nstest.Run(t, "ip", "-n", ns, "addr", "del", "fe80::1/64", "dev", "ll0")
	want("the address deleted", "the link-local address fe80::1 of ll0 is gone")
	nstest.Run(t, "ip", "-n", ns, "link", "set", "ll0", "down")
	want("down", "went down")
	nstest.Run(t, "ip", "-n", ns, "link", "del", "ll0")
	nstest.Run(t, "ip", "-n", ns, "link", "add", "ll0", "type", "veth", "peer", "name", "ll1")
	want("made again", "was made again")
	nstest.Run(t, "ip", "-n", ns, "link", "del", "ll0")
	want("gone", "link ll0:")
}
