package dns

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/braid-router/braid/internal/netns"
	"github.com/braid-router/braid/internal/nstest"
	"github.com/braid-router/braid/session"
	"github.com/braid-router/braid/sessions/dns/upstream"
)

// The test namespace's addresses, all on its loopback: the upstream
// (unbound), the forwarder's, and one the forwarder is not given.
var (
	upstreamAddr = netip.MustParseAddr("10.53.0.1")
	serveAddr    = netip.MustParseAddr("10.53.0.2")
	serveAddr6   = netip.MustParseAddr("fd53::2")
	otherAddr    = netip.MustParseAddr("10.53.0.3")
	laterAddr    = netip.MustParseAddr("10.53.0.4") // assigned after the forwarder binds it
	deadAddr     = netip.MustParseAddr("10.53.0.9") // nothing answers there
)

// testPort is the forwarder's port in the tests: not 53, to show Port is
// honoured.
const testPort = 5353

// zone is the upstream's test zone, unbound local-data lines.
var zone = []string{
	"test.example. 300 IN SOA ns.test.example. admin.test.example. 1 3600 600 86400 60",
	"a.test.example. 300 IN A 192.0.2.10",
	"a.test.example. 300 IN AAAA 2001:db8::10",
	"b.test.example. 300 IN A 192.0.2.11",
	"b.test.example. 300 IN AAAA 2001:db8::11",
	"c.test.example. 300 IN A 192.0.2.12",
	"svc.test.example. 300 IN HTTPS 1 . alpn=h2 ipv4hint=192.0.2.20 ipv6hint=2001:db8::20",
	`big.test.example. 300 IN TXT "` + strings.Repeat("a", 250) + `" "` + strings.Repeat("b", 250) + `" "` + strings.Repeat("c", 250) + `"`,
	"www.other.example. 300 IN A 198.51.100.7",
	"other.example. 300 IN SOA ns.other.example. admin.other.example. 1 3600 600 86400 60",
}

// lab is a namespace with unbound serving the test zone on upstreamAddr.
type lab struct {
	t   *testing.T
	ns  string
	log *nstest.SyncBuffer // unbound's, with every query it got

	marks int // marker queries asked
}

// nsEnv names the namespace a test binary was run again in.
const nsEnv = "BRAID_DNS_TEST_NS"

// newLab runs the calling test again in a new namespace, as a process of
// its own, and returns nil; in that process it starts the lab there and
// returns it. The forwarder's upstream pool and element writer open
// sockets from goroutines of their own: the whole process must be in the
// namespace, as braid is in its own.
func newLab(t *testing.T) *lab {
	t.Helper()
	nstest.RequireRoot(t)
	nstest.RequireBinary(t, "unbound")
	nstest.RequireBinary(t, "nft")
	ns := os.Getenv(nsEnv)
	if ns == "" {
		ns = nstest.New(t)
		cmd := exec.Command("ip", "netns", "exec", ns, os.Args[0], "-test.run=^"+t.Name()+"$", "-test.count=1", "-test.v")
		cmd.Env = append(os.Environ(), nsEnv+"="+ns)
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "--- PASS: "+t.Name()) {
			t.Fatalf("in namespace %s: %v\n%s", ns, err, out)
		}
		if testing.Verbose() {
			t.Logf("in namespace %s:\n%s", ns, out)
		}
		return nil
	}
	for _, a := range []netip.Addr{upstreamAddr, serveAddr, otherAddr} {
		nstest.Run(t, "ip", "-n", ns, "addr", "add", a.String()+"/32", "dev", "lo")
	}
	nstest.Run(t, "ip", "-n", ns, "addr", "add", serveAddr6.String()+"/128", "dev", "lo")
	dir := t.TempDir()
	var conf strings.Builder
	fmt.Fprintf(&conf, `server:
  interface: %s
  port: 53
  do-daemonize: no
  username: ""
  chroot: ""
  directory: %q
  pidfile: ""
  use-syslog: no
  logfile: ""
  log-queries: yes
  verbosity: 1
  num-threads: 1
  access-control: 0.0.0.0/0 allow
  module-config: "iterator"
  local-zone: "test.example." static
  local-zone: "other.example." static
`, upstreamAddr, dir)
	for _, rr := range zone {
		fmt.Fprintf(&conf, "  local-data: '%s'\n", rr)
	}
	conf.WriteString("remote-control:\n  control-enable: no\n")
	path := filepath.Join(dir, "unbound.conf")
	if err := os.WriteFile(path, []byte(conf.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	l := &lab{t: t, ns: ns}
	l.log = nstest.Watch(t, "ip", "netns", "exec", ns, "unbound", "-d", "-c", path)
	// Ready once it answers.
	q := new(dns.Msg)
	q.SetQuestion("ready.invalid.", dns.TypeA)
	waitFor(t, "unbound answers", func() bool {
		_, err := l.exchange("udp", netip.AddrPortFrom(upstreamAddr, 53), q)
		return err == nil
	})
	return l
}

// upstreamQueries counts the queries unbound logged for name and type.
// It first asks unbound a marker query of its own and waits until the log
// shows it: unbound (one thread) logs in order, so every query before it
// is in the log.
func (l *lab) upstreamQueries(name, typ string) int {
	l.t.Helper()
	l.marks++
	marker := fmt.Sprintf("mark%d.invalid.", l.marks)
	q := new(dns.Msg)
	q.SetQuestion(marker, dns.TypeA)
	if _, err := l.exchange("udp", netip.AddrPortFrom(upstreamAddr, 53), q); err != nil {
		l.t.Fatalf("marker query: %v", err)
	}
	waitFor(l.t, "unbound's log of "+marker, func() bool { return strings.Contains(l.log.String(), marker) })
	return strings.Count(strings.ToLower(l.log.String()), " "+strings.ToLower(name)+" "+strings.ToLower(typ)+" in")
}

// exchange sends q to addr over network ("udp", "tcp") from the lab's
// namespace and returns the reply.
func (l *lab) exchange(network string, addr netip.AddrPort, q *dns.Msg) (*dns.Msg, error) {
	var r *dns.Msg
	err := netns.Do(l.ns, func() error {
		c := &dns.Client{Net: network, Timeout: 5 * time.Second}
		var err error
		r, _, err = c.Exchange(q, addr.String())
		return err
	})
	return r, err
}

// ask sends q to the forwarder over network and fails the test without a
// reply.
func (l *lab) ask(network string, q *dns.Msg) *dns.Msg {
	l.t.Helper()
	r, err := l.exchange(network, netip.AddrPortFrom(serveAddr, testPort), q)
	if err != nil {
		l.t.Fatalf("%s query %s: %v", network, q.Question[0].String(), err)
	}
	return r
}

// labConfig is cfg with the lab's defaults for its zero fields: listening
// on serveAddr and serveAddr6, port testPort, asking unbound.
func labConfig(cfg Config) Config {
	if cfg.Port == 0 {
		cfg.Port = testPort
	}
	if cfg.Listen == nil {
		cfg.Listen = []netip.Addr{serveAddr, serveAddr6}
	}
	if cfg.Upstreams == nil {
		cfg.Upstreams = []upstream.Resolver{{Name: "unbound", Addr: netip.AddrPortFrom(upstreamAddr, 53)}}
	}
	return cfg
}

// running is a forwarder running in the lab.
type running struct {
	srv    *Server
	stats  *Stats
	cancel context.CancelFunc
	ended  chan struct{} // closed when Run returned err
	err    error

	mu     sync.Mutex
	detail string
}

// serve runs srv with cfg in the lab's namespace until the test ends and
// returns once it is running.
func (l *lab) serve(srv *Server, cfg Config) *running {
	l.t.Helper()
	if srv.Stats == nil {
		srv.Stats = new(Stats)
	}
	srv.StatusInterval = 50 * time.Millisecond
	cfg = labConfig(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{srv: srv, stats: srv.Stats, cancel: cancel, ended: make(chan struct{})}
	env := session.NewEnv("dns/resolver", nstest.Logger(l.t), nil, func(st session.State, d string) {
		r.mu.Lock()
		defer r.mu.Unlock()
		if st == session.Running {
			r.detail = d
		}
	})
	go func() {
		r.err = netns.Do(l.ns, func() error { return srv.Run(ctx, cfg, env) })
		close(r.ended)
	}()
	l.t.Cleanup(func() {
		cancel()
		<-r.ended
		if r.err != nil {
			l.t.Errorf("Run: %v", r.err)
		}
	})
	waitFor(l.t, "the forwarder running", func() bool {
		select {
		case <-r.ended:
			l.t.Fatalf("Run ended: %v", r.err)
		default:
		}
		return r.status() != ""
	})
	return r
}

func (r *running) status() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.detail
}

// waitFor polls cond until it holds, failing the test after a generous
// deadline.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// query is a recursive query for name and type, with EDNS0 (size 1232)
// when edns is set.
func query(name string, qtype uint16, edns bool) *dns.Msg {
	q := new(dns.Msg)
	q.SetQuestion(name, qtype)
	if edns {
		q.SetEdns0(1232, false)
	}
	return q
}

// deadline is when a test read gives up waiting for a reply that may not
// come (a negative check's, never a timing assertion).
func deadline() time.Time { return time.Now().Add(3 * time.Second) }

// nowPlus is the time s seconds from now.
func nowPlus(s int) time.Time { return time.Now().Add(time.Duration(s) * time.Second) }
