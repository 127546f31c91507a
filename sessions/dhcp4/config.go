// Package dhcp4 is an uplink's DHCPv4 client session: it gets a lease
// from the uplink's DHCP server, keeps it (renewing at T1, rebinding at
// T2), and reports it as the uplink's facts.Lease4, which the compiler
// turns into the uplink's address, routes, rule, MPTCP endpoint and NAT.
// The protocol itself, a pure state machine, is package rfc2131; this
// package owns the sockets, the timers and the fact.
package dhcp4

import (
	"encoding/hex"
	"fmt"
	"net"
	"strings"

	"github.com/braid-router/braid/api"
	"github.com/braid-router/braid/reconcile/plan"
	"github.com/braid-router/braid/session"
	"github.com/braid-router/braid/sessions/dhcp4/rfc2131"
)

// Kind is the session kind: "session[dhcp4/UPLINK]".
const Kind = "dhcp4"

// Config is what the client needs: where to ask and what to say.
type Config struct {
	// Uplink names the uplink whose lease this is.
	Uplink string
	// Interface is the uplink's link.
	Interface string
	// VendorClass is option 60, bytes as written (SFR: "neufbox...").
	VendorClass string
	// ClientID is option 61 as hex octets ("01:00:24:d4:aa:bb:cc"); empty
	// means type 1 and the link's MAC.
	ClientID string
	// Hostname is option 12.
	Hostname string
	// Timing shortens the client's timers (tests); the compiler leaves it
	// zero, which is RFC 2131's. It is not part of the plan.
	Timing rfc2131.Timing
}

// Fields implements session.Config.
func (c Config) Fields() []plan.Field {
	return session.Fields("uplink", c.Uplink, "interface", c.Interface,
		"vendorClass", c.VendorClass, "clientID", c.ClientID, "hostname", c.Hostname)
}

// Secrets implements session.Config: the client has none.
func (Config) Secrets() []*api.Secret { return nil }

// clientID returns option 61's bytes: the configured hex octets, or type
// 1 (Ethernet) and hw.
func (c Config) clientID(hw net.HardwareAddr) ([]byte, error) {
	if c.ClientID == "" {
		return append([]byte{1}, hw...), nil
	}
	b, err := hex.DecodeString(strings.ReplaceAll(c.ClientID, ":", ""))
	if err != nil || len(b) < 2 || len(b) > 255 {
		return nil, fmt.Errorf("clientID %q: want 2 to 255 hex octets separated by colons", c.ClientID)
	}
	return b, nil
}
