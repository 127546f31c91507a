package netlink

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"strings"
	"testing"

	"github.com/braid-router/braid/internal/nstest"
	"github.com/braid-router/braid/internal/plantest"
)

func (r *rig) sysctl(name string) string {
	r.t.Helper()
	v, err := r.d.readSysctl(name)
	if err != nil {
		r.t.Fatal(err)
	}
	return v
}

func (r *rig) setSysctl(name, value string) {
	r.t.Helper()
	if err := r.d.writeSysctl(name, value); err != nil {
		r.t.Fatal(err)
	}
}

func TestSysctlConvergeAndRestore(t *testing.T) {
	r := newRig(t)
	r.veth("wan0", "wan0p")
	r.setSysctl("net.ipv4.conf.wan0.rp_filter", "1")
	r.setSysctl("net.ipv4.ip_forward", "0")
	r.setSysctl("net.ipv6.conf.all.forwarding", "0")

	want := resources(
		Sysctl{Name: "net.ipv4.ip_forward", Value: "1"},
		Sysctl{Name: "net.ipv6.conf.all.forwarding", Value: "1"},
		Sysctl{Name: "net.ipv4.conf.wan0.rp_filter", Value: "2"},
		Sysctl{Name: "net.ipv4.conf.wan0p.rp_filter", Value: r.sysctl("net.ipv4.conf.wan0p.rp_filter")},
	)
	var n int64
	n = r.wrote(func() {
		plantest.WantActions(t, r.converge(want),
			"~sysctl[net.ipv4.ip_forward]", "~sysctl[net.ipv6.conf.all.forwarding]", "~sysctl[net.ipv4.conf.wan0.rp_filter]")
	})
	if n != 3 {
		t.Errorf("writes = %d, want 3", n)
	}
	// The namespace's own /proc/sys, read by a process inside it.
	if got := strings.TrimSpace(nstest.In(t, r.ns, "cat", "/proc/sys/net/ipv4/conf/wan0/rp_filter")); got != "2" {
		t.Fatalf("rp_filter in the namespace = %q, want 2", got)
	}
	r.settled(want)

	want[2] = Sysctl{Name: "net.ipv4.conf.wan0.rp_filter", Value: "0"}
	plantest.WantActions(t, r.converge(want), "~sysctl[net.ipv4.conf.wan0.rp_filter]")
	r.settled(want)
	var prev string
	if ok, _ := r.rec.Get(KindSysctl, "net.ipv4.conf.wan0.rp_filter", &prev); !ok || prev != "1" {
		t.Fatalf("recorded previous rp_filter = %q, %v; want the first one, 1", prev, ok)
	}

	plantest.WantActions(t, r.converge(nil),
		"-sysctl[net.ipv4.ip_forward]", "-sysctl[net.ipv6.conf.all.forwarding]", "-sysctl[net.ipv4.conf.wan0.rp_filter]")
	for name, v := range map[string]string{
		"net.ipv4.ip_forward":          "0",
		"net.ipv6.conf.all.forwarding": "0",
		"net.ipv4.conf.wan0.rp_filter": "1",
	} {
		if got := r.sysctl(name); got != v {
			t.Errorf("%s after delete = %q, want %q", name, got, v)
		}
	}
	if !r.rec.Empty() {
		t.Fatalf("record not empty: %v", r.rec.Keys(KindSysctl))
	}
	r.settled(nil)
}

func TestSysctlApplyIsIdempotent(t *testing.T) {
	r := newRig(t)
	r.setSysctl("net.ipv4.ip_forward", "0")
	s := Sysctl{Name: "net.ipv4.ip_forward", Value: "1"}
	c := planUpdate(Sysctl{Name: s.Name, Value: "0"}, s)
	if n := r.wrote(func() { must(t, r.apply(c)) }); n != 1 {
		t.Fatalf("first apply: %d writes", n)
	}
	if n := r.wrote(func() { must(t, r.apply(c)) }); n != 0 {
		t.Fatalf("second apply: %d writes", n)
	}
	del := planDelete(s)
	if n := r.wrote(func() { must(t, r.apply(del)) }); n != 1 {
		t.Fatalf("delete: %d writes", n)
	}
	if n := r.wrote(func() { must(t, r.apply(del)) }); n != 0 {
		t.Fatalf("second delete: %d writes", n)
	}
	if got := r.sysctl(s.Name); got != "0" {
		t.Fatalf("ip_forward = %q after delete", got)
	}
}

func TestSysctlWhitespaceAndNames(t *testing.T) {
	hostRange := func() string {
		// A new goroutine runs on a thread in the test process's own
		// namespace, not on the test's locked one.
		c := make(chan string)
		go func() { b, _ := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); c <- string(b) }()
		return <-c
	}
	host := hostRange()
	r := newRig(t)
	// A tab-separated value reads as space-separated.
	want := resources(Sysctl{Name: "net.ipv4.ip_local_port_range", Value: "20000 30000"})
	r.converge(want)
	r.settled(want)
	raw, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil || strings.Fields(string(raw))[0] != "20000" {
		t.Fatalf("ip_local_port_range = %q, %v", raw, err)
	}
	if got := hostRange(); got != host {
		t.Fatalf("the host's ip_local_port_range changed: %q -> %q", host, got)
	}
	r.converge(nil)

	// A dot in an interface name is a slash in the dotted name.
	r.veth("wan0.7", "wan0p")
	want = resources(Sysctl{Name: "net.ipv4.conf.wan0/7.rp_filter", Value: "2"})
	r.converge(want)
	r.settled(want)
	if got := strings.TrimSpace(mustRead(t, "/proc/sys/net/ipv4/conf/wan0.7/rp_filter")); got != "2" {
		t.Fatalf("wan0.7 rp_filter = %q", got)
	}

	for _, bad := range []string{"net.ipv4.conf.//.rp_filter", "net..x", "", "net.ipv4./"} {
		if _, err := r.d.Observe(context.Background(), resources(Sysctl{Name: bad, Value: "1"})); err == nil {
			t.Errorf("sysctl %q: no error", bad)
		}
	}
	_, err = r.d.Observe(context.Background(), resources(Sysctl{Name: "net.ipv4.conf.nope.rp_filter", Value: "1"}))
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "net.ipv4.conf.nope.rp_filter") {
		t.Fatalf("missing sysctl: %v", err)
	}
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
