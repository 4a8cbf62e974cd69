package compute

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// ErrNoBinaries is returned (wrapped) by FindBinaries and NewManager when the PostgreSQL
// server binaries cannot be found.
var ErrNoBinaries = errors.New("PostgreSQL server binaries not found")

// requiredBinaries are the programs a Manager runs; a binary directory must hold all of them.
var requiredBinaries = []string{"initdb", "pg_ctl", "postgres", "pg_basebackup"}

// debianPattern matches the per-version binary directories of Debian's postgresql packages.
const debianPattern = "/usr/lib/postgresql/*/bin"

// FindBinaries returns the directory holding initdb, pg_ctl, postgres and pg_basebackup.
// hint, when not empty, is checked first (a --pg-bin flag). Then PATH (the directory of the
// resolved `pg_ctl`, following symlinks), then /usr/lib/postgresql/*/bin (newest version
// first). When none is found it returns an error wrapping ErrNoBinaries whose message says
// how to install them: "apt-get install postgresql" on Debian/Ubuntu, or pass --pg-bin.
func FindBinaries(hint string) (string, error) {
	return findBinaries(hint, exec.LookPath, debianPattern)
}

// findBinaries is FindBinaries with the PATH lookup and the versioned-directory glob pattern
// made replaceable for tests.
func findBinaries(
	hint string, lookPath func(string) (string, error), pattern string,
) (string, error) {
	var tried []string
	if hint != "" {
		if dir, err := checkBinDir(hint); err == nil {
			return dir, nil
		}
		tried = append(tried, hint+" (--pg-bin)")
	}

	if p, err := lookPath("pg_ctl"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			if dir, err := checkBinDir(filepath.Dir(real)); err == nil {
				return dir, nil
			}
			tried = append(tried, filepath.Dir(real)+" (PATH)")
		}
	} else {
		tried = append(tried, "PATH")
	}

	matches, _ := filepath.Glob(pattern) // the only possible error is a bad pattern
	sortNewestFirst(matches)
	for _, m := range matches {
		if dir, err := checkBinDir(m); err == nil {
			return dir, nil
		}
	}
	tried = append(tried, pattern)
	return "", fmt.Errorf("%w: %s", ErrNoBinaries, notFoundMessage(tried))
}

// notFoundMessage explains where FindBinaries looked and how to install the binaries.
func notFoundMessage(tried []string) string {
	return fmt.Sprintf("need %s; looked in %s. Install them with "+
		"\"apt-get install postgresql\" on Debian/Ubuntu, "+
		"or pass --pg-bin=<directory holding pg_ctl>",
		strings.Join(requiredBinaries, ", "), strings.Join(tried, ", "))
}

// checkBinDir returns dir as an absolute path when it holds every required binary.
func checkBinDir(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("binary directory %q: %w", dir, err)
	}
	for _, name := range requiredBinaries {
		p := filepath.Join(abs, name)
		fi, err := os.Stat(p)
		if err != nil {
			return "", fmt.Errorf("binary directory %q: %w", abs, err)
		}
		if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
			return "", fmt.Errorf("binary directory %q: %s is not an executable file", abs, p)
		}
	}
	return abs, nil
}

// sortNewestFirst orders paths like /usr/lib/postgresql/15/bin by the numeric version in
// their parent directory's name, newest first; names that are not versions go last.
func sortNewestFirst(paths []string) {
	version := func(p string) []int {
		var v []int
		for _, part := range strings.Split(filepath.Base(filepath.Dir(p)), ".") {
			n, err := strconv.Atoi(part)
			if err != nil {
				return nil
			}
			v = append(v, n)
		}
		return v
	}
	slices.SortStableFunc(paths, func(a, b string) int {
		return slices.Compare(version(b), version(a))
	})
}
