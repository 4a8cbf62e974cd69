// Package pgtest gives tests a real, throw-away PostgreSQL server, run by compute.Manager
// from the local PostgreSQL binaries on a loopback port of its own.
//
// The binaries are found with compute.FindBinaries; set NEONAUTH_PG_BIN to point at a
// specific binary directory.
package pgtest

import (
	"context"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/neonauth/neonauth/internal/compute"
)

// BinEnv names the environment variable that, when set, is the first place Start looks
// for the PostgreSQL binaries.
const BinEnv = "NEONAUTH_PG_BIN"

// testConfig trades durability for speed: a test server's data is thrown away anyway.
var testConfig = map[string]string{
	"fsync":              "off",
	"synchronous_commit": "off",
	"full_page_writes":   "off",
}

// Start creates a fresh cluster for one test (or suite) in its own temp directory on its own
// port and stops and removes it in t.Cleanup. It calls t.Fatal with a clear message if the
// binaries are missing.
func Start(t testing.TB) *compute.Cluster {
	t.Helper()
	bin, err := compute.FindBinaries(os.Getenv(BinEnv))
	if err != nil {
		t.Fatalf("pgtest: cannot run PostgreSQL for this test: %v", err)
	}
	root := t.TempDir()
	// t.TempDir is mode 0700; let the postgres user through when tests run as root. The
	// Manager also fixes up ancestors, but doing it here keeps that one explicit.
	if err := os.Chmod(root, 0o711); err != nil {
		t.Fatalf("pgtest: chmod temp dir: %v", err)
	}
	log := slog.New(slog.NewTextHandler(logWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	m, err := compute.NewManager(bin, root, log)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	m.SetExtraConfig(testConfig)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := m.Create(ctx, "pg")
	if err != nil {
		t.Fatalf("pgtest: start PostgreSQL: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := m.Remove(ctx, c); err != nil {
			t.Errorf("pgtest: remove PostgreSQL cluster: %v", err)
		}
	})
	return c
}

// logWriter sends the Manager's log lines to the test log.
type logWriter struct{ t testing.TB }

// Write logs p as one test log line.
func (w logWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
