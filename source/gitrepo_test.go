package source

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// testRepo is a repository with a work tree, made and committed to with
// go-git itself, so making it needs no git binary either.
type testRepo struct {
	t    *testing.T
	dir  string
	repo *git.Repository
	when time.Time
}

// newTestRepo makes a repository whose branch main has one commit with
// specs/home.yaml = spec(version).
func newTestRepo(t *testing.T, version string) *testRepo {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "repo")
	repo, err := git.PlainInitWithOptions(dir, &git.PlainInitOptions{
		InitOptions: git.InitOptions{DefaultBranch: plumbing.NewBranchReferenceName("main")},
	})
	if err != nil {
		t.Fatal(err)
	}
	r := &testRepo{t: t, dir: dir, repo: repo, when: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	r.commit(map[string][]byte{"specs/home.yaml": spec(version), "README": []byte("specs\n")})
	return r
}

// commit writes files (nil data removes one) and commits them, returning
// the commit's hash. Each commit is a minute after the previous one.
func (r *testRepo) commit(files map[string][]byte) plumbing.Hash {
	r.t.Helper()
	wt, err := r.repo.Worktree()
	if err != nil {
		r.t.Fatal(err)
	}
	for name, data := range files {
		p := filepath.Join(r.dir, name)
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
	r.when = r.when.Add(time.Minute)
	sig := &object.Signature{Name: "test", Email: "test@example.com", When: r.when}
	h, err := wt.Commit("test commit", &git.CommitOptions{Author: sig, Committer: sig, AllowEmptyCommits: true})
	if err != nil {
		r.t.Fatal(err)
	}
	return h
}

// tag makes an annotated tag.
func (r *testRepo) tag(name string, h plumbing.Hash) {
	r.t.Helper()
	sig := &object.Signature{Name: "test", Email: "test@example.com", When: r.when}
	if _, err := r.repo.CreateTag(name, h, &git.CreateTagOptions{Tagger: sig, Message: name}); err != nil {
		r.t.Fatal(err)
	}
}

// emptyPath sets PATH to an empty directory for the rest of the test, so
// the code under test cannot run git or git-upload-pack.
func emptyPath(t *testing.T) {
	t.Helper()
	t.Setenv("PATH", t.TempDir())
}
