package rfc1661

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/braid-router/braid/sessions/ppp/frame"
)

// auth is braid's side of the login, as the peer asked for it in LCP:
// CHAP with MD5 (RFC 1994 section 4: answer each Challenge) or PAP (RFC
// 1334 section 2: send Authenticate-Requests until answered).
//
// braid sends its last Response again on the restart timer until the
// Success or Failure comes: the authenticator retransmits Challenges, but
// a lost Success would otherwise leave braid waiting, and pppd answers a
// repeated Response with its verdict again.
type auth struct {
	nextID   uint8
	pending  []byte    // the frame to send again (Response, Authenticate-Request); nil when none
	id       uint8     // its Identifier
	tries    int       // its transmissions
	due      time.Time // its retransmission
	deadline time.Time // the end of the authentication phase
}

func (a *auth) stop() {
	a.pending, a.due, a.deadline = nil, time.Time{}, time.Time{}
}

// startAuth starts the authentication phase.
func (c *Conn) startAuth(now time.Time) {
	a := &c.auth
	a.stop()
	a.deadline = now.Add(c.cfg.AuthTimeout)
	c.logf(slog.LevelDebug, "PPP authenticating", "protocol", c.Status().Auth, "username", c.cfg.Username)
	if c.lcpOpts.authProto == frame.ProtoPAP {
		a.id = a.nextID
		a.nextID++
		req := frame.PAP{Code: frame.PAPRequest, ID: a.id, PeerID: []byte(c.cfg.Username), Password: c.cfg.Password}
		a.pending = frame.Append(nil, frame.ProtoPAP, req.Append(nil))
		a.tries = 0
		c.authSend(now)
	}
}

// authSend sends the pending frame, again.
func (c *Conn) authSend(now time.Time) {
	a := &c.auth
	a.tries++
	a.due = now.Add(c.cfg.Timers.Restart)
	c.out = append(c.out, Send{Frame: a.pending})
}

// authTimeout retransmits, or fails an authentication that took too long.
func (c *Conn) authTimeout(now time.Time) {
	a := &c.auth
	if c.phase != Authenticate {
		return
	}
	if !a.deadline.IsZero() && !now.Before(a.deadline) {
		a.stop()
		what := "no CHAP Challenge from the peer"
		if a.pending != nil {
			what = fmt.Sprintf("no answer to %d %s", a.tries, map[bool]string{true: "PAP Authenticate-Requests", false: "CHAP Responses"}[c.lcpOpts.authProto == frame.ProtoPAP])
		}
		c.fail(now, fmt.Errorf("%w: %s in %s", ErrAuthTimeout, what, c.cfg.AuthTimeout))
		return
	}
	if a.pending != nil && !a.due.IsZero() && !now.Before(a.due) {
		if a.tries >= c.cfg.Timers.MaxConfigure {
			a.due = time.Time{}
			return
		}
		c.authSend(now)
	}
}

// authenticated ends the authentication phase well.
func (c *Conn) authenticated(now time.Time, msg []byte) {
	c.auth.stop()
	args := []any{"protocol", c.Status().Auth}
	if m := printable(msg); m != "" {
		args = append(args, "message", m)
	}
	c.logf(slog.LevelInfo, "PPP authenticated", args...)
	if c.phase == Authenticate {
		c.networkUp(now)
	}
}

// refused ends the link: the peer refused braid's login.
func (c *Conn) refused(now time.Time, msg []byte) {
	c.auth.stop()
	err := fmt.Errorf("%w (%s)", ErrAuthRefused, c.Status().Auth)
	if m := printable(msg); m != "" {
		err = fmt.Errorf("%w (%s): %q", ErrAuthRefused, c.Status().Auth, m)
	}
	c.fail(now, err)
}

// inputCHAP handles a CHAP packet: Challenges in the authentication
// phase and after it (RFC 1994 section 3 allows challenges at any time),
// Success and Failure of braid's last Response.
func (c *Conn) inputCHAP(b []byte, now time.Time) {
	if c.lcpOpts.authProto != frame.ProtoCHAP {
		return // the peer did not ask for CHAP: discarded
	}
	p, err := frame.ParseCHAP(b)
	if err != nil {
		return
	}
	a := &c.auth
	switch p.Code {
	case frame.CHAPChallenge:
		if len(p.Value) == 0 {
			return
		}
		sum := frame.CHAPMD5(p.ID, c.cfg.Password, p.Value)
		resp := frame.CHAP{Code: frame.CHAPResponse, ID: p.ID, Value: sum[:], Name: []byte(c.cfg.Username)}
		a.id, a.tries = p.ID, 0
		a.pending = frame.Append(nil, frame.ProtoCHAP, resp.Append(nil))
		c.authSend(now)
		if c.phase != Authenticate {
			a.due = time.Time{} // a rechallenge: the authenticator retransmits
		}
	case frame.CHAPSuccess:
		if a.pending == nil || p.ID != a.id {
			return
		}
		c.authenticated(now, p.Message)
	case frame.CHAPFailure:
		if a.pending == nil || p.ID != a.id {
			return
		}
		c.refused(now, p.Message)
	}
}

// inputPAP handles a PAP Authenticate-Ack or -Nak of braid's request.
func (c *Conn) inputPAP(b []byte, now time.Time) {
	if c.lcpOpts.authProto != frame.ProtoPAP || c.phase != Authenticate {
		return
	}
	p, err := frame.ParsePAP(b)
	if err != nil || c.auth.pending == nil || p.ID != c.auth.id {
		return
	}
	switch p.Code {
	case frame.PAPAck:
		c.authenticated(now, p.Message)
	case frame.PAPNak:
		c.refused(now, p.Message)
	}
}
