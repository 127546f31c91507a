// Command bench is braid's benchmark harness: it measures braid against the
// tool an administrator would use instead for the same result, in the same
// run, and prints each figure beside the alternative's as a markdown table.
//
//	go run ./bench -braid bin/braid [-n 5]
//
// It needs root: every measurement runs in fresh network namespaces, which
// the harness removes when it ends, fails or is interrupted. What it
// measures:
//
//   - converging from empty a spec whose routes: section yields 10,000
//     routes and 100 source rules, against `ip -batch` of the same kernel
//     objects (converted from `braid plan --json`, and checked equal in the
//     kernel afterwards) in a namespace of the same shape;
//   - the no-op `braid apply` and `braid plan` on the converged state, with
//     `ip monitor all` counting kernel events during them, against the ip
//     dumps that read the same state;
//   - the same no-op apply on the spec issue 7 tried it with: one routes:
//     entry of 10,000 IPv4 /32 destinations;
//   - 8 MPTCP endpoints and the limits, against `ip -batch` of the same,
//     and the no-op apply on them;
//   - braid's nftables table of 1,000 rules and a 10,000-element set from
//     empty, against `nft -f` of the same table; one element of the set
//     swapped, against `nft -f` of that element; the no-op apply, with `nft
//     monitor` counting events;
//   - the DNS forwarder's egress writer (bench/egress.go): answers of one
//     address put into an egress set with a timeout, each committed before
//     the next, against one nft process an answer, and against one `nft
//     -f` of every element;
//   - a breakdown of braid's converge time (process start, parse, plan,
//     apply) from commands that each run one more phase;
//   - the daemon (`braid run`, bench/daemon.go): how fast it repairs a
//     deleted route, p50 and p99 of -repairs repetitions, against the
//     kernel's own cost of re-adding it; its CPU time over an idle window
//     (-idle) and its resident set, beside `ip monitor all`'s. -daemon-only
//     runs just that;
//   - failover (bench/failover.go), in a lab: with braid's health tracker
//     at its defaults, the time from a fault on isp1 (blackhole, down,
//     100% loss; -failovers of each) to its default route leaving the
//     main table and to a LAN flow arriving through isp2, beside
//     OpenMPTCProuter's timing; and the longest stall of an MPTCP
//     download from the peer when isp1 is blackholed, beside the kernel
//     alone, OpenMPTCProuter's timing, and the endpoint deleted or set
//     backup. -failover-only runs just that;
//   - the 6PE tunnel's data plane (bench/sixpe.go): iperf3 TCP from a LAN
//     host through the box to a server behind a test LNS of braid's own
//     (internal/testlns), with braid's data plane pinned to one core,
//     beside plain IPv6 forwarding through the same box at the same MTU,
//     both ways. -6pe-only runs just that;
//   - the transparent proxy (bench/proxy.go): one iperf3 TCP flow each way
//     from a LAN host through braid's box (session[proxy/aggregation]) and
//     braid's peer, each pinned to one core, to a server beyond the peer,
//     beside ss-redir and ss-server --mptcp pinned the same way with the
//     same cipher, and beside plain forwarding through the same box; then
//     the box's and the peer's resident sets and CPU time with 1,000 idle
//     and 100 busy proxied connections, braid's and shadowsocks-libev's.
//     -proxy-only runs just that;
//   - aggregation (bench/aggregation.go), in a lab whose uplinks tc tbf
//     shapes: one LAN TCP download through braid's box and peer (the
//     transparent proxy, Multipath TCP over both uplinks), against the
//     sum of one TCP download over each uplink alone and against
//     shadowsocks-libev (ss-redir and ss-server --mptcp), without added
//     delay and with different round-trip times; and that download's
//     stall when isp1 is blackholed mid-transfer. -aggregation-only runs
//     just that;
//   - the DNS forwarder (bench/dns.go): queries per second and p50/p99
//     latency of braid's forwarder (session[dns/resolver]) and of dnsmasq
//     as a forwarder, both in the same box, pinned to the same core and
//     asking the same upstream (unbound), from a Go load generator with
//     -dns-concurrency queries outstanding: names cached, names never
//     asked before, and names under a routes[].domains suffix whose
//     answers must land in the egress set (braid's; dnsmasq's --nftset),
//     counted there afterwards. -dns-only runs just that.
//
// Each side runs -n times, alternating which goes first; the table shows
// medians and minimums, and the ratio of the medians. -only runs some of
// the groups: routes (the scale spec and the breakdown), hosts, mptcp,
// nftables, egress, daemon, failover, 6pe, proxy, aggregation, dns.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"
)

func main() {
	os.Exit(run())
}

// run is main with deferred cleanup: it returns the exit code.
func run() int {
	braid := flag.String("braid", "bin/braid", "the braid binary to measure (make build)")
	n := flag.Int("n", 5, "samples of each side of each measurement")
	settle := flag.Duration("settle", 300*time.Millisecond, "pause before each sample, for the kernel to finish removing the previous namespaces")
	quiet := flag.Bool("q", false, "print only the tables, not each sample")
	files := flag.String("files", "", "write the generated specs and ip -batch files to this directory and keep them (default: a temporary directory)")
	only := flag.String("only", "", "run only these groups, comma-separated: "+strings.Join(groupNames, ", ")+" (default: all)")
	flag.Parse()
	if *sixpeServe != "" {
		if err := serveSixPE(*sixpeServe); err != nil {
			fmt.Fprintln(os.Stderr, "bench: 6PE", *sixpeServe+":", err)
			return 1
		}
		return 0
	}
	if *n < 1 {
		fmt.Fprintln(os.Stderr, "bench: -n must be at least 1")
		return 2
	}
	groups, err := parseGroups(*only)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 2
	}
	if *daemonOnly {
		groups = map[string]bool{groupDaemon: true}
	}
	if *failoverOnly {
		groups = map[string]bool{groupFailover: true}
	}
	if *sixpeOnly {
		groups = map[string]bool{groupSixPE: true}
	}
	if *proxyOnly {
		groups = map[string]bool{groupProxy: true}
	}
	if *aggregationOnly {
		groups = map[string]bool{groupAggregation: true}
	}
	if *dnsOnly {
		groups = map[string]bool{groupDNS: true}
	}

	// Ctrl-C, SIGTERM, SIGHUP or a reader gone from stdout (SIGPIPE, as
	// with `| head`) cancel the run; cleanup still runs, and further
	// signals are ignored until it is done, so it cannot be cut short.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGPIPE)
	defer stop()

	h, cleanup, err := newHarness(*braid, *n, *settle, *files)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	if *quiet {
		h.log = io.Discard
	}
	err = bench(ctx, h, groups)
	cerr := cleanup()
	if cerr != nil {
		fmt.Fprintln(os.Stderr, "bench: cleanup:", cerr)
	}
	switch {
	case ctx.Err() != nil:
		if cerr == nil {
			fmt.Fprintln(os.Stderr, "bench: interrupted; removed every namespace it made")
		}
		return 130
	case err != nil:
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	return 0
}

// newHarness checks the prerequisites and makes the harness's temporary
// directory. cleanup removes every namespace and file the harness made.
func newHarness(braid string, n int, settle time.Duration, files string) (*harness, func() error, error) {
	if os.Geteuid() != 0 {
		return nil, nil, errors.New("needs root (it makes network namespaces)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return nil, nil, fmt.Errorf("needs iproute2: %w", err)
	}
	abs, err := filepath.Abs(braid)
	if err != nil {
		return nil, nil, err
	}
	if _, err := os.Stat(abs); err != nil {
		return nil, nil, fmt.Errorf("braid binary: %w (run make build)", err)
	}
	if stale, err := removeStale(); err != nil {
		return nil, nil, fmt.Errorf("remove namespaces of earlier runs: %w", err)
	} else if len(stale) > 0 {
		fmt.Fprintf(os.Stderr, "bench: removed what an earlier, killed run left: %s\n", strings.Join(stale, ", "))
	}
	dir, err := os.MkdirTemp("", fmt.Sprintf("%s%d-", tempPrefix, os.Getpid()))
	if err != nil {
		return nil, nil, err
	}
	h := &harness{
		braid:  abs,
		n:      n,
		settle: settle,
		scale:  issueScale,
		log:    os.Stdout,
		dir:    dir,
		files:  dir,
		ns:     newNamespaces(),
	}
	if files != "" {
		if err := os.MkdirAll(files, 0o755); err != nil {
			os.RemoveAll(dir)
			return nil, nil, err
		}
		h.files = files
	}
	if _, err := os.Stat(gnuTime); err == nil {
		h.haveTime = true
	} else {
		fmt.Fprintf(os.Stderr, "bench: %s (GNU time) is not installed: max RSS is not measured (apt-get install time)\n", gnuTime)
	}
	cleanup := func() error {
		return errors.Join(h.ns.delAll(), os.RemoveAll(dir))
	}
	return h, cleanup, nil
}

// The groups of measurements -only selects.
const (
	groupRoutes   = "routes"   // the scale spec: converge, no-op, plan, and the breakdown
	groupHosts    = "hosts"    // the no-op pass on issue 7's spec
	groupMPTCP    = "mptcp"    // 8 endpoints and the limits
	groupNftables = "nftables" // the table of 1,000 rules and a 10,000-element set
	groupEgress   = "egress"   // the DNS forwarder's element writer against nft
	groupDaemon   = "daemon"   // braid run: repairs, idle CPU and RSS
	groupFailover = "failover" // health tracking in a lab: faults, route changes, MPTCP stalls
	groupSixPE    = "6pe"      // the 6PE tunnel's data plane against plain forwarding (iperf3)
	groupProxy    = "proxy"    // the transparent proxy and peer: one flow, and idle and busy connections, against shadowsocks-libev
	// groupAggregation is one LAN download over both uplinks through
	// braid's proxy and peer, against the links and shadowsocks-libev.
	groupAggregation = "aggregation"
	// groupDNS is braid's DNS forwarder against dnsmasq: cached,
	// uncached and per-domain egress.
	groupDNS = "dns"
)

var groupNames = []string{groupRoutes, groupHosts, groupMPTCP, groupNftables, groupEgress, groupDaemon, groupFailover, groupSixPE, groupProxy, groupAggregation, groupDNS}

// parseGroups turns -only into the set of groups to run; "" is all.
func parseGroups(only string) (map[string]bool, error) {
	groups := map[string]bool{}
	if only == "" {
		for _, g := range groupNames {
			groups[g] = true
		}
		return groups, nil
	}
	for g := range strings.SplitSeq(only, ",") {
		g = strings.TrimSpace(g)
		if !slices.Contains(groupNames, g) {
			return nil, fmt.Errorf("-only: unknown group %q (groups: %s)", g, strings.Join(groupNames, ", "))
		}
		groups[g] = true
	}
	return groups, nil
}

// bench prepares, runs the measurements of the selected groups and prints
// the report.
func bench(ctx context.Context, h *harness, groups map[string]bool) error {
	machine := fmt.Sprintf("%d cores, kernel %s, %s", runtime.NumCPU(), kernelRelease(), iprouteVersion(ctx))
	h.logf("braid benchmark of %s: %d samples per side; %s", h.braid, h.n, machine)
	if len(groups) == 1 {
		switch {
		case groups[groupDaemon]:
			return benchOnly(ctx, h, "daemon", fmt.Sprintf("The daemon\n\nMachine: %s.", machine), daemonBench, writeDaemonTable)
		case groups[groupFailover]:
			return benchOnly(ctx, h, "failover", fmt.Sprintf("Failover\n\nMachine: %s.", machine), failoverBench, writeFailoverTable)
		case groups[groupSixPE]:
			return benchOnly(ctx, h, "6pe", fmt.Sprintf("6PE data plane\n\nMachine: %s. Median of %d runs, minimum in brackets; ratio = braid's median / plain forwarding's.", machine, h.n), sixpeBench, writeSixPETable)
		case groups[groupProxy]:
			return benchOnly(ctx, h, "proxy", fmt.Sprintf("Transparent proxy\n\nMachine: %s. Median of %d runs, minimum in brackets; ratio = braid's median / the alternative's.", machine, h.n), proxyBench, writeProxyTable)
		case groups[groupAggregation]:
			return benchOnly(ctx, h, "aggregation", fmt.Sprintf("Aggregation\n\nMachine: %s. Median of %d downloads, minimum in brackets; ratio = braid's median / the alternative's.", machine, h.n), aggregationBench, writeAggregationTable)
		case groups[groupDNS]:
			return benchOnly(ctx, h, "dns", fmt.Sprintf("DNS forwarder\n\nMachine: %s. Median of %d runs, minimum in brackets; ratio = braid's median / dnsmasq's.", machine, h.n), dnsBench, writeDNSTable)
		}
	}
	if groups[groupRoutes] {
		if err := h.prepare(ctx); err != nil {
			return fmt.Errorf("prepare: %w", err)
		}
		h.logf("")
	}
	var ms []*measurement
	if groups[groupRoutes] {
		ms = append(ms, measurements(h)...)
	}
	if groups[groupHosts] {
		ms = append(ms, hostMeasurements()...)
	}
	if groups[groupMPTCP] {
		ms = append(ms, mptcpMeasurements()...)
	}
	if groups[groupNftables] {
		ms = append(ms, nftMeasurements()...)
	}
	if groups[groupEgress] {
		ms = append(ms, egressMeasurements()...)
	}
	var results, parts []*outcome
	for _, m := range ms {
		o, err := h.runMeasurement(ctx, m)
		if err != nil {
			return err
		}
		results = append(results, o)
	}
	if groups[groupRoutes] {
		for _, m := range breakdown() {
			o, err := h.runMeasurement(ctx, m)
			if err != nil {
				return err
			}
			parts = append(parts, o)
		}
	}
	var daemon *daemonResult
	if groups[groupDaemon] {
		var err error
		if daemon, err = daemonBench(ctx, h); err != nil {
			return fmt.Errorf("daemon: %w", err)
		}
	}
	var failovers *failoverResult
	if groups[groupFailover] {
		var err error
		if failovers, err = failoverBench(ctx, h); err != nil {
			return fmt.Errorf("failover: %w", err)
		}
	}

	var sixpe *sixpeResult
	if groups[groupSixPE] {
		var err error
		if sixpe, err = sixpeBench(ctx, h); err != nil {
			return fmt.Errorf("6pe: %w", err)
		}
	}

	var proxied *pxResult
	if groups[groupProxy] {
		var err error
		if proxied, err = proxyBench(ctx, h); err != nil {
			return fmt.Errorf("proxy: %w", err)
		}
	}

	var aggregation *aggResult
	if groups[groupAggregation] {
		var err error
		if aggregation, err = aggregationBench(ctx, h); err != nil {
			return fmt.Errorf("aggregation: %w", err)
		}
	}

	var dnsRes *dnsResult
	if groups[groupDNS] {
		var err error
		if dnsRes, err = dnsBench(ctx, h); err != nil {
			return fmt.Errorf("dns: %w", err)
		}
	}

	w := os.Stdout
	fmt.Fprintf(w, "\n## Results\n\nMachine: %s. Median of %d runs, minimum in brackets; ratio = braid's median / the alternative's.\n\n", machine, h.n)
	var missed []string
	if len(results) > 0 {
		missed = writeTable(w, results)
		fmt.Fprintln(w)
	}
	if groups[groupRoutes] || groups[groupHosts] || groups[groupNftables] {
		writeEvents(w, h.events)
	}
	if groups[groupRoutes] {
		fmt.Fprintf(w, "\n## Where braid apply's time goes\n\n")
		writeTable(w, parts)
		fmt.Fprintln(w)
		writeBreakdown(w, parts[0], parts[1], parts[2], results[0], results[1], results[2])
	}
	if daemon != nil {
		fmt.Fprintf(w, "\n## The daemon\n\n")
		missed = append(missed, writeDaemonTable(w, daemon)...)
		fmt.Fprintln(w)
	}
	if failovers != nil {
		fmt.Fprintf(w, "\n## Failover\n\n")
		missed = append(missed, writeFailoverTable(w, failovers)...)
		fmt.Fprintln(w)
	}
	if sixpe != nil {
		fmt.Fprintf(w, "\n## 6PE data plane\n\n")
		missed = append(missed, writeSixPETable(w, sixpe)...)
		fmt.Fprintln(w)
	}
	if proxied != nil {
		fmt.Fprintf(w, "\n## Transparent proxy\n\n")
		missed = append(missed, writeProxyTable(w, proxied)...)
		fmt.Fprintln(w)
	}
	if aggregation != nil {
		fmt.Fprintf(w, "\n## Aggregation\n\n")
		missed = append(missed, writeAggregationTable(w, aggregation)...)
		fmt.Fprintln(w)
	}
	if dnsRes != nil {
		fmt.Fprintf(w, "\n## DNS forwarder\n\n")
		missed = append(missed, writeDNSTable(w, dnsRes)...)
		fmt.Fprintln(w)
	}
	writeVerdict(w, missed)
	return nil
}

// benchOnly runs one group alone (its -NAME-only flag, or -only NAME),
// and prints its table under the heading, then the verdict.
func benchOnly[R any](ctx context.Context, h *harness, name, heading string, run func(context.Context, *harness) (R, error), write func(io.Writer, R) []string) error {
	r, err := run(ctx, h)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	w := os.Stdout
	fmt.Fprintf(w, "\n## %s\n\n", heading)
	missed := write(w, r)
	fmt.Fprintln(w)
	writeVerdict(w, missed)
	return nil
}

// goalRow writes one row of a table of figures against goals: what,
// braid's figure, the alternative's, their ratio, the goal, and its
// verdict (met, missed, or "—" when met is nil, a figure with no goal).
// It returns missed with what appended when the goal was missed.
func goalRow(w io.Writer, missed []string, what, braid, alt, ratio, goal string, met *bool) []string {
	verdict := "—"
	if met != nil {
		verdict = "met"
		if !*met {
			verdict = "**missed**"
			missed = append(missed, what)
		}
	}
	fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s |\n", what, braid, alt, ratio, goal, verdict)
	return missed
}

// writeVerdict says which goals braid missed, or that it met them all.
func writeVerdict(w io.Writer, missed []string) {
	if len(missed) > 0 {
		fmt.Fprintf(w, "braid MISSED %d goal(s): %s\n", len(missed), strings.Join(missed, "; "))
	} else {
		fmt.Fprintln(w, "braid met every goal.")
	}
}

// iprouteVersion is ip's version ("iproute2-6.1.0").
func iprouteVersion(ctx context.Context) string {
	out, err := exec.CommandContext(ctx, "ip", "-V").Output()
	if err != nil {
		return "iproute2 (unknown version)"
	}
	for f := range strings.FieldsSeq(string(out)) {
		if v, ok := strings.CutPrefix(strings.TrimSuffix(f, ","), "iproute2-"); ok {
			return "iproute2 " + v
		}
	}
	return "iproute2 (unknown version)"
}

// kernelRelease is `uname -r`.
func kernelRelease() string {
	var u syscall.Utsname
	if err := syscall.Uname(&u); err != nil {
		return "unknown"
	}
	var b strings.Builder
	for _, c := range u.Release {
		if c == 0 {
			break
		}
		b.WriteByte(byte(c))
	}
	return b.String()
}
