package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/braid-router/braid/internal/nstest"
	"github.com/braid-router/braid/lab"
	"github.com/braid-router/braid/lab/labtest"
	"github.com/braid-router/braid/reconcile"
	"github.com/braid-router/braid/session"
	"github.com/braid-router/braid/sessions/dhcpserver"
)

// TestLANDHCPInTheLab: `braid run` of specs/lab.yaml with lan.dhcp, and
// busybox's udhcpc on the LAN client: through braid's own firewall, the
// client gets the address it asks for with the box as router and server;
// status shows the lease; after braid restarts, the client gets the same
// address back without asking for it (the state file).
func TestLANDHCPInTheLab(t *testing.T) {
	nstest.RequireBinary(t, "busybox")
	l := labtest.New(t)
	b := labBoxOf(t, l)
	lan := l.NS(lab.RoleLAN)
	spec, err := os.ReadFile("../../specs/lab.yaml")
	if err != nil {
		t.Fatal(err)
	}
	const addrs = "    addresses: [192.168.50.1/24, 2001:db8:50::1/64]\n"
	// specs/lab.yaml's own server gives the LAN client a static lease;
	// this test starts with a server without it.
	labDHCP, ok := strings.CutPrefix(string(spec)[strings.Index(string(spec), addrs)+len(addrs):], "    # braid's DHCP server")
	if !ok {
		t.Fatalf("specs/lab.yaml's LAN has changed: no DHCP server after %q", addrs)
	}
	end := strings.Index(labDHCP, "  uplinks:\n")
	spec = []byte(strings.Replace(string(spec), "    # braid's DHCP server"+labDHCP[:end], "", 1))
	if !strings.Contains(string(spec), addrs+"  uplinks:\n") || strings.Contains(string(spec), "dhcp:") {
		t.Fatalf("specs/lab.yaml's LAN has changed: cannot take its DHCP server out:\n%s", spec)
	}
	path := writeSpec(t, strings.Replace(string(spec), addrs, addrs+"    dhcp: {range: [192.168.50.100, 192.168.50.150], leaseTime: 1h}\n", 1))
	running := func(d *daemon) {
		d.within(2*time.Minute, "the LAN DHCP server running", func(st reconcile.Status) bool {
			s, ok := sessionIn(st, "session[dhcpserver/lan]")
			return converged(st) && ok && s.State == session.Running
		})
	}
	d := b.startDaemon("-f", path)
	running(d)

	mac := nstest.MAC(t, lan, lab.LANDev)
	// .120, not the first free address: getting it back after the restart
	// without asking is the state file's doing.
	got := udhcpc(t, lan, "192.168.50.120")
	for k, v := range map[string]string{"ip": "192.168.50.120", "subnet": "255.255.255.0", "router": "192.168.50.1", "serverid": "192.168.50.1", "lease": "3600"} {
		if got[k] != v {
			t.Errorf("udhcpc's %s = %q, want %q", k, got[k], v)
		}
	}
	// A lease is no fact (it must not cause a pass): none is the server's.
	after, _ := d.status()
	for _, e := range after.Facts.Entries {
		if e.Owner == "dhcpserver/lan" {
			t.Errorf("the LAN DHCP server published a fact: %+v", e)
		}
	}
	out := b.must(0, "status").stdout
	if want := "1 lease: 192.168.50.120 " + mac + " until "; !strings.Contains(out, want) {
		t.Errorf("status lacks %q:\n%s", want, out)
	}
	if _, err := os.Stat(filepath.Join(b.stateDir, b.ns, dhcpserver.LeaseFile)); err != nil {
		t.Errorf("no state file: %v", err)
	}

	d.stop(syscall.SIGTERM)
	d = b.startDaemon("-f", path)
	running(d)
	if got := udhcpc(t, lan, ""); got["ip"] != "192.168.50.120" {
		t.Errorf("after braid restarted, the client got %q, want 192.168.50.120 again", got["ip"])
	}

	// The lab's LAN client has a fixed MAC: a static lease gives it its
	// own address, the one the lab's port forwards point at.
	if mac != lab.LANClientMAC {
		t.Fatalf("the LAN client's MAC is %s, want the lab's fixed %s", mac, lab.LANClientMAC)
	}
	before, _ := d.status()
	writeSpecTo(t, path, strings.Replace(string(spec), addrs, addrs+"    dhcp:\n      range: [192.168.50.100, 192.168.50.150]\n"+
		"      static: [{mac: \""+lab.LANClientMAC+"\", address: "+lab.LANClientV4+", hostname: client}]\n", 1))
	d.within(2*time.Minute, "the static lease applied", func(st reconcile.Status) bool {
		s, ok := sessionIn(st, "session[dhcpserver/lan]")
		return st.Revision != before.Revision && converged(st) && ok && s.State == session.Running
	})
	if got := udhcpc(t, lan, ""); got["ip"] != lab.LANClientV4 {
		t.Errorf("with a static lease, the LAN client got %q, want %s", got["ip"], lab.LANClientV4)
	}
	if out := b.must(0, "status").stdout; !strings.Contains(out, lab.LANClientV4+" "+mac+" (client) static until ") {
		t.Errorf("status lacks the static lease:\n%s", out)
	}
}

// udhcpc runs busybox's udhcpc on the lab's LAN client until it is bound
// (asking for requested when set) and returns what its script saw.
func udhcpc(t *testing.T, ns, requested string) map[string]string {
	t.Helper()
	dir := t.TempDir()
	script := filepath.Join(dir, "record.sh")
	if err := os.WriteFile(script, []byte("#!/bin/sh\nenv > \"$UDHCPC_OUT.$1\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	args := []string{"netns", "exec", ns, "busybox", "udhcpc", "-f", "-q", "-n", "-t", "30", "-T", "1", "-i", lab.LANDev, "-s", script}
	if requested != "" {
		args = append(args, "-r", requested)
	}
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", args...)
	cmd.Env = append(os.Environ(), "UDHCPC_OUT="+filepath.Join(dir, "out"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("udhcpc: %v\n%s", err, out)
	}
	b, err := os.ReadFile(filepath.Join(dir, "out.bound"))
	if err != nil {
		t.Fatalf("udhcpc bound no lease: %v", err)
	}
	vars := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			vars[k] = strings.TrimSpace(v)
		}
	}
	return vars
}
