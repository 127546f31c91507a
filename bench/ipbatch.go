package main

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
)

// routeProto is braid's route and rule protocol number; the ip -batch
// mirror marks its objects with it too, so both sides create the same
// kernel objects.
const routeProto = "98"

// planDoc is the part of `braid plan --json` the harness reads.
type planDoc struct {
	Changes []planChange `json:"changes"`
	Summary struct {
		Add    int `json:"add"`
		Change int `json:"change"`
		Remove int `json:"remove"`
	} `json:"summary"`
}

// planChange is one change of a plan document.
type planChange struct {
	Action  string            `json:"action"`
	Address string            `json:"address"`
	After   map[string]string `json:"after"`
}

// parsePlan decodes a plan document.
func parsePlan(data []byte) (*planDoc, error) {
	var d planDoc
	if err := json.Unmarshal(data, &d); err != nil {
		return nil, fmt.Errorf("decode plan document: %w", err)
	}
	return &d, nil
}

// Kinds of resource in a plan, as its addresses name them.
const (
	kindLink          = "link"
	kindSysctl        = "sysctl"
	kindAddress       = "address"
	kindRoute         = "route"
	kindRule          = "rule"
	kindMPTCPLimits   = "mptcp.limits"
	kindMPTCPEndpoint = "mptcp.endpoint"
)

// kindNftables counts the changes of braid's nftables table in a plan; ip
// does not mirror them (see harness.nftScript), and kinds leaves them out.
const kindNftables = "nftables"

// kinds lists the kinds in apply order, for reports.
var kinds = []string{kindLink, kindSysctl, kindAddress, kindRoute, kindRule, kindMPTCPLimits, kindMPTCPEndpoint}

// counts is a number of objects per kind.
type counts map[string]int

// total is the sum over every kind.
func (c counts) total() int {
	n := 0
	for _, v := range c {
		n += v
	}
	return n
}

// String renders the counts in apply order: "link 2, sysctl 4, ...".
func (c counts) String() string {
	var parts []string
	for _, k := range kinds {
		parts = append(parts, fmt.Sprintf("%s %d", k, c[k]))
	}
	return strings.Join(parts, ", ")
}

// ipBatch is the iproute2 mirror of a plan from empty: the same kernel
// objects, in the same order, as `ip -batch` input.
//
// It needs two files: ip takes a rule's family only from its global -4/-6
// flag (a batch line cannot carry it, and `from ::/0` is read as IPv4), so
// the IPv6 rules go to a second batch run with -6. Routes and addresses take
// their family from their prefix and go to the first file with the links and
// the IPv4 rules.
type ipBatch struct {
	// Main is run as `ip -batch`, Rules6 as `ip -6 -batch`.
	Main, Rules6 []string
	// Plan counts the plan's changes per kind, Mirrored the objects the
	// batch files create per kind. They differ by the sysctls, which ip
	// cannot write.
	Plan, Mirrored counts
}

// mirror converts the changes of a plan from empty into ip -batch lines.
// The mirror runs in a fresh namespace, so every change must be a create,
// but for links and sysctls, which exist before braid runs and are updated.
func mirror(d *planDoc) (*ipBatch, error) {
	b := &ipBatch{Plan: counts{}, Mirrored: counts{}}
	for _, c := range d.Changes {
		kind, inner, ok := splitAddress(c.Address)
		if !ok {
			return nil, fmt.Errorf("%q: not a resource address KIND[...]", c.Address)
		}
		if strings.HasPrefix(kind, "nft.") {
			// braid's nftables table: nft -f writes it, not ip (see
			// harness.nftScript).
			b.Plan[kindNftables]++
			continue
		}
		preexisting := kind == kindLink || kind == kindSysctl || kind == kindMPTCPLimits
		if c.Action != "create" && !(c.Action == "update" && preexisting) {
			return nil, fmt.Errorf("%s: a plan from empty creates it, or updates a link, sysctl or the MPTCP limits; got %s", c.Address, c.Action)
		}
		b.Plan[kind]++
		line, v6rule, err := ipLine(kind, inner, c.After)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", c.Address, err)
		}
		if line == "" {
			continue
		}
		b.Mirrored[kind]++
		if v6rule {
			b.Rules6 = append(b.Rules6, line)
		} else {
			b.Main = append(b.Main, line)
		}
	}
	return b, nil
}

// splitAddress splits "route[main 0.0.0.0/0 metric 10]" into its kind and
// the text between the brackets. "mptcp.limits", one per namespace, has no
// brackets.
func splitAddress(addr string) (kind, inner string, ok bool) {
	if addr == kindMPTCPLimits {
		return addr, "", true
	}
	kind, rest, ok := strings.Cut(addr, "[")
	if !ok || !strings.HasSuffix(rest, "]") {
		return "", "", false
	}
	return kind, strings.TrimSuffix(rest, "]"), true
}

// ipLine renders one created resource as an ip -batch line; "" for a
// sysctl, which ip cannot write. v6rule says the line needs `ip -6`.
func ipLine(kind, inner string, after map[string]string) (line string, v6rule bool, err error) {
	words := strings.Fields(inner)
	switch kind {
	case kindSysctl:
		return "", false, nil
	case kindLink:
		if len(words) != 1 {
			return "", false, fmt.Errorf("want link[NAME]")
		}
		state := "down"
		if after["up"] == "true" {
			state = "up"
		}
		line = "link set dev " + words[0] + " " + state
		if mtu := after["mtu"]; mtu != "" {
			line += " mtu " + mtu
		}
		if mac := after["mac"]; mac != "" {
			line += " address " + mac
		}
		return line, false, nil
	case kindAddress:
		if len(words) != 2 {
			return "", false, fmt.Errorf("want address[LINK PREFIX]")
		}
		p, err := netip.ParsePrefix(words[1])
		if err != nil {
			return "", false, err
		}
		// As braid's driver does: an IPv4 address gets its broadcast
		// address (the netlink library adds it below /31), an IPv6 one
		// NODAD.
		line = "address add " + p.String()
		if p.Addr().Is4() && p.Bits() < 31 {
			line += " brd +"
		}
		line += " dev " + words[0] + " noprefixroute"
		if p.Addr().Is6() {
			line += " nodad"
		}
		return line, false, nil
	case kindRoute:
		// route[TABLE DST metric N]
		if len(words) != 4 || words[2] != "metric" {
			return "", false, fmt.Errorf("want route[TABLE DST metric N]")
		}
		line = "route add " + words[1]
		if via := after["via"]; via != "" {
			line += " via " + via
		}
		if dev := after["dev"]; dev != "" {
			line += " dev " + dev
		}
		line += " table " + words[0] + " metric " + words[3]
		if s := after["src"]; s != "" {
			line += " src " + s
		}
		return line + " proto " + routeProto, false, nil
	case kindRule:
		// rule[FAMILY pref N [from X] [to Y]]
		if len(words) < 3 || words[1] != "pref" {
			return "", false, fmt.Errorf("want rule[FAMILY pref N ...]")
		}
		line = "rule add pref " + words[2]
		if sel := strings.Join(words[3:], " "); sel != "" {
			line += " " + sel
		}
		line += " lookup " + after["lookup"]
		if s := after["suppress_prefixlength"]; s != "" {
			line += " suppress_prefixlength " + s
		}
		return line + " proto " + routeProto, words[0] == "inet6", nil
	case kindMPTCPLimits:
		return "mptcp limits set subflows " + after["subflows"] + " add_addr_accepted " + after["add_addr_accepted"], false, nil
	case kindMPTCPEndpoint:
		// mptcp.endpoint[ADDR]; flags are ip's words ("subflow backup").
		if len(words) != 1 {
			return "", false, fmt.Errorf("want mptcp.endpoint[ADDR]")
		}
		line = "mptcp endpoint add " + words[0]
		if dev := after["dev"]; dev != "" {
			line += " dev " + dev
		}
		return line + " " + after["flags"], false, nil
	}
	return "", false, fmt.Errorf("unknown kind %q", kind)
}
