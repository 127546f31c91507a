//go:build braid_nogit

package source

import (
	"context"
	"errors"
)

// ErrNoGit is NewGit's error in a braid built with the braid_nogit tag
// (the small builds for router CPUs: go-git and its ssh and https clients
// weigh about 2.4 MB).
var ErrNoGit = errors.New("this braid was built without Git sources (build tag braid_nogit): use -f FILE, or a full build")

// Git is a spec file in a git repository; this build cannot read one.
type Git struct{}

// NewGit returns ErrNoGit.
func NewGit(GitOptions) (*Git, error) { return nil, ErrNoGit }

// String implements Source.
func (*Git) String() string { return "git (not built)" }

// Load implements Source.
func (*Git) Load(context.Context) (Revision, error) { return Revision{}, ErrNoGit }

// Watch implements Source.
func (*Git) Watch(context.Context, func()) error { return ErrNoGit }
