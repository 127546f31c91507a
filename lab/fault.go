package lab

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// FaultKind is a kind of fault the lab injects on the ISP side of one of
// the box's uplinks.
type FaultKind string

// Fault kinds.
const (
	// FaultBlackhole drops every IP packet between the box and the ISP,
	// both ways, silently (no ICMP error), except neighbour discovery: the
	// ISP's end still answers ARP and NDP, as a modem whose network is
	// dead does. The link keeps its carrier.
	FaultBlackhole FaultKind = "blackhole"
	// FaultDown takes the ISP's end of the link administratively down:
	// the box's end loses its carrier.
	FaultDown FaultKind = "down"
	// FaultLoss drops each packet crossing the link, either way, with
	// probability Loss percent (nftables' numgen: this kernel has no
	// netem). A ping's round trip is lost with 1-(1-Loss/100)².
	FaultLoss FaultKind = "loss"
	// FaultStripMPTCP strips the Multipath TCP option from every TCP SYN
	// and SYN-ACK crossing the link, either way (nftables' reset tcp
	// option, which overwrites it with NOPs), as a middlebox that
	// scrubs unknown TCP options does; everything else passes. A join
	// (a SYN with MP_JOIN) from the box's end reaches the peer as a plain
	// SYN, which the peer answers as a new TCP connection and the box
	// resets: no subflow ever establishes over the uplink. A connection
	// whose first subflow goes this way falls back to plain TCP.
	FaultStripMPTCP FaultKind = "strip-mptcp"
	// FaultUnplug removes the box's end of the link (and so the veth pair:
	// the ISP's end goes with it), as a USB modem pulled out. Plug puts it
	// back.
	FaultUnplug FaultKind = "unplug"
)

// faultTable is the nftables table, in an ISP's namespace, of the
// blackhole, loss and strip-mptcp faults.
const faultTable = "braidlab_fault"

// Fault is a fault on the ISP side of one of the box's uplinks.
type Fault struct {
	// ISP is the role of the ISP's namespace (isp1, isp2).
	ISP Role `json:"isp"`
	// Kind is what is wrong.
	Kind FaultKind `json:"kind"`
	// Loss is the percentage of packets dropped each way (FaultLoss),
	// 1 to 100.
	Loss int `json:"loss,omitempty"`
	// Since is when the fault was injected.
	Since time.Time `json:"since"`
	// BoxMAC and ISPMAC are the MAC addresses of the two ends of an
	// unplugged link, which Plug gives the new ones (a modem plugged in
	// again has its MAC address).
	BoxMAC string `json:"boxMAC,omitempty"`
	ISPMAC string `json:"ispMAC,omitempty"`
}

// String describes the fault: "isp2 loss 30%".
func (f Fault) String() string {
	s := string(f.ISP) + " " + string(f.Kind)
	if f.Kind == FaultLoss {
		s += " " + strconv.Itoa(f.Loss) + "%"
	}
	return s
}

// faultsDir holds one file per ISP with a fault.
func faultsDir(dir string) string { return filepath.Join(dir, "faults") }

func faultFile(dir string, isp Role) string {
	return filepath.Join(faultsDir(dir), string(isp)+".json")
}

// uplinkLink returns the two ends of the veth pair between the box and
// the ISP of role isp.
func (t Topology) uplinkLink(isp Role) (ispEnd, boxEnd Endpoint, err error) {
	for _, l := range t.Links {
		switch {
		case l.A.Role == isp && l.B.Role == RoleBox:
			return l.A, l.B, nil
		case l.B.Role == isp && l.A.Role == RoleBox:
			return l.B, l.A, nil
		}
	}
	return Endpoint{}, Endpoint{}, fmt.Errorf("no link between the box and %q: faults are injected on an ISP's link to the box", isp)
}

// Faults lists the lab's faults, by ISP.
func (l *Lab) Faults() ([]Fault, error) {
	return readByISP(l, faultsDir(l.Dir), "faults", func(f Fault) Role { return f.ISP })
}

// readByISP reads the JSON records of dir (a fault or a delay per ISP),
// sorted by ISP; none when dir does not exist.
func readByISP[T any](l *Lab, dir, what string, isp func(T) Role) ([]T, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("lab %s: %s: %w", l.Name, what, err)
	}
	var out []T
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		var v T
		if err := readJSON(filepath.Join(dir, e.Name()), &v); err != nil {
			return nil, fmt.Errorf("lab %s: %s: %w", l.Name, what, err)
		}
		out = append(out, v)
	}
	slices.SortFunc(out, func(a, b T) int { return strings.Compare(string(isp(a)), string(isp(b))) })
	return out, nil
}

// fault returns the fault recorded for isp, if any.
func (l *Lab) fault(isp Role) (*Fault, error) {
	var f Fault
	err := readJSON(faultFile(l.Dir, isp), &f)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("lab %s: %w", l.Name, err)
	}
	return &f, nil
}

// Inject puts fault f on the ISP side of the box's link to f.ISP, in
// place of the fault already there, if any. Injecting the fault that is
// there changes nothing (an unplugged link stays unplugged; a loss fault
// takes its new percentage).
func (l *Lab) Inject(ctx context.Context, f Fault) error {
	ispEnd, boxEnd, err := l.Topology.uplinkLink(f.ISP)
	if err != nil {
		return fmt.Errorf("lab %s: %w", l.Name, err)
	}
	switch f.Kind {
	case FaultBlackhole, FaultDown, FaultUnplug, FaultStripMPTCP:
		f.Loss = 0
	case FaultLoss:
		if f.Loss < 1 || f.Loss > 100 {
			return fmt.Errorf("lab %s: loss %d%%: want 1 to 100", l.Name, f.Loss)
		}
	default:
		return fmt.Errorf("lab %s: unknown fault %q: want blackhole, down, loss, strip-mptcp or unplug", l.Name, f.Kind)
	}
	cur, err := l.fault(f.ISP)
	if err != nil {
		return err
	}
	if cur != nil && cur.Kind == f.Kind && cur.Loss == f.Loss {
		// Already so; make sure of it all the same (idempotent).
		f = *cur
	} else if err := l.Clear(ctx, f.ISP); err != nil {
		return err
	}
	f.Since = cmp.Or(f.Since, time.Now().UTC().Truncate(time.Second))
	ns := l.NS(f.ISP)
	switch f.Kind {
	case FaultBlackhole:
		err = nftScript(ctx, ns, faultRules(ispEnd.Dev, "drop", true))
	case FaultLoss:
		verdict := "numgen random mod 100 < " + strconv.Itoa(f.Loss) + " drop"
		if f.Loss == 100 {
			verdict = "drop" // numgen's values stop at 99
		}
		err = nftScript(ctx, ns, faultRules(ispEnd.Dev, verdict, false))
	case FaultStripMPTCP:
		err = nftScript(ctx, ns, faultRules(ispEnd.Dev, "tcp flags & syn == syn tcp option mptcp exists reset tcp option mptcp", false))
	case FaultDown:
		err = ipBatch(ctx, ns, []string{"link set dev " + ispEnd.Dev + " down"}, false)
	case FaultUnplug:
		err = l.unplug(ctx, &f, ispEnd, boxEnd)
	}
	if err != nil {
		return fmt.Errorf("lab %s: fault %s: %w", l.Name, f, err)
	}
	if err := os.MkdirAll(faultsDir(l.Dir), 0o755); err != nil {
		return fmt.Errorf("lab %s: %w", l.Name, err)
	}
	if err := writeJSON(faultFile(l.Dir, f.ISP), f); err != nil {
		return fmt.Errorf("lab %s: %w", l.Name, err)
	}
	return nil
}

// faultRules is the nftables script of a blackhole, loss or strip-mptcp
// fault on the ISP's interface dev: verdict (a statement, after
// matches of its own if any) applies to what arrives from the box and
// what leaves toward it, before anything else sees it (conntrack, the
// routing decision), and after everything else on the way out. With
// keepND, neighbour solicitations and advertisements pass.
func faultRules(dev, verdict string, keepND bool) []string {
	nd := func(dir string) []string {
		if !keepND {
			return nil
		}
		return []string{"\t\t" + dir + " \"" + dev + "\" icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } accept"}
	}
	lines := []string{
		// Replace whatever was there, in one transaction.
		"table inet " + faultTable,
		"delete table inet " + faultTable,
		"table inet " + faultTable + " {",
		"\tchain from_box {",
		"\t\ttype filter hook prerouting priority -300; policy accept;",
	}
	lines = append(lines, nd("iifname")...)
	lines = append(lines, "\t\tiifname \""+dev+"\" "+verdict, "\t}", "\tchain to_box {",
		"\t\ttype filter hook postrouting priority 300; policy accept;")
	lines = append(lines, nd("oifname")...)
	return append(lines, "\t\toifname \""+dev+"\" "+verdict, "\t}", "}")
}

// nftScript runs an nftables script in namespace ns.
func nftScript(ctx context.Context, ns string, lines []string) error {
	_, err := run(ctx, ns, lines, "ip", "netns", "exec", ns, "nft", "-f", "-")
	return err
}

// unplug removes the box's end of the link, recording both ends' MAC
// addresses in f for Plug. A link already gone stays gone.
func (l *Lab) unplug(ctx context.Context, f *Fault, ispEnd, boxEnd Endpoint) error {
	mac, ok, err := linkMAC(ctx, l.NS(RoleBox), boxEnd.Dev)
	if err != nil || !ok {
		return err
	}
	ispMAC, _, err := linkMAC(ctx, l.NS(f.ISP), ispEnd.Dev)
	if err != nil {
		return err
	}
	f.BoxMAC, f.ISPMAC = mac, ispMAC
	return ipBatch(ctx, l.NS(RoleBox), []string{"link del dev " + boxEnd.Dev}, false)
}

// linkMAC returns the MAC address of dev in namespace ns, and whether dev
// exists.
func linkMAC(ctx context.Context, ns, dev string) (string, bool, error) {
	out, err := run(ctx, ns, nil, "ip", "-n", ns, "-json", "link", "show")
	if err != nil {
		return "", false, err
	}
	var links []struct {
		Name    string `json:"ifname"`
		Address string `json:"address"`
	}
	if err := json.Unmarshal([]byte(out), &links); err != nil {
		return "", false, fmt.Errorf("namespace %s: ip -json link show: %w", ns, err)
	}
	for _, k := range links {
		if k.Name == dev {
			return k.Address, true, nil
		}
	}
	return "", false, nil
}

// Plug puts back the box's link to isp if it is unplugged: the veth pair
// again, under the same names and with the MAC addresses it had, the
// box's end down and unaddressed as at Up, the ISP's end configured as
// the topology says (up, addresses, routes, rate limit). A link that is
// there is left alone, and so is any other fault.
func (l *Lab) Plug(ctx context.Context, isp Role) error {
	ispEnd, boxEnd, err := l.Topology.uplinkLink(isp)
	if err != nil {
		return fmt.Errorf("lab %s: %w", l.Name, err)
	}
	cur, err := l.fault(isp)
	if err != nil {
		return err
	}
	if err := l.plug(ctx, cur, ispEnd, boxEnd); err != nil {
		return fmt.Errorf("lab %s: plug %s: %w", l.Name, isp, err)
	}
	if cur != nil && cur.Kind == FaultUnplug {
		if err := os.Remove(faultFile(l.Dir, isp)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("lab %s: %w", l.Name, err)
		}
	}
	return nil
}

// plug creates the link again if the box's end is missing; cur, the
// recorded fault, may hold the MAC addresses to give it.
func (l *Lab) plug(ctx context.Context, cur *Fault, ispEnd, boxEnd Endpoint) error {
	if _, ok, err := linkMAC(ctx, l.NS(RoleBox), boxEnd.Dev); err != nil || ok {
		return err
	}
	ispSide, boxSide := "name "+ispEnd.Dev, "name "+boxEnd.Dev
	if cur != nil && cur.Kind == FaultUnplug {
		if cur.ISPMAC != "" {
			ispSide += " address " + cur.ISPMAC
		}
		if cur.BoxMAC != "" {
			boxSide += " address " + cur.BoxMAC
		}
	}
	line := fmt.Sprintf("link add %s netns %s type veth peer %s netns %s", ispSide, l.NS(ispEnd.Role), boxSide, l.NS(RoleBox))
	if err := ipBatch(ctx, "", []string{line}, false); err != nil {
		return err
	}
	for _, e := range []Endpoint{ispEnd, boxEnd} {
		if err := l.configureEnd(ctx, e); err != nil {
			return err
		}
	}
	return nil
}

// configureEnd (re)applies what the topology says of one end of a link:
// up unless Down, its addresses, the routes of its namespace through it
// (out of it, or via a gateway on one of its prefixes) and its rate
// limit. Replacing makes it idempotent: a link brought back up after
// FaultDown gets again the IPv6 addresses and the routes the kernel
// removed.
func (l *Lab) configureEnd(ctx context.Context, e Endpoint) error {
	i := slices.IndexFunc(l.Topology.Namespaces, func(ns Namespace) bool { return ns.Role == e.Role })
	if i < 0 {
		return fmt.Errorf("no namespace with role %q", e.Role)
	}
	ns := l.Topology.Namespaces[i]
	var lines []string
	if !e.Down {
		lines = append(lines, "link set dev "+e.Dev+" up")
	}
	for _, ad := range ns.Addrs {
		if ad.Dev != e.Dev {
			continue
		}
		line := fmt.Sprintf("addr replace %s dev %s", ad.Prefix, ad.Dev)
		if ad.Prefix.Addr().Is6() {
			line += " nodad"
		}
		lines = append(lines, line)
	}
	for _, rt := range ns.Routes {
		through := rt.Dev == e.Dev
		for _, ad := range ns.Addrs {
			if ad.Dev == e.Dev && rt.Via.IsValid() && ad.Prefix.Masked().Contains(rt.Via) {
				through = true
			}
		}
		if !through {
			continue
		}
		line := "route replace " + rt.Dst.String()
		if rt.Via.IsValid() {
			line += " via " + rt.Via.String()
		}
		if rt.Dev != "" {
			line += " dev " + rt.Dev
		}
		lines = append(lines, line)
	}
	if err := ipBatch(ctx, l.NS(e.Role), lines, false); err != nil {
		return err
	}
	var qdiscs []string
	for _, q := range qdiscBatch(Namespace{Qdiscs: ns.Qdiscs}) {
		if strings.HasPrefix(q, "qdisc add dev "+e.Dev+" ") {
			qdiscs = append(qdiscs, strings.Replace(q, "qdisc add", "qdisc replace", 1))
		}
	}
	return tcBatch(ctx, l.NS(e.Role), qdiscs)
}

// Clear undoes whatever fault is on the ISP side of the box's link to
// isp, and is a no-op when there is none: the fault's rules go, the ISP's
// end is up and configured again, and an unplugged link is plugged back.
func (l *Lab) Clear(ctx context.Context, isp Role) error {
	ispEnd, boxEnd, err := l.Topology.uplinkLink(isp)
	if err != nil {
		return fmt.Errorf("lab %s: %w", l.Name, err)
	}
	cur, err := l.fault(isp)
	if err != nil {
		return err
	}
	ns := l.NS(isp)
	if err := nftScript(ctx, ns, []string{"table inet " + faultTable, "delete table inet " + faultTable}); err != nil {
		return fmt.Errorf("lab %s: clear %s: %w", l.Name, isp, err)
	}
	if err := l.plug(ctx, cur, ispEnd, boxEnd); err != nil {
		return fmt.Errorf("lab %s: clear %s: %w", l.Name, isp, err)
	}
	// Up, with what the kernel removed when it went down.
	if err := l.configureEnd(ctx, ispEnd); err != nil {
		return fmt.Errorf("lab %s: clear %s: %w", l.Name, isp, err)
	}
	if err := os.Remove(faultFile(l.Dir, isp)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("lab %s: %w", l.Name, err)
	}
	return nil
}
