package source

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
)

// DefaultDebounce is how long Watch waits, by default, for a burst of file
// system events to end before it looks at the spec: one editor save, one
// symlink swap or one git checkout is a burst of several events.
const DefaultDebounce = 20 * time.Millisecond

// maxSymlinks bounds symlink resolution, as the kernel's ELOOP does.
const maxSymlinks = 40

// FileOptions configures a File source.
type FileOptions struct {
	// Debounce is how long Watch waits after the last relevant event of a
	// burst before it looks at the file; 0 means DefaultDebounce. A burst
	// that goes on is cut after 25 times this long, so a busy directory
	// cannot postpone a change forever.
	Debounce time.Duration
	// Log receives Watch's warnings (a directory that cannot be watched,
	// an overflowing event queue); nil discards them.
	Log *slog.Logger
}

// File is a spec in a file on the box.
//
// Load follows symlinks, so the path may be a symlink to the file, or lie
// under symlinked directories (a Kubernetes ConfigMap volume, where
// home.yaml -> ..data/home.yaml and ..data -> ..2026_01_02_..., or a
// deployment's current -> releases/N). Watch watches directories, not the
// file, so every way of changing the spec is seen: writing it in place,
// renaming a new file over it (what editors do), swapping any symlink on
// the way to it (ln -sfn), and git checkout in its directory.
//
// The Revision ID is the SHA-256 of the content: rewriting the same bytes
// keeps the ID, and Watch does not report it.
type File struct {
	name     string // as given, for messages
	path     string // absolute and clean
	debounce time.Duration
	log      *slog.Logger

	mu sync.Mutex
	// known is the state of the file last returned by Load or reported
	// by Watch: a Revision ID, or "!" and an error; "" before either.
	// Watch reports a change only when the file's state differs from it.
	known string
}

// NewFile returns the source for the spec file at path. The file need not
// exist yet: Load fails until it does, and Watch reports when it appears.
func NewFile(path string, opts FileOptions) (*File, error) {
	if path == "" {
		return nil, errors.New("file source: no path given")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("file source %s: %w", path, err)
	}
	if opts.Debounce < 0 {
		return nil, fmt.Errorf("file source %s: negative debounce %v", path, opts.Debounce)
	}
	if opts.Debounce == 0 {
		opts.Debounce = DefaultDebounce
	}
	return &File{name: path, path: abs, debounce: opts.Debounce, log: logger(opts.Log)}, nil
}

// String returns "file PATH".
func (f *File) String() string { return "file " + f.name }

// Path returns the file's absolute path, as Watch watches it (before
// symlinks are resolved).
func (f *File) Path() string { return f.path }

// Load reads the file, following symlinks. A missing file is an error that
// wraps fs.ErrNotExist; a file larger than api.MaxFileSize one that wraps
// ErrTooLarge.
func (f *File) Load(ctx context.Context) (Revision, error) {
	if err := ctx.Err(); err != nil {
		return Revision{}, err
	}
	data, err := f.read()
	f.mu.Lock()
	f.known = state(data, err)
	f.mu.Unlock()
	if err != nil {
		return Revision{}, err
	}
	return Revision{ID: contentID(data), Data: data, Name: f.name, Time: time.Now()}, nil
}

// read reads the spec file.
func (f *File) read() ([]byte, error) {
	// Stat first: opening a FIFO for reading would block.
	st, err := os.Stat(f.path)
	if err == nil && !st.Mode().IsRegular() {
		return nil, fmt.Errorf("spec file %s: not a regular file (%v)", f.name, st.Mode().Type())
	}
	var fh *os.File
	if err == nil {
		fh, err = os.Open(f.path)
	}
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("spec file %s does not exist: %w", f.name, err)
	}
	if err != nil {
		return nil, fmt.Errorf("spec file %s: %w", f.name, err)
	}
	defer fh.Close()
	data, err := readLimited(fh)
	if err != nil {
		return nil, fmt.Errorf("spec file %s: %w", f.name, err)
	}
	return data, nil
}

// state is what Watch compares: the content's ID, or the error.
func state(data []byte, err error) string {
	if err != nil {
		return "!" + err.Error()
	}
	return contentID(data)
}

// Watch calls changed whenever the file's content differs from what Load
// last returned (or from what Watch last reported), including when it
// appears, disappears or becomes unreadable. It looks once when it starts,
// so a change between Load and Watch is not lost; if Load was never
// called, that first look reports a change.
//
// Only one Watch should run per File at a time.
func (f *File) Watch(ctx context.Context, changed func()) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch spec file %s: %w", f.name, err)
	}
	defer w.Close()
	ws := &watchSet{w: w, log: f.log, name: f.name, points: map[string]map[string]bool{}}

	check := func() {
		// Resolve again first: a swap may have moved the file to
		// directories not watched yet. Anything that changes after
		// this is an event; anything before, the read below sees.
		ws.sync(f.path)
		data, err := f.read()
		st := state(data, err)
		f.mu.Lock()
		diff := st != f.known
		f.known = st
		f.mu.Unlock()
		if diff {
			changed()
		}
	}
	check()

	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	var burstStart time.Time // zero when no burst is pending
	maxWait := 25 * f.debounce
	arm := func() {
		now := time.Now()
		if burstStart.IsZero() {
			burstStart = now
		}
		wait := f.debounce
		if left := maxWait - now.Sub(burstStart); left < wait {
			wait = max(left, 0)
		}
		timer.Reset(wait)
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return fmt.Errorf("watch spec file %s: watcher closed", f.name)
			}
			if ws.relevant(ev.Name) {
				arm()
			}
		case err, ok := <-w.Errors:
			if !ok {
				return fmt.Errorf("watch spec file %s: watcher closed", f.name)
			}
			// An overflow loses events: look, to be sure.
			f.log.Warn("watching spec file", "file", f.name, "err", err)
			arm()
		case <-timer.C:
			burstStart = time.Time{}
			check()
		}
	}
}

// watchSet keeps an fsnotify watcher on the directories that decide what
// a path names, and tells the events that matter from the others.
type watchSet struct {
	w    *fsnotify.Watcher
	log  *slog.Logger
	name string
	// points maps each watched directory to the entry names in it that
	// matter.
	points map[string]map[string]bool
}

// sync watches the directories that path's resolution goes through now,
// and stops watching the ones it no longer does.
func (ws *watchSet) sync(path string) {
	want := watchPoints(path)
	for dir := range ws.points {
		if _, ok := want[dir]; !ok {
			ws.w.Remove(dir) // it may be gone already
		}
	}
	for dir := range want {
		// Add every time: a directory removed and made again under the
		// same name is a new inode, and needs a new watch.
		if err := ws.w.Add(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
			ws.log.Warn("cannot watch directory of spec file", "file", ws.name, "dir", dir, "err", err)
		}
	}
	ws.points = want
}

// relevant says whether an event on name can change what the path names:
// it is an entry that matters in a watched directory, or a watched
// directory itself (removed or moved).
func (ws *watchSet) relevant(name string) bool {
	if _, ok := ws.points[name]; ok {
		return true
	}
	return ws.points[filepath.Dir(name)][filepath.Base(name)]
}

// watchPoints resolves path as the kernel would, and returns the
// directories whose entries decide what it names, each with the entry
// names that matter in it:
//   - the directory holding each symlink met on the way (a swapped link
//     is an event there), with the link's name;
//   - the directory holding the file, with the file's name (in-place
//     writes, renames over it, git checkout), and that directory's parent,
//     with the directory's name (the directory renamed or replaced);
//   - when a component is missing, the deepest existing directory, with
//     the missing name (it appears).
func watchPoints(path string) map[string]map[string]bool {
	points := map[string]map[string]bool{}
	add := func(dir, name string) {
		if points[dir] == nil {
			points[dir] = map[string]bool{}
		}
		points[dir][name] = true
	}
	resolved := "/"
	rest := strings.Split(filepath.Clean(path), "/")
	for links := 0; len(rest) > 0; {
		c := rest[0]
		rest = rest[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			resolved = filepath.Dir(resolved)
			continue
		}
		next := filepath.Join(resolved, c)
		fi, err := os.Lstat(next)
		if err != nil {
			add(resolved, c) // missing (or unreadable): watch for it to appear
			return points
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			add(resolved, c)
			links++
			target, err := os.Readlink(next)
			if err != nil || links > maxSymlinks {
				return points
			}
			if filepath.IsAbs(target) {
				resolved = "/"
			}
			rest = append(strings.Split(target, "/"), rest...)
			continue
		}
		if len(rest) == 0 {
			add(resolved, c)
			if resolved != "/" {
				add(filepath.Dir(resolved), filepath.Base(resolved))
			}
			return points
		}
		resolved = next
	}
	// The path resolved to "/" itself; nothing sensible to watch but it.
	add("/", ".")
	return points
}
