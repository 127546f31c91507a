package lab

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/braid-router/braid/internal/testlns"
	"github.com/braid-router/braid/internal/testlns/ppp"
)

// The lab's own test LNS (`braid lab lns up`): braid's test LNS
// (package internal/testlns: L2TPv2 with tunnel authentication, PPP with
// CHAP-MD5 or PAP and IPV6CP) in a namespace of its own, N-lns, behind
// the bridge br-lns in isp1, where the shared real LNS sits when tests
// host it (see lab/labtest.StartLNS), with Kea delegating prefixes over
// its sessions. specs/lab-6pe.yaml works unchanged with either.
const (
	// RoleLNS is the namespace of the lab's test LNS, which only `lab lns
	// up` creates.
	RoleLNS Role = "lns"
	// LNSProcess and LNSDHCP6Process are the LNS and its DHCPv6 server
	// (Kea) among the lab's processes.
	LNSProcess      = "lns"
	LNSDHCP6Process = "lns-dhcp6"
	// LNSBridge is the bridge in isp1 the LNS hangs off, with
	// LNSBridgeV4 and LNSBridgeV6; the LNS has LNSAddrV4 (where the box
	// sends L2TP) and LNSAddrV6.
	LNSBridge   = "br-lns"
	LNSBridgeV4 = "10.77.1.1"
	LNSBridgeV6 = "2001:db8:77::1"
	LNSAddrV4   = "10.77.1.2"
	LNSAddrV6   = "2001:db8:77::2"
	// LNSLink is the LNS's TUN link, which carries its sessions' IPv6.
	LNSLink = "l2tp0"
	// LNSDelegated is the aggregate the core routes to isp1 and isp1 to
	// the LNS; LNSPool is where Kea delegates /56s (LNSDelegatedLen) from,
	// as the real LNS's first session does.
	LNSDelegated    = "2001:db8:e000::/40"
	LNSPool         = "2001:db8:e000::/48"
	LNSDelegatedLen = 56
	// LNSLinkSubnet is the prefix Kea's subnet on LNSLink names (Kea
	// selects a subnet by interface for clients on it; no address of it is
	// used).
	LNSLinkSubnet = "2001:db8:77:1::/64"
	// The LNS's defaults: the tunnel secret and the login
	// specs/lab-6pe.yaml makes (its template filled in with the ONT's
	// lease and the spec's MAC address), with the password its header
	// uses.
	LNSDefaultSecret   = "6pe"
	LNSDefaultUser     = "dhcp/" + BoxWAN1V4 + "@0024d4aabbcc"
	LNSDefaultPassword = "testpass"
)

// lnsInterfaceID is the LNS's IPV6CP interface identifier: its
// link-local address is fe80::1, as pppd's `ipv6 ::1,` makes the real
// LNS's.
var lnsInterfaceID = [8]byte{7: 1}

// LNSConfig is what `braid lab lns up` sets.
type LNSConfig struct {
	// Secret is the tunnel secret; User and Password the PPP login; Auth
	// "chap" (CHAP-MD5, the default) or "pap".
	Secret   string
	User     string
	Password string
	Auth     string
}

// lnsServe is the LNS process's configuration file (mode 0600: it holds
// the secret and the password, which stay off command lines).
type lnsServe struct {
	Addr     string   `json:"addr"`
	Secret   string   `json:"secret"`
	User     string   `json:"user"`
	Password string   `json:"password"`
	Auth     string   `json:"auth"`
	Link     string   `json:"link"`
	MTU      int      `json:"mtu"`
	Routes   []string `json:"routes"`
}

// LNSDHCP6 is the DHCPv6 server the lab runs on the LNS's link: /56s of
// LNSPool, the lab's resolver, the real LNS's times, leases in dir.
func LNSDHCP6(dir string) DHCP6Server {
	return DHCP6Server{
		Dev: LNSLink, Subnet: netip.MustParsePrefix(LNSLinkSubnet),
		Pool: netip.MustParsePrefix(LNSPool), DelegatedLen: LNSDelegatedLen,
		DNS:       []netip.Addr{netip.MustParseAddr(ResolverV6)},
		Preferred: 3000 * time.Second, Valid: 4000 * time.Second, Renew: 1000 * time.Second, Rebind: 2000 * time.Second,
		Dir: dir,
	}
}

// lnsDir is where the LNS's Kea keeps its leases, PID and lock files: they
// outlive `lab lns down`, so the same box gets its prefix back.
func (l *Lab) lnsDir() string { return filepath.Join(procsDir(l.Dir), "lns-kea") }

// LNSUp starts the lab's test LNS: the namespace N-lns behind the bridge
// br-lns in isp1, routes for the prefixes it delegates (the core to isp1,
// isp1 to the LNS), the LNS process (through the lab's helper, `braid lab
// serve -lns FILE`), which it waits for, and Kea on the LNS's link. It
// refuses when the LNS (or the real one, whose bridge has the same name)
// is there already. On failure it removes what it made.
func (l *Lab) LNSUp(ctx context.Context, cfg LNSConfig) error {
	if cfg.Auth == "" {
		cfg.Auth = string(ppp.CHAP)
	}
	if cfg.Auth != string(ppp.CHAP) && cfg.Auth != string(ppp.PAP) {
		return fmt.Errorf("lab %s: LNS authentication %q: want chap or pap", l.Name, cfg.Auth)
	}
	ns, isp := l.NS(RoleLNS), l.NS(RoleISP1)
	if existingNamespaces(l.Name, []Role{RoleLNS}) != nil {
		return fmt.Errorf("lab %s: the LNS is up already (namespace %s); `braid lab lns down --name %s` first", l.Name, ns, l.Name)
	}
	if exec.CommandContext(ctx, "ip", "-n", isp, "link", "show", LNSBridge).Run() == nil {
		return fmt.Errorf("lab %s: %s has a %s already (the real LNS of ../shared?)", l.Name, isp, LNSBridge)
	}
	if _, err := exec.LookPath("kea-dhcp6"); err != nil {
		return fmt.Errorf("lab %s: the LNS delegates prefixes with Kea: %w (scripts/deps.sh installs it)", l.Name, err)
	}
	err := l.lnsUp(ctx, cfg)
	if err != nil {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()
		if derr := l.LNSDown(cctx); derr != nil {
			return fmt.Errorf("lab %s: LNS: %w (and removing it: %v)", l.Name, err, derr)
		}
		return fmt.Errorf("lab %s: LNS: %w", l.Name, err)
	}
	return nil
}

func (l *Lab) lnsUp(ctx context.Context, cfg LNSConfig) error {
	ns, isp := l.NS(RoleLNS), l.NS(RoleISP1)
	if err := ipBatch(ctx, "", []string{"netns add " + ns}, false); err != nil {
		return err
	}
	if err := writeSysctls(ns, []Sysctl{
		{"net.ipv6.conf.all.accept_dad", "0"}, {"net.ipv6.conf.default.accept_dad", "0"},
		{"net.ipv6.conf.all.forwarding", "1"},
	}); err != nil {
		return err
	}
	if err := ipBatch(ctx, isp, []string{
		"link add " + LNSBridge + " type bridge",
		"link add lns0 type veth peer name eth0 netns " + ns,
		"link set lns0 master " + LNSBridge,
		"addr add " + LNSBridgeV4 + "/24 dev " + LNSBridge,
		"addr add " + LNSBridgeV6 + "/64 dev " + LNSBridge + " nodad",
		"link set " + LNSBridge + " up",
		"link set lns0 up",
		"route replace " + LNSDelegated + " via " + LNSAddrV6 + " dev " + LNSBridge,
	}, false); err != nil {
		return err
	}
	if err := ipBatch(ctx, ns, []string{
		"link set lo up",
		"addr add " + LNSAddrV4 + "/24 dev eth0",
		"addr add " + LNSAddrV6 + "/64 dev eth0 nodad",
		"link set eth0 up",
		"route add default via " + LNSBridgeV4,
		"route add default via " + LNSBridgeV6,
	}, false); err != nil {
		return err
	}
	if err := ipBatch(ctx, l.NS(RoleInet), []string{"route replace " + LNSDelegated + " via " + ISP1UpV6}, false); err != nil {
		return err
	}
	conf, err := json.Marshal(lnsServe{
		Addr: LNSAddrV4 + ":1701", Secret: cfg.Secret, User: cfg.User, Password: cfg.Password, Auth: cfg.Auth,
		// The uplink's 1500 less IPv4, UDP, L2TP and PPP (38 octets):
		// the MTU braid gives its side of the tunnel.
		Link: LNSLink, MTU: 1462, Routes: []string{LNSPool},
	})
	if err != nil {
		return err
	}
	if _, err := startProcess(ctx, l, Process{Name: LNSProcess, Role: RoleLNS,
		Serve: []string{"-lns", confPath(l.Dir, LNSProcess)}, Config: string(conf)}); err != nil {
		return err
	}
	dir := l.lnsDir()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	kea := LNSDHCP6(dir)
	_, err = startProcess(ctx, l, Process{Name: LNSDHCP6Process, Role: RoleLNS,
		Command: kea.Command("{conf}", dir), Config: kea.Config()})
	return err
}

// LNSDown stops the lab's test LNS and removes its namespace, bridge and
// routes; Kea's leases stay for the next LNSUp. An LNS that is not there
// is not an error.
func (l *Lab) LNSDown(ctx context.Context) error {
	var errs []error
	for _, p := range []string{LNSDHCP6Process, LNSProcess} {
		if err := l.stop(p); err != nil {
			errs = append(errs, err)
		}
	}
	if ns := existingNamespaces(l.Name, []Role{RoleLNS}); ns != nil {
		if pids, err := pidsInNamespace(ns[0]); err == nil {
			if left := stopPIDs(pids); len(left) > 0 {
				errs = append(errs, fmt.Errorf("processes %v did not stop", left))
			}
		}
		if err := ipBatch(ctx, "", []string{"netns del " + ns[0]}, true); err != nil {
			errs = append(errs, err)
		}
	}
	ipBatch(ctx, l.NS(RoleISP1), []string{"link del " + LNSBridge}, true)
	ipBatch(ctx, l.NS(RoleInet), []string{"route del " + LNSDelegated + " via " + ISP1UpV6}, true)
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("lab %s: LNS down: %w", l.Name, err)
	}
	return nil
}

// LNSStatus is what `braid lab lns status` shows.
type LNSStatus struct {
	// Up: the LNS's namespace exists.
	Up bool `json:"up"`
	// Processes are the LNS's and Kea's, when recorded.
	Processes []ProcessStatus `json:"processes,omitempty"`
	// Events are the LNS log's lines about tunnels, sessions and logins,
	// the last ones.
	Events []string `json:"events,omitempty"`
}

// LNSStatus reads the state of the lab's test LNS.
func (l *Lab) LNSStatus() (LNSStatus, error) {
	st := LNSStatus{Up: existingNamespaces(l.Name, []Role{RoleLNS}) != nil}
	recs, err := readProcs(l.Dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return st, fmt.Errorf("lab %s: %w", l.Name, err)
	}
	for _, rec := range recs {
		if rec.Name == LNSProcess || rec.Name == LNSDHCP6Process {
			st.Processes = append(st.Processes, ProcessStatus{Name: rec.Name, Role: rec.Role, Namespace: rec.Namespace,
				PID: rec.PID, Alive: rec.alive(), Args: rec.Args, Log: rec.Log})
		}
	}
	if b, err := os.ReadFile(filepath.Join(procsDir(l.Dir), LNSProcess+".log")); err == nil && len(bytes.TrimSpace(b)) > 0 {
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		st.Events = lines[max(0, len(lines)-10):]
	}
	return st, nil
}

// serveLNS runs the test LNS of the configuration file path in this
// process's namespace (lab serve -lns): it creates the link, gives it the
// LNS's link-local address and routes, and calls ready once it listens.
func serveLNS(ctx context.Context, path string, ready func()) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("LNS: %w", err)
	}
	var c lnsServe
	if err := json.Unmarshal(b, &c); err != nil {
		return fmt.Errorf("LNS: %s: %w", path, err)
	}
	addr, err := netip.ParseAddrPort(c.Addr)
	if err != nil {
		return fmt.Errorf("LNS: %s: %w", path, err)
	}
	s, err := testlns.NewServer(testlns.ServerConfig{
		Addr: addr, Secret: []byte(c.Secret), Auth: ppp.Auth(c.Auth), User: c.User, Password: []byte(c.Password),
		InterfaceID: lnsInterfaceID, Link: c.Link, MTU: c.MTU,
		Log: slog.New(slog.NewTextHandler(os.Stderr, nil)),
	})
	if err != nil {
		return err
	}
	cmds := [][]string{
		// fe80::1 alone, as the LNS's IPV6CP says: no address of the
		// kernel's own making beside it.
		{"ip", "link", "set", c.Link, "addrgenmode", "none"},
		{"ip", "link", "set", c.Link, "up"},
		{"ip", "-6", "addr", "add", "fe80::1/64", "dev", c.Link, "nodad"},
	}
	for _, r := range c.Routes {
		cmds = append(cmds, []string{"ip", "-6", "route", "add", r, "dev", c.Link})
	}
	for _, cmd := range cmds {
		if out, err := exec.CommandContext(ctx, cmd[0], cmd[1:]...).CombinedOutput(); err != nil {
			return fmt.Errorf("LNS: %s: %v: %s", strings.Join(cmd, " "), err, out)
		}
	}
	ready()
	return s.Run(ctx)
}
