// Package peer is the aggregation peer's session (kind: Peer): it accepts
// the boxes' Multipath TCP connections, each carrying one shadowsocks AEAD
// stream (github.com/Jigsaw-Code/outline-sdk's transport/shadowsocks
// encrypts and decrypts it), reads the target address the stream starts
// with (package socksaddr), dials that destination in its own family, and
// copies both ways, with half-close, an idle timeout and bounded buffers.
// On the same address, with UDP, it serves the shadowsocks UDP relay: each
// datagram sealed on its own, carrying its target address and payload,
// sent from a socket per client address (an association, idle after a
// while, a capped number of them), the replies sealed back with the
// address they came from.
//
// Only clients that hold the key get anything back. A connection whose
// first chunk does not authenticate (a wrong key, garbage), ends before it
// does (a truncated stream) or reuses a salt seen before (a replay) gets no
// byte: the peer reads and discards what it sends until it closes or the
// idle timeout, a few such connections per source at a time (the rest are
// closed at once), and counts it. The peer never dials its own addresses,
// loopback, link-local, multicast or unspecified ones, except those its
// spec lists in allowLocal.
package peer

import (
	"strings"

	"github.com/braid-router/braid/api"
	"github.com/braid-router/braid/reconcile/plan"
	"github.com/braid-router/braid/session"
)

// Kind is the session kind, Name its one session's name:
// "session[peer/shadowsocks]".
const (
	Kind = "peer"
	Name = "shadowsocks"
)

// Config is what the peer needs, from its spec.
type Config struct {
	// Listen is HOST:PORT; "[::]:PORT" or ":PORT" takes IPv4 and IPv6.
	Listen string
	// Cipher is the AEAD cipher (chacha20-ietf-poly1305, aes-256-gcm,
	// aes-128-gcm), Key the shadowsocks password it is derived from.
	Cipher string
	Key    *api.Secret
	// AllowLocal are the local destinations (ADDRESS:PORT) the boxes may
	// reach.
	AllowLocal []string
}

// Fields implements session.Config. The key shows as its reference.
func (c Config) Fields() []plan.Field {
	fs := session.Fields("listen", c.Listen, "cipher", c.Cipher)
	if c.Key != nil {
		fs = append(fs, session.SecretField("key", c.Key))
	}
	return append(fs, session.Fields("allowLocal", strings.Join(c.AllowLocal, ","))...)
}

// Secrets implements session.Config: the key.
func (c Config) Secrets() []*api.Secret {
	if c.Key == nil {
		return nil
	}
	return []*api.Secret{c.Key}
}
