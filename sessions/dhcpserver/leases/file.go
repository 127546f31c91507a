package leases

import (
	"encoding/json"
	"fmt"
	"net"
	"time"
)

// fileVersion is the version of the state file's format.
const fileVersion = 1

// file is the state file: {"version": 1, "leases": [...]}.
type file struct {
	Version int     `json:"version"`
	Leases  []Lease `json:"leases"`
}

// Marshal returns the state file holding ls.
func Marshal(ls []Lease) ([]byte, error) {
	if ls == nil {
		ls = []Lease{}
	}
	b, err := json.MarshalIndent(file{Version: fileVersion, Leases: ls}, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("leases: %w", err)
	}
	return append(b, '\n'), nil
}

// Unmarshal reads a state file that Marshal wrote. It refuses another
// version, and a lease without a MAC address, an IPv4 address or an
// expiry.
func Unmarshal(b []byte) ([]Lease, error) {
	var f file
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("leases: %w", err)
	}
	if f.Version != fileVersion {
		return nil, fmt.Errorf("leases: version %d, want %d", f.Version, fileVersion)
	}
	for i, l := range f.Leases {
		mac, err := net.ParseMAC(l.MAC)
		switch {
		case err != nil || len(mac) != 6 || mac.String() != l.MAC:
			return nil, fmt.Errorf("leases[%d]: MAC %q is not an Ethernet address", i, l.MAC)
		case !l.Addr.Is4():
			return nil, fmt.Errorf("leases[%d]: address %s is not IPv4", i, l.Addr)
		case l.Expires.IsZero() || l.Expires.Before(time.Unix(0, 0)):
			return nil, fmt.Errorf("leases[%d]: no expiry", i)
		}
	}
	return f.Leases, nil
}
