// Package lab builds and removes a disposable network of namespaces in
// which braid's box can be configured and tested against the real kernel:
// a LAN client, the box, two ISPs with different rate limits, an Internet
// core with servers, and an aggregation peer.
//
// Every lab has a name N (DefaultName unless told otherwise); its
// namespaces are "N-<role>" (see Role) and its run directory, which records
// the topology and every process the lab started, is RunDir/N. Labs with
// different names coexist, so tests can run side by side (see package
// labtest). The topology is data (Topology, Default), so later needs grow
// the table rather than the code.
//
// The addresses are the same in every lab and are exported as constants
// (ServerV4, BoxWAN1V4, ...); specs/lab.yaml configures the box with them.
package lab

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/braid-router/braid/internal/netns"
	"github.com/braid-router/braid/internal/rundir"
)

// DefaultName is the name of the lab when none is given.
const DefaultName = "braid"

// RunDir holds one directory per lab: its state (lab.json) and, under
// procs/, a record and a log per process it started.
const RunDir = "/run/braid-lab"

// cleanupTimeout bounds the removal of a half-built lab after Up fails.
const cleanupTimeout = 30 * time.Second

// ErrExists is returned (wrapped) by Up when a lab of that name, or one of
// its namespaces, already exists.
var ErrExists = errors.New("lab already exists")

// ErrNotExist is returned (wrapped) by Open when there is no such lab.
var ErrNotExist = errors.New("no such lab")

// Config says which lab to build.
type Config struct {
	// Name of the lab; DefaultName when empty. See ValidName.
	Name string
	// Topology to build; Default() when nil.
	Topology *Topology
	// Helper is the command line that runs braid's lab services, to which
	// the lab appends a Process's Serve flags (see Serve). When empty it is
	// this executable followed by "lab", "serve": the braid binary's hidden
	// `braid lab serve`. Tests use labtest, which points it at the test
	// binary.
	Helper []string
	// Braid is the braid binary, which runs the processes that are braid
	// itself (Process.Braid: the peer). When empty it is this executable
	// if Helper is empty too (the braid binary's `braid lab up`);
	// otherwise (a test binary as the helper) the lab leaves those
	// processes out of its topology.
	Braid string
	// Env is added to the environment of every process the lab starts
	// ("NAME=value").
	Env []string
}

// Lab is a lab that exists: its name, run directory and topology.
type Lab struct {
	// Name is the lab's name.
	Name string `json:"name"`
	// Dir is the lab's run directory.
	Dir string `json:"-"`
	// Created is when Up built it.
	Created time.Time `json:"created"`
	// Topology is what Up built.
	Topology Topology `json:"topology"`
	// Helper is the command line that runs the lab's services.
	Helper []string `json:"helper"`
	// Braid is the braid binary that runs the lab's braid processes
	// (the peer); empty when the lab has none.
	Braid string `json:"braid,omitempty"`
	// Env is added to the environment of the lab's processes.
	Env []string `json:"env,omitempty"`
}

// validName is what ValidName accepts. Compiled on first use: every braid
// command links this package, few use it.
var validName = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_-]{0,31}$`) })

// ValidName reports whether name can name a lab: 1 to 32 letters, digits,
// '-' or '_', starting with a letter or digit.
func ValidName(name string) error {
	if !validName().MatchString(name) {
		return fmt.Errorf("invalid lab name %q: use 1 to 32 letters, digits, '-' or '_', starting with a letter or digit", name)
	}
	return nil
}

// NSName returns the name of the namespace of role in the lab called name.
func NSName(name string, role Role) string { return name + "-" + string(role) }

// NS returns the name of the lab's namespace for role.
func (l *Lab) NS(role Role) string { return NSName(l.Name, role) }

// Up builds a lab: namespaces, their settings, the veth links between
// them, addresses, routes, rate limits, then its processes, and returns
// once the processes' services listen. It refuses (ErrExists) when a lab
// of that name or any of its namespaces exists. When it fails midway, it
// removes everything it created.
func Up(ctx context.Context, cfg Config) (*Lab, error) {
	if os.Getenv(HelperEnv) != "" {
		return nil, fmt.Errorf("lab: Up called inside a lab helper process (%s is set)", HelperEnv)
	}
	if cfg.Name == "" {
		cfg.Name = DefaultName
	}
	if err := ValidName(cfg.Name); err != nil {
		return nil, fmt.Errorf("lab: %w", err)
	}
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("lab %s: needs root (it creates network namespaces)", cfg.Name)
	}
	topo := Default()
	if cfg.Topology != nil {
		topo = *cfg.Topology
	}
	if err := topo.Validate(); err != nil {
		return nil, fmt.Errorf("lab %s: %w", cfg.Name, err)
	}
	if len(cfg.Helper) == 0 {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("lab %s: the helper command: %w", cfg.Name, err)
		}
		cfg.Helper = []string{exe, "lab", "serve"}
		if cfg.Braid == "" {
			cfg.Braid = exe
		}
	}
	if cfg.Braid == "" {
		topo.Processes = slices.DeleteFunc(slices.Clone(topo.Processes), func(p Process) bool { return len(p.Braid) > 0 })
	}
	l := &Lab{
		Name:     cfg.Name,
		Dir:      filepath.Join(RunDir, cfg.Name),
		Created:  time.Now().UTC().Truncate(time.Second),
		Topology: topo,
		Helper:   slices.Clone(cfg.Helper),
		Braid:    cfg.Braid,
		Env:      slices.Clone(cfg.Env),
	}
	if found := existingNamespaces(l.Name, append(Roles(), topo.roles()...)); len(found) > 0 {
		return nil, existsError(l.Name, "namespaces "+strings.Join(found, ", ")+" exist")
	}
	if err := os.MkdirAll(RunDir, 0o755); err != nil {
		return nil, fmt.Errorf("lab %s: %w", l.Name, err)
	}
	// The run directory is the lab's lock: whoever creates it builds it.
	if err := os.Mkdir(l.Dir, 0o755); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil, existsError(l.Name, l.Dir+" exists")
		}
		return nil, fmt.Errorf("lab %s: %w", l.Name, err)
	}
	err := removeBraidState(l.Name, topo.roles())
	if err == nil {
		err = l.build(ctx)
	}
	if err != nil {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()
		if derr := Down(cctx, l.Name); derr != nil {
			return nil, fmt.Errorf("lab %s: %w (and removing what was built: %v)", l.Name, err, derr)
		}
		return nil, fmt.Errorf("lab %s: %w (removed what was built)", l.Name, err)
	}
	return l, nil
}

func existsError(name, why string) error {
	return fmt.Errorf("%w: %s (%s); remove it first with `braid lab down --name %s`", ErrExists, name, why, name)
}

// build does Up's work once the run directory is taken.
func (l *Lab) build(ctx context.Context) error {
	if err := os.Mkdir(procsDir(l.Dir), 0o755); err != nil {
		return err
	}
	if err := writeJSON(filepath.Join(l.Dir, "lab.json"), l); err != nil {
		return err
	}
	if err := writePeerKey(l.PeerKeyPath()); err != nil {
		return err
	}
	var lines []string
	for _, ns := range l.Topology.Namespaces {
		lines = append(lines, "netns add "+l.NS(ns.Role))
	}
	if err := ipBatch(ctx, "", lines, false); err != nil {
		return fmt.Errorf("creating namespaces: %w", err)
	}
	for _, ns := range l.Topology.Namespaces {
		if err := writeSysctls(l.NS(ns.Role), ns.Sysctls); err != nil {
			return err
		}
	}
	if err := ipBatch(ctx, "", l.Topology.linkBatch(l.NS), false); err != nil {
		return fmt.Errorf("creating links: %w", err)
	}
	for _, ns := range l.Topology.Namespaces {
		if err := ipBatch(ctx, l.NS(ns.Role), l.Topology.namespaceBatch(ns), false); err != nil {
			return err
		}
		if err := tcBatch(ctx, l.NS(ns.Role), qdiscBatch(ns)); err != nil {
			return err
		}
	}
	for _, p := range l.Topology.Processes {
		if _, err := startProcess(ctx, l, p); err != nil {
			return err
		}
	}
	return nil
}

// PeerKeyPath is the file holding the key of the lab's peer, which a
// box's spec names (aggregation.peer.key: {file: PATH}).
func (l *Lab) PeerKeyPath() string { return filepath.Join(l.Dir, PeerKeyFile) }

// writePeerKey writes a fresh random key to path, readable by root only:
// 24 random bytes, base64 (the peer derives its cipher key from it as
// shadowsocks-libev's -k does).
func writePeerKey(path string) error {
	key := make([]byte, 24)
	rand.Read(key)
	if err := os.WriteFile(path, []byte(base64.RawURLEncoding.EncodeToString(key)+"\n"), 0o600); err != nil {
		return fmt.Errorf("the peer's key: %w", err)
	}
	return nil
}

// writeSysctls writes settings inside namespace ns.
func writeSysctls(ns string, sysctls []Sysctl) error {
	if len(sysctls) == 0 {
		return nil
	}
	return netns.Do(ns, func() error {
		for _, s := range sysctls {
			path := filepath.Join("/proc/sys", strings.ReplaceAll(s.Key, ".", "/"))
			if err := os.WriteFile(path, []byte(s.Value+"\n"), 0o644); err != nil {
				return fmt.Errorf("namespace %s: sysctl %s=%s: %w", ns, s.Key, s.Value, err)
			}
		}
		return nil
	})
}

// Start starts one more process in a running lab (say, a DHCP server a
// test needs in an ISP) and records it, so that Down stops it. Its name
// must not be taken.
func (l *Lab) Start(ctx context.Context, p Process) error {
	t := l.Topology
	t.Processes = append(slices.Clone(t.Processes), p)
	if err := t.Validate(); err != nil {
		return fmt.Errorf("lab %s: %w", l.Name, err)
	}
	if _, err := os.Stat(filepath.Join(procsDir(l.Dir), p.Name+".json")); err == nil {
		return fmt.Errorf("lab %s: process %q already started", l.Name, p.Name)
	}
	if _, err := startProcess(ctx, l, p); err != nil {
		return fmt.Errorf("lab %s: %w", l.Name, err)
	}
	return nil
}

// Stop stops the lab's process name (one of its topology's, or one
// Start added), if it runs, and forgets it; its log stays. Resume starts
// a topology's process again.
func (l *Lab) Stop(name string) error { return l.stop(name) }

// Resume starts again the process name of the lab's topology after Stop
// stopped it (say, the peer, for a test of a box whose peer is gone),
// with its Config as Up wrote it.
func (l *Lab) Resume(ctx context.Context, name string) error {
	i := slices.IndexFunc(l.Topology.Processes, func(p Process) bool { return p.Name == name })
	if i < 0 {
		return fmt.Errorf("lab %s: no process %q in its topology", l.Name, name)
	}
	var rec procRecord
	if err := readJSON(filepath.Join(procsDir(l.Dir), name+".json"), &rec); err == nil && rec.alive() {
		return fmt.Errorf("lab %s: process %s runs (pid %d)", l.Name, name, rec.PID)
	}
	if _, err := startProcess(ctx, l, l.Topology.Processes[i]); err != nil {
		return fmt.Errorf("lab %s: %w", l.Name, err)
	}
	return nil
}

// Open returns the lab called name, built earlier by Up (in this process
// or another). It wraps ErrNotExist when there is none.
func Open(name string) (*Lab, error) {
	if err := ValidName(name); err != nil {
		return nil, fmt.Errorf("lab: %w", err)
	}
	l := &Lab{Dir: filepath.Join(RunDir, name)}
	if err := readJSON(filepath.Join(l.Dir, "lab.json"), l); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("lab %s: %w", name, ErrNotExist)
		}
		return nil, fmt.Errorf("lab %s: %w", name, err)
	}
	if l.Name != name {
		return nil, fmt.Errorf("lab %s: %s names lab %q", name, filepath.Join(l.Dir, "lab.json"), l.Name)
	}
	return l, nil
}

// List returns the names of the labs that exist, sorted.
func List() ([]string, error) {
	entries, err := os.ReadDir(RunDir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("lab: %w", err)
	}
	var names []string
	for _, e := range entries {
		if e.IsDir() && ValidName(e.Name()) == nil {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	return names, nil
}

// Down removes the lab: it stops the processes the lab recorded and any
// other process left in its namespaces (except the caller and its
// ancestors), deletes the namespaces (and with them every veth and
// qdisc), removes braid's own runtime and state directories for those
// namespaces (/run/braid/<ns>, /var/lib/braid/<ns>), and removes the run
// directory. A lab that is already gone, even partly, is not an error.
func (l *Lab) Down(ctx context.Context) error { return Down(ctx, l.Name) }

// Down removes the lab called name; see (*Lab).Down.
func Down(ctx context.Context, name string) error {
	if err := ValidName(name); err != nil {
		return fmt.Errorf("lab: %w", err)
	}
	dir := filepath.Join(RunDir, name)
	// The test LNS's namespace, which only LNSUp makes.
	roles := append(Roles(), RoleLNS)
	var state Lab
	if err := readJSON(filepath.Join(dir, "lab.json"), &state); err == nil {
		roles = append(roles, state.Topology.roles()...)
	}
	var errs []error

	var pids []int
	recs, err := readProcs(dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		errs = append(errs, err)
	}
	for _, rec := range recs {
		if rec.alive() {
			pids = append(pids, rec.PID)
		}
	}
	namespaces := existingNamespaces(name, roles)
	for _, ns := range namespaces {
		found, err := pidsInNamespace(ns)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
		for _, pid := range found {
			if !slices.Contains(pids, pid) {
				pids = append(pids, pid)
			}
		}
	}
	if left := stopPIDs(pids); len(left) > 0 {
		errs = append(errs, fmt.Errorf("processes %v did not stop", left))
	}

	var lines []string
	for _, ns := range namespaces {
		lines = append(lines, "netns del "+ns)
	}
	if err := ipBatch(ctx, "", lines, true); err != nil {
		errs = append(errs, err)
	}
	if left := existingNamespaces(name, roles); len(left) > 0 {
		errs = append(errs, fmt.Errorf("namespaces %s remain", strings.Join(left, ", ")))
	}
	if err := removeBraidState(name, roles); err != nil {
		errs = append(errs, err)
	}
	if err := os.RemoveAll(dir); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("lab %s: down: %w", name, err)
	}
	return nil
}

// removeBraidState removes braid's own runtime and state directories
// (internal/rundir) of the lab's namespaces: they describe namespaces that
// are gone, or not yet built, and a fresh box must not inherit a dead
// one's ownership record.
func removeBraidState(name string, roles []Role) error {
	var errs []error
	for _, r := range roles {
		d := rundir.For(NSName(name, r))
		for _, dir := range []string{d.Run, d.State} {
			if err := os.RemoveAll(dir); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// existingNamespaces returns the names of the lab's namespaces that exist,
// among those of roles (duplicates ignored).
func existingNamespaces(name string, roles []Role) []string {
	var found []string
	for _, r := range roles {
		ns := NSName(name, r)
		if netns.Exists(ns) && !slices.Contains(found, ns) {
			found = append(found, ns)
		}
	}
	return found
}

// Command returns a command that runs name with args inside the lab's
// namespace for role (through `ip netns exec`).
func (l *Lab) Command(ctx context.Context, role Role, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", l.NS(role), name}, args...)...)
}

// Run runs name with args inside the lab's namespace for role and returns
// its standard output; its error is a *CommandError that carries stderr.
func (l *Lab) Run(ctx context.Context, role Role, name string, args ...string) (string, error) {
	out, err := run(ctx, l.NS(role), nil, "ip", append([]string{"netns", "exec", l.NS(role), name}, args...)...)
	if err != nil {
		return out, fmt.Errorf("lab %s: %w", l.Name, err)
	}
	return out, nil
}

// Do runs fn on a locked OS thread inside the lab's namespace for role:
// sockets fn opens belong to that namespace, and stay there.
func (l *Lab) Do(role Role, fn func() error) error {
	return netns.Do(l.NS(role), fn)
}

// Whoami asks the whoami service at server ("host:port") from inside the
// lab's namespace for role, over network "tcp" or "udp", optionally from
// the local address bind, and returns the address the server saw. See the
// package-level Whoami.
func (l *Lab) Whoami(ctx context.Context, role Role, network, server, bind string) (netip.AddrPort, error) {
	var seen netip.AddrPort
	err := l.Do(role, func() error {
		var err error
		seen, err = Whoami(ctx, network, server, bind)
		return err
	})
	if err != nil {
		return seen, fmt.Errorf("lab %s: from %s: %w", l.Name, l.NS(role), err)
	}
	return seen, nil
}

// Download reads size bytes from the download service at server from
// inside the lab's namespace for role; see the package-level Download.
func (l *Lab) Download(ctx context.Context, role Role, network, server, bind string, size int64, progress func(received int64)) (int64, error) {
	var n int64
	err := l.Do(role, func() error {
		var err error
		n, err = Download(ctx, network, server, bind, size, progress)
		return err
	})
	if err != nil {
		return n, fmt.Errorf("lab %s: from %s: %w", l.Name, l.NS(role), err)
	}
	return n, nil
}
