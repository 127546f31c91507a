package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/braid-router/braid/compile"
	"github.com/braid-router/braid/drivers/links"
	"github.com/braid-router/braid/drivers/watch"
	"github.com/braid-router/braid/facts"
	"github.com/braid-router/braid/internal/control"
	"github.com/braid-router/braid/internal/metrics"
	"github.com/braid-router/braid/internal/minhttp"
	"github.com/braid-router/braid/reconcile"
	"github.com/braid-router/braid/resolve"
	"github.com/braid-router/braid/sessions/peer"
	"github.com/braid-router/braid/sessions/proxy"
	"github.com/braid-router/braid/source"
)

// runFlags are `braid run`'s flags.
type runFlags struct {
	file     string
	git      source.GitOptions
	resync   time.Duration
	poll     time.Duration
	debounce time.Duration
	confirm  time.Duration
	window   time.Duration
	metrics  string
}

func newRunCmd(g *globals) *cobra.Command {
	f := &runFlags{}
	cmd := &cobra.Command{
		Use:   "run (-f FILE | --git URL --path PATH [--ref main])",
		Short: "Converge continuously from a file or a git repository",
		Long: `braid run converges the namespace at start and then whenever something
changes: the spec (a file, watched through its directory, or a git
repository, fetched every --interval), the kernel (links, addresses, routes,
rules, nftables), the facts, and on a periodic full pass (--resync). MPTCP
endpoints and limits, for which the kernel sends no events, are polled.
A failed pass is retried with backoff; an invalid spec is never applied.
The daemon is the one writer of its namespace: it holds the lock, and serves
its status on /run/braid/<netns>/braid.sock (braid status).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runDaemon(cmd, g, f) },
	}
	fl := cmd.Flags()
	fl.StringVarP(&f.file, "file", "f", "", "spec file to converge from")
	fl.StringVar(&f.git.URL, "git", "", "git repository to converge from (file://, ssh:// or https://)")
	fl.StringVar(&f.git.Ref, "ref", source.DefaultGitRef, "branch or reference to follow")
	fl.StringVar(&f.git.Path, "path", "", "the spec's path inside the repository")
	fl.DurationVar(&f.git.Interval, "interval", time.Minute, "how often to fetch the repository")
	fl.StringVar(&f.git.SSHKeyFile, "git-ssh-key", os.Getenv("BRAID_GIT_SSH_KEY"), "private key for ssh (env BRAID_GIT_SSH_KEY)")
	fl.StringVar(&f.git.KnownHostsFile, "git-known-hosts", os.Getenv("BRAID_GIT_KNOWN_HOSTS"), "known_hosts file for ssh; host keys are always verified (env BRAID_GIT_KNOWN_HOSTS)")
	fl.StringVar(&f.git.TokenFile, "git-token-file", os.Getenv("BRAID_GIT_TOKEN_FILE"), "file holding a token for https (env BRAID_GIT_TOKEN_FILE)")
	fl.StringVar(&f.git.CAFile, "git-ca-file", os.Getenv("BRAID_GIT_CA_FILE"), "PEM file of the CAs trusted for https; TLS is always verified (env BRAID_GIT_CA_FILE)")
	fl.DurationVar(&f.resync, "resync", time.Minute, "periodic full pass")
	fl.DurationVar(&f.poll, "poll", 2*time.Second, "how often to poll MPTCP endpoints and limits")
	fl.DurationVar(&f.debounce, "debounce", 20*time.Millisecond, "gather a burst of changes into one pass")
	fl.DurationVar(&f.confirm, "confirm", 0, "make every new revision a trial, reverted unless `braid confirm` comes within this long")
	fl.DurationVar(&f.window, "probe-window", time.Minute, "how long management probes and the peer have to answer again after a new revision")
	fl.StringVar(&f.metrics, "metrics-listen", "", "serve Prometheus metrics at http://ADDR/metrics, inside the namespace (e.g. 127.0.0.1:9742; off by default)")
	cmd.MarkFlagsMutuallyExclusive("file", "git")
	cmd.MarkFlagsOneRequired("file", "git")
	return cmd
}

func runDaemon(cmd *cobra.Command, g *globals, f *runFlags) error {
	// The daemon lives long: the default collector pace keeps it small.
	debug.SetGCPercent(100)
	gv := *g
	gv.verbose = true // the daemon logs one line per change and per pass
	h, err := openHost(&gv, cmd.ErrOrStderr())
	if err != nil {
		return err
	}
	lock, err := h.dirs.TryLock()
	if err != nil {
		return err
	}
	defer lock.Unlock()

	var src source.Source
	if f.file != "" {
		src, err = source.NewFile(f.file, source.FileOptions{Log: h.log})
	} else {
		if f.git.Path == "" {
			return errors.New("--git needs --path, the spec's path inside the repository")
		}
		f.git.Dir = filepath.Join(h.dirs.State, "git")
		f.git.Log = h.log
		src, err = source.NewGit(f.git)
	}
	if err != nil {
		return err
	}
	kernel, err := watch.Open(compile.SessionSet)
	if err != nil {
		return err
	}
	defer kernel.Close()

	hub, err := facts.Open(facts.Options{Dir: h.dirs.State, Log: h.log})
	if err != nil {
		return err
	}
	defer hub.Close()
	linkWatcher, err := links.Open(hub, h.log)
	if err != nil {
		return err
	}
	defer linkWatcher.Close()
	ctx, cancel := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, syscall.SIGINT)
	defer cancel()
	// braid's own name lookups (a peer or a git server given by name) go
	// to the resolvers the uplinks learnt, each by its uplink. The Go
	// resolver is the process's, used by every dial (go-git's ssh and
	// https, probes): set once here, its list then follows each pass.
	resolvers := &resolve.Dialer{}
	net.DefaultResolver = resolvers.Resolver()
	d := &reconcile.Daemon{
		Resolvers:    resolvers,
		Engine:       h.engine,
		Compile:      compile.Compile,
		Source:       src,
		Kernel:       kernel,
		Interval:     f.resync,
		Polled:       []string{"mptcp"},
		PollInterval: f.poll,
		Debounce:     f.debounce,
		Log:          h.log,

		Facts:         hub,
		Links:         linkWatcher,
		ConfirmWithin: f.confirm,
		ProbeWindow:   f.window,
		StateDir:      h.dirs.State,
	}
	hooks := sessionHooks{stateDir: h.dirs.State}
	if f.metrics != "" {
		m, _, err := metrics.Start(ctx, f.metrics, d, h.log)
		if err != nil {
			return err
		}
		hooks.healthTransition = m.ObserveHealthTransition
		hooks.peerRejected = m.ObservePeerRejected
		hooks.peerRejectedDatagram = m.ObservePeerRejectedDatagram
		hooks.dnsStarted = m.WatchDNS
		hooks.proxyStarted = func(p *proxy.Proxy) {
			m.WatchSubflows(func() []metrics.SubflowVerdict {
				var out []metrics.SubflowVerdict
				for _, v := range p.SubflowVerdicts() {
					out = append(out, metrics.SubflowVerdict{Uplink: v.Uplink, OK: !v.Flagged()})
				}
				return out
			})
		}
		hooks.peerStarted = func(held func() peer.Stats) {
			m.WatchPeer(func() metrics.PeerHeld {
				st := held()
				return metrics.PeerHeld{Relayed: st.Relayed, Rejected: st.Rejected, Associations: st.Associations}
			})
		}
	}
	d.Supervisor = &reconcile.Supervisor{Registry: sessionKinds(h.log, hooks), Facts: hub, Log: h.log}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				h.log.Info("SIGHUP: reading the spec again")
				d.Trigger("reload")
			}
		}
	}()
	mux := minhttp.NewServeMux()
	mux.Handle("GET "+control.PathStatus, control.JSON(func() any { return d.Status() }))
	mux.Handle("GET "+control.PathFacts, control.JSON(func() any { return d.CurrentFacts() }))
	mux.Handle("GET "+control.PathBound, control.JSON(func() any { return d.Bound() }))
	mux.Handle("GET "+control.PathSessions, control.JSON(func() any { return reconcile.Snapshots(d.LiveSessions()) }))
	mux.Handle("POST "+control.PathConfirm, control.JSON(func() any {
		rev, err := d.Confirm()
		answer := map[string]string{"revision": rev}
		if err != nil {
			answer["error"] = err.Error()
		}
		return answer
	}))
	serveErr := make(chan error, 1)
	go func() { serveErr <- control.Serve(ctx, h.dirs.Run, mux) }()
	h.log.Info("braid run", "namespace", h.dirs.Namespace, "source", src.String(), "pid", os.Getpid())
	err = d.Run(ctx)
	cancel()
	if serr := <-serveErr; serr != nil && err == nil {
		err = serr
	}
	h.log.Info("braid run stopped", "namespace", h.dirs.Namespace)
	return err
}

func newStatusCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the daemon's status: spec source and revision, last pass, objects, facts",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			h, err := openHost(g, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), 10*time.Second)
			defer cancel()
			var st reconcile.Status
			if err := control.NewClient(h.dirs.Run).Get(ctx, control.PathStatus, &st); err != nil {
				return &exitCode{code: exitError, err: fmt.Errorf("%w (namespace %s)", err, h.dirs.Namespace)}
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), st)
			}
			writeStatus(cmd.OutOrStdout(), h.dirs.Namespace, st)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print as JSON")
	return cmd
}
