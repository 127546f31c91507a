package l2tp

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/braid-router/braid/internal/lnstest"
	"github.com/braid-router/braid/internal/netns"
	"github.com/braid-router/braid/internal/nstest"
	"github.com/braid-router/braid/sessions/l2tp/control"
)

// lacAddr is braid's side on the LNS's bridge.
var lacAddr = netip.MustParsePrefix("10.77.1.50/24")

// lac is braid's side of a test: a namespace attached to the LNS's
// bridge by link lac0, capturing it.
type lac struct {
	t   *testing.T
	lns *lnstest.LNS
	ns  string
	cap *lnstest.Capture
}

func newLAC(t *testing.T, lns *lnstest.LNS) *lac {
	ns := nstest.New(t)
	lns.Attach(t, ns, "lac0", lacAddr)
	return &lac{t: t, lns: lns, ns: ns, cap: lnstest.StartCapture(t, ns, "lac0")}
}

func (l *lac) config(secret string) Config {
	return Config{Server: l.lns.Addr, Local: lacAddr.Addr(), Device: "lac0", Secret: []byte(secret), Hostname: "braid-test"}
}

// dial dials from the LAC's namespace.
func (l *lac) dial(ctx context.Context, cfg Config) (*Session, error) {
	var s *Session
	var err error
	if nerr := netns.Do(l.ns, func() error {
		s, err = Dial(ctx, cfg, nstest.Logger(l.t))
		return nil
	}); nerr != nil {
		l.t.Fatal(nerr)
	}
	return s, err
}

// running is a Session with the caller's side a test plays: a reader
// handing every datagram to Handle, PPP frames collected, Run going.
type running struct {
	s      *Session
	cancel context.CancelFunc
	runErr chan error
	mu     sync.Mutex
	frames [][]byte
}

func (l *lac) up(cfg Config) *running {
	l.t.Helper()
	r := &running{runErr: make(chan error, 1)}
	cfg.PPP = func(f []byte) {
		r.mu.Lock()
		r.frames = append(r.frames, append([]byte(nil), f...))
		r.mu.Unlock()
	}
	s, err := l.dial(context.Background(), cfg)
	if err != nil {
		l.t.Fatalf("Dial: %v", err)
	}
	r.s = s
	l.t.Cleanup(func() { s.Close() })
	go func() {
		buf := make([]byte, 2048)
		for {
			n, err := s.Conn().Read(buf)
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				continue
			}
			s.Handle(buf[:n])
		}
	}()
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() { r.runErr <- s.Run(ctx) }()
	return r
}

// stop cancels Run and returns what it returned.
func (r *running) stop(t *testing.T) error {
	t.Helper()
	r.cancel()
	select {
	case err := <-r.runErr:
		return err
	case <-time.After(time.Minute):
		t.Fatal("Run did not return after its context ended")
		return nil
	}
}

func (r *running) frame(match func([]byte) bool) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, f := range r.frames {
		if match(f) {
			return true
		}
	}
	return false
}

func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// lcpConfReq is a PPP LCP Configure-Request (RFC 1661 5.1) with a magic
// number, as carried in L2TP: Address and Control, protocol 0xc021.
var lcpConfReq = []byte{0xff, 0x03, 0xc0, 0x21, 0x01, 0x01, 0x00, 0x0a, 0x05, 0x06, 0x12, 0x34, 0x56, 0x78}

func isLCP(f []byte) bool { return len(f) >= 4 && bytes.Equal(f[:4], []byte{0xff, 0x03, 0xc0, 0x21}) }

// TestLNS runs braid's LAC against the real LNS (xl2tpd): the tunnel and
// session come up with tunnel authentication both ways, PPP frames flow
// both ways, HELLOs are answered, a cancelled Run tells the LNS (CDN,
// StopCCN), a wrong secret is an authentication error whichever side
// finds it, and tshark finds nothing wrong in any frame braid sent. The
// subtests share the LNS of their group, one group after another.
func TestLNS(t *testing.T) {
	t.Run("challenge both ways", func(t *testing.T) {
		lns := lnstest.Start(t, lnstest.Options{})
		l := newLAC(t, lns)

		t.Run("bring-up, data, HELLO, stop", func(t *testing.T) {
			cfg := l.config("6pe")
			// HELLO after 2 s of silence; one unacknowledged would
			// end the tunnel within 1.4 s (200 + 400 + 400 + 400 ms).
			cfg.Timing = control.Timing{Hello: 2 * time.Second, Retransmit: 200 * time.Millisecond,
				RetransmitCap: 400 * time.Millisecond, Retries: 3}
			mark := len(lns.Log())
			r := l.up(cfg)
			info := r.s.Info()
			if info.State != "established" || info.LocalTunnel == 0 || info.LocalSession == 0 || info.PeerTunnel == 0 || info.PeerSession == 0 {
				t.Fatalf("after Dial: %+v", info)
			}
			if info.LNS != lns.Addr || info.LocalPort != Port || info.PeerHost != "lns-test" || info.Established.IsZero() {
				t.Errorf("after Dial: %+v", info)
			}
			lt, ls, pt, ps := r.s.IDs()
			if lt != info.LocalTunnel || ls != info.LocalSession || pt != info.PeerTunnel || ps != info.PeerSession {
				t.Errorf("IDs %d %d %d %d, Info %+v", lt, ls, pt, ps, info)
			}
			lns.WaitLog(t, `Connection established to 10\.77\.1\.50, 1701\.`, mark, time.Minute)
			lns.WaitLog(t, `Call established with 10\.77\.1\.50`, mark, time.Minute)

			// PPP: pppd on the LNS sends LCP; braid's LCP reaches pppd.
			waitFor(t, "an LCP frame from the LNS's pppd", time.Minute, func() bool { return r.frame(isLCP) })
			if err := r.s.WriteFrame(lcpConfReq); err != nil {
				t.Fatal(err)
			}
			lns.WaitLog(t, `rcvd \[LCP ConfReq id=0x1 <magic 0x12345678>\]`, mark, time.Minute)

			// HELLO every 2 s of silence: the LNS acknowledges them
			// (else the tunnel would be down) through several.
			for range 3 {
				m := len(lns.Log())
				lns.WaitLog(t, `message type 6 \(Hello\)`, m, time.Minute)
			}
			if st := r.s.Info().State; st != "established" {
				t.Fatalf("after HELLOs: %s (%v)", st, r.s.Info().Err)
			}

			mark = len(lns.Log())
			if err := r.stop(t); err != nil {
				t.Errorf("Run after cancel: %v", err)
			}
			lns.WaitLog(t, `message type 14 \(Call-Disconnect-Notify\)`, mark, time.Minute)
			lns.WaitLog(t, `message type 4 \(Stop-Control-Connection-Notification\)`, mark, time.Minute)
			lns.WaitLog(t, `Connection closed to 10\.77\.1\.50, port 1701 \(braid is stopping the tunnel\)`, mark, time.Minute)
			if st := r.s.Info().State; st != "closed" {
				t.Errorf("after Run: %s, want closed (the StopCCN acknowledged)", st)
			}
			r.s.Close()
			t.Logf("LNS log of the teardown:\n%s", lns.Log()[mark:])
		})

		t.Run("wrong secret, found by braid", func(t *testing.T) {
			_, err := l.dial(context.Background(), l.config("not-6pe"))
			if !errors.Is(err, ErrAuth) || !strings.Contains(err.Error(), "tunnel authentication failed: wrong secret?") {
				t.Fatalf("Dial with a wrong secret: %v, want ErrAuth", err)
			}
			t.Log(err)
		})

		t.Run("wrong secret, found by the LNS", func(t *testing.T) {
			cfg := l.config("not-6pe")
			cfg.SkipChallenge = true
			_, err := l.dial(context.Background(), cfg)
			if !errors.Is(err, ErrAuth) {
				t.Fatalf("Dial with a wrong secret: %v, want ErrAuth", err)
			}
			t.Log(err)
		})

		t.Run("no secret", func(t *testing.T) {
			_, err := l.dial(context.Background(), l.config(""))
			if !errors.Is(err, ErrAuth) || !strings.Contains(err.Error(), "no secret is configured") {
				t.Fatalf("Dial without a secret: %v, want ErrAuth", err)
			}
		})

		t.Run("the LNS ends the session", func(t *testing.T) {
			r := l.up(l.config("6pe"))
			defer r.s.Close()
			waitFor(t, "pppd to speak LCP", time.Minute, func() bool { return r.frame(isLCP) })
			lns.Console(t, "killall pppd")
			select {
			case err := <-r.runErr:
				if !errors.Is(err, ErrSessionClosed) && !errors.Is(err, ErrClosed) {
					t.Fatalf("Run: %v, want the LNS closing the session", err)
				}
				t.Log(err)
			case <-time.After(time.Minute):
				t.Fatal("Run did not return when the LNS ended the session")
			}
			r.cancel()
		})

		// Last of the group: the LNS is gone afterwards.
		t.Run("the LNS vanishes", func(t *testing.T) {
			cfg := l.config("6pe")
			cfg.Timing = control.Timing{Hello: time.Second, Retransmit: 200 * time.Millisecond, RetransmitCap: 400 * time.Millisecond, Retries: 3}
			r := l.up(cfg)
			defer r.s.Close()
			lns.Console(t, "killall -9 xl2tpd")
			select {
			case err := <-r.runErr:
				if !errors.Is(err, ErrNoAnswer) || !strings.Contains(err.Error(), "no answer from the LNS") {
					t.Fatalf("Run: %v, want ErrNoAnswer", err)
				}
				t.Log(err)
			case <-time.After(time.Minute):
				t.Fatal("Run did not return when the LNS vanished")
			}
			r.cancel()
		})

		t.Run("tshark", func(t *testing.T) {
			l.cap.Stop()
			if p := l.cap.Problems("ip.src == " + lacAddr.Addr().String()); p != "" {
				t.Errorf("tshark finds problems in braid's frames:\n%s", p)
			}
			sent := l.cap.Summary("ip.src == " + lacAddr.Addr().String())
			t.Logf("braid's frames:\n%s", sent)
			for _, typ := range []string{"SCCRQ", "SCCCN", "ICRQ", "ICCN", "Hello", "CDN", "StopCCN", "PPP LCP"} {
				if !strings.Contains(sent, typ) {
					t.Errorf("braid sent no %s in the capture", typ)
				}
			}
		})
	})

	t.Run("no challenge from the LNS", func(t *testing.T) {
		lns := lnstest.Start(t, lnstest.Options{NoChallenge: true})
		l := newLAC(t, lns)
		for _, secret := range []string{"6pe", ""} {
			r := l.up(l.config(secret))
			if err := r.stop(t); err != nil {
				t.Errorf("secret %q: Run after cancel: %v", secret, err)
			}
			r.s.Close()
		}
		l.cap.Stop()
		if p := l.cap.Problems("ip.src == " + lacAddr.Addr().String()); p != "" {
			t.Errorf("tshark finds problems in braid's frames:\n%s", p)
		}
	})
}
