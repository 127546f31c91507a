package source

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/braid-router/braid/api"
	"github.com/braid-router/braid/internal/gittest"
)

// spec is a small, distinct file body per version.
func spec(version string) []byte {
	return []byte("apiVersion: braid/v1alpha1\nkind: Router\nmetadata: {name: v" + version + "}\n")
}

func write(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// renameOver writes data to a temporary file next to path and renames it
// over path, as editors and config management tools do.
func renameOver(t *testing.T, path string, data []byte) {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	write(t, tmp, data)
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// swapLink points the symlink at path to target atomically: a new link
// renamed over the old one (what Kubernetes does with ..data).
func swapLink(t *testing.T, target, path string) {
	t.Helper()
	tmp := path + "_tmp"
	if err := os.Symlink(target, tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func load(t *testing.T, src Source) Revision {
	t.Helper()
	rev, err := src.Load(context.Background())
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return rev
}

// loadWant loads and checks the content, and that the ID changed from
// prev (or not, when same).
func loadWant(t *testing.T, src Source, prev Revision, want []byte, same bool) Revision {
	t.Helper()
	rev := load(t, src)
	if !bytes.Equal(rev.Data, want) {
		t.Fatalf("Load: data %q, want %q", rev.Data, want)
	}
	if same && rev.ID != prev.ID {
		t.Fatalf("Load: ID changed from %s to %s for the same content", prev.ID, rev.ID)
	}
	if !same && rev.ID == prev.ID {
		t.Fatalf("Load: ID %s did not change with the content", rev.ID)
	}
	return rev
}

func newFile(t *testing.T, path string) *File {
	t.Helper()
	f, err := NewFile(path, FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestFileLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "home.yaml")
	write(t, path, spec("1"))
	f := newFile(t, path)
	if got, want := f.String(), "file "+path; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	rev := load(t, f)
	if rev.Name != path || !strings.HasPrefix(rev.ID, "sha256:") || len(rev.ID) != 7+64 || rev.Time.IsZero() {
		t.Errorf("Load: %+v", rev)
	}
	if again := load(t, f); again.ID != rev.ID {
		t.Errorf("same content, new ID: %s then %s", rev.ID, again.ID)
	}

	// At the limit is fine, one byte past is an error.
	write(t, path, bytes.Repeat([]byte("#"), api.MaxFileSize))
	load(t, f)
	write(t, path, bytes.Repeat([]byte("#"), api.MaxFileSize+1))
	if _, err := f.Load(context.Background()); !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), path) {
		t.Errorf("Load of an oversized file: %v, want ErrTooLarge naming the file", err)
	}

	if _, err := NewFile(dir, FileOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := newFile(t, dir).Load(context.Background()); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("Load of a directory: %v", err)
	}
	if _, err := NewFile("", FileOptions{}); err == nil {
		t.Error("NewFile with no path: no error")
	}
}

func TestFileInPlaceAndRename(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "home.yaml")
	write(t, path, spec("1"))
	f := newFile(t, path)
	rev := load(t, f)
	w := watch(t, f)
	w.expect(t, 0, "start after Load")

	write(t, path, spec("2"))
	w.changed(t, "in-place write")
	rev = loadWant(t, f, rev, spec("2"), false)

	renameOver(t, path, spec("3"))
	w.expect(t, 1, "rename over")
	rev = loadWant(t, f, rev, spec("3"), false)

	// The same bytes again, both ways: no notification, same ID.
	write(t, path, spec("3"))
	renameOver(t, path, spec("3"))
	w.expect(t, 0, "unchanged rewrite")
	rev = loadWant(t, f, rev, spec("3"), true)

	// Unrelated files in the directory are not the spec.
	write(t, filepath.Join(dir, "other.yaml"), spec("9"))
	write(t, filepath.Join(dir, ".home.yaml.swp"), spec("9"))
	w.expect(t, 0, "other files")

	// A change that happens without Load in between is still reported
	// once per change.
	write(t, path, spec("4"))
	w.changed(t, "first unloaded change")
	write(t, path, spec("5"))
	w.changed(t, "second unloaded change")
	loadWant(t, f, rev, spec("5"), false)
}

func TestFileMissing(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "etc", "braid")
	path := filepath.Join(dir, "home.yaml")
	f := newFile(t, path)
	_, err := f.Load(context.Background())
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("Load of a missing file: %v, want a not-exist error naming it", err)
	}
	w := watch(t, f)
	w.expect(t, 0, "start, still missing")

	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	w.expect(t, 0, "directory made, file still missing")
	renameOver(t, path, spec("1"))
	w.expect(t, 1, "file appears")
	rev := loadWant(t, f, Revision{}, spec("1"), false)

	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	w.expect(t, 1, "file removed")
	if _, err := f.Load(context.Background()); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Load after remove: %v", err)
	}
	write(t, path, spec("1"))
	w.changed(t, "file back")
	loadWant(t, f, rev, spec("1"), true)

	// The whole directory removed and made again.
	if err := os.RemoveAll(filepath.Join(base, "etc")); err != nil {
		t.Fatal(err)
	}
	w.expect(t, 1, "directory removed")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, path, spec("2"))
	w.changed(t, "directory and file back")
	loadWant(t, f, rev, spec("2"), false)
}

func TestFileWatchBeforeLoad(t *testing.T) {
	path := filepath.Join(t.TempDir(), "home.yaml")
	write(t, path, spec("1"))
	f := newFile(t, path)
	w := watch(t, f)
	// Nothing was loaded yet: the first look is a change.
	w.expect(t, 1, "first look without Load")
	load(t, f)
	write(t, path, spec("2"))
	w.changed(t, "write")
}

func TestFileSymlinkSwap(t *testing.T) {
	dir := t.TempDir()
	versions := filepath.Join(dir, "versions")
	if err := os.Mkdir(versions, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"1", "2", "3"} {
		write(t, filepath.Join(versions, v+".yaml"), spec(v))
	}
	path := filepath.Join(dir, "home.yaml")
	if err := os.Symlink("versions/1.yaml", path); err != nil {
		t.Fatal(err)
	}
	f := newFile(t, path)
	rev := loadWant(t, f, Revision{}, spec("1"), false)
	w := watch(t, f)
	w.expect(t, 0, "start")

	swapLink(t, "versions/2.yaml", path)
	w.expect(t, 1, "file symlink swapped by rename")
	rev = loadWant(t, f, rev, spec("2"), false)

	// The target written in place, in a directory the path names only
	// through the link.
	write(t, filepath.Join(versions, "2.yaml"), spec("2b"))
	w.changed(t, "link target written in place")
	rev = loadWant(t, f, rev, spec("2b"), false)
	write(t, filepath.Join(versions, "1.yaml"), spec("1b"))
	w.expect(t, 0, "a file the link no longer points to")

	// The real ln -sfn (unlink, then symlink).
	gittest.RequireBinary(t, "ln")
	if out, err := exec.Command("ln", "-sfn", filepath.Join(versions, "3.yaml"), path).CombinedOutput(); err != nil {
		t.Fatalf("ln -sfn: %v\n%s", err, out)
	}
	w.expect(t, 1, "ln -sfn of the file")
	loadWant(t, f, rev, spec("3"), false)
}

// TestFileConfigMap uses the layout of a Kubernetes ConfigMap volume:
// home.yaml -> ..data/home.yaml, ..data -> ..<timestamp>, and an update
// writes a new timestamped directory, swaps ..data by rename, then removes
// the old directory.
func TestFileConfigMap(t *testing.T) {
	dir := t.TempDir()
	mkVersion := func(name string, data []byte) {
		t.Helper()
		if err := os.Mkdir(filepath.Join(dir, name), 0o755); err != nil {
			t.Fatal(err)
		}
		write(t, filepath.Join(dir, name, "home.yaml"), data)
	}
	mkVersion("..2026_01_02_03_04_05.1", spec("1"))
	if err := os.Symlink("..2026_01_02_03_04_05.1", filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "home.yaml")
	if err := os.Symlink("..data/home.yaml", path); err != nil {
		t.Fatal(err)
	}
	f := newFile(t, path)
	rev := loadWant(t, f, Revision{}, spec("1"), false)
	w := watch(t, f)
	w.expect(t, 0, "start")

	update := func(name string, data []byte, old string) {
		t.Helper()
		mkVersion(name, data)
		swapLink(t, name, filepath.Join(dir, "..data"))
		if err := os.RemoveAll(filepath.Join(dir, old)); err != nil {
			t.Fatal(err)
		}
	}
	update("..2026_01_02_03_04_06.2", spec("2"), "..2026_01_02_03_04_05.1")
	w.expect(t, 1, "..data swapped")
	rev = loadWant(t, f, rev, spec("2"), false)

	// The watch followed the swap: a second one is seen too, and so is
	// a write inside the current version's directory.
	update("..2026_01_02_03_04_07.3", spec("3"), "..2026_01_02_03_04_06.2")
	w.expect(t, 1, "second ..data swap")
	rev = loadWant(t, f, rev, spec("3"), false)
	write(t, filepath.Join(dir, "..2026_01_02_03_04_07.3", "home.yaml"), spec("3b"))
	w.changed(t, "write in the current version")
	rev = loadWant(t, f, rev, spec("3b"), false)

	// A swap to identical content: no notification, same ID.
	update("..2026_01_02_03_04_08.4", spec("3b"), "..2026_01_02_03_04_07.3")
	w.expect(t, 0, "swap to the same content")
	loadWant(t, f, rev, spec("3b"), true)
}

// TestFileDirectorySymlink: the spec's directory is a symlink
// (current -> releases/N) swapped with ln -sfn, as deployments do.
func TestFileDirectorySymlink(t *testing.T) {
	gittest.RequireBinary(t, "ln")
	dir := t.TempDir()
	for _, v := range []string{"1", "2"} {
		if err := os.MkdirAll(filepath.Join(dir, "releases", v), 0o755); err != nil {
			t.Fatal(err)
		}
		write(t, filepath.Join(dir, "releases", v, "home.yaml"), spec(v))
	}
	current := filepath.Join(dir, "current")
	if err := os.Symlink("releases/1", current); err != nil {
		t.Fatal(err)
	}
	f := newFile(t, filepath.Join(current, "home.yaml"))
	rev := loadWant(t, f, Revision{}, spec("1"), false)
	w := watch(t, f)
	w.expect(t, 0, "start")

	if out, err := exec.Command("ln", "-sfn", "releases/2", current).CombinedOutput(); err != nil {
		t.Fatalf("ln -sfn: %v\n%s", err, out)
	}
	w.expect(t, 1, "ln -sfn of the directory")
	rev = loadWant(t, f, rev, spec("2"), false)

	// A plain directory swapped by renames (mv old aside, mv new in).
	real := filepath.Join(dir, "releases", "2")
	if err := os.Rename(real, real+".old"); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(real, 0o755); err != nil {
		t.Fatal(err)
	}
	renameOver(t, filepath.Join(real, "home.yaml"), spec("2b"))
	w.changed(t, "directory replaced")
	loadWant(t, f, rev, spec("2b"), false)
}

// TestFileGitCheckout: the spec lives in a git work tree, and git
// checkout switches it.
func TestFileGitCheckout(t *testing.T) {
	gittest.RequireBinary(t, "git")
	dir := t.TempDir()
	git := func(args ...string) {
		t.Helper()
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com",
			"GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com", "GIT_CONFIG_NOSYSTEM=1", "HOME="+dir)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	path := filepath.Join(dir, "home.yaml")
	git("init", "-q", "-b", "main")
	write(t, path, spec("1"))
	write(t, filepath.Join(dir, "README"), []byte("one\n"))
	git("add", ".")
	git("commit", "-q", "-m", "one")
	git("checkout", "-q", "-b", "next")
	write(t, path, spec("2"))
	write(t, filepath.Join(dir, "README"), []byte("two\n"))
	git("commit", "-q", "-a", "-m", "two")
	git("checkout", "-q", "main")

	f := newFile(t, path)
	rev := loadWant(t, f, Revision{}, spec("1"), false)
	w := watch(t, f)
	w.expect(t, 0, "start")

	git("checkout", "-q", "next")
	w.changed(t, "git checkout")
	rev = loadWant(t, f, rev, spec("2"), false)

	// Activity in .git alone (a commit of another file) is not a change.
	write(t, filepath.Join(dir, "README"), []byte("three\n"))
	w.expect(t, 0, "README written")
	git("commit", "-q", "-a", "-m", "three")
	w.expect(t, 0, "commit of another file")

	git("checkout", "-q", "main")
	w.changed(t, "git checkout back")
	loadWant(t, f, rev, spec("1"), false)
}

func TestWatchPoints(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "a", "b"), 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(dir, "a", "b", "f"), nil)
	if err := os.Symlink("a/b", filepath.Join(dir, "l")); err != nil {
		t.Fatal(err)
	}
	got := watchPoints(filepath.Join(dir, "l", "f"))
	want := map[string][]string{
		dir:                          {"l"},
		filepath.Join(dir, "a"):      {"b"},
		filepath.Join(dir, "a", "b"): {"f"},
	}
	if len(got) != len(want) {
		t.Fatalf("watchPoints = %v, want %v", got, want)
	}
	for d, names := range want {
		for _, n := range names {
			if !got[d][n] {
				t.Errorf("watchPoints = %v: missing %s in %s", got, n, d)
			}
		}
	}
	// Missing: the deepest existing directory, for the missing name.
	got = watchPoints(filepath.Join(dir, "a", "x", "y"))
	if !got[filepath.Join(dir, "a")]["x"] || len(got) != 1 {
		t.Errorf("watchPoints of a missing path = %v", got)
	}
	// A symlink loop ends.
	if err := os.Symlink("loop", filepath.Join(dir, "loop")); err != nil {
		t.Fatal(err)
	}
	if got := watchPoints(filepath.Join(dir, "loop", "f")); !got[dir]["loop"] {
		t.Errorf("watchPoints of a loop = %v", got)
	}
}
