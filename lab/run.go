package lab

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
)

// CommandError is a command that failed: which one, where, and what it
// said on stderr.
type CommandError struct {
	// Namespace is where the command ran; empty for the initial namespace.
	Namespace string
	// Args is the command line.
	Args []string
	// Line is the failing line of a -batch input, if that is known.
	Line string
	// Stderr is what the command printed on its standard error.
	Stderr string
	// Err is the error from running it (usually an *exec.ExitError).
	Err error
}

// Error says where the command ran, what it was, and what it printed.
func (e *CommandError) Error() string {
	var b strings.Builder
	if e.Namespace != "" {
		fmt.Fprintf(&b, "namespace %s: ", e.Namespace)
	}
	b.WriteString(strings.Join(e.Args, " "))
	if e.Line != "" {
		fmt.Fprintf(&b, ": %q", e.Line)
	}
	fmt.Fprintf(&b, ": %v", e.Err)
	if s := strings.TrimSpace(e.Stderr); s != "" {
		b.WriteString(": ")
		b.WriteString(strings.ReplaceAll(s, "\n", "; "))
	}
	return b.String()
}

// Unwrap returns the error from running the command.
func (e *CommandError) Unwrap() error { return e.Err }

// run runs a command in the initial namespace with stdin as its input and
// returns its standard output. ns only labels errors.
func run(ctx context.Context, ns string, stdin []string, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	if stdin != nil {
		cmd.Stdin = strings.NewReader(strings.Join(stdin, "\n") + "\n")
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		ce := &CommandError{Namespace: ns, Args: cmd.Args, Stderr: stderr.String(), Err: err}
		if ctx.Err() != nil {
			ce.Err = fmt.Errorf("%w (%v)", ctx.Err(), err)
		}
		if stdin != nil {
			ce.Line = failedLine(stderr.String(), stdin)
		}
		return stdout.String(), ce
	}
	return stdout.String(), nil
}

// batchFailed is how ip and tc name the failing line of a -batch input.
// Compiled on first use, as validName.
var batchFailed = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`Command failed -:(\d+)`) })

// failedLine returns the batch line that ip or tc reported as failing.
func failedLine(stderr string, lines []string) string {
	m := batchFailed().FindStringSubmatch(stderr)
	if m == nil {
		return ""
	}
	n, err := strconv.Atoi(m[1])
	if err != nil || n < 1 || n > len(lines) {
		return ""
	}
	return lines[n-1]
}

// ipBatch runs `ip [-n ns] -batch -` with lines; ns empty is the initial
// namespace.
func ipBatch(ctx context.Context, ns string, lines []string, force bool) error {
	if len(lines) == 0 {
		return nil
	}
	var args []string
	if ns != "" {
		args = append(args, "-n", ns)
	}
	if force {
		args = append(args, "-force")
	}
	_, err := run(ctx, ns, lines, "ip", append(args, "-batch", "-")...)
	return err
}

// tcBatch runs `tc -n ns -batch -` with lines.
func tcBatch(ctx context.Context, ns string, lines []string) error {
	if len(lines) == 0 {
		return nil
	}
	_, err := run(ctx, ns, lines, "tc", "-n", ns, "-batch", "-")
	return err
}
