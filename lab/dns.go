package lab

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// The lab's resolver: unbound (Debian's, unmodified) in the Internet
// core, serving the test zone TestZone authoritatively on ResolverV4 and
// ResolverV6, UDP and TCP port 53, to anyone. isp1's DHCP server and
// isp2's adverts and DHCPv6 server hand it out as the uplinks' resolver.
const (
	// ResolverProcess names unbound among the lab's processes.
	ResolverProcess = "unbound"
	// ResolverV4 and ResolverV6 are its addresses, on the core's lo.
	ResolverV4 = "198.51.100.53"
	ResolverV6 = "2001:db8:ffff::53"
	// ResolverPort is its port, UDP and TCP.
	ResolverPort = 53
	// ResolverZoneFile is the zone file unbound reads, in the lab's
	// process directory.
	ResolverZoneFile = "lab.example.zone"
)

// Names of the test zone (ResolverZone). Each is what a test needs of a
// resolver; the addresses are the core's servers, so that traffic to an
// answer reaches a whoami.
const (
	// TestZone is the zone's origin.
	TestZone = "lab.example."
	// NameServer has an A (ServerV4) and an AAAA (ServerV6).
	NameServer = "www.lab.example."
	// NameSteered has an A (SteeredServerV4) and an AAAA
	// (SteeredServerV6), for per-domain egress.
	NameSteered = "stream.lab.example."
	// NameCNAME is a chain of two CNAMEs ending at NameServer.
	NameCNAME = "alias.lab.example."
	// NameHTTPS has an HTTPS record (RFC 9460) with ipv4hint ServerV4
	// and ipv6hint ServerV6, and no address records.
	NameHTTPS = "svc.lab.example."
	// NameShortTTL has an A (ServerV4) with a TTL of ShortTTL seconds.
	NameShortTTL = "short.lab.example."
	// NameBig has a TXT record of about 2 KB: its answer is truncated
	// over UDP without EDNS0 (512 bytes) and with 1232 bytes of it.
	NameBig = "big.lab.example."
	// NameMissing does not exist: NXDOMAIN, with the zone's SOA, whose
	// negative TTL is NegativeTTL.
	NameMissing = "missing.lab.example."
	// TTL is the zone's default TTL, ShortTTL NameShortTTL's and
	// NegativeTTL the SOA's minimum and TTL (RFC 2308).
	TTL         = 300
	ShortTTL    = 5
	NegativeTTL = 60
)

// BigTXTStrings is how many strings of 200 bytes NameBig's TXT record
// holds.
const BigTXTStrings = 10

// ResolverZone is the test zone's file.
func ResolverZone() string {
	var big []string
	for i := range BigTXTStrings {
		s := fmt.Sprintf("chunk%02d-", i)
		big = append(big, `"`+s+strings.Repeat("x", 200-len(s))+`"`)
	}
	return fmt.Sprintf(`$ORIGIN %[1]s
$TTL %[2]d
@        IN SOA ns.%[1]s hostmaster.%[1]s 1 3600 600 86400 %[3]d
@        IN NS ns
ns       IN A %[4]s
ns       IN AAAA %[5]s
www      IN A %[6]s
www      IN AAAA %[7]s
stream   IN A %[8]s
stream   IN AAAA %[9]s
alias    IN CNAME alias2
alias2   IN CNAME www
svc      IN HTTPS 1 . alpn=h2 ipv4hint=%[6]s ipv6hint=%[7]s
short %[10]d IN A %[6]s
big      IN TXT %[11]s
`, TestZone, TTL, NegativeTTL, ResolverV4, ResolverV6, ServerV4, ServerV6, SteeredServerV4, SteeredServerV6, ShortTTL, strings.Join(big, " "))
}

// ResolverConfig is unbound's configuration: in the foreground, logging
// every query (the client's address, the name, the type) to its standard
// error, the lab process's log; the zone from dir/ResolverZoneFile,
// authoritative; no recursion beyond it (the lab has no root), no
// DNSSEC validation, no remote control.
func ResolverConfig(dir string) string {
	return fmt.Sprintf(`server:
  interface: %[1]s
  interface: %[2]s
  port: %[3]d
  do-daemonize: no
  username: ""
  chroot: ""
  directory: "%[4]s"
  pidfile: ""
  use-syslog: no
  logfile: ""
  log-queries: yes
  verbosity: 1
  access-control: 0.0.0.0/0 allow
  access-control: ::/0 allow
  module-config: "iterator"
remote-control:
  control-enable: no
auth-zone:
  name: "%[5]s"
  zonefile: "%[4]s/%[6]s"
  for-downstream: yes
  for-upstream: yes
  fallback-enabled: no
`, ResolverV4, ResolverV6, ResolverPort, dir, TestZone, ResolverZoneFile)
}

// resolverProcess is unbound as the topology runs it.
func resolverProcess() Process {
	return Process{Name: ResolverProcess, Role: RoleInet, Config: ResolverConfig("{dir}"),
		Files:   map[string]string{ResolverZoneFile: ResolverZone()},
		Command: []string{"unbound", "-d", "-p", "-c", "{conf}"}}
}

// lookupTimeout bounds a Lookup without a deadline.
const lookupTimeout = 5 * time.Second

// Lookup asks server (ADDRESS:PORT) for name and type qtype over network
// ("udp" or "tcp"), recursion desired, without EDNS0, and returns the
// answer, truncated or not. It uses the namespace of the calling thread;
// see (*Lab).Lookup to ask from a lab's namespace. Without a deadline in
// ctx it gives up after 5 seconds.
func Lookup(ctx context.Context, network, server, name string, qtype uint16) (*dns.Msg, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, lookupTimeout)
		defer cancel()
	}
	q := new(dns.Msg)
	q.SetQuestion(dns.Fqdn(name), qtype)
	c := &dns.Client{Net: network}
	r, _, err := c.ExchangeContext(ctx, q, server)
	if err != nil {
		return nil, fmt.Errorf("%s %s from %s over %s: %w", dns.Fqdn(name), dns.TypeToString[qtype], server, network, err)
	}
	return r, nil
}

// Lookup asks server for name from inside the lab's namespace for role;
// see the package-level Lookup.
func (l *Lab) Lookup(ctx context.Context, role Role, network, server, name string, qtype uint16) (*dns.Msg, error) {
	var r *dns.Msg
	err := l.Do(role, func() error {
		var err error
		r, err = Lookup(ctx, network, server, name, qtype)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("lab %s: from %s: %w", l.Name, l.NS(role), err)
	}
	return r, nil
}

// ProcessLog returns what the lab's process name wrote so far (unbound
// logs each query with the client's address).
func (l *Lab) ProcessLog(name string) (string, error) {
	b, err := os.ReadFile(filepath.Join(procsDir(l.Dir), name+".log"))
	if err != nil {
		return "", fmt.Errorf("lab %s: %w", l.Name, err)
	}
	return string(b), nil
}

// WaitResolver waits until the lab's resolver answers for NameServer,
// from the Internet core: unbound takes a moment to read its zone after
// it starts, and Up does not wait for it.
func (l *Lab) WaitResolver(ctx context.Context) error {
	server := ResolverV4 + ":53"
	var last error
	for {
		r, err := l.Lookup(ctx, RoleInet, "udp", server, NameServer, dns.TypeA)
		if err == nil && r.Rcode == dns.RcodeSuccess && len(r.Answer) > 0 {
			return nil
		}
		if err == nil {
			err = fmt.Errorf("answer %s", dns.RcodeToString[r.Rcode])
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("lab %s: the resolver does not answer: %w", l.Name, last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
