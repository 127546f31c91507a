// Package tunnel is the 6PE tunnel session, session[l2tp/TUNNEL]: IPv6
// over PPP over L2TPv2 over UDP/IPv4, to an LNS, out of one uplink, as SFR
// delivers IPv6 to its fibre customers. braid speaks both protocols
// itself: package l2tp is the LAC (the control connection and the
// session), package ppp the link (LCP, CHAP or PAP, IPV6CP), package
// dataplane moves the IPv6 packets between the tunnel's TUN link and the
// UDP socket. This package wires them together, owns the TUN link and
// publishes it as the tunnel's facts.Link once IPV6CP is up; the DHCPv6
// client (session[dhcp6/TUNNEL]) then asks for a prefix over it, and the
// compiler routes the prefix's traffic into the tunnel's table.
package tunnel

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/braid-router/braid/api"
	"github.com/braid-router/braid/reconcile/plan"
	"github.com/braid-router/braid/session"
)

// Kind is the session kind: "session[l2tp/TUNNEL]".
const Kind = "l2tp"

// DefaultPort is L2TP's UDP port (RFC 2661 section 8.1), the LNS's when
// the server names none, and the LAC's own.
const DefaultPort = 1701

// Config is what the session needs: the LNS, the uplink the tunnel
// leaves by (its link, its IPv4 address and its MAC address, which the
// login may hold), the secrets and the PPP settings. A change of the
// uplink's address or MAC is a change of configuration: the session
// starts again with the new login.
type Config struct {
	// Tunnel names the tunnel; its facts are about "tunnel/NAME".
	Tunnel string
	// Interface is the TUN link the session creates.
	Interface string
	// Server is the LNS, HOST:PORT.
	Server string
	// Via names the uplink the tunnel leaves by; Device is its link.
	Via    string
	Device string
	// Local is the uplink's IPv4 address, the tunnel's source.
	Local netip.Addr
	// MAC is the uplink's MAC address (lower case, colons).
	MAC string
	// UplinkMTU is the uplink's MTU as the spec sets it; 0: the link's,
	// read when the session starts.
	UplinkMTU int
	// Secret is the tunnel secret; nil: no tunnel authentication.
	Secret *api.Secret
	// Username is the PPP login as written, with its placeholders
	// ({ipv4}, {mac}, {MAC}); Login fills them in.
	Username string
	// Password is the PPP password.
	Password *api.Secret
	// Keepalive is the LCP echo interval; KeepaliveFailures the echoes
	// in a row left unanswered that declare the link dead.
	Keepalive         time.Duration
	KeepaliveFailures int
}

// Fields implements session.Config: the login as the session will send
// it, secrets as references.
func (c Config) Fields() []plan.Field {
	login, err := c.Login()
	if err != nil {
		login = c.Username
	}
	fs := session.Fields("tunnel", c.Tunnel, "interface", c.Interface, "server", c.Server,
		"via", c.Via, "device", c.Device, "local", addrString(c.Local), "mac", c.MAC)
	if c.UplinkMTU > 0 {
		fs = append(fs, plan.Field{Name: "uplinkMTU", Value: strconv.Itoa(c.UplinkMTU)})
	}
	if c.Secret != nil {
		fs = append(fs, session.SecretField("secret", c.Secret))
	}
	fs = append(fs, session.Fields("username", login)...)
	if c.Password != nil {
		fs = append(fs, session.SecretField("password", c.Password))
	}
	if c.Keepalive > 0 {
		fs = append(fs, plan.Field{Name: "keepalive", Value: c.Keepalive.String()})
	}
	if c.KeepaliveFailures > 0 {
		fs = append(fs, plan.Field{Name: "keepaliveFailures", Value: strconv.Itoa(c.KeepaliveFailures)})
	}
	return fs
}

// Secrets implements session.Config: the tunnel secret and the password.
func (c Config) Secrets() []*api.Secret {
	var out []*api.Secret
	for _, s := range []*api.Secret{c.Secret, c.Password} {
		if s != nil {
			out = append(out, s)
		}
	}
	return out
}

func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

// Login returns the PPP username with its placeholders filled in: {ipv4}
// the uplink's IPv4 address, {mac} and {MAC} its MAC address without
// colons, in lower and upper case (SFR's "dhcp/{ipv4}@{mac}" gives
// "dhcp/203.0.113.7@0024d4aabbcc"). A placeholder whose value is not
// known, or an unknown one, is an error.
func (c Config) Login() (string, error) {
	return ExpandUsername(c.Username, c.Local, c.MAC)
}

// ExpandUsername fills in the placeholders of a PPP username template
// (see Config.Login) from an IPv4 address and a MAC address.
func ExpandUsername(template string, ipv4 netip.Addr, mac string) (string, error) {
	var b strings.Builder
	rest := template
	for {
		open := strings.IndexByte(rest, '{')
		if open < 0 {
			b.WriteString(rest)
			return b.String(), nil
		}
		end := strings.IndexByte(rest[open:], '}')
		if end < 0 {
			return "", fmt.Errorf("username %q: a { without its }", template)
		}
		b.WriteString(rest[:open])
		name := rest[open+1 : open+end]
		rest = rest[open+end+1:]
		switch name {
		case "ipv4":
			if !ipv4.Is4() {
				return "", fmt.Errorf("username %q: {ipv4}: the uplink has no IPv4 address yet", template)
			}
			b.WriteString(ipv4.String())
		case "mac", "MAC":
			hw, err := net.ParseMAC(mac)
			if err != nil || len(hw) == 0 {
				return "", fmt.Errorf("username %q: {%s}: the uplink's MAC address is not known", template, name)
			}
			s := strings.ReplaceAll(hw.String(), ":", "")
			if name == "MAC" {
				s = strings.ToUpper(s)
			}
			b.WriteString(s)
		default:
			return "", fmt.Errorf("username %q: unknown placeholder {%s}", template, name)
		}
	}
}

// UsesIPv4 and UsesMAC report whether a username template holds {ipv4},
// or {mac} or {MAC}: what the session waits for before it can start.
func UsesIPv4(template string) bool { return strings.Contains(template, "{ipv4}") }

// UsesMAC reports whether a username template holds {mac} or {MAC}.
func UsesMAC(template string) bool {
	return strings.Contains(template, "{mac}") || strings.Contains(template, "{MAC}")
}

// ServerAddr returns server as HOST:PORT, with DefaultPort when it names
// no port.
func ServerAddr(server string) string {
	if _, _, err := net.SplitHostPort(server); err == nil {
		return server
	}
	return net.JoinHostPort(strings.Trim(server, "[]"), strconv.Itoa(DefaultPort))
}
