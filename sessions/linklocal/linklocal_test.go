package linklocal

import (
	"net"
	"strings"
	"testing"

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
