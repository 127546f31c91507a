// Package source is where the daemon gets its spec from, and when it
// changed.
//
// A Source is either a file on the box (File) or a file in a git
// repository (Git). Load returns the current Revision: the spec's bytes and
// an ID that changes exactly when the content (file) or the commit (git)
// does. Watch calls back, debounced, whenever the spec may have changed; the
// caller then calls Load and compares IDs. The two are independent: Load
// may be called at any time (at start, on SIGHUP, after a notification),
// and a notification is only a hint, so a caller that loads and finds the
// same ID has nothing to do.
//
// The intended use, in a daemon:
//
//	src, err := source.NewFile(path, source.FileOptions{Log: log})
//	...
//	changed := make(chan struct{}, 1)
//	go src.Watch(ctx, func() {
//		select {
//		case changed <- struct{}{}:
//		default: // a pass is already pending
//		}
//	})
//	for {
//		rev, err := src.Load(ctx) // apply rev unless rev.ID is the last one applied
//		...
//		select {
//		case <-changed:
//		case <-ctx.Done():
//			return
//		}
//	}
//
// Neither source parses the spec: Revision.Data is handed to api.Parse with
// Revision.Name as the file name, so errors point at the file, or at the
// commit and path in the repository.
package source

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/braid-router/braid/api"
)

// Revision is one version of the spec.
type Revision struct {
	// ID identifies the content: "sha256:" and the hex SHA-256 of Data for
	// a file, the full commit hash for git. Equal IDs mean the same spec.
	ID string
	// Data is the spec file's bytes, at most api.MaxFileSize.
	Data []byte
	// Name is what error messages call the spec: the file's path as
	// given, or "URL@commit:path" for git (the URL without credentials,
	// the commit abbreviated to 12 hex digits).
	Name string
	// Time is when the file was read, or the commit's committer time.
	Time time.Time
}

// Source is where a spec comes from. Its methods may be called from
// several goroutines at once.
type Source interface {
	// String describes the source for logs and status, without secrets:
	// "file /etc/braid/home.yaml" or
	// "git https://host/repo.git ref main path specs/home.yaml".
	String() string
	// Load returns the current revision. A git source fetches first, so
	// Load can take as long as the network does; ctx bounds it.
	Load(ctx context.Context) (Revision, error)
	// Watch calls changed, from its own goroutine and never twice at
	// once, whenever the spec may have changed, until ctx ends; it then
	// returns nil. It returns an error only when watching cannot start.
	// Notifications are debounced: a burst of changes is one call.
	Watch(ctx context.Context, changed func()) error
}

var (
	_ Source = (*File)(nil)
	_ Source = (*Git)(nil)
)

// contentID is the Revision ID of a file's content.
func contentID(data []byte) string {
	sum := sha256.Sum256(data)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// readLimited reads r to the end, failing when it holds more than
// api.MaxFileSize bytes (the spec parser's limit).
func readLimited(r io.Reader) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, api.MaxFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > api.MaxFileSize {
		return nil, ErrTooLarge
	}
	return data, nil
}

// ErrTooLarge is wrapped by the error Load returns for a spec file larger
// than api.MaxFileSize, the spec parser's limit.
var ErrTooLarge = fmt.Errorf("larger than %d bytes, the spec size limit", api.MaxFileSize)

// logger returns l, or a logger that discards everything when l is nil.
func logger(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}
