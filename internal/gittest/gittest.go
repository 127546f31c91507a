// Package gittest gives tests a git repository and real servers for it:
// Debian's sshd (ssh.go) and git http-backend behind a TLS server with a
// CA of the test's own (https.go). The repository is made and committed to
// with go-git, so that needs no git binary; the servers run git's own
// programs on their side, as a forge would.
//
// Servers take a listener, so a test chooses where they listen: Listen
// makes one on the loopback of any network namespace, such as the box a
// braid process under test runs in.
package gittest

import (
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/braid-router/braid/internal/nstest"
	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// RequireBinary is nstest.RequireBinary.
func RequireBinary(t testing.TB, name string) string {
	t.Helper()
	return nstest.RequireBinary(t, name)
}

// Listen listens on an ephemeral TCP port of 127.0.0.1 in the named
// network namespace ("" for the test's own) and closes the listener when
// the test ends. A listener made in a namespace stays there whichever
// thread accepts on it.
func Listen(t testing.TB, ns string) net.Listener {
	t.Helper()
	var ln net.Listener
	listen := func() (err error) {
		ln, err = net.Listen("tcp", "127.0.0.1:0")
		return err
	}
	if ns == "" {
		if err := listen(); err != nil {
			t.Fatal(err)
		}
	} else {
		nstest.Do(t, ns, listen)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// Repo is a repository with a work tree on branch main.
type Repo struct {
	t testing.TB
	// Dir is the work tree (its .git inside).
	Dir  string
	Repo *git.Repository
	// When is the time of the last commit; each commit is a minute after
	// the previous one.
	When time.Time
}

// NewRepo makes a repository named "repo" in a temporary directory whose
// branch main has one commit with files.
func NewRepo(t testing.TB, files map[string][]byte) *Repo {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "repo")
	repo, err := git.PlainInitWithOptions(dir, &git.PlainInitOptions{
		InitOptions: git.InitOptions{DefaultBranch: plumbing.NewBranchReferenceName("main")},
	})
	if err != nil {
		t.Fatal(err)
	}
	r := &Repo{t: t, Dir: dir, Repo: repo, When: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	r.Commit(files)
	return r
}

// Commit writes files (nil data removes one) and commits them, returning
// the commit's hash.
func (r *Repo) Commit(files map[string][]byte) plumbing.Hash {
	r.t.Helper()
	wt, err := r.Repo.Worktree()
	if err != nil {
		r.t.Fatal(err)
	}
	for name, data := range files {
		p := filepath.Join(r.Dir, name)
		if data == nil {
			if _, err := wt.Remove(name); err != nil {
				r.t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			r.t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			r.t.Fatal(err)
		}
		if _, err := wt.Add(name); err != nil {
			r.t.Fatal(err)
		}
	}
	r.When = r.When.Add(time.Minute)
	sig := &object.Signature{Name: "test", Email: "test@example.com", When: r.When}
	h, err := wt.Commit("test commit", &git.CommitOptions{Author: sig, Committer: sig, AllowEmptyCommits: true})
	if err != nil {
		r.t.Fatal(err)
	}
	return h
}

// Head returns the commit main points to.
func (r *Repo) Head() plumbing.Hash {
	r.t.Helper()
	h, err := r.Repo.Head()
	if err != nil {
		r.t.Fatal(err)
	}
	return h.Hash()
}

// Tag makes an annotated tag of commit h.
func (r *Repo) Tag(name string, h plumbing.Hash) {
	r.t.Helper()
	sig := &object.Signature{Name: "test", Email: "test@example.com", When: r.When}
	if _, err := r.Repo.CreateTag(name, h, &git.CreateTagOptions{Tagger: sig, Message: name}); err != nil {
		r.t.Fatal(err)
	}
}
