package upstream

import (
	"cmp"
	"fmt"
	"net"

	"github.com/Jigsaw-Code/outline-sdk/transport"
	"github.com/Jigsaw-Code/outline-sdk/transport/shadowsocks"

	"github.com/braid-router/braid/api"
)

// PeerDialer opens a stream to a target (HOST:PORT) through the
// aggregation peer: outline-sdk's transport.StreamDialer, which
// shadowsocks.StreamDialer is. The pool asks a Peer resolver by DNS over
// TCP inside the stream it opens to the resolver's Addr; the stream's
// first chunk carries the target address with the first query.
type PeerDialer = transport.StreamDialer

// NewPeerDialer returns the PeerDialer of braid's aggregation: Multipath
// TCP to peer (HOST:PORT, aggregation.peer.address), carrying the
// shadowsocks AEAD stream with cipher ("" is api.DefaultCipher) and the
// key derived from password (aggregation.peer.key), as the proxy's
// connections do.
func NewPeerDialer(peer, cipher, password string) (PeerDialer, error) {
	cipher = cmp.Or(cipher, api.DefaultCipher)
	key, err := shadowsocks.NewEncryptionKey(cipher, password)
	if err != nil {
		return nil, fmt.Errorf("dns upstream: peer cipher %s: %w", cipher, err)
	}
	var d net.Dialer
	d.SetMultipathTCP(true)
	return shadowsocks.NewStreamDialer(&transport.TCPEndpoint{Dialer: d, Address: peer}, key)
}
