//go:build !braid_nogit

package source

import (
	"errors"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing/storer"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/plumbing/transport/client"
	"github.com/go-git/go-git/v5/plumbing/transport/server"
)

// How a Git source reaches its repository.
//
// go-git picks the transport for a URL from one process-wide table,
// client.Protocols, and its Remote.Fetch and Remote.List offer no way to
// pass a transport per call. Two of its defaults do not suit a router:
// file:// execs git-upload-pack (there is no git binary on a router), and
// https:// can only add a CA bundle to the system's roots (braid trusts
// only --git-ca-file when it is given).
//
// Rather than replace go-git's defaults for the whole process, braid
// installs, once, a dispatcher in front of each of them (init below: the
// only write to that table, made before main runs, so no fetch can race
// it). The dispatcher looks at the AuthMethod of each session: a fetch by a
// Git source carries a *routed auth that names the source's own transport
// and its real credentials, and goes there; any other go-git user in the
// process gets go-git's own transport as before. So each Git source has its
// transports, built from its options (its own TLS roots, its own
// known_hosts), and nothing global changes behaviour.

func init() {
	for _, scheme := range []string{"file", "ssh", "http", "https"} {
		client.InstallProtocol(scheme, &dispatcher{fallback: client.Protocols[scheme]})
	}
}

// dispatcher sends a session to the transport its routed auth names, or
// to go-git's default for the scheme.
type dispatcher struct {
	fallback transport.Transport
}

func (d *dispatcher) pick(auth transport.AuthMethod) (transport.Transport, transport.AuthMethod, error) {
	if r, ok := auth.(*routed); ok {
		return r.transport, r.auth, nil
	}
	if d.fallback == nil {
		return nil, nil, transport.ErrInvalidAuthMethod
	}
	return d.fallback, auth, nil
}

// NewUploadPackSession implements transport.Transport.
func (d *dispatcher) NewUploadPackSession(ep *transport.Endpoint, auth transport.AuthMethod) (transport.UploadPackSession, error) {
	t, a, err := d.pick(auth)
	if err != nil {
		return nil, err
	}
	return t.NewUploadPackSession(ep, a)
}

// NewReceivePackSession implements transport.Transport. braid never
// pushes; this serves other go-git users.
func (d *dispatcher) NewReceivePackSession(ep *transport.Endpoint, auth transport.AuthMethod) (transport.ReceivePackSession, error) {
	t, a, err := d.pick(auth)
	if err != nil {
		return nil, err
	}
	return t.NewReceivePackSession(ep, a)
}

// routed is the AuthMethod a Git source hands go-git: the transport to use
// and the credentials for it (nil for none).
type routed struct {
	transport transport.Transport
	auth      transport.AuthMethod
}

// Name implements transport.AuthMethod.
func (r *routed) Name() string {
	if r.auth != nil {
		return r.auth.Name()
	}
	return "none"
}

// String implements transport.AuthMethod; like go-git's own methods, it
// never shows a secret.
func (r *routed) String() string {
	if r.auth != nil {
		return r.auth.String()
	}
	return "no credentials"
}

// newFileTransport serves file:// URLs inside the process: go-git's
// server, reading the repository at the URL's path with go-git's own
// storage, with nothing executed. It fetches whole history: go-git's
// server does not implement shallow requests.
func newFileTransport() transport.Transport {
	return server.NewClient(repoLoader{})
}

// repoLoader opens the repository at an endpoint's path as git would: a
// bare repository, or a work tree with its .git directory (or .git file,
// for linked work trees). go-git's own server.NewFilesystemLoader reads a
// work tree's root as if it were the .git directory, and finds nothing.
type repoLoader struct{}

// Load implements server.Loader.
func (repoLoader) Load(ep *transport.Endpoint) (storer.Storer, error) {
	r, err := git.PlainOpenWithOptions(ep.Path, &git.PlainOpenOptions{EnableDotGitCommonDir: true})
	if errors.Is(err, git.ErrRepositoryNotExists) {
		return nil, transport.ErrRepositoryNotFound
	}
	if err != nil {
		return nil, err
	}
	return r.Storer, nil
}
