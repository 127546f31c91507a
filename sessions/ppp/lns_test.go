package ppp_test

import (
	"context"
	"errors"

	"log/slog"
	"net"
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/braid-router/braid/internal/lnstest"
	"github.com/braid-router/braid/internal/nstest"
	"github.com/braid-router/braid/sessions/l2tp"
	"github.com/braid-router/braid/sessions/ppp"
)

// lacAddr is braid's side on the LNS's bridge.
var lacAddr = netip.MustParsePrefix("10.77.1.50/24")

// login is a realistic SFR login for the box at lacAddr: the template
// dhcp/{ipv4}@{mac} filled in.
const login = "dhcp/10.77.1.50@0024d4aabbcc"

const password = "s3cret-pass"

// lac is braid's side of a test: a namespace on the LNS's bridge, with
// tshark capturing its link.
type lac struct {
	t   *testing.T
	lns *lnstest.LNS
	ns  string
	cap *lnstest.Capture
}

func newLAC(t *testing.T, opts lnstest.Options) *lac {
	opts.User, opts.Pass = login, password
	lns := lnstest.Start(t, opts)
	ns := nstest.New(t)
	lns.Attach(t, ns, "lac0", lacAddr)
	return &lac{t: t, lns: lns, ns: ns, cap: lnstest.StartCapture(t, ns, "lac0")}
}

// session is a PPP link over a real L2TP session to the LNS.
type session struct {
	link   *ppp.Link
	l2tp   *l2tp.Session
	logs   *nstest.SyncBuffer
	stop   context.CancelFunc // ends the PPP link, then the tunnel
	runErr chan error         // the PPP link's Run
	done   chan struct{}      // everything stopped
}

// dial brings up the tunnel and session (braid's L2TP LAC), then runs a
// PPP link with cfg over it.
func (l *lac) dial(cfg ppp.Config) *session {
	l.t.Helper()
	s := &session{logs: &nstest.SyncBuffer{}, runErr: make(chan error, 1), done: make(chan struct{})}
	log := slog.New(slog.NewTextHandler(s.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	var link *ppp.Link
	lcfg := l2tp.Config{Server: l.lns.Addr, Local: lacAddr.Addr(), Device: "lac0", Secret: []byte("6pe"), Hostname: "braid-test",
		PPP: func(f []byte) { link.Input(f) }}
	nstest.Do(l.t, l.ns, func() error {
		var err error
		s.l2tp, err = l2tp.Dial(l.t.Context(), lcfg, log)
		return err
	})
	link = ppp.New(cfg, s.l2tp.WriteFrame, log)
	s.link = link

	tunnelCtx, stopTunnel := context.WithCancel(context.Background())
	pppCtx, stopPPP := context.WithCancel(context.Background())
	s.stop = stopPPP
	tunnelDone := make(chan struct{})
	go func() {
		buf := make([]byte, 2048)
		for {
			n, err := s.l2tp.Conn().Read(buf)
			if errors.Is(err, net.ErrClosed) {
				return
			}
			if err == nil {
				s.l2tp.Handle(buf[:n])
			}
		}
	}()
	go func() {
		defer close(tunnelDone)
		if err := s.l2tp.Run(tunnelCtx); err != nil {
			log.Info("tunnel down", "err", err)
		}
	}()
	go func() {
		err := link.Run(pppCtx)
		s.runErr <- err
		stopTunnel()
		<-tunnelDone
		s.l2tp.Close()
		close(s.done)
	}()
	l.t.Cleanup(func() {
		stopPPP()
		select {
		case <-s.done:
		case <-time.After(time.Minute):
			l.t.Error("the PPP link and the tunnel did not stop")
		}
		if strings.Contains(s.logs.String(), password) {
			l.t.Errorf("the password is in braid's logs:\n%s", s.logs)
		}
	})
	return s
}

// up waits for IPV6CP.
func (s *session) up(t *testing.T) {
	t.Helper()
	select {
	case <-s.link.Up():
	case err := <-s.runErr:
		s.runErr <- err
		t.Fatalf("the link ended before IPV6CP opened: %v\nbraid's log:\n%s", err, s.logs)
	case <-time.After(2 * time.Minute):
		t.Fatalf("IPV6CP not opened: %+v\nbraid's log:\n%s", s.link.Info(), s.logs)
	}
}

// ended waits for the PPP link's Run to return.
func (s *session) ended(t *testing.T) error {
	t.Helper()
	select {
	case err := <-s.runErr:
		s.runErr <- err
		return err
	case <-time.After(2 * time.Minute):
		t.Fatalf("the link did not end: %+v\nbraid's log:\n%s", s.link.Info(), s.logs)
		return nil
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// checkUp checks the link against what pppd says of it: IPV6CP up with
// braid's interface identifier as the remote one, and pppd's own
// ("ipv6 ::1," in its options) as braid's peer.
func (l *lac) checkUp(t *testing.T, s *session, mark int, auth string) {
	t.Helper()
	line := l.lns.WaitLog(t, `LNS-IPV6CP-UP if=ppp\d+ `, mark, time.Minute)
	local, peer, mru := s.link.Negotiated()
	m := regexp.MustCompile(`remote=(\S+)`).FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("pppd says %q: no remote address", line)
	}
	if remote, err := netip.ParseAddr(m[1]); err != nil || remote != ppp.LinkLocal(local) {
		t.Errorf("pppd says %q, want remote=%s (braid's identifier %x)", line, ppp.LinkLocal(local), local)
	}
	if peer != [8]byte{7: 1} || mru < 1280 {
		t.Errorf("negotiated peer %x, MRU %d: want ::1 (pppd's ipv6 ::1,), at least 1280", peer, mru)
	}
	if i := s.link.Info(); i.Auth != auth || i.Phase != "network" || i.IPV6CP != "Opened" || i.LCP != "Opened" {
		t.Errorf("info %+v, want %s in network with IPV6CP Opened", i, auth)
	}
	// pppd took braid's login.
	l.lns.WaitLog(t, regexp.QuoteMeta(`peer from calling number 10.77.1.50 authorized`)+`|`+regexp.QuoteMeta(login), mark, time.Minute)
}

// checkCapture checks what tshark makes of braid's PPP frames.
func (l *lac) checkCapture(t *testing.T, want ...string) {
	t.Helper()
	l.cap.Stop()
	from := "ip.src == " + lacAddr.Addr().String()
	if p := l.cap.Problems(from); p != "" {
		t.Errorf("tshark finds problems in braid's frames:\n%s", p)
	}
	if p := l.cap.Problems(from + " && ppp"); p != "" {
		t.Errorf("tshark finds malformed PPP from braid:\n%s", p)
	}
	sent := l.cap.Summary(from + " && ppp")
	t.Logf("braid's PPP frames:\n%s", sent)
	for _, w := range want {
		if !strings.Contains(sent, w) {
			t.Errorf("braid sent no %q in the capture", w)
		}
	}
}

// TestRealLNS runs braid's PPP client over braid's L2TP LAC against the
// real LNS (xl2tpd + pppd, unmodified, in a QEMU guest): CHAP and PAP
// logins, IPV6CP, keepalive both ways, an LNS offering IPCP too, a wrong
// password refused with ErrAuthRefused, pppd terminating the link, an LNS
// gone silent (echoes unanswered), and tshark's reading of every PPP
// frame braid sent. The groups run one after another (each boots its own
// LNS).
func TestRealLNS(t *testing.T) {
	t.Run("CHAP", func(t *testing.T) {
		l := newLAC(t, lnstest.Options{})

		t.Run("bring-up, keepalive, terminate", func(t *testing.T) {
			mark := len(l.lns.Log())
			s := l.dial(ppp.Config{Username: login, Password: []byte(password), Keepalive: time.Second, KeepaliveFailures: 4})
			s.up(t)
			l.checkUp(t, s, mark, "CHAP-MD5")
			// braid answers pppd's echoes (pppd sends one as LCP opens)
			// and pppd answers braid's.
			l.lns.WaitLog(t, `sent \[LCP EchoReq`, mark, time.Minute)
			l.lns.WaitLog(t, `rcvd \[LCP EchoRep`, mark, time.Minute)
			waitFor(t, "an answered echo", func() bool { i := s.link.Info(); return i.EchoRTT > 0 })
			t.Logf("info: %+v", s.link.Info())

			mark = len(l.lns.Log())
			s.stop()
			if err := s.ended(t); !errors.Is(err, context.Canceled) {
				t.Errorf("Run after cancel: %v", err)
			}
			// pppd takes braid's Terminate-Request: it says so before it
			// sends its Ack, which an emulated guest under load may send
			// after braid's wait for it (3 s) ended and the tunnel, and
			// pppd with it, went down.
			l.lns.WaitLog(t, `rcvd \[LCP TermReq id=0x[0-9a-f]+ "PPP link closed"\]`, mark, time.Minute)
			l.lns.WaitLog(t, `LCP terminated by peer \(PPP link closed\)`, mark, time.Minute)
		})

		t.Run("first frames lost", func(t *testing.T) {
			// Like an LNS right after ICCN, the path loses braid's first
			// PPP frames (L2TP data messages: T bit clear), until one is
			// lost; the restart timer sends LCP's request again.
			nstest.In(t, l.ns, "nft", "add table inet lose; add chain inet lose out { type filter hook output priority 0; }; "+
				"add rule inet lose out udp dport 1701 @th,64,1 0 counter drop")
			removed := false
			remove := func() {
				if !removed {
					removed = true
					nstest.In(t, l.ns, "nft", "delete table inet lose")
				}
			}
			t.Cleanup(remove)
			s := l.dial(ppp.Config{Username: login, Password: []byte(password)})
			waitFor(t, "a PPP frame lost", func() bool {
				return !regexp.MustCompile(`packets 0 `).MatchString(nstest.In(t, l.ns, "nft", "list table inet lose"))
			})
			remove()
			s.up(t)
			s.stop()
			s.ended(t)
		})

		t.Run("wrong password", func(t *testing.T) {
			s := l.dial(ppp.Config{Username: login, Password: []byte("not-" + password)})
			err := s.ended(t)
			if !errors.Is(err, ppp.ErrAuthRefused) || !strings.Contains(err.Error(), "PPP authentication refused") {
				t.Fatalf("Run: %v, want ErrAuthRefused", err)
			}
			t.Log(err)
		})

		t.Run("the LNS terminates", func(t *testing.T) {
			mark := len(l.lns.Log())
			s := l.dial(ppp.Config{Username: login, Password: []byte(password), Keepalive: time.Second})
			s.up(t)
			l.checkUp(t, s, mark, "CHAP-MD5")
			l.lns.Console(t, "killall pppd")
			if err := s.ended(t); !errors.Is(err, ppp.ErrPeerTerminated) {
				t.Fatalf("Run: %v, want ErrPeerTerminated", err)
			} else {
				t.Log(err)
			}
			l.lns.WaitLog(t, `rcvd \[LCP TermAck`, mark, time.Minute)
		})

		t.Run("the LNS goes silent", func(t *testing.T) {
			mark := len(l.lns.Log())
			s := l.dial(ppp.Config{Username: login, Password: []byte(password), Keepalive: time.Second, KeepaliveFailures: 3})
			s.up(t)
			l.checkUp(t, s, mark, "CHAP-MD5")
			// Nothing from the LNS reaches braid any more.
			nstest.In(t, l.ns, "nft", "add table inet fault; add chain inet fault in { type filter hook input priority 0; }; add rule inet fault in ip saddr "+l.lns.Addr.Addr().String()+" drop")
			t.Cleanup(func() { nstest.In(t, l.ns, "nft", "delete table inet fault") })
			if err := s.ended(t); !errors.Is(err, ppp.ErrKeepalive) {
				t.Fatalf("Run: %v, want ErrKeepalive", err)
			} else {
				t.Log(err)
			}
		})

		t.Run("tshark", func(t *testing.T) {
			l.checkCapture(t, "LCP", "Configuration Request", "Configuration Ack", "Echo Request", "Echo Reply",
				"Termination Request", "Termination Ack", "CHAP", "Response", "IPV6CP")
		})
	})

	t.Run("PAP", func(t *testing.T) {
		l := newLAC(t, lnstest.Options{Auth: "pap"})
		t.Run("bring-up", func(t *testing.T) {
			mark := len(l.lns.Log())
			s := l.dial(ppp.Config{Username: login, Password: []byte(password), Keepalive: 2 * time.Second})
			s.up(t)
			l.checkUp(t, s, mark, "PAP")
			s.stop()
			if err := s.ended(t); !errors.Is(err, context.Canceled) {
				t.Errorf("Run after cancel: %v", err)
			}
		})
		t.Run("wrong password", func(t *testing.T) {
			s := l.dial(ppp.Config{Username: login, Password: []byte("wrong")})
			err := s.ended(t)
			if !errors.Is(err, ppp.ErrAuthRefused) {
				t.Fatalf("Run: %v, want ErrAuthRefused", err)
			}
			t.Log(err)
		})
		t.Run("tshark", func(t *testing.T) {
			l.checkCapture(t, "PAP", "Authenticate-Request", "IPV6CP")
		})
	})

	t.Run("LNS offering IPv4 too", func(t *testing.T) {
		l := newLAC(t, lnstest.Options{IPv4: true})
		mark := len(l.lns.Log())
		s := l.dial(ppp.Config{Username: login, Password: []byte(password), Keepalive: time.Second})
		s.up(t)
		l.checkUp(t, s, mark, "CHAP-MD5")
		// pppd offered IPCP; braid Protocol-Rejected it and pppd went on.
		l.lns.WaitLog(t, `sent \[IPCP ConfReq`, mark, time.Minute)
		l.lns.WaitLog(t, `rcvd \[LCP ProtRej id=0x[0-9a-f]+ 80 21`, mark, time.Minute)
		// The link stays up: echoes keep being answered after the reject.
		waitFor(t, "an answered echo", func() bool { return s.link.Info().EchoRTT > 0 })
		m2 := len(l.lns.Log())
		l.lns.WaitLog(t, `rcvd \[LCP EchoReq`, m2, time.Minute)
		if i := s.link.Info(); i.IPV6CP != "Opened" || i.Err != nil {
			t.Fatalf("after IPCP was rejected: %+v", i)
		}
		if strings.Contains(l.lns.Log()[mark:], "No network protocols running") {
			t.Fatalf("pppd gave up the link:\n%s", l.lns.Log()[mark:])
		}
		m3 := len(l.lns.Log())
		s.stop()
		if err := s.ended(t); !errors.Is(err, context.Canceled) {
			t.Errorf("Run after cancel: %v", err)
		}
		// pppd's log, not the capture, shows the Terminate-Request: a
		// frame sent less than a second before tshark stops may not be
		// in its file yet.
		l.lns.WaitLog(t, `rcvd \[LCP TermReq`, m3, time.Minute)
		l.checkCapture(t, "Protocol Reject", "IPV6CP")
	})
}
