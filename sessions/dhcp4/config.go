// Package dhcp4 is an uplink's DHCPv4 client session.
package dhcp4

import (
	"github.com/braid-router/braid/api"
	"github.com/braid-router/braid/reconcile/plan"
	"github.com/braid-router/braid/session"
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
}

// Fields implements session.Config.
func (c Config) Fields() []plan.Field {
	return session.Fields("uplink", c.Uplink, "interface", c.Interface,
		"vendorClass", c.VendorClass, "clientID", c.ClientID, "hostname", c.Hostname)
}

// Secrets implements session.Config: the client has none.
func (Config) Secrets() []*api.Secret { return nil }
