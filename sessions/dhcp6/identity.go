package dhcp6

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv6"
	"github.com/insomniacslk/dhcp/iana"

	"github.com/braid-router/braid/internal/atomicfile"
	"github.com/braid-router/braid/sessions/dhcp6/rfc8415"
)

// DUIDFile is the file in braid's state directory that keeps the
// DUID-LLT of clients without an Ethernet address to take a DUID-LL from.
const DUIDFile = "dhcp6-duid"

// duidEpoch is where a DUID-LLT's time counts from (RFC 8415 section
// 11.2): midnight UTC, January 1, 2000.
var duidEpoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// IAID returns the IAID of the client for what ("uplink/fibre"): the
// 32-bit FNV-1a hash of the name. It depends on nothing else, so a
// restarted braid, or one whose links were numbered differently, asks
// for the same IA_PD, and two clients of one box never share one.
func IAID(what string) [4]byte {
	h := fnv.New32a()
	h.Write([]byte(what))
	var id [4]byte
	copy(id[:], h.Sum(nil))
	return id
}

// DUID returns the client's DUID: a DUID-LL of the Ethernet address of
// the link named link (RFC 8415 section 11.4) when it has one; else the
// DUID-LLT kept in DUIDFile in stateDir, created the first time (section
// 11.2: the Ethernet address of one of the box's links and the time).
// Either stays the same across restarts, so that a server hands the same
// prefix back.
func DUID(link, stateDir string) (dhcpv6.DUID, error) {
	if link != "" {
		if ifi, err := net.InterfaceByName(link); err == nil && len(ifi.HardwareAddr) == 6 {
			return rfc8415.DUIDLL(ifi.HardwareAddr), nil
		}
	}
	if stateDir == "" {
		return nil, fmt.Errorf("no Ethernet address on %q for a DUID-LL, and no state directory to keep a DUID-LLT in", link)
	}
	path := filepath.Join(stateDir, DUIDFile)
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		raw, err := hex.DecodeString(strings.TrimSpace(string(b)))
		if err != nil {
			return nil, fmt.Errorf("DUID in %s: %w", path, err)
		}
		d, err := dhcpv6.DUIDFromBytes(raw)
		if err != nil {
			return nil, fmt.Errorf("DUID in %s: %w", path, err)
		}
		return d, nil
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("DUID: %w", err)
	}
	d, err := newDUID(time.Now())
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return nil, fmt.Errorf("DUID: %w", err)
	}
	if err := atomicfile.Write(path, []byte(hex.EncodeToString(d.ToBytes())+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("keep the DUID: %w", err)
	}
	return d, nil
}

// newDUID makes a DUID-LLT from the first of the box's links with an
// Ethernet address, or, on a box without one, a random DUID-UUID
// (RFC 6355).
func newDUID(now time.Time) (dhcpv6.DUID, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("DUID: %w", err)
	}
	for _, ifi := range ifs {
		if len(ifi.HardwareAddr) == 6 && !bytes.Equal(ifi.HardwareAddr, make([]byte, 6)) {
			return &dhcpv6.DUIDLLT{HWType: iana.HWTypeEthernet, Time: uint32(now.Sub(duidEpoch) / time.Second),
				LinkLayerAddr: bytes.Clone(ifi.HardwareAddr)}, nil
		}
	}
	var u [16]byte
	rand.Read(u[:])
	u[6] = u[6]&0x0f | 0x40 // version 4
	u[8] = u[8]&0x3f | 0x80 // RFC 4122 variant
	return &dhcpv6.DUIDUUID{UUID: u}, nil
}
