package main

import "net/netip"

// What a test and the stand-in sessions of a test build exchange; the
// stand-ins themselves are in standins.go (build tag braidtest).

// standInsEnv, in a test build (go build -tags braidtest), names a
// directory where stand-in sessions read what to report: they replace the
// dhcp4, health and proxy kinds, so that the supervisor, compile and the engine
// are tested end to end through the real binary without a DHCP server or
// a probe target. The production binary has no stand-ins and ignores the
// variable.
//
// For a session KIND/NAME the stand-in reads DIR/KIND-NAME.json every
// 20 ms:
//
//	{"lease": {"address": "10.1.0.2/24", "gateway": "10.1.0.1", "lifetime": "1h"}}  (dhcp4)
//	{"healthy": false}                                                            (health)
//	{"crash": "why"} or {"panic": "why"}                                           (either)
//
// and writes DIR/KIND-NAME.state.json: its configuration's fields, how
// many times it started and how many configurations it took in place.
//
// The proxy kind's stand-in needs no orders: it listens with
// IP_TRANSPARENT on its configured port, IPv4 and IPv6, reports itself
// running, and answers each connection with one line,
// standInProxyBanner, its session ID and the destination the client
// asked for ("... proxy/aggregation 198.51.100.80:7"), then closes it.
const standInsEnv = "BRAID_STANDINS"

// standInProxyBanner starts the line the stand-in proxy answers with.
const standInProxyBanner = "braid stand-in "

// standInOrders is what a test writes for a stand-in.
type standInOrders struct {
	Lease *struct {
		Address  netip.Prefix `json:"address"`
		Gateway  netip.Addr   `json:"gateway"`
		Lifetime string       `json:"lifetime"`
	} `json:"lease"`
	Healthy *bool  `json:"healthy"`
	Crash   string `json:"crash"`
	Panic   string `json:"panic"`
}

// standInState is what a stand-in reports back to the test.
type standInState struct {
	Starts  int               `json:"starts"`
	Updates int               `json:"updates"`
	Config  map[string]string `json:"config"`
}

// fileID turns "dhcp4/isp1" into "dhcp4-isp1".
func fileID(id string) string {
	b := []byte(id)
	for i := range b {
		if b[i] == '/' {
			b[i] = '-'
		}
	}
	return string(b)
}
