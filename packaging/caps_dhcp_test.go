package packaging

import (
	"context"
	"net/netip"
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

// dhcpSpec takes isp1's address by DHCP.
const dhcpSpec = `apiVersion: braid/v1alpha1
kind: Router
metadata:
  name: caps-dhcp
spec:
  lan:
    interface: lan0
    addresses: [192.168.50.1/24]
  uplinks:
  - name: isp1
    interface: wan1
    priority: 10
    ipv4:
      dhcp: {}
  - name: isp2
    interface: wan2
    priority: 20
    ipv4:
      static: {address: 10.102.0.2/24, gateway: 10.102.0.1}
`

// TestCapabilitiesDHCP runs the daemon, `braid run`, with exactly the
// unit's capabilities, and checks it takes a lease from a real DHCP server
// (dnsmasq) on its uplink: the packet sockets and the bound UDP socket
// of the DHCP client work under that set, and the lease's address reaches
// the kernel.
func TestCapabilitiesDHCP(t *testing.T) {
	nstest.RequireBinary(t, "dnsmasq")
	nstest.RequireBinary(t, "setpriv")
	ns, far := nstest.New(t), nstest.New(t)
	for _, l := range []string{"lan0", "wan1", "wan2"} {
		nstest.Run(t, "ip", "-n", ns, "link", "add", l, "type", "veth", "peer", "name", l+"p", "netns", far)
		nstest.Run(t, "ip", "-n", far, "link", "set", l+"p", "up")
	}
	nstest.Run(t, "ip", "-n", far, "addr", "add", "10.101.0.1/24", "dev", "wan1p")
	srv := lab.DHCP4Server{Dev: "wan1p", First: netip.MustParseAddr("10.101.0.50"), Last: netip.MustParseAddr("10.101.0.60"),
		Bits: 24, Router: netip.MustParseAddr("10.101.0.1"), LeaseTime: time.Hour}
	dnsmasqLog := &nstest.SyncBuffer{}
	d := exec.Command("ip", append([]string{"netns", "exec", far}, srv.Command()...)...)
	d.Stdout, d.Stderr = dnsmasqLog, dnsmasqLog
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Process.Kill(); d.Wait() })
	waitFor(t, "dnsmasq to listen", func() bool { return strings.Contains(dnsmasqLog.String(), "DHCP, sockets bound") })

	spec := filepath.Join(t.TempDir(), "spec.yaml")
	if err := os.WriteFile(spec, []byte(dhcpSpec), 0o644); err != nil {
		t.Fatal(err)
	}
	caps := unitCaps(t)
	argv := append([]string{"ip", "netns", "exec", ns}, setprivArgs(caps)...)
	argv = append(argv, braidBin, "run", "-f", spec)
	daemonLog := &nstest.SyncBuffer{}
	run := exec.Command(argv[0], argv[1:]...)
	run.Env = append(os.Environ(), testDirs(t)...)
	run.Stdout, run.Stderr = daemonLog, daemonLog
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- run.Wait() }()
	t.Cleanup(func() {
		run.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			run.Process.Kill()
			<-exited
		}
	})
	waitFor(t, "a lease on wan1", func() bool {
		select {
		case err := <-exited:
			t.Fatalf("braid run exited: %v\n%s", err, daemonLog)
		default:
		}
		out, _ := exec.Command("ip", "-n", ns, "-4", "addr", "show", "dev", "wan1").Output()
		return strings.Contains(string(out), "inet 10.101.0.5") || strings.Contains(string(out), "inet 10.101.0.60/")
	}, func() string { return "braid:\n" + daemonLog.String() + "\ndnsmasq:\n" + dnsmasqLog.String() })
	if !strings.Contains(dnsmasqLog.String(), "DHCPACK(wan1p)") {
		t.Errorf("dnsmasq acknowledged nothing:\n%s", dnsmasqLog)
	}
}

// waitFor polls cond every 100 ms for up to a minute; the optional
// explain says what to print on failure.
func waitFor(t *testing.T, what string, cond func() bool, explain ...func() string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for !cond() {
		select {
		case <-ctx.Done():
			msg := ""
			for _, e := range explain {
				msg += e()
			}
			t.Fatalf("timed out waiting for %s\n%s", what, msg)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
