package lab

import (
	"encoding/hex"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// SFRVendorClassPrefix is what the vendor class (DHCP option 60) of a
// client must begin with for SFR's fibre ONT, and the lab's isp1, to
// answer it.
const SFRVendorClassPrefix = "neufbox"

// DHCP4Process is the name of isp1's DHCP server among the lab's
// processes.
const DHCP4Process = "isp1-dhcp"

// The times of isp1's leases: dnsmasq's shortest lease (two minutes),
// renewed after 10 s and rebound after a minute, so that a renewal shows
// within seconds.
const (
	ISP1LeaseTime  = 2 * time.Minute
	ISP1RenewTime  = 10 * time.Second
	ISP1RebindTime = time.Minute
)

// DHCP4Server is a dnsmasq serving DHCPv4 (and nothing else: no DNS) on
// one interface of a namespace, as the lab runs it for isp1: SFR's ONT,
// which leases an address only to clients whose vendor class begins with
// "neufbox".
type DHCP4Server struct {
	// Dev is the interface it serves.
	Dev string
	// First and Last bound the addresses it leases; Bits is the subnet's
	// prefix length (option 1).
	First, Last netip.Addr
	Bits        int
	// Router (option 3) and DNS (option 6).
	Router netip.Addr
	DNS    []netip.Addr
	// LeaseTime (option 51; dnsmasq's shortest is two minutes), RenewTime
	// (T1, option 58) and RebindTime (T2, option 59); zero leaves T1 and
	// T2 to the client's defaults.
	LeaseTime, RenewTime, RebindTime time.Duration
	// VendorClassPrefix, when set, is what option 60 must begin with for
	// the server to answer at all. dnsmasq's dhcp-vendorclass matches a
	// substring anywhere in the option, so the lab matches option 60 as
	// hex octets, which dnsmasq compares from the first byte.
	VendorClassPrefix string
	// LeaseFile is where dnsmasq keeps its leases across its own
	// restarts; empty keeps them in memory only.
	LeaseFile string
	// Hosts are dnsmasq dhcp-host entries: fixed addresses
	// ("02:00:00:00:00:01,10.101.0.77").
	Hosts []string
}

// ISP1DHCP4 is the DHCP server the lab runs in isp1 (the ONT): it leases
// the box's wan1 its lab address, BoxWAN1V4/24, with isp1 as gateway and
// the lab's resolver (ResolverV4), to vendor classes that begin with
// "neufbox" only.
func ISP1DHCP4() DHCP4Server {
	a := netip.MustParseAddr
	return DHCP4Server{
		Dev: ISPDownDev, First: a(BoxWAN1V4), Last: a(BoxWAN1V4), Bits: 24,
		Router: a(ISP1GatewayV4), DNS: []netip.Addr{a(ResolverV4)},
		LeaseTime: ISP1LeaseTime, RenewTime: ISP1RenewTime, RebindTime: ISP1RebindTime,
		VendorClassPrefix: SFRVendorClassPrefix,
	}
}

// Command is the dnsmasq command line of s: in the foreground, logging
// every DHCP exchange to its standard error, reading no configuration
// file, serving no DNS, answering authoritatively (a client's
// INIT-REBOOT for an address it may not have gets a NAK), without
// pinging an address before it offers it (the client checks).
func (s DHCP4Server) Command() []string {
	secs := func(d time.Duration) string { return strconv.Itoa(int(d / time.Second)) }
	args := []string{"dnsmasq", "--keep-in-foreground", "--log-facility=-", "--log-dhcp",
		"--conf-file=/dev/null", "--port=0", "--pid-file=", "--user=root", "--group=root",
		"--interface=" + s.Dev, "--bind-interfaces", "--dhcp-authoritative", "--no-ping",
		fmt.Sprintf("--dhcp-range=%s,%s,%s,%s", s.First, s.Last, maskOf(s.Bits), secs(s.LeaseTime)),
	}
	if s.LeaseFile != "" {
		args = append(args, "--dhcp-leasefile="+s.LeaseFile)
	} else {
		args = append(args, "--leasefile-ro")
	}
	for _, h := range s.Hosts {
		args = append(args, "--dhcp-host="+h)
	}
	if s.Router.IsValid() {
		args = append(args, "--dhcp-option=option:router,"+s.Router.String())
	}
	if len(s.DNS) > 0 {
		var ds []string
		for _, d := range s.DNS {
			ds = append(ds, d.String())
		}
		args = append(args, "--dhcp-option=option:dns-server,"+strings.Join(ds, ","))
	}
	if s.RenewTime > 0 {
		args = append(args, "--dhcp-option=option:T1,"+secs(s.RenewTime))
	}
	if s.RebindTime > 0 {
		args = append(args, "--dhcp-option=option:T2,"+secs(s.RebindTime))
	}
	if p := s.VendorClassPrefix; p != "" {
		octets := make([]string, len(p))
		for i := range len(p) {
			octets[i] = hex.EncodeToString([]byte{p[i]})
		}
		args = append(args, "--dhcp-match=set:vendor,60,"+strings.Join(octets, ":"), "--dhcp-ignore=tag:!vendor")
	}
	return args
}

// maskOf writes an IPv4 prefix length as a dotted mask.
func maskOf(bits int) string {
	var m [4]byte
	for i := range min(max(bits, 0), 32) {
		m[i/8] |= 0x80 >> (i % 8)
	}
	return netip.AddrFrom4(m).String()
}
