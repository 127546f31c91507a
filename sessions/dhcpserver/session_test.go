package dhcpserver

import (
	"context"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/braid-router/braid/facts"
	"github.com/braid-router/braid/internal/nstest"
	"github.com/braid-router/braid/internal/sessiontest"
	"github.com/braid-router/braid/session"
	"github.com/braid-router/braid/sessions/dhcpserver/leases"
)

// deadline bounds every wait on a condition: the suite runs on a busy
// machine, so it is a bound on a hang, not a measurement.
const deadline = 90 * time.Second

const (
	dynamicMAC = "02:00:00:00:77:0a"
	staticMAC  = "02:00:00:00:77:05"
)

var testCfg = Config{
	Interface: "lan0",
	Server:    netip.MustParseAddr("192.168.77.1"),
	Subnet:    netip.MustParsePrefix("192.168.77.0/24"),
	First:     netip.MustParseAddr("192.168.77.100"),
	Last:      netip.MustParseAddr("192.168.77.150"),
	LeaseTime: time.Hour,
	Static:    []leases.Static{{MAC: staticMAC, Addr: netip.MustParseAddr("192.168.77.10"), Hostname: "nas"}},
	Router:    netip.MustParseAddr("192.168.77.1"),
	DNS:       []netip.Addr{netip.MustParseAddr("192.168.77.1"), netip.MustParseAddr("192.168.77.53")},
}

// rig is a box whose LAN link is the bridge lan0, with a veth to each
// host namespace, so that several hosts share the LAN.
type rig struct {
	t        *testing.T
	box      string
	hub      *facts.Hub
	stateDir string
	script   string
}

func newRig(t *testing.T) *rig {
	t.Helper()
	nstest.RequireRoot(t)
	nstest.RequireBinary(t, "busybox")
	r := &rig{t: t, box: nstest.New(t), stateDir: t.TempDir()}
	r.bridge()
	var err error
	if r.hub, err = facts.Open(facts.Options{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.hub.Close)
	// udhcpc's script records each event's variables in $UDHCPC_OUT.EVENT.
	r.script = filepath.Join(t.TempDir(), "record.sh")
	if err := os.WriteFile(r.script, []byte("#!/bin/sh\nenv > \"$UDHCPC_OUT.$1\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return r
}

// bridge makes the box's LAN link, lan0.
func (r *rig) bridge() {
	t := r.t
	t.Helper()
	nstest.Run(t, "ip", "-n", r.box, "link", "add", "lan0", "type", "bridge")
	nstest.Run(t, "ip", "-n", r.box, "addr", "add", "192.168.77.1/24", "dev", "lan0")
	nstest.Run(t, "ip", "-n", r.box, "link", "set", "lan0", "up")
}

// host makes a host namespace whose eth0, with the given MAC, is on the
// box's LAN.
func (r *rig) host(mac string) string {
	t := r.t
	t.Helper()
	h := nstest.New(t)
	port := "p" + mac[len(mac)-2:]
	nstest.Run(t, "ip", "-n", h, "link", "add", "eth0", "address", mac, "type", "veth", "peer", "name", port, "netns", r.box)
	nstest.Run(t, "ip", "-n", r.box, "link", "set", port, "master", "lan0", "up")
	nstest.Run(t, "ip", "-n", h, "link", "set", "eth0", "up")
	return h
}

func (r *rig) start() *sessiontest.Run {
	r.t.Helper()
	s := &Server{StateDir: r.stateDir}
	return sessiontest.Start(r.t, r.box, Kind+"/"+Name, r.hub, func(ctx context.Context, env *session.Env) error {
		return s.Run(ctx, testCfg, env)
	})
}

// lease runs busybox's udhcpc on host until it is bound (asking for
// requested when set), and returns the variables its script saw.
func (r *rig) lease(host, requested string, extra ...string) map[string]string {
	t := r.t
	t.Helper()
	out := filepath.Join(t.TempDir(), "udhcpc")
	args := []string{"netns", "exec", host, "busybox", "udhcpc", "-f", "-q", "-n", "-t", "30", "-T", "1", "-i", "eth0", "-s", r.script}
	if requested != "" {
		args = append(args, "-r", requested)
	}
	args = append(args, extra...)
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", args...)
	cmd.Env = append(os.Environ(), "UDHCPC_OUT="+out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("udhcpc: %v\n%s", err, b)
	}
	b, err := os.ReadFile(out + ".bound")
	if err != nil {
		t.Fatalf("udhcpc bound no lease: %v", err)
	}
	vars := map[string]string{}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, "="); ok {
			vars[k] = v
		}
	}
	return vars
}

// wantOptions checks what udhcpc's script saw against testCfg: options
// 1, 3, 6, 51 and 54, and the address.
func wantOptions(t *testing.T, vars map[string]string, ip string) {
	t.Helper()
	want := map[string]string{"ip": ip, "subnet": "255.255.255.0", "router": "192.168.77.1",
		"dns": "192.168.77.1 192.168.77.53", "lease": "3600", "serverid": "192.168.77.1"}
	for k, v := range want {
		if got := strings.TrimSpace(vars[k]); got != v {
			t.Errorf("udhcpc's %s = %q, want %q", k, got, v)
		}
	}
}

// busybox's udhcpc, unmodified, gets a lease with the configured
// options, the static lease by its MAC, and, after a restart of the
// server, the same address back from the state file; status shows the
// leases; tshark reads the exchange without a malformed packet.
func TestUDHCPC(t *testing.T) {
	r := newRig(t)
	dyn, stat := r.host(dynamicMAC), r.host(staticMAC)
	cap := nstest.StartCapture(t, r.box, "lan0", "udp port 67 or udp port 68")
	s := r.start()

	// It asks for .120: not the first free address, so that getting it
	// back after the restart without asking is the state file's doing.
	wantOptions(t, r.lease(dyn, "192.168.77.120"), "192.168.77.120")
	wantOptions(t, r.lease(stat, ""), "192.168.77.10")

	sessiontest.WaitFor(t, "the status to show both leases", deadline, func() bool {
		st, d := s.Status()
		return st == session.Running && strings.HasPrefix(d, "2 leases: ") &&
			strings.Contains(d, "192.168.77.10 "+staticMAC+" (nas) static until ") &&
			strings.Contains(d, "192.168.77.120 "+dynamicMAC+" until ")
	})
	b, err := os.ReadFile(filepath.Join(r.stateDir, LeaseFile))
	if err != nil {
		t.Fatal(err)
	}
	saved, err := leases.Unmarshal(b)
	if err != nil || len(saved) != 2 {
		t.Fatalf("state file: %v, %d leases, want 2:\n%s", err, len(saved), b)
	}
	if len(r.hub.Set().Slots[Kind+"/"+Name].Facts) != 0 {
		t.Errorf("the server published facts: a lease must not cause a pass")
	}

	// A restart: the same address back, without asking for it.
	s.Stop(t, session.ErrShutdown)
	s = r.start()
	wantOptions(t, r.lease(dyn, ""), "192.168.77.120")
	// A new host gets the first free address; its hostname (option 12)
	// shows in status.
	wantOptions(t, r.lease(r.host("02:00:00:00:77:0c"), "", "-x", "hostname:laptop"), "192.168.77.100")
	sessiontest.WaitFor(t, "the status to show the new host's name", deadline, func() bool {
		_, d := s.Status()
		return strings.Contains(d, "192.168.77.100 02:00:00:00:77:0c (laptop) until ")
	})

	sessiontest.WaitFor(t, "the capture to hold the last ACK", deadline, func() bool {
		return len(cap.Fields("dhcp.option.dhcp == 5 && dhcp.ip.your == 192.168.77.100", "frame.number")) > 0
	})
	cap.Stop()
	if bad := cap.Fields("_ws.malformed || _ws.expert", "frame.number"); len(bad) > 0 {
		t.Errorf("tshark flags %d frames:\n%s", len(bad), strings.Join(cap.Fields("_ws.malformed || _ws.expert", "frame.number", "_ws.expert.message"), "\n"))
	}
	// What the server sent, as tshark decodes it.
	for _, l := range cap.Fields("udp.srcport == 67 && dhcp.option.dhcp == 5",
		"dhcp.option.subnet_mask", "dhcp.option.router", "dhcp.option.domain_name_server", "dhcp.option.ip_address_lease_time", "dhcp.option.dhcp_server_id") {
		if want := "255.255.255.0|192.168.77.1|192.168.77.1,192.168.77.53|3600|192.168.77.1"; l != want {
			t.Errorf("an ACK as tshark reads it: %s, want %s", l, want)
		}
	}
	if n := len(cap.Fields("udp.srcport == 67 && dhcp.option.dhcp == 5", "frame.number")); n != 4 {
		t.Errorf("%d ACKs in the capture, want 4", n)
	}
}

// The LAN's link goes and comes back as another link: the server waits
// for it, then serves on the new one. A state file braid cannot read is
// moved aside, and the server starts without leases.
func TestLinkGoneAndBack(t *testing.T) {
	r := newRig(t)
	if err := os.WriteFile(filepath.Join(r.stateDir, LeaseFile), []byte("{torn"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := r.start()
	sessiontest.WaitFor(t, "the server running", deadline, func() bool {
		st, d := s.Status()
		return st == session.Running && d == "no leases"
	})
	if _, err := os.Stat(filepath.Join(r.stateDir, LeaseFile+".bad")); err != nil {
		t.Errorf("the unreadable state file was not kept aside: %v", err)
	}
	nstest.Run(t, "ip", "-n", r.box, "link", "del", "lan0")
	sessiontest.WaitFor(t, "the server waiting for its link", deadline, func() bool {
		st, d := s.Status()
		return st == session.Waiting && d == "link lan0"
	})
	r.bridge()
	wantOptions(t, r.lease(r.host(dynamicMAC), ""), "192.168.77.100")
}
