package peer

import (
	"context"
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/Jigsaw-Code/outline-sdk/transport/shadowsocks"

	"github.com/braid-router/braid/internal/nstest"
	"github.com/braid-router/braid/sessions/peer/socksaddr"
)

// TestRelayResetsTheDestination: the box's connection reset (a LAN client
// gone, MP_FASTCLOSE over Multipath TCP) while nothing is unread anywhere:
// the peer resets its connection to the destination, which stops sending
// at once, rather than closing it (a FIN, after which a download server
// goes on sending until its data meets the closed socket).
func TestRelayResetsTheDestination(t *testing.T) {
	nstest.RequireRoot(t)
	// The destination listens where the peer's dials go: Serve's
	// goroutines run in the test's own namespace.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	target := ln.Addr().(*net.TCPAddr).AddrPort()
	p := startPeer(t, &Server{}, target.String())

	var c net.Conn
	nstest.Do(t, p.ns, func() (err error) {
		var d net.Dialer
		d.SetMultipathTCP(true)
		c, err = d.DialContext(context.Background(), "tcp", p.addr)
		return err
	})
	client := c.(*net.TCPConn)
	defer client.Close()
	dst := socksaddr.Addr{IP: target.Addr(), Port: target.Port()}
	if _, err := client.Write(stream(t, p.key, dst, "hello")); err != nil {
		t.Fatal(err)
	}
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.SetDeadline(time.Now().Add(time.Minute))
	if _, err := io.ReadFull(s, make([]byte, len("hello"))); err != nil {
		t.Fatalf("the destination: %v", err)
	}
	if _, err := s.Write([]byte("hi")); err != nil {
		t.Fatal(err)
	}
	client.SetReadDeadline(time.Now().Add(time.Minute))
	if _, err := io.ReadFull(shadowsocks.NewReader(client, p.key), make([]byte, len("hi"))); err != nil {
		t.Fatalf("the client: %v", err)
	}

	client.SetLinger(0)
	client.Close()
	if b, err := io.ReadAll(s); !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("the destination read %d bytes then %v, want a reset", len(b), err)
	}
}
