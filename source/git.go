//go:build !braid_nogit

package source

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"
	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
	"github.com/go-git/go-git/v5/storage"
	"github.com/go-git/go-git/v5/storage/memory"
	"github.com/skeema/knownhosts"
	"golang.org/x/crypto/ssh"
)

// fetchedRef is where the fetched commit is kept in the clone cache.
const fetchedRef = plumbing.ReferenceName("refs/braid/spec")

// Git is a spec file in a git repository: the file at Path in the commit
// Ref points to. Load fetches (a shallow, single-ref fetch into the clone
// cache) and returns that file with the commit hash as its ID. Watch asks
// the remote where Ref points every Interval (listing references only, no
// fetch) and notifies when that is not what Load last returned.
//
// No git binary is needed for any transport: file:// is served inside the
// process (see transport.go), ssh and https are go-git's own clients.
// Files named in the options are read again for every operation, so a
// rotated key, token or CA takes effect without a restart.
type Git struct {
	url      string // as given; never holds a password
	endpoint *transport.Endpoint
	ref      plumbing.ReferenceName
	path     string
	interval time.Duration
	timeout  time.Duration
	dir      string // this URL's cache, or "" for memory
	opts     GitOptions
	log      *slog.Logger

	// transport is this source's own transport for its scheme.
	transport transport.Transport

	mu sync.Mutex // serializes Load and the cache; guards mem
	// mem is the in-memory clone when Dir is "".
	mem *memory.Storage

	knownMu sync.Mutex // held only briefly, so Watch never waits for a Load
	// known is the remote's hash for Ref as of the last successful Load:
	// the ref's object, not necessarily a commit (an annotated tag).
	known plumbing.Hash
}

// NewGit checks the options and returns the source. It reads the
// credential files once to report mistakes early, and touches neither the
// network nor Dir.
func NewGit(opts GitOptions) (*Git, error) {
	if opts.URL == "" {
		return nil, errors.New("git source: no URL given")
	}
	ep, err := transport.NewEndpoint(opts.URL)
	if err != nil {
		return nil, fmt.Errorf("git source %s: %w", redactURL(opts.URL), err)
	}
	g := &Git{url: opts.URL, endpoint: ep, opts: opts, log: logger(opts.Log)}
	fail := func(format string, args ...any) (*Git, error) {
		return nil, fmt.Errorf("git source %s: %s", redactURL(opts.URL), fmt.Sprintf(format, args...))
	}
	if ep.Password != "" {
		return fail("a password in the URL is not accepted (it would show in process lists and logs): put the token in a file and give --git-token-file")
	}

	if opts.Ref == "" {
		opts.Ref = DefaultGitRef
	}
	g.ref = plumbing.ReferenceName(opts.Ref)
	if !strings.HasPrefix(opts.Ref, "refs/") {
		g.ref = plumbing.NewBranchReferenceName(opts.Ref)
	}
	if err := g.ref.Validate(); err != nil {
		return fail("ref %q: %v", opts.Ref, err)
	}

	if opts.Path == "" {
		return fail("no path of the spec file in the repository given")
	}
	p := path.Clean(strings.TrimPrefix(opts.Path, "./"))
	if path.IsAbs(p) || p == "." || p == ".." || strings.HasPrefix(p, "../") {
		return fail("path %q: want a file path relative to the repository's root", opts.Path)
	}
	g.path = p

	g.interval, g.timeout = opts.Interval, opts.Timeout
	if g.interval == 0 {
		g.interval = DefaultGitInterval
	}
	if g.timeout == 0 {
		g.timeout = DefaultGitTimeout
	}
	if g.interval < 0 || g.timeout < 0 {
		return fail("negative interval or timeout")
	}

	if opts.Dir != "" {
		abs, err := filepath.Abs(opts.Dir)
		if err != nil {
			return fail("cache dir: %v", err)
		}
		sum := sha256.Sum256([]byte(opts.URL))
		g.dir = filepath.Join(abs, hex.EncodeToString(sum[:8]))
	}

	sshOpts := opts.SSHKeyFile != "" || opts.KnownHostsFile != ""
	httpsOpts := opts.TokenFile != "" || opts.CAFile != ""
	switch ep.Protocol {
	case "file":
		if sshOpts || httpsOpts {
			return fail("ssh or https credentials given for a file URL")
		}
		g.transport = newFileTransport()
	case "ssh":
		if httpsOpts {
			return fail("a token or CA file given for an ssh URL (they are for https)")
		}
		if opts.SSHKeyFile == "" {
			return fail("ssh needs a private key: give --git-ssh-key")
		}
		if opts.KnownHostsFile == "" {
			return fail("ssh needs the server's host key: give --git-known-hosts (host keys are always verified)")
		}
		g.transport = gitssh.DefaultClient
	case "https":
		if sshOpts {
			return fail("an ssh key or known_hosts file given for an https URL")
		}
		g.transport = githttp.NewClient(&http.Client{Transport: &routedRoots{g: g}})
	case "http":
		return fail("plain http is not accepted (nothing would authenticate the server, and a token would travel in clear): use https")
	default:
		return fail("unsupported scheme %q: use https, ssh or file", ep.Protocol)
	}

	// Read every file once now, so a typo fails at start.
	if _, err := g.auth(); err != nil {
		return nil, err
	}
	if ep.Protocol == "https" {
		if _, err := g.tlsConfig(); err != nil {
			return nil, err
		}
	}
	g.opts = opts
	return g, nil
}

// String returns "git URL ref REF path PATH".
func (g *Git) String() string {
	return fmt.Sprintf("git %s ref %s path %s", redactURL(g.url), g.ref.Short(), g.path)
}

// errorf makes an error that names the source's URL (without credentials).
func (g *Git) errorf(format string, args ...any) error {
	return fmt.Errorf("git %s: "+format, append([]any{redactURL(g.url)}, args...)...)
}

// Load fetches Ref and returns the spec file in the commit it points to,
// with the full commit hash as ID. When the remote has not moved since the
// last Load, nothing is fetched. A cache found broken is removed and
// fetched again once. A missing file in the commit wraps fs.ErrNotExist; a
// file larger than api.MaxFileSize wraps ErrTooLarge.
func (g *Git) Load(ctx context.Context) (Revision, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()

	remote, err := g.remoteHash(ctx)
	if err != nil {
		return Revision{}, err
	}
	rev, got, fixable, err := g.load(ctx, remote)
	if err != nil && fixable && ctx.Err() == nil {
		g.log.Warn("git cache unusable; fetching again from scratch", "source", g.String(), "err", err)
		if rerr := g.resetCache(); rerr != nil {
			return Revision{}, errors.Join(err, rerr)
		}
		rev, got, _, err = g.load(ctx, remote)
	}
	if err != nil {
		return Revision{}, err
	}
	g.knownMu.Lock()
	g.known = got
	g.knownMu.Unlock()
	return rev, nil
}

// load brings the object remote names into the cache, unless it is there,
// and reads the spec from it. It returns the ref's hash it read (the ref
// may have moved since it was listed). fixable says the failure may be the
// cache's, and worth one more try with a fresh one.
func (g *Git) load(ctx context.Context, remote plumbing.Hash) (rev Revision, got plumbing.Hash, fixable bool, err error) {
	st, err := g.openCache()
	if err != nil {
		return Revision{}, remote, true, err
	}
	if _, err := st.EncodedObject(plumbing.AnyObject, remote); err != nil {
		if err := g.fetch(ctx, st); err != nil {
			return Revision{}, remote, true, err
		}
		ref, err := st.Reference(fetchedRef)
		if err != nil {
			return Revision{}, remote, true, g.errorf("after fetching %s: %v", g.ref, err)
		}
		remote = ref.Hash()
	}
	rev, fixable, err = g.read(st, remote)
	return rev, remote, fixable, err
}

// fetch fetches Ref into fetchedRef: shallow (depth 1) where the transport
// supports it.
func (g *Git) fetch(ctx context.Context, st storage.Storer) error {
	auth, err := g.auth()
	if err != nil {
		return err
	}
	spec := config.RefSpec(fmt.Sprintf("+%s:%s", g.ref, fetchedRef))
	fo := &git.FetchOptions{
		RemoteURL: g.url,
		RefSpecs:  []config.RefSpec{spec},
		Auth:      auth,
		Tags:      git.NoTags,
		Force:     true,
	}
	if g.endpoint.Protocol != "file" {
		fo.Depth = 1
	}
	err = g.remote(st).FetchContext(ctx, fo)
	if err != nil && !errors.Is(err, git.NoErrAlreadyUpToDate) {
		return g.errorf("fetch %s: %w", g.ref, err)
	}
	return nil
}

// read returns the spec file in the commit h names (peeling tags).
func (g *Git) read(st storer.EncodedObjectStorer, h plumbing.Hash) (Revision, bool, error) {
	for range 10 {
		tag, err := object.GetTag(st, h)
		if err != nil {
			break
		}
		h = tag.Target
	}
	commit, err := object.GetCommit(st, h)
	if err != nil {
		return Revision{}, true, g.errorf("commit %s of %s: %w", h, g.ref, err)
	}
	name := fmt.Sprintf("%s@%s:%s", redactURL(g.url), h.String()[:12], g.path)
	tree, err := commit.Tree()
	if err != nil {
		return Revision{}, true, fmt.Errorf("%s: %w", name, err)
	}
	entry, err := tree.FindEntry(g.path)
	if errors.Is(err, object.ErrEntryNotFound) || errors.Is(err, object.ErrDirectoryNotFound) {
		return Revision{}, false, fmt.Errorf("%s: no such file in commit %s: %w", name, h, fs.ErrNotExist)
	}
	if err != nil {
		return Revision{}, true, fmt.Errorf("%s: %w", name, err)
	}
	switch entry.Mode {
	case filemode.Regular, filemode.Executable, filemode.Deprecated:
	case filemode.Symlink:
		return Revision{}, false, fmt.Errorf("%s: is a symlink in the repository; give the path of the file itself", name)
	default:
		return Revision{}, false, fmt.Errorf("%s: not a file (mode %s)", name, entry.Mode)
	}
	file, err := tree.TreeEntryFile(entry)
	if err != nil {
		return Revision{}, true, fmt.Errorf("%s: %w", name, err)
	}
	r, err := file.Reader()
	if err != nil {
		return Revision{}, true, fmt.Errorf("%s: %w", name, err)
	}
	defer r.Close()
	data, err := readLimited(r)
	if err != nil {
		return Revision{}, !errors.Is(err, ErrTooLarge), fmt.Errorf("%s: %w", name, err)
	}
	return Revision{ID: h.String(), Data: data, Name: name, Time: commit.Committer.When}, false, nil
}

// remoteHash asks the remote where Ref points.
func (g *Git) remoteHash(ctx context.Context) (plumbing.Hash, error) {
	auth, err := g.auth()
	if err != nil {
		return plumbing.ZeroHash, err
	}
	refs, err := g.remote(memory.NewStorage()).ListContext(ctx, &git.ListOptions{Auth: auth})
	if err != nil {
		return plumbing.ZeroHash, g.errorf("list references: %w", err)
	}
	var names []string
	for _, r := range refs {
		if r.Name() == g.ref && r.Type() == plumbing.HashReference {
			return r.Hash(), nil
		}
		if r.Name().IsBranch() || r.Name().IsTag() {
			names = append(names, r.Name().Short())
		}
	}
	sort.Strings(names)
	if len(names) > 8 {
		names = append(names[:8], "...")
	}
	return plumbing.ZeroHash, g.errorf("no ref %s in the repository (it has: %s): %w",
		g.ref, strings.Join(names, ", "), plumbing.ErrReferenceNotFound)
}

// remote returns an anonymous remote for the URL on storage st: nothing of
// the URL or of the credentials is written to the cache's configuration.
func (g *Git) remote(st storage.Storer) *git.Remote {
	return git.NewRemote(st, &config.RemoteConfig{Name: "origin", URLs: []string{g.url}})
}

// openCache opens the clone cache, making it when missing.
func (g *Git) openCache() (storage.Storer, error) {
	if g.dir == "" {
		if g.mem == nil {
			g.mem = memory.NewStorage()
		}
		return g.mem, nil
	}
	repo, err := git.PlainOpen(g.dir)
	if errors.Is(err, git.ErrRepositoryNotExists) {
		if err := os.MkdirAll(filepath.Dir(g.dir), 0o700); err != nil {
			return nil, g.errorf("clone cache: %w", err)
		}
		repo, err = git.PlainInit(g.dir, true)
	}
	if err != nil {
		return nil, g.errorf("clone cache %s: %w", g.dir, err)
	}
	return repo.Storer, nil
}

// resetCache removes this URL's clone cache.
func (g *Git) resetCache() error {
	if g.dir == "" {
		g.mem = nil
		return nil
	}
	if err := os.RemoveAll(g.dir); err != nil {
		return g.errorf("remove clone cache: %w", err)
	}
	return nil
}

// Watch asks the remote where Ref points every Interval, and calls changed
// when that differs from what the last Load returned (and from what it last
// notified). If Load was never called, the first poll notifies. A failed
// poll is logged and tried again at the next interval.
func (g *Git) Watch(ctx context.Context, changed func()) error {
	t := time.NewTicker(g.interval)
	defer t.Stop()
	var notified plumbing.Hash
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		pctx, cancel := context.WithTimeout(ctx, g.timeout)
		h, err := g.remoteHash(pctx)
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				g.log.Warn("git poll failed", "source", g.String(), "err", err)
			}
			continue
		}
		g.knownMu.Lock()
		known := g.known
		g.knownMu.Unlock()
		if h != known && h != notified {
			notified = h
			changed()
		}
	}
}

// auth builds the credentials of one operation from the option files.
func (g *Git) auth() (*routed, error) {
	r := &routed{transport: g.transport}
	switch g.endpoint.Protocol {
	case "ssh":
		a, err := g.sshAuth()
		if err != nil {
			return nil, err
		}
		r.auth = a
	case "https":
		if g.opts.TokenFile == "" {
			break
		}
		b, err := os.ReadFile(g.opts.TokenFile)
		if err != nil {
			return nil, g.errorf("token file: %w", err)
		}
		token := strings.TrimSpace(string(b))
		if token == "" {
			return nil, g.errorf("token file %s is empty", g.opts.TokenFile)
		}
		user := g.endpoint.User
		if user == "" {
			user = DefaultTokenUser
		}
		r.auth = &githttp.BasicAuth{Username: user, Password: token}
	}
	return r, nil
}

// sshAuth reads the key and known_hosts files.
func (g *Git) sshAuth() (*sshAuth, error) {
	pem, err := os.ReadFile(g.opts.SSHKeyFile)
	if err != nil {
		return nil, g.errorf("ssh key: %w", err)
	}
	signer, err := ssh.ParsePrivateKey(pem)
	if err != nil {
		var missing *ssh.PassphraseMissingError
		if errors.As(err, &missing) {
			return nil, g.errorf("ssh key %s is encrypted; give an unencrypted key", g.opts.SSHKeyFile)
		}
		return nil, g.errorf("ssh key %s: %w", g.opts.SSHKeyFile, err)
	}
	db, err := knownhosts.NewDB(g.opts.KnownHostsFile)
	if err != nil {
		return nil, g.errorf("known hosts: %w", err)
	}
	port := g.endpoint.Port
	if port <= 0 {
		port = gitssh.DefaultPort
	}
	hostPort := net.JoinHostPort(g.endpoint.Host, strconv.Itoa(port))
	algos := db.HostKeyAlgorithms(hostPort)
	if len(algos) == 0 {
		return nil, g.errorf("known hosts file %s has no key for %s (host keys are always verified)", g.opts.KnownHostsFile, hostPort)
	}
	user := g.endpoint.User
	if user == "" {
		user = DefaultSSHUser
	}
	return &sshAuth{
		user:     user,
		keyFile:  g.opts.SSHKeyFile,
		signer:   signer,
		hostKeys: db.HostKeyCallback(),
		algos:    algos,
		timeout:  g.timeout,
	}, nil
}

// sshAuth is go-git's ssh AuthMethod for a key, with host keys checked
// against known_hosts and the host key algorithms limited to the ones
// known_hosts has for the server (else the server may offer a key type
// known_hosts does not list, and the check fails).
type sshAuth struct {
	user     string
	keyFile  string
	signer   ssh.Signer
	hostKeys ssh.HostKeyCallback
	algos    []string
	timeout  time.Duration
}

// Name implements transport.AuthMethod.
func (a *sshAuth) Name() string { return gitssh.PublicKeysName }

// String implements transport.AuthMethod; it names the key file, never
// the key.
func (a *sshAuth) String() string {
	return fmt.Sprintf("user: %s, key file: %s", a.user, a.keyFile)
}

// ClientConfig implements go-git's ssh.AuthMethod.
func (a *sshAuth) ClientConfig() (*ssh.ClientConfig, error) {
	return &ssh.ClientConfig{
		User:              a.user,
		Auth:              []ssh.AuthMethod{ssh.PublicKeys(a.signer)},
		HostKeyCallback:   a.hostKeys,
		HostKeyAlgorithms: a.algos,
		Timeout:           a.timeout, // go-git's ssh dial takes no context
	}, nil
}

// tlsConfig trusts only the CAs in CAFile when given, the system's roots
// otherwise. Never InsecureSkipVerify.
func (g *Git) tlsConfig() (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if g.opts.CAFile == "" {
		return cfg, nil
	}
	b, err := os.ReadFile(g.opts.CAFile)
	if err != nil {
		return nil, g.errorf("CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, g.errorf("CA file %s holds no PEM certificate", g.opts.CAFile)
	}
	cfg.RootCAs = pool
	return cfg, nil
}

// routedRoots is the http.RoundTripper of a source's https transport: it
// reads CAFile for every operation (so a rotated CA needs no restart) and
// keeps one http.Transport, with its connections, per CA content.
type routedRoots struct {
	g  *Git
	mu sync.Mutex
	ca []byte
	rt *http.Transport
}

// RoundTrip implements http.RoundTripper.
func (r *routedRoots) RoundTrip(req *http.Request) (*http.Response, error) {
	rt, err := r.transport()
	if err != nil {
		return nil, err
	}
	return rt.RoundTrip(req)
}

func (r *routedRoots) transport() (*http.Transport, error) {
	var ca []byte
	if r.g.opts.CAFile != "" {
		var err error
		if ca, err = os.ReadFile(r.g.opts.CAFile); err != nil {
			return nil, r.g.errorf("CA file: %w", err)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.rt != nil && bytes.Equal(ca, r.ca) {
		return r.rt, nil
	}
	cfg, err := r.g.tlsConfig()
	if err != nil {
		return nil, err
	}
	if r.rt != nil {
		r.rt.CloseIdleConnections()
	}
	r.ca = ca
	r.rt = &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		TLSClientConfig:       cfg,
		TLSHandshakeTimeout:   15 * time.Second,
		ResponseHeaderTimeout: r.g.timeout,
		IdleConnTimeout:       90 * time.Second,
		ForceAttemptHTTP2:     true,
	}
	return r.rt, nil
}

// redactURL removes a password from a URL, for messages.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return s
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
		return u.String()
	}
	return s
}
