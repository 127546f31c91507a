//go:build !braid_nogit

package source

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/braid-router/braid/api"
	"github.com/braid-router/braid/internal/nstest"
	"github.com/go-git/go-git/v5/plumbing"
)

func newGit(t *testing.T, opts GitOptions) *Git {
	t.Helper()
	g, err := NewGit(opts)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// checkRev checks a revision of the test repository.
func checkRev(t *testing.T, rev Revision, url string, h plumbing.Hash, data []byte) {
	t.Helper()
	if rev.ID != h.String() {
		t.Errorf("Revision.ID = %s, want commit %s", rev.ID, h)
	}
	if !bytes.Equal(rev.Data, data) {
		t.Errorf("Revision.Data = %q, want %q", rev.Data, data)
	}
	if want := url + "@" + h.String()[:12] + ":specs/home.yaml"; rev.Name != want {
		t.Errorf("Revision.Name = %q, want %q", rev.Name, want)
	}
	if rev.Time.IsZero() {
		t.Error("Revision.Time is zero")
	}
}

func TestNewGitOptions(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "key")
	known := filepath.Join(dir, "known_hosts")
	write(t, key, []byte("not a key"))
	write(t, known, nil)
	for _, tc := range []struct {
		name string
		opts GitOptions
		want string
	}{
		{"no URL", GitOptions{Path: "a.yaml"}, "no URL"},
		{"no path", GitOptions{URL: "file:///r"}, "no path"},
		{"absolute path", GitOptions{URL: "file:///r", Path: "/a.yaml"}, "relative"},
		{"path up", GitOptions{URL: "file:///r", Path: "../a.yaml"}, "relative"},
		{"bad ref", GitOptions{URL: "file:///r", Path: "a.yaml", Ref: "a..b"}, "ref"},
		{"http", GitOptions{URL: "http://h/r.git", Path: "a.yaml"}, "plain http"},
		{"git protocol", GitOptions{URL: "git://h/r.git", Path: "a.yaml"}, "unsupported scheme"},
		{"password", GitOptions{URL: "https://u:hunter2@h/r.git", Path: "a.yaml"}, "password"},
		{"ssh without key", GitOptions{URL: "ssh://git@h/r.git", Path: "a.yaml", KnownHostsFile: known}, "--git-ssh-key"},
		{"ssh without known hosts", GitOptions{URL: "git@h:r.git", Path: "a.yaml", SSHKeyFile: key}, "--git-known-hosts"},
		{"ssh bad key", GitOptions{URL: "ssh://git@h/r.git", Path: "a.yaml", SSHKeyFile: key, KnownHostsFile: known}, "ssh key " + key},
		{"ssh with token", GitOptions{URL: "ssh://git@h/r.git", Path: "a.yaml", SSHKeyFile: key, KnownHostsFile: known, TokenFile: key}, "for https"},
		{"https with ssh key", GitOptions{URL: "https://h/r.git", Path: "a.yaml", SSHKeyFile: key}, "ssh key"},
		{"https missing token", GitOptions{URL: "https://h/r.git", Path: "a.yaml", TokenFile: filepath.Join(dir, "nope")}, "token file"},
		{"https empty token", GitOptions{URL: "https://h/r.git", Path: "a.yaml", TokenFile: known}, "empty"},
		{"https bad CA", GitOptions{URL: "https://h/r.git", Path: "a.yaml", CAFile: key}, "no PEM"},
		{"file with token", GitOptions{URL: "file:///r", Path: "a.yaml", TokenFile: key}, "file URL"},
	} {
		_, err := NewGit(tc.opts)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: NewGit error %v, want one containing %q", tc.name, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%s: the error shows the password: %v", tc.name, err)
		}
	}

	g := newGit(t, GitOptions{URL: "https://git.example.net/x/specs.git", Path: "./specs/home.yaml"})
	if got, want := g.String(), "git https://git.example.net/x/specs.git ref main path specs/home.yaml"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	g = newGit(t, GitOptions{URL: "/srv/specs", Path: "home.yaml", Ref: "refs/tags/v1"})
	if got, want := g.String(), "git /srv/specs ref v1 path home.yaml"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}

// TestGitFile fetches over file:// with no git binary on PATH, into
// memory and into a cache directory.
func TestGitFile(t *testing.T) {
	for _, cache := range []string{"memory", "dir"} {
		t.Run(cache, func(t *testing.T) {
			r := newTestRepo(t, "1")
			emptyPath(t)
			url := "file://" + r.Dir
			opts := GitOptions{URL: url, Path: "specs/home.yaml", Interval: 50 * time.Millisecond}
			if cache == "dir" {
				opts.Dir = filepath.Join(t.TempDir(), "git")
			}
			g := newGit(t, opts)
			c1 := r.Head()
			rev := load(t, g)
			checkRev(t, rev, url, c1, spec("1"))
			if !rev.Time.Equal(r.When) {
				t.Errorf("Revision.Time = %v, want the commit's %v", rev.Time, r.When)
			}

			w := watch(t, g)
			w.expect(t, 0, "no new commit")
			r.Commit(map[string][]byte{"README": []byte("other\n")})
			c2 := r.Commit(map[string][]byte{"specs/home.yaml": spec("2")})
			// Two commits inside one poll are one notification, across
			// two polls two: at least one, whatever the load.
			w.changed(t, "two new commits")
			checkRev(t, load(t, g), url, c2, spec("2"))
			// A poll that read the head before the load may still
			// report it; then nothing more.
			w.changed0or1(t, "loaded")

			// A commit that does not touch the spec is still a new
			// revision: the ID is the commit.
			c3 := r.Commit(map[string][]byte{"README": []byte("again\n")})
			w.changed(t, "commit of another file")
			checkRev(t, load(t, g), url, c3, spec("2"))

			if cache == "dir" {
				// A second source (a restarted daemon) on the same
				// cache; then a cache broken under it is rebuilt.
				var logs nstest.SyncBuffer
				opts.Log = slogTo(&logs)
				g2 := newGit(t, opts)
				checkRev(t, load(t, g2), url, c3, spec("2"))
				entries, err := os.ReadDir(opts.Dir)
				if err != nil || len(entries) != 1 {
					t.Fatalf("cache dir: %v %v, want one repository", entries, err)
				}
				repo := filepath.Join(opts.Dir, entries[0].Name())
				if err := os.RemoveAll(filepath.Join(repo, "objects")); err != nil {
					t.Fatal(err)
				}
				c4 := r.Commit(map[string][]byte{"specs/home.yaml": spec("4")})
				checkRev(t, load(t, g2), url, c4, spec("4"))
				write(t, filepath.Join(repo, "config"), []byte("[core\n\x00garbage"))
				c5 := r.Commit(map[string][]byte{"specs/home.yaml": spec("5")})
				checkRev(t, load(t, g2), url, c5, spec("5"))
				if !strings.Contains(logs.String(), "fetching again from scratch") {
					t.Errorf("a broken cache was not reported: log %q", logs.String())
				}
			}
		})
	}
}

func TestGitFileErrors(t *testing.T) {
	r := newTestRepo(t, "1")
	emptyPath(t)
	url := "file://" + r.Dir
	ctx := context.Background()

	_, err := newGit(t, GitOptions{URL: url, Path: "specs/nope.yaml"}).Load(ctx)
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), url+"@") || !strings.Contains(err.Error(), "specs/nope.yaml") {
		t.Errorf("missing file: %v, want a not-exist error naming URL@commit:path", err)
	}
	_, err = newGit(t, GitOptions{URL: url, Path: "specs"}).Load(ctx)
	if err == nil || !strings.Contains(err.Error(), "not a file") {
		t.Errorf("a directory: %v", err)
	}
	_, err = newGit(t, GitOptions{URL: url, Path: "specs/home.yaml", Ref: "prod"}).Load(ctx)
	if !errors.Is(err, plumbing.ErrReferenceNotFound) || !strings.Contains(err.Error(), "refs/heads/prod") ||
		!strings.Contains(err.Error(), "it has: main") || !strings.Contains(err.Error(), url) {
		t.Errorf("missing ref: %v", err)
	}
	_, err = newGit(t, GitOptions{URL: "file://" + t.TempDir(), Path: "a.yaml"}).Load(ctx)
	if err == nil || !strings.Contains(err.Error(), "list references") {
		t.Errorf("not a repository: %v", err)
	}

	r.Commit(map[string][]byte{"specs/home.yaml": bytes.Repeat([]byte("#"), api.MaxFileSize+1)})
	_, err = newGit(t, GitOptions{URL: url, Path: "specs/home.yaml"}).Load(ctx)
	if !errors.Is(err, ErrTooLarge) {
		t.Errorf("oversized file: %v, want ErrTooLarge", err)
	}

	// Watch before any Load: the first poll is a change.
	g := newGit(t, GitOptions{URL: url, Path: "specs/home.yaml", Interval: 50 * time.Millisecond})
	w := watch(t, g)
	w.expect(t, 1, "first poll without Load")
}

// TestGitTag follows an annotated tag, peeled to its commit.
func TestGitTag(t *testing.T) {
	r := newTestRepo(t, "1")
	emptyPath(t)
	head := r.Head()
	r.Tag("v1", head)
	g := newGit(t, GitOptions{URL: "file://" + r.Dir, Path: "specs/home.yaml", Ref: "refs/tags/v1"})
	rev := load(t, g)
	if rev.ID != head.String() || !bytes.Equal(rev.Data, spec("1")) {
		t.Errorf("Load of a tag: %s %q, want commit %s", rev.ID, rev.Data, head)
	}
}
