//go:build !braid_nolab

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/miekg/dns"
	"github.com/spf13/cobra"

	"github.com/braid-router/braid/lab"
)

// newLabCmd is `braid lab`: the disposable network of namespaces braid is
// demonstrated and tested in (see package lab).
func newLabCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "lab",
		Short: "Build, inspect and remove a disposable test network of namespaces",
		Long: `The lab is a network of namespaces named <name>-<role>: a LAN client (lan),
braid's box (box: its interfaces lan0, wan1 and wan2 exist but are down and
unaddressed, for braid to configure), two ISPs (isp1 at 50 Mbit/s, which
routes the LAN's IPv6 prefix to the box; isp2 at 10 Mbit/s), the Internet
core with servers on ` + lab.ServerV4 + `, ` + lab.SteeredServerV4 + `, ` + lab.ServerV6 + ` and
` + lab.SteeredServerV6 + ` (whoami on port ` + strconv.Itoa(lab.WhoamiPort) + `, a download service on port ` + strconv.Itoa(lab.DownloadPort) + `,
iperf3 on port ` + strconv.Itoa(lab.IperfPort) + `; unbound on ` + lab.ResolverV4 + ` and ` + lab.ResolverV6 + `, serving
the test zone ` + lab.TestZone + `, the resolver the ISPs hand out), and the
aggregation peer (peer: braid run -f with a kind: Peer spec, Multipath TCP on ` + lab.PeerV4 + ` and ` + lab.PeerV6 + ` port ` + strconv.Itoa(lab.PeerPort) + `, its key
in ` + lab.RunDir + `/<name>/` + lab.PeerKeyFile + `). specs/lab.yaml configures the box;
specs/lab-aggregation.yaml sends its LAN's TCP through the peer. braid lab lns
up adds a test LNS behind isp1 for specs/lab-6pe.yaml's 6PE tunnel. The lab keeps
its state and the processes it started under ` + lab.RunDir + `/<name>.`,
	}
	cmd.AddCommand(newLabUpCmd(), newLabDownCmd(), newLabStatusCmd(), newLabFaultCmd(), newLabDelayCmd(), newLabWhoamiCmd(), newLabLookupCmd(), newLabDownloadCmd(), newLabLNSCmd(), newLabServeCmd())
	return cmd
}

// signalContext is the command's context, cancelled by SIGINT or SIGTERM.
func signalContext(cmd *cobra.Command) (context.Context, context.CancelFunc) {
	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	return signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
}

func newLabUpCmd() *cobra.Command {
	var name string
	var rates []string
	cmd := &cobra.Command{
		Use:   "up [--name N] [--rate isp1=30M]...",
		Short: "Build the lab (refuses if it exists)",
		Long: `Build the lab (refuses if it exists). --rate ISP=RATE changes an ISP's rate
limit from the default (isp1 50M, isp2 10M), in bit/s with the suffixes k, M
and G (powers of 1000).`,
		Example: "  braid lab up\n  braid lab up --name demo --rate isp1=30M --rate isp2=20M",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := signalContext(cmd)
			defer cancel()
			topo, err := labTopology(rates)
			if err != nil {
				return err
			}
			l, err := lab.Up(ctx, lab.Config{Name: name, Topology: topo})
			if err != nil {
				return err
			}
			st, err := l.Status(ctx)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			printLabStatus(out, st)
			box := l.NS(lab.RoleBox)
			fmt.Fprintf(out, "\nNext:\n"+
				"  braid --netns %s plan -f specs/lab.yaml\n"+
				"  braid --netns %s apply -f specs/lab.yaml\n"+
				"  braid lab whoami --name %s --from box %s:%d\n"+
				"  ip netns exec %s ping %s\n"+
				"  braid lab down --name %s\n",
				box, box, l.Name, lab.ServerV4, lab.WhoamiPort, l.NS(lab.RoleLAN), lab.ServerV6, l.Name)
			if l.Name == lab.DefaultName {
				// specs/lab-aggregation.yaml names this lab's peer key.
				fmt.Fprintf(out, "Aggregation through the lab's peer:\n"+
					"  braid --netns %s run -f specs/lab-aggregation.yaml\n"+
					"  braid lab download --from lan --size 20M %s:%d\n",
					box, lab.ServerV4, lab.DownloadPort)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&name, "name", lab.DefaultName, "lab name: its namespaces are NAME-<role>")
	cmd.Flags().StringArrayVar(&rates, "rate", nil, "an ISP's rate limit, ISP=RATE in bit/s (isp1=30M); repeat for both")
	return cmd
}

// labTopology is the default topology with the rate limits of --rate
// (ISP=RATE, RATE in bit/s with k, M or G), or nil (the default) without.
func labTopology(rates []string) (*lab.Topology, error) {
	if len(rates) == 0 {
		return nil, nil
	}
	topo := lab.Default()
	for _, r := range rates {
		isp, v, ok := strings.Cut(r, "=")
		if !ok {
			return nil, fmt.Errorf("lab up: --rate %q: want ISP=RATE (isp1=30M)", r)
		}
		bps, err := parseSize(v)
		if err != nil {
			return nil, fmt.Errorf("lab up: --rate %q: want ISP=RATE, RATE in bit/s with k, M or G (isp1=30M)", r)
		}
		if err := topo.SetRate(lab.Role(isp), uint64(bps)); err != nil {
			return nil, fmt.Errorf("lab up: --rate: %w", err)
		}
	}
	return &topo, nil
}

func newLabDownCmd() *cobra.Command {
	var name string
	cmd := &cobra.Command{
		Use:   "down [--name N]",
		Short: "Remove the lab: its processes, namespaces and run directory (no error if gone)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := signalContext(cmd)
			defer cancel()
			if err := lab.Down(ctx, name); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "lab %s is down\n", name)
			return nil
		},
	}
	cmd.Flags().StringVar(&name, "name", lab.DefaultName, "lab name")
	return cmd
}

func newLabStatusCmd() *cobra.Command {
	var name string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status [--name N] [--json]",
		Short: "Show the labs: namespaces, interfaces, addresses, processes",
		Long: `Show every lab, or only the one --name names (an error if it does not
exist). --json prints a JSON array of lab status objects.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := signalContext(cmd)
			defer cancel()
			names := []string{name}
			if !cmd.Flags().Changed("name") {
				var err error
				if names, err = lab.List(); err != nil {
					return err
				}
			}
			sts := []*lab.Status{}
			for _, n := range names {
				l, err := lab.Open(n)
				if errors.Is(err, lab.ErrNotExist) && !cmd.Flags().Changed("name") {
					continue // being built or removed right now
				}
				if err != nil {
					return err
				}
				st, err := l.Status(ctx)
				if err != nil {
					return err
				}
				sts = append(sts, st)
			}
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(sts)
			}
			if len(sts) == 0 {
				fmt.Fprintln(out, "no lab (braid lab up builds one)")
			}
			for i, st := range sts {
				if i > 0 {
					fmt.Fprintln(out)
				}
				printLabStatus(out, st)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&name, "name", lab.DefaultName, "only this lab")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// printLabStatus prints a lab's namespaces, interfaces and processes as
// tables. Loopback is shown only when it holds more than 127.0.0.1 and ::1,
// link-local addresses not at all (--json has everything).
func printLabStatus(w io.Writer, st *lab.Status) {
	fmt.Fprintf(w, "lab %s (up since %s, state in %s)\n", st.Name, st.Created.Local().Format(time.DateTime), st.Dir)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  NAMESPACE\tINTERFACE\tSTATE\tADDRESSES")
	for _, ns := range st.Namespaces {
		if !ns.Exists {
			fmt.Fprintf(tw, "  %s\t\tMISSING\t\n", ns.Name)
			continue
		}
		for _, ls := range ns.Links {
			var addrs []string
			for _, a := range ls.Addrs {
				if a == "127.0.0.1/8" || a == "::1/128" || strings.HasPrefix(a, "fe80:") {
					continue
				}
				addrs = append(addrs, a)
			}
			if ls.Name == "lo" && len(addrs) == 0 {
				continue
			}
			state := "down"
			switch {
			case ls.Up && (ls.State == "UP" || ls.State == "UNKNOWN"):
				state = "up"
			case ls.Up:
				state = "up, no carrier"
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", ns.Name, ls.Name, state, strings.Join(addrs, " "))
		}
	}
	tw.Flush()
	if len(st.Faults) > 0 {
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  FAULT\tON\tSINCE")
		for _, f := range st.Faults {
			what := string(f.Kind)
			if f.Kind == lab.FaultLoss {
				what += " " + strconv.Itoa(f.Loss) + "%"
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\n", what, f.ISP, f.Since.Local().Format(time.DateTime))
		}
		tw.Flush()
	}
	if len(st.Delays) > 0 {
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  DELAY (RTT)\tON\tSINCE")
		for _, d := range st.Delays {
			fmt.Fprintf(tw, "  %s\t%s\t%s\n", d.RTT, d.ISP, d.Since.Local().Format(time.DateTime))
		}
		tw.Flush()
	}
	if len(st.Processes) == 0 {
		return
	}
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  PROCESS\tNAMESPACE\tPID\tSTATE\tLOG")
	for _, p := range st.Processes {
		state := "running"
		if !p.Alive {
			state = "DEAD"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%d\t%s\t%s\n", p.Name, p.Namespace, p.PID, state, p.Log)
	}
	tw.Flush()
}

func newLabFaultCmd() *cobra.Command {
	var name string
	cmd := &cobra.Command{
		Use:   "fault [--name N] isp1|isp2 blackhole|down|loss PCT|strip-mptcp|unplug|plug|clear",
		Short: "Inject a fault on the ISP side of one of the box's links, or clear it",
		Long: `Inject a fault on the ISP side of the box's link to isp1 or isp2:

  blackhole  every IP packet between the box and the ISP is dropped, both ways,
             silently; the link keeps its carrier, and ARP and neighbour
             discovery still answer (a modem whose network is dead)
  down       the ISP's end of the link goes down: the box's end loses its carrier
  loss PCT   each packet crossing the link, either way, is dropped with
             probability PCT% (nftables numgen; a ping's round trip is lost
             with 1-(1-PCT/100)²)
  strip-mptcp  the MPTCP option is stripped from TCP SYNs and SYN-ACKs crossing
             the link, as a middlebox that scrubs TCP options does: no MPTCP
             subflow establishes over it (braid status flags the uplink)
  unplug     the box's end of the link is removed, as a USB modem pulled out
  plug       it comes back under the same name and MAC address, down and
             unaddressed on the box's side, configured as at lab up on the ISP's
  clear      undoes whatever fault is there

One fault per ISP at a time: a new one replaces the last. Injecting the fault
that is there changes nothing. Faults show in braid lab status and go with
braid lab down.`,
		Example: "  braid lab fault isp2 loss 30\n  braid lab fault isp2 unplug\n  braid lab fault isp2 clear",
		Args:    cobra.RangeArgs(2, 3),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := signalContext(cmd)
			defer cancel()
			l, err := lab.Open(name)
			if err != nil {
				return err
			}
			isp, what := lab.Role(args[0]), args[1]
			if (what == string(lab.FaultLoss)) != (len(args) == 3) {
				return fmt.Errorf("lab fault: %q takes a percentage only after loss (braid lab fault %s loss 30)", strings.Join(args, " "), isp)
			}
			switch what {
			case "clear":
				err = l.Clear(ctx, isp)
			case "plug":
				err = l.Plug(ctx, isp)
			default:
				f := lab.Fault{ISP: isp, Kind: lab.FaultKind(what)}
				if len(args) == 3 {
					pct, perr := strconv.Atoi(strings.TrimSuffix(args[2], "%"))
					if perr != nil {
						return fmt.Errorf("lab fault: loss %q: want a percentage, 1 to 100", args[2])
					}
					f.Loss = pct
				}
				err = l.Inject(ctx, f)
			}
			if err != nil {
				return err
			}
			faults, err := l.Faults()
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			for _, f := range faults {
				if f.ISP == isp {
					fmt.Fprintf(out, "lab %s: %s\n", l.Name, f)
					return nil
				}
			}
			fmt.Fprintf(out, "lab %s: %s has no fault\n", l.Name, isp)
			return nil
		},
	}
	cmd.Flags().StringVar(&name, "name", lab.DefaultName, "lab name")
	return cmd
}

func newLabDelayCmd() *cobra.Command {
	var name string
	cmd := &cobra.Command{
		Use:   "delay [--name N] isp1|isp2 RTT|0|clear",
		Short: "Add a round-trip time to an ISP's link to the Internet core, or remove it",
		Long: `Add RTT (a Go duration: 40ms, 1.5s) to the round trip of everything the box
sends through isp1 or isp2 beyond the ISP itself: half of it each way on the
ISP's link to the Internet core. 0 or clear removes it. A new delay replaces
the last.

This kernel has no netem: a delay line process (delay-<isp> in braid lab
status) holds each packet in a bounded FIFO, in order, dropping from the tail
when full as a link buffer does; nftables steers the link's traffic through
its TAP devices. The ISP's rate limit, its link to the box, its faults and its
services are untouched. Delays show in braid lab status and go with braid lab
down.`,
		Example: "  braid lab delay isp2 40ms\n  braid lab delay isp2 clear",
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := signalContext(cmd)
			defer cancel()
			isp := lab.Role(args[0])
			var rtt time.Duration
			if args[1] != "clear" && args[1] != "0" {
				var err error
				if rtt, err = time.ParseDuration(args[1]); err != nil || rtt < 0 {
					return fmt.Errorf("lab delay: %q: want a round-trip time (40ms), 0 or clear", args[1])
				}
			}
			l, err := lab.Open(name)
			if err != nil {
				return err
			}
			if err := l.Delay(ctx, isp, rtt); err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if rtt == 0 {
				fmt.Fprintf(out, "lab %s: %s has no delay\n", l.Name, isp)
				return nil
			}
			fmt.Fprintf(out, "lab %s: %s\n", l.Name, lab.LinkDelay{ISP: isp, RTT: rtt})
			return nil
		},
	}
	cmd.Flags().StringVar(&name, "name", lab.DefaultName, "lab name")
	return cmd
}

func newLabWhoamiCmd() *cobra.Command {
	var name, from, bind string
	var udp bool
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "whoami [--from ROLE [--name N]] [--bind SRC] [--udp] HOST:PORT",
		Short: "Ask a lab whoami server which address it sees this host come from",
		Long: `Connect to a whoami server (the lab runs them on port ` + strconv.Itoa(lab.WhoamiPort) + ` of its server
addresses) and print the address the server saw: which uplink a connection
left by. It runs in the current namespace (or the global --netns one), or
in the lab's namespace for --from ROLE (lan, box, isp1, isp2, inet, peer).`,
		Example: "  braid lab whoami --from box " + lab.ServerV4 + ":7\n" +
			"  braid lab whoami --from box --bind " + lab.BoxWAN2V4 + " " + lab.ServerV4 + ":7\n" +
			"  braid --netns braid-lan lab whoami [" + lab.ServerV6 + "]:7",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := signalContext(cmd)
			defer cancel()
			ctx, cancelT := context.WithTimeout(ctx, timeout)
			defer cancelT()
			network := "tcp"
			if udp {
				network = "udp"
			}
			var seen netip.AddrPort
			var err error
			if from == "" {
				seen, err = lab.Whoami(ctx, network, args[0], bind)
			} else {
				l, oerr := lab.Open(name)
				if oerr != nil {
					return oerr
				}
				seen, err = l.Whoami(ctx, lab.Role(from), network, args[0], bind)
			}
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), seen)
			return nil
		},
	}
	cmd.Flags().StringVar(&name, "name", lab.DefaultName, "lab name, with --from")
	cmd.Flags().StringVar(&from, "from", "", "run from the lab namespace of this role")
	cmd.Flags().StringVar(&bind, "bind", "", "local address to connect from")
	cmd.Flags().BoolVar(&udp, "udp", false, "ask over UDP")
	cmd.Flags().DurationVar(&timeout, "timeout", 5*time.Second, "give up after this long")
	return cmd
}

func newLabLookupCmd() *cobra.Command {
	var name, from string
	var tcp bool
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "lookup [--from ROLE [--name N]] [--tcp] SERVER:PORT NAME [TYPE]",
		Short: "Ask a DNS server for a name, and print its answer",
		Long: `Ask the DNS server at SERVER:PORT for NAME (TYPE: A by default; AAAA, HTTPS,
TXT, ...), recursion desired, over UDP (or --tcp), and print the answer
as dig would. The lab's resolver (` + lab.ResolverV4 + ` and ` + lab.ResolverV6 + `, unbound)
serves the test zone ` + lab.TestZone + `; braid's own listens where its spec's dns.listen
says. It runs in the current namespace (or the global --netns one), or in
the lab's namespace for --from ROLE (lan, box, isp1, isp2, inet, peer).`,
		Example: "  braid lab lookup --from lan " + lab.BoxLANV4 + ":53 " + lab.NameServer + " AAAA\n" +
			"  braid lab lookup --from isp1 " + lab.ResolverV4 + ":53 " + lab.NameHTTPS + " HTTPS",
		Args: cobra.RangeArgs(2, 3),
		RunE: func(cmd *cobra.Command, args []string) error {
			qtype := dns.TypeA
			if len(args) == 3 {
				t, ok := dns.StringToType[strings.ToUpper(args[2])]
				if !ok {
					return fmt.Errorf("unknown record type %q", args[2])
				}
				qtype = t
			}
			ctx, cancel := signalContext(cmd)
			defer cancel()
			ctx, cancelT := context.WithTimeout(ctx, timeout)
			defer cancelT()
			network := "udp"
			if tcp {
				network = "tcp"
			}
			var r *dns.Msg
			var err error
			if from == "" {
				r, err = lab.Lookup(ctx, network, args[0], args[1], qtype)
			} else {
				l, oerr := lab.Open(name)
				if oerr != nil {
					return oerr
				}
				r, err = l.Lookup(ctx, lab.Role(from), network, args[0], args[1], qtype)
			}
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), r)
			return nil
		},
	}
	cmd.Flags().StringVar(&name, "name", lab.DefaultName, "lab name, with --from")
	cmd.Flags().StringVar(&from, "from", "", "run from the lab namespace of this role")
	cmd.Flags().BoolVar(&tcp, "tcp", false, "ask over TCP")
	cmd.Flags().DurationVar(&timeout, "timeout", 5*time.Second, "give up after this long")
	return cmd
}

func newLabDownloadCmd() *cobra.Command {
	var name, from, bind, size string
	var every, timeout time.Duration
	cmd := &cobra.Command{
		Use:   "download [--from ROLE [--name N]] [--bind SRC] [--size 8M] [--every 1s] HOST:PORT",
		Short: "Download from a lab download server, printing the progress",
		Long: `Download --size bytes from a download server (the lab runs them on port ` + strconv.Itoa(lab.DownloadPort) + `
of its server addresses: they send bytes until the client closes), printing
every --every the time, the bytes so far and the rate of the last interval.
It runs in the current namespace (or the global --netns one), or in the lab's
namespace for --from ROLE (lan, box, isp1, isp2, inet, peer). Sizes take
the suffixes k, M and G (powers of 1000).`,
		Example: "  braid lab download --from lan --size 20M " + lab.ServerV4 + ":" + strconv.Itoa(lab.DownloadPort) + "\n" +
			"  braid lab download --from lan --size 20M [" + lab.ServerV6 + "]:" + strconv.Itoa(lab.DownloadPort),
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			n, err := parseSize(size)
			if err != nil {
				return err
			}
			ctx, cancel := signalContext(cmd)
			defer cancel()
			ctx, cancelT := context.WithTimeout(ctx, timeout)
			defer cancelT()
			out := cmd.OutOrStdout()
			start := time.Now()
			// A ticker prints, not the reads: a stall shows as it happens.
			var received atomic.Int64
			done := make(chan struct{})
			var printer sync.WaitGroup
			if every > 0 {
				printer.Go(func() {
					tick := time.NewTicker(every)
					defer tick.Stop()
					var last int64
					for {
						select {
						case <-done:
							return
						case now := <-tick.C:
							got := received.Load()
							fmt.Fprintf(out, "%6.1fs  %s  %s/s\n", now.Sub(start).Seconds(), megabytes(got), megabytes((got-last)*int64(time.Second)/int64(every)))
							last = got
						}
					}
				})
			}
			var got int64
			if from == "" {
				got, err = lab.Download(ctx, "tcp", args[0], bind, n, received.Store)
			} else {
				l, oerr := lab.Open(name)
				if oerr != nil {
					close(done)
					printer.Wait()
					return oerr
				}
				got, err = l.Download(ctx, lab.Role(from), "tcp", args[0], bind, n, received.Store)
			}
			close(done)
			printer.Wait()
			if err != nil {
				return err
			}
			el := time.Since(start)
			fmt.Fprintf(out, "%6.1fs  %s  done (%s/s on average)\n", el.Seconds(), megabytes(got), megabytes(int64(float64(got)/el.Seconds())))
			return nil
		},
	}
	cmd.Flags().StringVar(&name, "name", lab.DefaultName, "lab name, with --from")
	cmd.Flags().StringVar(&from, "from", "", "run from the lab namespace of this role")
	cmd.Flags().StringVar(&bind, "bind", "", "local address to connect from")
	cmd.Flags().StringVar(&size, "size", "8M", "bytes to download (k, M, G: powers of 1000)")
	cmd.Flags().DurationVar(&every, "every", time.Second, "print the progress this often (0: only at the end)")
	cmd.Flags().DurationVar(&timeout, "timeout", 2*time.Minute, "give up after this long")
	return cmd
}

// parseSize parses a byte count with an optional k, M or G suffix
// (powers of 1000).
func parseSize(s string) (int64, error) {
	mult := int64(1)
	switch {
	case strings.HasSuffix(s, "k"):
		mult = 1e3
	case strings.HasSuffix(s, "M"):
		mult = 1e6
	case strings.HasSuffix(s, "G"):
		mult = 1e9
	}
	if mult > 1 {
		s = s[:len(s)-1]
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("size %q: want a positive number of bytes, optionally with k, M or G", s)
	}
	return n * mult, nil
}

// megabytes formats a byte count in MB (10^6 bytes).
func megabytes(n int64) string { return fmt.Sprintf("%6.1f MB", float64(n)/1e6) }

// newLabLNSCmd is `braid lab lns`: the lab's own test LNS for the 6PE
// tunnel (see lab.LNSUp).
func newLabLNSCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "lns",
		Short: "Run a test LNS (L2TPv2, PPP, DHCPv6 prefix delegation) behind the lab's isp1",
		Long: `braid lab lns up starts braid's own test LNS where specs/lab-6pe.yaml
expects the real one: ` + lab.LNSAddrV4 + `:1701, in the namespace <name>-lns behind the
bridge ` + lab.LNSBridge + ` in isp1. It speaks L2TPv2 with tunnel authentication (the
secret), PPP with CHAP-MD5 (or PAP) against one login, IPV6CP, and answers
LCP echoes; Kea delegates /56s of ` + lab.LNSPool + ` over its sessions, and the
core routes ` + lab.LNSDelegated + ` back through isp1 to it. It is a test peer
written with braid's own codecs; the real LNS (xl2tpd, pppd, Kea in a QEMU
guest: ../shared/peers/lns/run-lns.sh) remains the conformance test.
braid lab lns down stops it (so does braid lab down); Kea's leases stay, so a
box gets its prefix back.`,
		Example: "  braid lab lns up\n" +
			"  BRAID_LAB_PPP_PASSWORD=" + lab.LNSDefaultPassword + " braid --netns braid-box run -f specs/lab-6pe.yaml\n" +
			"  braid lab lns status\n  braid lab lns down",
	}
	var name string
	var cfg lab.LNSConfig
	up := &cobra.Command{
		Use:   "up [--name N] [--secret S] [--user U] [--password P] [--auth chap|pap]",
		Short: "Start the test LNS (refuses if it runs)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := signalContext(cmd)
			defer cancel()
			l, err := lab.Open(name)
			if err != nil {
				return err
			}
			start := time.Now()
			if err := l.LNSUp(ctx, cfg); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "lab %s: LNS on %s:1701 in %s (%s login %s, secret and password not shown), "+
				"delegating /%d of %s; up in %s\n", l.Name, lab.LNSAddrV4, l.NS(lab.RoleLNS), strings.ToUpper(cfg.Auth), cfg.User,
				lab.LNSDelegatedLen, lab.LNSPool, time.Since(start).Round(time.Millisecond))
			password := "<password>"
			if cfg.Password == lab.LNSDefaultPassword {
				password = lab.LNSDefaultPassword // the lab's documented test password
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Next:\n"+
				"  BRAID_LAB_PPP_PASSWORD=%s braid --netns %s run -f specs/lab-6pe.yaml\n"+
				"  braid lab lns status --name %s\n"+
				"  braid lab lns down --name %s\n",
				password, l.NS(lab.RoleBox), l.Name, l.Name)
			return nil
		},
	}
	up.Flags().StringVar(&name, "name", lab.DefaultName, "lab name")
	up.Flags().StringVar(&cfg.Secret, "secret", lab.LNSDefaultSecret, "L2TP tunnel secret")
	up.Flags().StringVar(&cfg.User, "user", lab.LNSDefaultUser, "PPP login it accepts")
	up.Flags().StringVar(&cfg.Password, "password", lab.LNSDefaultPassword, "PPP password it accepts")
	up.Flags().StringVar(&cfg.Auth, "auth", "chap", "PPP authentication: chap (CHAP-MD5) or pap")
	var downName string
	down := &cobra.Command{
		Use:   "down [--name N]",
		Short: "Stop the test LNS (no error if it is not running)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := signalContext(cmd)
			defer cancel()
			l, err := lab.Open(downName)
			if err != nil {
				return err
			}
			if err := l.LNSDown(ctx); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "lab %s: LNS is down\n", l.Name)
			return nil
		},
	}
	down.Flags().StringVar(&downName, "name", lab.DefaultName, "lab name")
	var stName string
	status := &cobra.Command{
		Use:   "status [--name N]",
		Short: "Show whether the test LNS runs, and its last events",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			l, err := lab.Open(stName)
			if err != nil {
				return err
			}
			st, err := l.LNSStatus()
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if !st.Up {
				fmt.Fprintf(out, "lab %s: no LNS (braid lab lns up --name %s starts one)\n", l.Name, l.Name)
				return nil
			}
			fmt.Fprintf(out, "lab %s: LNS on %s:1701 in %s\n", l.Name, lab.LNSAddrV4, l.NS(lab.RoleLNS))
			for _, p := range st.Processes {
				state := "running"
				if !p.Alive {
					state = "DEAD"
				}
				fmt.Fprintf(out, "  %-10s pid %-7d %s  %s\n", p.Name, p.PID, state, p.Log)
			}
			for _, e := range st.Events {
				fmt.Fprintf(out, "  %s\n", e)
			}
			return nil
		},
	}
	status.Flags().StringVar(&stName, "name", lab.DefaultName, "lab name")
	cmd.AddCommand(up, down, status)
	return cmd
}

// newLabServeCmd is the hidden `braid lab serve`: the lab starts it inside
// its namespaces to run the whoami and download servers and the delay lines (see
// lab.Serve for its flags).
func newLabServeCmd() *cobra.Command {
	return &cobra.Command{
		Use:                "serve [-whoami ADDR]... [-whoami-udp ADDR]... [-download ADDR]... [-delay-tap NS/TAP]... [-delay D] [-lns FILE] [-ready-fd N]",
		Short:              "Run the lab's services (started by braid lab up)",
		Hidden:             true,
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := signalContext(cmd)
			defer cancel()
			err := lab.Serve(ctx, args)
			if errors.Is(err, context.Canceled) {
				return nil
			}
			return err
		},
	}
}
