package lab

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/braid-router/braid/internal/netns"
	"github.com/braid-router/braid/lab/delayline"
)

// LinkDelay is a round-trip time added to the link between an ISP and the
// Internet core (see Delay).
type LinkDelay struct {
	// ISP is the role of the ISP's namespace (isp1, isp2).
	ISP Role `json:"isp"`
	// RTT is the round-trip time added: half of it each way (in JSON,
	// nanoseconds).
	RTT time.Duration `json:"rtt"`
	// Since is when it was set.
	Since time.Time `json:"since"`
}

// String describes the delay: "isp2 delay 40ms".
func (d LinkDelay) String() string { return string(d.ISP) + " delay " + d.RTT.String() }

// delayMark marks, in an ISP's and the core's namespaces, the packets a
// delay line gives back, so that the rule that steers the link's traffic
// into the line lets them pass. Crossing into another namespace clears it.
const delayMark = 0x0b1ade1a

// delayProcess names the delay line process of isp.
func delayProcess(isp Role) string { return "delay-" + string(isp) }

// delayTable is the nftables (netdev) table of isp's delay line, in the
// ISP's namespace and in the core's.
func delayTable(isp Role) string { return "braidlab_delay_" + string(isp) }

// delayTAP names the TAP device of the delay line on interface dev.
func delayTAP(dev string) string { return "dly-" + dev }

func delaysDir(dir string) string { return filepath.Join(dir, "delays") }

func delayFile(dir string, isp Role) string {
	return filepath.Join(delaysDir(dir), string(isp)+".json")
}

// coreLink returns the two ends of the veth pair between the ISP of role
// isp and the Internet core.
func (t Topology) coreLink(isp Role) (ispEnd, coreEnd Endpoint, err error) {
	for _, l := range t.Links {
		switch {
		case l.A.Role == isp && l.B.Role == RoleInet:
			return l.A, l.B, nil
		case l.B.Role == isp && l.A.Role == RoleInet:
			return l.B, l.A, nil
		}
	}
	return Endpoint{}, Endpoint{}, fmt.Errorf("no link between %q and the Internet core: a delay goes on an ISP's link to it", isp)
}

// Delay adds the round-trip time rtt to the link between the ISP of role
// isp and the Internet core, rtt/2 each way, in place of the delay there;
// 0 removes it. Everything the box sends through that ISP (beyond the
// ISP's own addresses) takes it; the ISP's link to the box, its faults and
// its services (DHCP, adverts) are untouched.
//
// This kernel has no netem: a delay line process (`braid lab serve
// -delay-tap`, package delayline), started in the ISP's namespace, holds
// each packet rtt/2 in a bounded FIFO. It owns a TAP device in the ISP's
// namespace and one in the core's; on each side nftables (netdev egress)
// sends what leaves the link's interface into the TAP device, and what
// the line writes back into it (netdev ingress) on out of the interface,
// marked so as not to loop. Packets keep their order; the queue drops
// from the tail when full (QueueBytes per direction), as a link buffer
// does. The ISP's rate limit applies after the delay. If the line
// process dies, the link carries nothing until the delay is set again or
// cleared.
func (l *Lab) Delay(ctx context.Context, isp Role, rtt time.Duration) error {
	ispEnd, coreEnd, err := l.Topology.coreLink(isp)
	if err != nil {
		return fmt.Errorf("lab %s: %w", l.Name, err)
	}
	if rtt < 0 || (rtt > 0 && rtt < 2*time.Microsecond) || rtt > time.Minute {
		return fmt.Errorf("lab %s: delay %v: want 0 (none) or 2µs to 1m", l.Name, rtt)
	}
	ends := []Endpoint{ispEnd, coreEnd}
	// Remove what is there: rules first (the link works again, without
	// delay), then the line.
	for _, e := range ends {
		table := "netdev " + delayTable(isp)
		if err := nftScript(ctx, l.NS(e.Role), []string{"table " + table, "delete table " + table}); err != nil {
			return fmt.Errorf("lab %s: delay %s: %w", l.Name, isp, err)
		}
	}
	if err := l.stop(delayProcess(isp)); err != nil {
		return err
	}
	if err := os.Remove(delayFile(l.Dir, isp)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("lab %s: %w", l.Name, err)
	}
	if rtt == 0 {
		return nil
	}

	oneWay := rtt / 2
	serve := []string{"-delay", oneWay.String()}
	for _, e := range ends {
		tap := delayTAP(e.Dev)
		if len(tap) > maxIfName {
			return fmt.Errorf("lab %s: delay %s: TAP name %q too long", l.Name, isp, tap)
		}
		serve = append(serve, "-delay-tap", l.NS(e.Role)+"/"+tap)
	}
	if err := l.Start(ctx, Process{Name: delayProcess(isp), Role: isp, Serve: serve}); err != nil {
		return err
	}
	for _, e := range ends {
		ns, tap := l.NS(e.Role), delayTAP(e.Dev)
		// No IPv6 on the TAP device: the kernel would send its own
		// solicitations into the line, and on to the link.
		if err := writeSysctls(ns, []Sysctl{{"net.ipv6.conf." + tap + ".disable_ipv6", "1"}}); err != nil {
			return l.delayFailed(ctx, isp, err)
		}
		if err := ipBatch(ctx, ns, []string{"link set dev " + tap + " up"}, false); err != nil {
			return l.delayFailed(ctx, isp, err)
		}
		if err := nftScript(ctx, ns, delayRules(delayTable(isp), e.Dev, tap)); err != nil {
			return l.delayFailed(ctx, isp, err)
		}
	}
	if err := os.MkdirAll(delaysDir(l.Dir), 0o755); err != nil {
		return l.delayFailed(ctx, isp, err)
	}
	d := LinkDelay{ISP: isp, RTT: rtt, Since: time.Now().UTC().Truncate(time.Second)}
	if err := writeJSON(delayFile(l.Dir, isp), d); err != nil {
		return l.delayFailed(ctx, isp, err)
	}
	return nil
}

// delayFailed removes a half-set delay and returns err, with context.
func (l *Lab) delayFailed(ctx context.Context, isp Role, err error) error {
	err = fmt.Errorf("lab %s: delay %s: %w", l.Name, isp, err)
	if cerr := l.Delay(context.WithoutCancel(ctx), isp, 0); cerr != nil {
		return fmt.Errorf("%w (and removing it: %v)", err, cerr)
	}
	return err
}

// delayRules is the nftables script that routes what leaves dev through
// the delay line's TAP device tap, both chains in table (netdev).
func delayRules(table, dev, tap string) []string {
	mark := fmt.Sprintf("0x%08x", delayMark)
	return []string{
		"table netdev " + table + " {",
		"\tchain into_line {",
		"\t\ttype filter hook egress device \"" + dev + "\" priority 0; policy accept;",
		"\t\tmeta mark != " + mark + " fwd to \"" + tap + "\"",
		"\t}",
		"\tchain out_of_line {",
		"\t\ttype filter hook ingress device \"" + tap + "\" priority 0; policy accept;",
		"\t\tmeta mark set " + mark + " fwd to \"" + dev + "\"",
		"\t}",
		"}",
	}
}

// Delays lists the delays set on the lab's links, by ISP.
func (l *Lab) Delays() ([]LinkDelay, error) {
	return readByISP(l, delaysDir(l.Dir), "delays", func(d LinkDelay) Role { return d.ISP })
}

// stop stops the lab's process name, if it runs, and forgets it (its log
// stays).
func (l *Lab) stop(name string) error {
	path := filepath.Join(procsDir(l.Dir), name+".json")
	var rec procRecord
	err := readJSON(path, &rec)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("lab %s: %w", l.Name, err)
	}
	if rec.alive() {
		if left := stopPIDs([]int{rec.PID}); len(left) > 0 {
			return fmt.Errorf("lab %s: process %s (pid %d) did not stop", l.Name, name, rec.PID)
		}
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("lab %s: %w", l.Name, err)
	}
	return nil
}

// openDelayTAP opens a delay line (see Serve's -delay-tap) on "NS/TAP".
func openDelayTAP(spec string, delay time.Duration) (*delayline.Line, error) {
	ns, tap, ok := strings.Cut(spec, "/")
	if !ok || ns == "" || tap == "" {
		return nil, fmt.Errorf("-delay-tap %q: want NAMESPACE/TAP", spec)
	}
	var line *delayline.Line
	err := netns.Do(ns, func() error {
		var err error
		line, err = delayline.OpenTAP(tap, delay)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("namespace %s: %w", ns, err)
	}
	return line, nil
}
