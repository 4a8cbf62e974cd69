package usersync_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/neonauth/neonauth/internal/compute"
	"github.com/neonauth/neonauth/internal/testserver"
)

// served is a project with an integration on a running service, and the last server JSON
// of each of its users.
type served struct {
	t   *testing.T
	s   *testserver.Server
	p   testserver.Project
	in  testserver.Integration
	raw map[string]json.RawMessage
}

func newServed(t *testing.T, s *testserver.Server, name string) *served {
	p := s.CreateProject(t, name)
	return &served{t: t, s: s, p: p, in: s.CreateIntegration(t, p),
		raw: map[string]json.RawMessage{}}
}

// createV2 creates a user through the management API and returns its id.
func (v *served) createV2(email string, name *string) string {
	v.t.Helper()
	body := map[string]any{"project_id": v.p.ID, "auth_provider": "stack", "email": email}
	if name != nil {
		body["name"] = *name
	}
	r := v.s.Neon(v.t, "POST", "/projects/auth/user", body)
	if r.Status != http.StatusCreated {
		v.t.Fatalf("create user %s: %d %s", email, r.Status, r.Body)
	}
	return r.JSON(v.t)["id"].(string)
}

// createV1 creates a user as a server call of the provider API and returns its id.
func (v *served) createV1(body map[string]any) string {
	v.t.Helper()
	r := v.s.Stack(v.t, v.in, "server", "POST", "/users", body)
	if r.Status != http.StatusCreated {
		v.t.Fatalf("create user %v: %d %s", body, r.Status, r.Body)
	}
	return r.JSON(v.t)["id"].(string)
}

// patch changes a user as a server call.
func (v *served) patch(id string, body map[string]any) {
	v.t.Helper()
	r := v.s.Stack(v.t, v.in, "server", "PATCH", "/users/"+id, body)
	if r.Status != http.StatusOK {
		v.t.Fatalf("patch user %s: %d %s", id, r.Status, r.Body)
	}
}

// remove records a user's last JSON, then deletes the user as a server call.
func (v *served) remove(id string) {
	v.t.Helper()
	v.fetch(id)
	r := v.s.Stack(v.t, v.in, "server", "DELETE", "/users/"+id, nil)
	if r.Status != http.StatusOK {
		v.t.Fatalf("delete user %s: %d %s", id, r.Status, r.Body)
	}
}

// fetch records a live user's server JSON, as the provider API returns it.
func (v *served) fetch(id string) {
	v.t.Helper()
	r := v.s.Stack(v.t, v.in, "server", "GET", "/users/"+id, nil)
	if r.Status != http.StatusOK {
		v.t.Fatalf("get user %s: %d %s", id, r.Status, r.Body)
	}
	v.raw[id] = r.Body
}

// converged reports how the branch's users_sync differs from the auth project's users.
func (v *served) converged(ctx context.Context, branch *pgxpool.Pool) error {
	return converged(ctx, v.s.Env.Pool, branch, v.in.AuthProjectID, v.raw)
}

// visible waits until a user's row is in users_sync and returns how long that took.
func visible(t *testing.T, ctx context.Context, branch *pgxpool.Pool, id string) time.Duration {
	t.Helper()
	return waitFor(t, 5*time.Second, "user "+id+" visible", func() error {
		var n int
		err := branch.QueryRow(ctx, "SELECT count(*) FROM neon_auth.users_sync WHERE id = $1",
			id).Scan(&n)
		if err == nil && n != 1 {
			err = fmt.Errorf("%d rows", n)
		}
		return err
	})
}

// TestSyncConvergesToAuthUsers creates users through both APIs, renames some several times
// (once to no name), deletes some, and checks that users_sync converges to exactly the auth
// project's users, each created user showing up well within a second.
func TestSyncConvergesToAuthUsers(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	s := testserver.Start(t)
	v := newServed(t, s, "converge")
	branch := branchPool(t, ctx, s.Env.Console, v.p.BranchID)

	var lat []time.Duration
	var ids []string
	for i := range 10 {
		id := v.createV2(fmt.Sprintf("fast-%d@example.com", i), ptr(fmt.Sprintf("Fast %d", i)))
		lat = append(lat, visible(t, ctx, branch, id))
		ids = append(ids, id)
	}
	slices.Sort(lat)
	t.Logf("creation to visible: median %v, max %v", lat[len(lat)/2], lat[len(lat)-1])
	if lat[len(lat)/2] > time.Second {
		t.Errorf("median creation-to-visible time %v, want well under a second", lat[len(lat)/2])
	}

	ids = append(ids, v.createUsers()...)
	for i, id := range ids[:15] {
		for r := range 3 {
			v.patch(id, map[string]any{"display_name": fmt.Sprintf("Renamed %d.%d", i, r)})
		}
	}
	v.patch(ids[3], map[string]any{"display_name": nil})
	for _, id := range slices.Concat(ids[10:14], ids[30:34]) {
		v.remove(id)
	}
	for _, id := range ids {
		if _, deleted := v.raw[id]; !deleted {
			v.fetch(id)
		}
	}
	waitFor(t, 15*time.Second, "users_sync converges", func() error {
		return v.converged(ctx, branch)
	})
}

// createUsers creates 20 users through the management API, half without a name, and 20 as
// server calls of the provider API with metadata, and returns their ids.
func (v *served) createUsers() []string {
	var ids []string
	for i := range 20 {
		var name *string
		if i%2 == 0 {
			name = ptr(fmt.Sprintf("Neon %d", i))
		}
		ids = append(ids, v.createV2(fmt.Sprintf("neon-%d@example.com", i), name))
	}
	for i := range 20 {
		ids = append(ids, v.createV1(map[string]any{
			"primary_email":          fmt.Sprintf("stack-%d@example.com", i),
			"primary_email_verified": i%3 == 0,
			"display_name":           fmt.Sprintf("Stack %d ✓", i),
			"client_metadata":        map[string]any{"n": i},
			"server_metadata":        map[string]any{"tier": "gold", "tags": []string{"a"}},
		}))
	}
	return ids
}

// TestOutageBacklogDrainsAfterRestart stops a branch's PostgreSQL server while about 200
// users are created and 100 renamed: the events wait with their attempts and errors
// recorded, the service keeps answering, another project keeps syncing, and once the server
// is back, on another port, the backlog drains and users_sync matches the users.
func TestOutageBacklogDrainsAfterRestart(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	s := testserver.Start(t)
	a, b := newServed(t, s, "down"), newServed(t, s, "up")
	branchB := branchPool(t, ctx, s.Env.Console, b.p.BranchID)
	a.seed(ctx, "seed", 5)
	b.seed(ctx, "up", 1)

	cl, err := s.Env.Computes.Open(a.p.BranchID)
	if err != nil {
		t.Fatalf("open branch cluster: %v", err)
	}
	oldPort := cl.Port
	if err := s.Env.Computes.Stop(ctx, cl); err != nil {
		t.Fatalf("stop branch server: %v", err)
	}
	start := time.Now()
	var ids []string
	for i := range 200 {
		ids = append(ids, a.createV2(fmt.Sprintf("down-%d@example.com", i), nil))
	}
	for i, id := range ids[:100] {
		a.patch(id, map[string]any{"display_name": fmt.Sprintf("Down %d", i)})
	}
	t.Logf("200 creates and 100 renames during the outage took %v", time.Since(start))
	if r := s.Do(t, "GET", "/healthz", nil); r.Status != http.StatusOK {
		t.Errorf("healthz during the outage: %d %s", r.Status, r.Body)
	}
	a.waitDeferred(ctx, 300)
	b.seed(ctx, "during", 10)

	a.restartElsewhere(ctx, cl, oldPort)
	for _, id := range ids {
		a.fetch(id)
	}
	branchA := branchPool(t, ctx, s.Env.Console, a.p.BranchID)
	took := waitFor(t, 60*time.Second, "backlog drains", func() error {
		if n, err := pendingEvents(ctx, s.Env.Pool, a.in.AuthProjectID); err != nil || n > 0 {
			return fmt.Errorf("%d events pending (%v)", n, err)
		}
		return a.converged(ctx, branchA)
	})
	t.Logf("backlog drained %v after the restart", took)
	if err := b.converged(ctx, branchB); err != nil {
		t.Errorf("other project: %v", err)
	}
}

// seed creates n users through the management API and waits until they are synced.
func (v *served) seed(ctx context.Context, prefix string, n int) {
	v.t.Helper()
	for i := range n {
		v.fetch(v.createV2(fmt.Sprintf("%s-%d@example.com", prefix, i), ptr(prefix)))
	}
	branch := branchPool(v.t, ctx, v.s.Env.Console, v.p.BranchID)
	waitFor(v.t, 10*time.Second, "seed users synced", func() error {
		return v.converged(ctx, branch)
	})
}

// waitDeferred waits until all n events of the project wait in the outbox, some of them
// with a failed attempt and its error recorded.
func (v *served) waitDeferred(ctx context.Context, n int) {
	v.t.Helper()
	waitFor(v.t, 10*time.Second, "events wait for a retry", func() error {
		var total, failed int
		var lastErr *string
		err := v.s.Env.Pool.QueryRow(ctx, `SELECT count(*),
				count(*) FILTER (WHERE attempts > 0 AND last_error IS NOT NULL), max(last_error)
			FROM sync_events WHERE auth_project_id = $1`, v.in.AuthProjectID).
			Scan(&total, &failed, &lastErr)
		switch {
		case err != nil:
			return err
		case total != n:
			v.t.Fatalf("%d events in the outbox, want all %d", total, n)
		case failed == 0:
			return fmt.Errorf("no failed attempt recorded yet")
		}
		v.t.Logf("%d events waiting, %d after a failed attempt: %s", total, failed, str(lastErr))
		return nil
	})
}

// restartElsewhere starts the stopped server of v's branch again on another port than
// oldPort, by holding oldPort while it starts, and checks where the worker will look for it.
//
// The console records a managed branch's port only in StartComputes, at service start, so
// a server restarted on another port at any other time stays recorded under its old port,
// and the worker, which connects where the sync target says, cannot reach it. Until the
// console reports the live port, this test records the port the one way the console can:
// StartComputes.
func (v *served) restartElsewhere(ctx context.Context, cl *compute.Cluster, oldPort int) {
	t, s := v.t, v.s
	t.Helper()
	ln, lerr := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(oldPort)))
	err := s.Env.Computes.Start(ctx, cl)
	if lerr == nil {
		ln.Close()
	}
	if err != nil {
		t.Fatalf("start branch server: %v", err)
	}
	if cl.Port == oldPort {
		t.Fatalf("branch server restarted on its old port %d, want another", oldPort)
	}
	if port := v.targetPort(ctx); port != cl.Port {
		t.Logf("known gap: the sync target still has port %d, the server runs on %d; "+
			"recording the port with StartComputes", port, cl.Port)
		if err := s.Env.Console.StartComputes(ctx); err != nil {
			t.Fatalf("start computes: %v", err)
		}
	}
	if port := v.targetPort(ctx); port != cl.Port {
		t.Fatalf("sync target has port %d, the server runs on %d", port, cl.Port)
	}
}

// targetPort is the port the worker connects to for v's users.
func (v *served) targetPort(ctx context.Context) int {
	v.t.Helper()
	br, _, ok, err := v.s.Env.Auth.SyncTarget(ctx, v.in.AuthProjectID)
	if err != nil || !ok {
		v.t.Fatalf("sync target: %v (found %v)", err, ok)
	}
	return br.Target.Port
}
