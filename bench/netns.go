package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// nsDir is where iproute2 keeps named network namespaces.
const nsDir = "/run/netns"

// nsPrefix starts the name of every namespace the harness makes; the
// harness's pid follows, so a later run can remove what a killed one left.
const nsPrefix = "bbench-"

// namespaces makes named network namespaces and removes every one it made.
type namespaces struct {
	mu   sync.Mutex
	next int
	live map[string]bool
}

func newNamespaces() *namespaces {
	return &namespaces{live: map[string]bool{}}
}

// add creates a fresh named namespace with its loopback up.
func (n *namespaces) add(ctx context.Context, role string) (string, error) {
	n.mu.Lock()
	n.next++
	name := fmt.Sprintf("%s%d-%d-%s", nsPrefix, os.Getpid(), n.next, role)
	n.live[name] = true // before it exists: a Ctrl-C in between still removes it
	n.mu.Unlock()
	if err := ip(ctx, "netns", "add", name); err != nil {
		return "", err
	}
	if err := ip(ctx, "-n", name, "link", "set", "lo", "up"); err != nil {
		return "", err
	}
	return name, nil
}

// del removes a namespace the harness made.
func (n *namespaces) del(name string) error {
	n.mu.Lock()
	delete(n.live, name)
	n.mu.Unlock()
	// Not bound to the run's context: cleanup must run after a Ctrl-C too.
	if err := ip(context.Background(), "netns", "del", name); err != nil && namespaceExists(name) {
		return err
	}
	return nil
}

// delAll removes every namespace the harness made and has not removed yet.
func (n *namespaces) delAll() error {
	n.mu.Lock()
	var names []string
	for name := range n.live {
		names = append(names, name)
	}
	n.mu.Unlock()
	var errs []error
	for _, name := range names {
		errs = append(errs, n.del(name))
	}
	return errors.Join(errs...)
}

func namespaceExists(name string) bool {
	_, err := os.Stat(filepath.Join(nsDir, name))
	return err == nil
}

// removeStale removes the namespaces and temporary directories of earlier
// harness runs whose process is gone (killed with SIGKILL, say, which no
// handler sees), and returns their names.
func removeStale() ([]string, error) {
	var removed []string
	var errs []error
	entries, err := os.ReadDir(nsDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("list namespaces: %w", err)
	}
	for _, e := range entries {
		if !staleName(e.Name(), nsPrefix) {
			continue
		}
		if err := ip(context.Background(), "netns", "del", e.Name()); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, e.Name())
	}
	dirs, err := filepath.Glob(filepath.Join(os.TempDir(), tempPrefix+"*"))
	if err != nil {
		return removed, err
	}
	for _, d := range dirs {
		if staleName(filepath.Base(d), tempPrefix) {
			errs = append(errs, os.RemoveAll(d))
			removed = append(removed, d)
		}
	}
	return removed, errors.Join(errs...)
}

// tempPrefix starts the name of the harness's temporary directory; the
// harness's pid follows.
const tempPrefix = "braid-bench-"

// staleName reports whether name is prefix, a pid and "-...", and that
// process is gone.
func staleName(name, prefix string) bool {
	rest, ok := strings.CutPrefix(name, prefix)
	if !ok {
		return false
	}
	pidText, _, _ := strings.Cut(rest, "-")
	pid, err := strconv.Atoi(pidText)
	return err == nil && pid != os.Getpid() && !processAlive(pid)
}

// processAlive reports whether pid runs; a zombie is not running.
func processAlive(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// pid (comm) STATE ...: comm may hold spaces and parentheses.
	i := bytes.LastIndexByte(stat, ')')
	return i < 0 || i+2 >= len(stat) || stat[i+2] != 'Z'
}

// ip runs an untimed ip(8) command and returns its error with its output.
func ip(ctx context.Context, args ...string) error {
	out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// inNS runs an untimed command inside a namespace (ip netns exec).
func inNS(ctx context.Context, ns string, argv ...string) error {
	return ip(ctx, append([]string{"netns", "exec", ns}, argv...)...)
}

// ipBatchIn runs untimed ip -batch lines in a namespace.
func ipBatchIn(ctx context.Context, ns string, lines []string) error {
	cmd := exec.CommandContext(ctx, "ip", "-n", ns, "-batch", "-")
	cmd.Stdin = strings.NewReader(strings.Join(lines, "\n") + "\n")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip -n %s -batch: %w: %s", ns, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// box is the shape every measurement starts from: the box's namespace,
// whose uplinks wan1 and wan2 are down and unaddressed, and the ISP
// namespace at the other end of their veths, with the gateways up.
type box struct {
	ns, isp string
}

// newBox builds a fresh box and its ISP namespace, with the uplinks of the
// scale spec.
func (n *namespaces) newBox(ctx context.Context) (*box, error) {
	return n.newBoxOf(ctx, uplinks)
}

// newBoxOf builds a fresh box and its ISP namespace with the given uplinks.
func (n *namespaces) newBoxOf(ctx context.Context, ups []uplink) (*box, error) {
	b := &box{}
	var err error
	if b.ns, err = n.add(ctx, "box"); err != nil {
		return nil, err
	}
	if b.isp, err = n.add(ctx, "isp"); err != nil {
		n.release(b)
		return nil, err
	}
	// The ISP side is a router: with forwarding on it sends no router
	// solicitations, which would otherwise keep the box's neighbour table,
	// and so ip monitor, busy long after the links came up.
	if err := inNS(ctx, b.isp, "sh", "-c",
		"echo 1 >/proc/sys/net/ipv4/ip_forward && echo 1 >/proc/sys/net/ipv6/conf/all/forwarding && echo 1 >/proc/sys/net/ipv6/conf/default/forwarding"); err != nil {
		n.release(b)
		return nil, fmt.Errorf("make the ISP side a router: %w", err)
	}
	var lines []string
	for _, u := range ups {
		lines = append(lines,
			fmt.Sprintf("link add %s type veth peer name %s netns %s", u.ifname, u.ifname, b.ns),
			fmt.Sprintf("address add %s dev %s", gwPrefix(u.gw4, u.addr4), u.ifname),
			fmt.Sprintf("address add %s dev %s nodad", gwPrefix(u.gw6, u.addr6), u.ifname),
			fmt.Sprintf("link set dev %s up", u.ifname))
	}
	if err := ipBatchIn(ctx, b.isp, lines); err != nil {
		n.release(b)
		return nil, fmt.Errorf("build the ISP side: %w", err)
	}
	return b, nil
}

// release removes a box's namespaces. Errors are reported by delAll at the
// end, which retries whatever is left.
func (n *namespaces) release(b *box) {
	for _, name := range []string{b.ns, b.isp} {
		if name != "" {
			if err := n.del(name); err != nil {
				n.mu.Lock()
				n.live[name] = true
				n.mu.Unlock()
			}
		}
	}
}
