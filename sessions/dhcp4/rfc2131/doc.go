// Package rfc2131 is braid's DHCPv4 client as RFC 2131 describes it: the
// client's states (INIT, SELECTING, REQUESTING, BOUND, RENEWING,
// REBINDING, INIT-REBOOT, REBOOTING), its timers, and the messages it
// sends and accepts. It has no socket and no clock: a Client is a value,
// and Step turns (client, event, now) into the next client and the
// actions the session carries out (send a message, publish or withdraw a
// lease, check an address). So the RFC's rules are table tests, and the
// fuzzer reaches the whole decision path of a received message.
//
// Messages are insomniacslk/dhcp's dhcpv4 types; what this package adds
// is what that library leaves to its users: the state machine, its
// timers and the fields RFC 2131 (Table 5) asks of each message in each
// state.
//
// # Timers
//
// Retransmissions (DISCOVER; REQUEST while requesting or rebooting) wait
// 4 s, doubling up to 64 s, each ±1 s at random (RFC 2131 4.1). A lease
// renews at T1 (option 58; half the lease when not given) by a REQUEST
// unicast to its server from the leased address, rebinds at T2 (option
// 59; 0.875 of the lease) by a broadcast one, and ends at its expiry. A
// REQUEST that renews or rebinds is sent again after half the time left
// until T2 (or the expiry), and never sooner than a minute (RFC 2131
// 4.4.5), nor past T2 (the expiry). Tests shorten every one of these
// through Timing; the defaults are the RFC's.
package rfc2131
