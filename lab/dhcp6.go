package lab

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
	"time"
)

// DHCP6Process is the name of isp2's DHCPv6 server (Kea) among the lab's
// processes.
const DHCP6Process = "isp2-dhcp6"

// isp2's prefix delegation: Kea delegates a /56 of ISP2DelegationPool to
// each client that asks, with the resolver ISP2ResolverV6.
const (
	// ISP2DelegationPool is where isp2's delegated prefixes come from;
	// the core routes it to isp2.
	ISP2DelegationPool = "2001:db8:d200::/48"
	// ISP2DelegatedLen is the length of each delegated prefix.
	ISP2DelegatedLen = 56
	// The lifetimes and times of isp2's delegations: renewed after 20 s,
	// so that a renewal shows within a test.
	ISP2PDPreferred = 10 * time.Minute
	ISP2PDValid     = 15 * time.Minute
	ISP2PDRenew     = 20 * time.Second
	ISP2PDRebind    = time.Minute
)

// DHCP6Server is Kea's DHCPv6 server delegating prefixes on one interface
// of a namespace, as the lab runs it for isp2.
type DHCP6Server struct {
	// Dev is the interface it serves; Subnet the link's prefix, which
	// Kea selects for clients on Dev.
	Dev    string
	Subnet netip.Prefix
	// Pool is where delegated prefixes come from, DelegatedLen their
	// length.
	Pool         netip.Prefix
	DelegatedLen int
	// DNS is the DNS Recursive Name Server option.
	DNS []netip.Addr
	// Preferred and Valid are the delegations' lifetimes, Renew and
	// Rebind T1 and T2.
	Preferred, Valid, Renew, Rebind time.Duration
	// Dir is where Kea keeps its lease file (LeaseFile).
	Dir string
}

// LeaseFile is Kea's lease file in s.Dir (memfile, CSV): a line per
// change of a lease, a valid lifetime of 0 for one released.
func (s DHCP6Server) LeaseFile() string { return s.Dir + "/kea-leases6.csv" }

// ISP2DHCP6 is the DHCPv6 server the lab runs in isp2, beside its router
// advertisements: it delegates /56s of ISP2DelegationPool, in dir.
func ISP2DHCP6(dir string) DHCP6Server {
	return DHCP6Server{
		Dev: ISPDownDev, Subnet: netip.MustParsePrefix(WAN2PrefixV6),
		Pool: netip.MustParsePrefix(ISP2DelegationPool), DelegatedLen: ISP2DelegatedLen,
		DNS:       []netip.Addr{netip.MustParseAddr(ISP2ResolverV6)},
		Preferred: ISP2PDPreferred, Valid: ISP2PDValid, Renew: ISP2PDRenew, Rebind: ISP2PDRebind,
		Dir: dir,
	}
}

// Config is Kea's configuration (kea-dhcp6 -c): the subnet of Dev with
// its prefix delegation pool, the resolvers, the times, a lease file in
// Dir, a server DUID of its own, every lease event logged to standard
// output.
func (s DHCP6Server) Config() string {
	secs := func(d time.Duration) int { return int(d / time.Second) }
	var dns []string
	for _, d := range s.DNS {
		dns = append(dns, d.String())
	}
	subnet := map[string]any{
		"id": 1, "subnet": s.Subnet.String(), "interface": s.Dev,
		"pd-pools": []any{map[string]any{"prefix": s.Pool.Addr().String(), "prefix-len": s.Pool.Bits(), "delegated-len": s.DelegatedLen}},
	}
	if len(dns) > 0 {
		subnet["option-data"] = []any{map[string]any{"name": "dns-servers", "data": strings.Join(dns, ", ")}}
	}
	conf := map[string]any{"Dhcp6": map[string]any{
		"interfaces-config": map[string]any{"interfaces": []string{s.Dev},
			// The link-local address may be tentative still when Kea
			// starts: it retries instead of giving up the interface.
			"service-sockets-max-retries": 600, "service-sockets-retry-wait-time": 100},
		"data-directory": s.Dir,
		// Its own DUID: a DUID-EN, whatever links the namespace has (Kea
		// makes a DUID-LLT only from an Ethernet link). 32473 is the
		// enterprise number for documentation (RFC 5612).
		"server-id":          map[string]any{"type": "EN", "enterprise-id": 32473, "identifier": "6272616964", "persist": false},
		"lease-database":     map[string]any{"type": "memfile", "persist": true, "name": s.LeaseFile(), "lfc-interval": 0},
		"preferred-lifetime": secs(s.Preferred), "valid-lifetime": secs(s.Valid),
		"renew-timer": secs(s.Renew), "rebind-timer": secs(s.Rebind),
		"subnet6": []any{subnet},
		"loggers": []any{map[string]any{"name": "kea-dhcp6", "severity": "INFO",
			"output_options": []any{map[string]any{"output": "stdout", "flush": true}}}},
	}}
	b, err := json.MarshalIndent(conf, "", "  ")
	if err != nil {
		panic(err) // maps of strings and numbers
	}
	return string(b) + "\n"
}

// Command is the command line of Kea with its configuration at conf: its
// PID file and logger lock file go to dir (Kea's defaults are global, and
// two labs would share them).
func (s DHCP6Server) Command(conf, dir string) []string {
	return []string{"env", "KEA_PIDFILE_DIR=" + dir, "KEA_LOCKFILE_DIR=" + dir, "kea-dhcp6", "-c", conf}
}

// RouteToBox routes prefix, in the namespace of the ISP at the other end
// of the box's link dev, via the box's link-local address on dev, as an
// ISP routes a prefix it delegated to the router it delegated it to (Kea
// installs no routes; an ISP's relay or its routing does). The box's
// link must be up, with its link-local address.
func (l *Lab) RouteToBox(ctx context.Context, isp Role, dev string, prefix netip.Prefix) error {
	out, err := exec.CommandContext(ctx, "ip", "-n", l.NS(RoleBox), "-j", "-6", "addr", "show", "dev", dev, "scope", "link").Output()
	if err != nil {
		return fmt.Errorf("lab %s: the box's link-local address on %s: %w", l.Name, dev, err)
	}
	var links []struct {
		AddrInfo []struct {
			Local string `json:"local"`
		} `json:"addr_info"`
	}
	var ll string
	if err := json.Unmarshal(out, &links); err == nil && len(links) > 0 {
		// ip lists the addresses its filter left out as empty objects.
		for _, a := range links[0].AddrInfo {
			if strings.HasPrefix(a.Local, "fe80:") {
				ll = a.Local
				break
			}
		}
	}
	if ll == "" {
		return fmt.Errorf("lab %s: no link-local address on the box's %s", l.Name, dev)
	}
	if b, err := exec.CommandContext(ctx, "ip", "-n", l.NS(isp), "-6", "route", "replace", prefix.String(), "via", ll, "dev", ISPDownDev).CombinedOutput(); err != nil {
		return fmt.Errorf("lab %s: route %s via %s in %s: %v: %s", l.Name, prefix, ll, isp, err, b)
	}
	return nil
}
