package usersync_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/neonauth/neonauth/internal/console"
	"github.com/neonauth/neonauth/internal/identity"
	"github.com/neonauth/neonauth/internal/neonauth"
	"github.com/neonauth/neonauth/internal/server"
	"github.com/neonauth/neonauth/internal/usersync"
)

// offline is the whole service opened but not served: the metadata database, the managed
// branch servers and the domain services are real, but no worker runs, so a test decides
// exactly which worker applies which event, and when.
type offline struct {
	t   *testing.T
	ctx context.Context
	env *server.Env
	p   console.Principal
	log *slog.Logger
}

type logWriter struct{ t testing.TB }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// openOffline opens the service in a temporary data directory and closes it with the test.
func openOffline(t *testing.T) *offline {
	t.Helper()
	ctx := testContext(t)
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o711); err != nil {
		t.Fatalf("chmod temp dir: %v", err)
	}
	cfg := server.Defaults()
	cfg.DataDir = filepath.Join(dir, "data")
	cfg.BcryptCost = 4
	cfg.Fast = true
	cfg.DBMaxConns = 8
	cfg.PGBin = os.Getenv("NEONAUTH_PG_BIN")
	log := slog.New(slog.NewTextHandler(logWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	env, err := server.Open(ctx, cfg, log)
	if err != nil {
		t.Fatalf("open neonauth: %v", err)
	}
	t.Cleanup(env.Close)
	if _, err := env.Console.Bootstrap(ctx, cfg.KeyFile()); err != nil {
		t.Fatalf("bootstrap: %v", err)
	}
	key, err := os.ReadFile(cfg.KeyFile())
	if err != nil {
		t.Fatalf("read api key: %v", err)
	}
	p, err := env.Console.Authenticate(ctx, strings.TrimSpace(string(key)), "127.0.0.1")
	if err != nil {
		t.Fatalf("authenticate: %v", err)
	}
	return &offline{t: t, ctx: ctx, env: env, p: p, log: log}
}

// project is a project with a stack integration, its users, and an administrator pool on
// its users_sync database.
type project struct {
	o             *offline
	ID, BranchID  string
	AuthProjectID string
	Branch        *pgxpool.Pool

	mu  sync.Mutex
	raw map[string]json.RawMessage // last server JSON of every user, by id
}

// newProject creates a project (a new branch server) with its integration.
func (o *offline) newProject(name string) *project {
	t := o.t
	t.Helper()
	cp, err := o.env.Console.CreateProject(o.ctx, o.p, console.CreateProjectInput{Name: name})
	if err != nil {
		t.Fatalf("create project: %v", err)
	}
	cr, err := o.env.Auth.Create(o.ctx, o.p, neonauth.CreateInput{
		AuthProvider: neonauth.ProviderStack, ProjectID: cp.Project.ID, BranchID: cp.Branch.ID,
	})
	if err != nil {
		t.Fatalf("create integration: %v", err)
	}
	return &project{o: o, ID: cp.Project.ID, BranchID: cp.Branch.ID,
		AuthProjectID: cr.Integration.AuthProjectID,
		Branch:        branchPool(t, o.ctx, o.env.Console, cp.Branch.ID),
		raw:           map[string]json.RawMessage{}}
}

// worker returns a new worker on the service's metadata database and sync targets.
func (o *offline) worker(batch int) *usersync.Worker {
	w := &usersync.Worker{DB: o.env.Pool, Targets: o.env.Auth, Log: o.log, Batch: batch}
	return w
}

// forget closes a worker's connections to the projects' databases when the test ends.
func forget(t *testing.T, w *usersync.Worker, ps ...*project) {
	t.Cleanup(func() {
		for _, p := range ps {
			w.Forget(p.AuthProjectID)
		}
	})
}

func (p *project) remember(u identity.User) {
	js, err := json.Marshal(u.Server())
	if err != nil {
		p.o.t.Errorf("encode user: %v", err)
		return
	}
	p.mu.Lock()
	p.raw[u.ID.String()] = js
	p.mu.Unlock()
}

// create creates a user with an email and an optional name.
func (p *project) create(email string, name *string) uuid.UUID {
	u, err := p.o.env.Identity.CreateUser(p.o.ctx, p.AuthProjectID, identity.CreateUserInput{
		Email: &email, DisplayName: name, EmailAuthEnabled: true,
	})
	if err != nil {
		p.o.t.Errorf("create user %s: %v", email, err)
		return uuid.Nil
	}
	p.remember(u)
	return u.ID
}

// rename sets a user's display name.
func (p *project) rename(id uuid.UUID, name string) {
	u, err := p.o.env.Identity.UpdateUser(p.o.ctx, p.AuthProjectID, id,
		identity.UpdateUserInput{DisplayName: &name, SetDisplayName: true})
	if err != nil {
		p.o.t.Errorf("rename user %s: %v", id, err)
		return
	}
	p.remember(u)
}

// remove deletes a user.
func (p *project) remove(id uuid.UUID) {
	if err := p.o.env.Identity.DeleteUser(p.o.ctx, p.AuthProjectID, id); err != nil {
		p.o.t.Errorf("delete user %s: %v", id, err)
	}
}

// converged reports how users_sync differs from the project's users.
func (p *project) converged() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return converged(p.o.ctx, p.o.env.Pool, p.Branch, p.AuthProjectID, p.raw)
}

// mustConverge fails the test unless users_sync matches the project's users now.
func (p *project) mustConverge() {
	p.o.t.Helper()
	if err := p.converged(); err != nil {
		p.o.t.Fatalf("users_sync does not match the users: %v", err)
	}
}

// pending counts the project's events in the outbox.
func (p *project) pending() int {
	p.o.t.Helper()
	n, err := pendingEvents(p.o.ctx, p.o.env.Pool, p.AuthProjectID)
	if err != nil {
		p.o.t.Fatal(err)
	}
	return n
}

// drain runs w's rounds until the project has no events left, within limit.
func (p *project) drain(w *usersync.Worker, limit time.Duration) {
	p.o.t.Helper()
	waitFor(p.o.t, limit, "drain outbox", func() error {
		if _, err := w.Round(p.o.ctx); err != nil {
			return err
		}
		if n := p.pending(); n > 0 {
			return fmt.Errorf("%d events left", n)
		}
		return nil
	})
}

// row returns the users_sync row of a user; ok is false when there is none.
func (p *project) row(id uuid.UUID) (syncRow, bool) {
	p.o.t.Helper()
	rows, err := syncRows(p.o.ctx, p.Branch)
	if err != nil {
		p.o.t.Fatal(err)
	}
	r, ok := rows[id.String()]
	return r, ok
}

// exec runs statements on the metadata database.
func (o *offline) exec(stmts ...string) {
	o.t.Helper()
	for _, q := range stmts {
		if _, err := o.env.Pool.Exec(o.ctx, q); err != nil {
			o.t.Fatalf("%s: %v", q, err)
		}
	}
}
