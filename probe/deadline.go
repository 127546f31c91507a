package probe

import (
	"context"
	"errors"
	"os"
	"time"
)

// deadlineConn is a socket whose reads and writes can be given a
// deadline.
type deadlineConn interface {
	SetDeadline(time.Time) error
}

// deadlineFromContext makes c's reads and writes end when ctx does: at
// its deadline, or at once when it is cancelled. The returned function
// stops following ctx.
func deadlineFromContext(ctx context.Context, c deadlineConn) (stop func()) {
	if d, ok := ctx.Deadline(); ok {
		c.SetDeadline(d)
	}
	// Registered after the deadline is set, so that a cancellation is
	// never overwritten by it.
	s := context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
	return func() { s() }
}

// ctxErr reports a socket's deadline as the context's error, whose
// deadline it is, so that callers can tell a probe that timed out
// (context.DeadlineExceeded) from one that failed.
func ctxErr(ctx context.Context, err error) error {
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		return err
	}
	if cerr := ctx.Err(); cerr != nil {
		return cerr
	}
	return context.DeadlineExceeded
}
