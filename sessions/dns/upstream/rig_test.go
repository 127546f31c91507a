package upstream

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/Jigsaw-Code/outline-sdk/transport/shadowsocks"
	"github.com/miekg/dns"

	"github.com/braid-router/braid/internal/nstest"
	"github.com/braid-router/braid/sessions/peer"
)

// boxEnv marks the test binary re-run inside the box's namespace;
// peerEnv the test binary run as braid's peer (LISTEN CIPHER PASSWORD).
const (
	boxEnv  = "BRAID_DNS_UPSTREAM_TEST_BOX"
	peerEnv = "BRAID_DNS_UPSTREAM_TEST_PEER"
)

// within bounds every wait on a condition: generous, for a busy machine.
const within = 60 * time.Second

// tryTimeout is the pools' Timeout in the tests: a live dnsmasq on a busy
// machine must never seem dead (the default's second is for real
// resolvers, a network away).
const tryTimeout = 3 * time.Second

func TestMain(m *testing.M) {
	if args := os.Getenv(peerEnv); args != "" {
		if err := servePeer(strings.Fields(args)); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// servePeer serves braid's peer (sessions/peer) on listen (Multipath
// TCP) with cipher and password until SIGTERM, saying "serving" once it
// listens.
func servePeer(args []string) error {
	if len(args) != 3 {
		return fmt.Errorf("%s: want LISTEN CIPHER PASSWORD, got %q", peerEnv, args)
	}
	key, err := shadowsocks.NewEncryptionKey(args[1], args[2])
	if err != nil {
		return err
	}
	var lc net.ListenConfig
	lc.SetMultipathTCP(true)
	ln, err := lc.Listen(context.Background(), "tcp", args[0])
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	fmt.Println("serving")
	return (&peer.Server{}).Serve(ctx, ln, key, nil, slog.New(slog.NewTextHandler(os.Stderr, nil)))
}

// inBox runs the calling test again in a new network namespace, the
// box's, as a process of its own, and reports false; in that process it
// reports true. The pool opens sockets from goroutines of its own: the
// whole process must be in the box's namespace, as braid is.
func inBox(t *testing.T, binaries ...string) bool {
	t.Helper()
	if os.Getenv(boxEnv) != "" {
		return true
	}
	nstest.RequireRoot(t)
	for _, b := range binaries {
		nstest.RequireBinary(t, b)
	}
	box := nstest.New(t)
	cmd := exec.Command("ip", "netns", "exec", box, os.Args[0], "-test.run=^"+t.Name()+"$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), boxEnv+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: "+t.Name()) {
		t.Fatalf("in the box's namespace: %v\n%s", err, out)
	}
	t.Logf("in the box's namespace:\n%s", out)
	return false
}

// veth links the box's namespace (this process's), as boxIf with
// boxAddr, to namespace ns, as nsIf with nsAddr (prefixes).
func veth(t *testing.T, boxIf, boxAddr, ns, nsIf, nsAddr string) {
	t.Helper()
	nstest.Run(t, "ip", "link", "add", boxIf, "type", "veth", "peer", "name", nsIf, "netns", ns)
	nstest.Run(t, "ip", "addr", "add", boxAddr, "dev", boxIf)
	nstest.Run(t, "ip", "link", "set", boxIf, "up")
	nstest.Run(t, "ip", "-n", ns, "addr", "add", nsAddr, "dev", nsIf)
	nstest.Run(t, "ip", "-n", ns, "link", "set", nsIf, "up")
}

// bigCount is how many A records big.test has: more than a 512-octet
// UDP answer holds.
const bigCount = 60

// dnsmasq runs dnsmasq in ns on addr, port 53, asking nobody, answering
// who.test with answer (and big.test with bigCount addresses, from a
// hosts file), logging its queries; extra are more options. It waits
// until dnsmasq answers (asked from inside ns) and returns its log.
func dnsmasq(t *testing.T, ns, addr, answer string, extra ...string) *nstest.SyncBuffer {
	t.Helper()
	bin := nstest.RequireBinary(t, "dnsmasq")
	// dnsmasq reads the hosts file as nobody: not under t.TempDir's
	// private parent.
	dir, err := os.MkdirTemp("", "dnsmasq")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	var hosts strings.Builder
	for i := range bigCount {
		fmt.Fprintf(&hosts, "10.200.%d.%d big.test\n", i/200, i%200+1)
	}
	if err := os.WriteFile(filepath.Join(dir, "hosts"), []byte(hosts.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"netns", "exec", ns, bin, "--keep-in-foreground", "--conf-file=/dev/null",
		"--port=53", "--bind-interfaces", "--listen-address=" + addr, "--no-resolv", "--no-hosts",
		"--addn-hosts=" + filepath.Join(dir, "hosts"), "--address=/who.test/" + answer,
		"--pid-file=" + filepath.Join(dir, "pid"), "--log-facility=-", "--log-queries"}, extra...)
	logs := nstest.Watch(t, "ip", args...)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("dnsmasq on %s:\n%s", addr, logs.String())
		}
	})
	waitFor(t, "dnsmasq on "+addr+" answering", func() bool {
		var r *dns.Msg
		nstest.Do(t, ns, func() error {
			c := dns.Client{Timeout: time.Second}
			r, _, _ = c.Exchange(new(dns.Msg).SetQuestion("who.test.", dns.TypeA), net.JoinHostPort(addr, "53"))
			return nil
		})
		return r != nil && len(r.Answer) == 1
	})
	return logs
}

// waitFor polls cond until it holds, failing the test after within.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(within)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("waited %v for %s", within, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ask asks p name (type A, without EDNS0) and returns the answer's
// addresses, failing the test when it fails.
func ask(t *testing.T, p *Pool, name string) []string {
	t.Helper()
	r, err := askMsg(p, name)
	if err != nil {
		t.Fatalf("ask %s: %v", name, err)
	}
	return addrs(r)
}

func askMsg(p *Pool, name string) (*dns.Msg, error) {
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	q := new(dns.Msg).SetQuestion(name, dns.TypeA)
	q.Id = 0x5eed
	r, err := p.Ask(ctx, q)
	if err == nil && r.Id != q.Id {
		return nil, fmt.Errorf("answer with identifier %#x to the query %#x", r.Id, q.Id)
	}
	return r, err
}

func addrs(r *dns.Msg) []string {
	var out []string
	for _, rr := range r.Answer {
		if a, ok := rr.(*dns.A); ok {
			out = append(out, a.A.String())
		}
	}
	return out
}

// state is p's state of the resolver named name.
func state(t *testing.T, p *Pool, name string) State {
	t.Helper()
	for _, s := range p.Status() {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no resolver %s in %+v", name, p.Status())
	return State{}
}

// drop makes ns drop, silently, DNS to addr (UDP and TCP), in a table of
// its own; the returned function lifts it.
func drop(t *testing.T, ns string, addr netip.Addr) (lift func()) {
	t.Helper()
	table := "drop_" + strings.NewReplacer(".", "_", ":", "_").Replace(addr.String())
	nstest.NftLoad(t, ns, fmt.Sprintf(`table inet %s {
	chain in {
		type filter hook input priority -10; policy accept;
		ip daddr %s udp dport 53 drop
		ip daddr %s tcp dport 53 drop
	}
}`, table, addr, addr))
	return func() { nstest.In(t, ns, "nft", "delete", "table", "inet", table) }
}
