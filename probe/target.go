package probe

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
)

// Kind is what a probe sends.
type Kind string

// Kinds of probe.
const (
	// ICMP sends an ICMP or ICMPv6 echo request to Target.Addr, an IP
	// address.
	ICMP Kind = "icmp"
	// TCP connects to Target.Addr, HOST:PORT.
	TCP Kind = "tcp"
	// DNS queries the server at Target.Addr (IP:PORT, or an IP address
	// for port 53) for Target.Name.
	DNS Kind = "dns"
)

// DNSPort is the port of a DNS target given without one.
const DNSPort = 53

// Target is one thing that must answer.
type Target struct {
	Kind Kind   `json:"kind"`
	Addr string `json:"addr"`
	// Name is what a DNS probe asks for (a domain name, "example.net");
	// unused by the other kinds.
	Name string `json:"name,omitempty"`
}

// String is "KIND ADDR", and the name for DNS: "dns 192.0.2.53:53 example.net".
func (t Target) String() string {
	if t.Name != "" {
		return string(t.Kind) + " " + t.Addr + " " + t.Name
	}
	return string(t.Kind) + " " + t.Addr
}

// ip parses the address of an ICMP target.
func (t Target) ip() (netip.Addr, error) {
	ip, err := netip.ParseAddr(t.Addr)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("not an IP address: %w", err)
	}
	return ip.Unmap(), nil
}

// server parses the address of a DNS target.
func (t Target) server() (netip.AddrPort, error) {
	if ip, err := netip.ParseAddr(t.Addr); err == nil {
		return netip.AddrPortFrom(ip.Unmap(), DNSPort), nil
	}
	ap, err := netip.ParseAddrPort(t.Addr)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("not IP:PORT or an IP address: %w", err)
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
}

// hostPort splits the address of a TCP target.
func (t Target) hostPort() (host string, port int, err error) {
	host, p, err := net.SplitHostPort(t.Addr)
	if err != nil {
		return "", 0, err
	}
	port, err = strconv.Atoi(p)
	if err != nil || port < 1 || port > 65535 {
		return "", 0, fmt.Errorf("port %q is not a number from 1 to 65535", p)
	}
	return host, port, nil
}
