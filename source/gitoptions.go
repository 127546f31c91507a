package source

import (
	"log/slog"
	"time"
)

// Defaults for GitOptions.
const (
	DefaultGitRef      = "main"
	DefaultGitInterval = time.Minute
	DefaultGitTimeout  = 2 * time.Minute
	// DefaultTokenUser is the user name sent with a token when the URL
	// names none. Forges ignore it for a token (GitHub, GitLab, Gitea
	// accept any); put another in the URL (https://USER@host/...) when
	// the server wants one.
	DefaultTokenUser = "braid"
	// DefaultSSHUser is the ssh user when the URL names none.
	DefaultSSHUser = "git"
)

// GitOptions configures a Git source. Credentials come only from here
// (from braid's flags or environment), never from the repository or its
// configuration.
type GitOptions struct {
	// URL is the repository: https://host/repo.git, ssh://[user@]host[:port]/path,
	// user@host:path (scp-like ssh), or file:///path (or an absolute
	// path). A password in the URL is refused: use TokenFile. Plain
	// http:// and git:// are refused: nothing would authenticate the
	// server.
	URL string
	// Ref is the branch to follow ("main"), or a full reference name
	// ("refs/heads/main", "refs/tags/v1"); "" means DefaultGitRef.
	Ref string
	// Path is the spec file's path inside the repository, relative to
	// its root, "/"-separated (required).
	Path string
	// Interval is how often Watch asks the remote where Ref points; 0
	// means DefaultGitInterval.
	Interval time.Duration
	// Timeout bounds each network operation (listing the remote's
	// references, fetching); 0 means DefaultGitTimeout.
	Timeout time.Duration
	// Dir is the clone cache, /var/lib/braid/<netns>/git for the daemon.
	// Each URL gets its own bare repository under it, so a change of URL
	// starts afresh and a cache braid finds broken can be removed
	// safely. "" keeps the clone in memory, fetched again by the first
	// Load of each process.
	Dir string
	// SSHKeyFile is the private key for ssh:// URLs (OpenSSH or PEM
	// format, unencrypted). Required for ssh.
	SSHKeyFile string
	// KnownHostsFile is an OpenSSH known_hosts file holding the server's
	// host key. Required for ssh: host keys are always verified.
	KnownHostsFile string
	// TokenFile holds a token sent as the password of HTTP basic auth
	// over https (surrounding white space trimmed). Optional.
	TokenFile string
	// CAFile holds the PEM certificates of the only CAs trusted for an
	// https server; "" trusts the system's roots. TLS is always verified.
	CAFile string
	// Log receives Watch's warnings (a failed poll); nil discards them.
	// Secrets are never logged.
	Log *slog.Logger
}
