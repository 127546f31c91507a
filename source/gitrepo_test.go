//go:build !braid_nogit

package source

import (
	"testing"

	"github.com/braid-router/braid/internal/gittest"
)

// newTestRepo makes a repository whose branch main has one commit with
// specs/home.yaml = spec(version). It is made and committed to with go-git
// itself, so making it needs no git binary either.
func newTestRepo(t *testing.T, version string) *gittest.Repo {
	t.Helper()
	return gittest.NewRepo(t, map[string][]byte{"specs/home.yaml": spec(version), "README": []byte("specs\n")})
}

// emptyPath sets PATH to an empty directory for the rest of the test, so
// the code under test cannot run git or git-upload-pack.
func emptyPath(t *testing.T) {
	t.Helper()
	t.Setenv("PATH", t.TempDir())
}
