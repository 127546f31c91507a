package resolve

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/braid-router/braid/internal/nstest"
)

// The dialer sends lookups to the uplinks' resolvers, out of the uplink
// that learnt each, whatever the routes say; with none it uses the
// system's configuration.
func TestDialerUsesTheUplinksResolversByTheirLinks(t *testing.T) {
	nstest.RequireBinary(t, "dnsmasq")
	box, far := nstest.New(t), nstest.New(t)
	for _, l := range []string{"u1", "u2"} {
		nstest.Run(t, "ip", "-n", box, "link", "add", l, "type", "veth", "peer", "name", l+"p", "netns", far)
		nstest.Run(t, "ip", "-n", box, "link", "set", l, "up")
		nstest.Run(t, "ip", "-n", far, "link", "set", l+"p", "up")
	}
	nstest.Run(t, "ip", "-n", box, "addr", "add", "10.9.1.2/24", "dev", "u1")
	nstest.Run(t, "ip", "-n", far, "addr", "add", "10.9.1.1/24", "dev", "u1p")
	nstest.Run(t, "ip", "-n", box, "addr", "add", "10.9.2.2/24", "dev", "u2")
	// The routes send the resolver's address out of u2, where nothing
	// answers: only a query bound to u1 gets there.
	nstest.Run(t, "ip", "-n", box, "route", "add", "10.9.1.1/32", "via", "10.9.2.9", "dev", "u2", "onlink")
	dns := exec.Command("ip", "netns", "exec", far, "dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--no-resolv", "--no-hosts",
		"--listen-address=10.9.1.1", "--bind-interfaces", "--port=53", "--address=/peer.braid.test/192.0.2.77")
	if err := dns.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dns.Process.Kill(); dns.Wait() })

	lookup := func(server, link string) string {
		t.Helper()
		exe, err := os.Executable()
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		// A whole process in the box: the Go resolver dials from threads
		// of its own.
		cmd := exec.CommandContext(ctx, "ip", "netns", "exec", box, exe)
		cmd.Env = append(os.Environ(), helperEnv+"="+server+","+link)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("lookup helper: %v\n%s", err, out)
		}
		return string(out)
	}
	var got string
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); {
		if got = lookup("10.9.1.1:53", "u1"); got == "192.0.2.77" {
			break
		}
		time.Sleep(100 * time.Millisecond) // dnsmasq may still be starting
	}
	if got != "192.0.2.77" {
		t.Fatalf("lookup through u1: %s", got)
	}
	// Not bound, the same query follows the routes into nothing.
	if got := lookup("10.9.1.1:53", ""); !strings.HasPrefix(got, "error") {
		t.Errorf("an unbound query reached the resolver through u2: %s (the test proves nothing)", got)
	}
}

// helperEnv makes the test binary look up peer.braid.test through a
// Dialer with one server ("ADDR:PORT,LINK") and print the answer.
const helperEnv = "BRAID_RESOLVE_TEST_HELPER"

func TestMain(m *testing.M) {
	if v := os.Getenv(helperEnv); v != "" {
		server, link, _ := strings.Cut(v, ",")
		var d Dialer
		d.Set([]Server{{Addr: netip.MustParseAddrPort(server), Link: link, Uplink: "isp1"}})
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		addrs, err := d.Resolver().LookupHost(ctx, "peer.braid.test")
		if err != nil {
			fmt.Print("error: ", err)
		} else {
			fmt.Print(strings.Join(addrs, ","))
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestServersAndFallback(t *testing.T) {
	var d Dialer
	if got := d.Servers(); got != nil {
		t.Errorf("a new dialer has servers %v", got)
	}
	d.Set([]Server{{Addr: netip.MustParseAddrPort("10.9.1.1:53"), Link: "u1", Uplink: "isp1"}, {Addr: netip.MustParseAddrPort("[2001:db8::53]:53")}})
	got := d.Servers()
	if len(got) != 2 || got[0].String() != "10.9.1.1:53 (uplink isp1)" || got[1].String() != "[2001:db8::53]:53" {
		t.Errorf("Servers = %v", got)
	}
	got[0].Link = "changed"
	if d.Servers()[0].Link != "u1" {
		t.Error("Servers shares its slice")
	}
}
