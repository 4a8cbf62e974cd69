package usersync_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/neonauth/neonauth/internal/testserver"
	"github.com/neonauth/neonauth/internal/usersync"
)

// The resync tests: rows edited, deleted or added by hand are repaired by the resync endpoint
// and by the CLI next to a running service, a dropped table is an error until a resync
// recreates it, and a table altered so that rows cannot be written is an error that says so.

// handEdits damages users_sync the ways a person with the database's password can: it
// deletes the row of dropped, edits the row of edited (raw_json, and so name, changed and
// updated_at moved a year ahead, so that no later change of the user would repair it), marks
// the row of a deleted user live again, and adds a row for a user that does not exist.
func handEdits(t *testing.T, ctx context.Context, branch *pgxpool.Pool,
	dropped, edited, undeleted string) {
	t.Helper()
	stmts := []struct {
		sql  string
		args []any
	}{
		{"DELETE FROM neon_auth.users_sync WHERE id = $1", []any{dropped}},
		{`UPDATE neon_auth.users_sync SET raw_json = jsonb_set(jsonb_set(raw_json,
				'{display_name}', '"Edited by hand"'), '{server_metadata}', '{"hand": true}'),
			updated_at = now() + interval '1 year'
		WHERE id = $1`, []any{edited}},
		{"UPDATE neon_auth.users_sync SET deleted_at = NULL WHERE id = $1", []any{undeleted}},
		{`INSERT INTO neon_auth.users_sync (raw_json, updated_at) VALUES
			('{"id": "no-such-user", "display_name": "Nobody",
				"primary_email": "nobody@example.com", "signed_up_at_millis": 0}', now())`,
			nil},
	}
	for _, s := range stmts {
		tag, err := branch.Exec(ctx, s.sql, s.args...)
		if err != nil {
			t.Fatalf("hand edit %q: %v", s.sql, err)
		}
		if tag.RowsAffected() != 1 {
			t.Fatalf("hand edit %q changed %d rows, want 1", s.sql, tag.RowsAffected())
		}
	}
}

// TestResyncRepairsHandEditsThroughAPIAndCLI damages users_sync by hand, repairs it with
// POST /projects/{id}/auth/resync, damages it again and repairs it with `neonauth auth
// resync` run against the data directory of the running service process: both leave exactly
// the users' rows, the CLI prints plain progress lines when its output is not a terminal,
// and the service with its metadata database and branch server keeps running afterwards.
func TestResyncRepairsHandEditsThroughAPIAndCLI(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	data := newDataDir(t)
	p := startProc(t, "resync", data)
	key := apiKey(t, data)
	s := p.server(key)
	proj := s.CreateProject(t, "resync")
	in := s.CreateIntegration(t, proj)
	c := newClient(key, proj.ID, in, p.addr)
	meta := openPool(t, clusterURI(t, data, "metadata", "postgres"))
	branch := openPool(t, clusterURI(t, data, proj.BranchID, "neondb"))

	const users = 30
	var ids []string
	deleted := map[string]json.RawMessage{}
	for i := range users {
		r, err := c.userHistory(ctx, i, i%3 == 0, i >= users-3)
		if err != nil {
			t.Fatal(err)
		}
		if r != nil {
			deleted[r.id] = r.last
		}
	}
	rows, err := authRows(ctx, meta, in.AuthProjectID)
	if err != nil {
		t.Fatal(err)
	}
	var gone string
	for id, r := range rows {
		if r.DeletedAt != nil {
			gone = id
		} else {
			ids = append(ids, id)
		}
	}
	raw, err := c.expectedRaw(ctx, meta, deleted)
	if err != nil {
		t.Fatal(err)
	}
	check := func(what string) {
		t.Helper()
		if err := converged(ctx, meta, branch, in.AuthProjectID, raw); err != nil {
			t.Fatalf("%s: users_sync does not match the users: %v", what, err)
		}
	}
	waitFor(t, 15*time.Second, "users_sync converges", func() error {
		return converged(ctx, meta, branch, in.AuthProjectID, raw)
	})

	handEdits(t, ctx, branch, ids[0], ids[1], gone)
	if converged(ctx, meta, branch, in.AuthProjectID, raw) == nil {
		t.Fatal("test bug: the hand edits did not damage users_sync")
	}
	r := s.Neon(t, "POST", "/projects/"+proj.ID+"/auth/resync", nil)
	if r.Status != http.StatusOK {
		t.Fatalf("resync: %d %s", r.Status, r.Body)
	}
	res := r.JSON(t)
	t.Logf("resync through the API: %s", r.Body)
	if num(res["users"]) != users || num(res["changed"]) != 3 || num(res["removed"]) != 1 {
		t.Errorf("resync result %s, want %d users, 3 changed, 1 removed", r.Body, users)
	}
	check("after the resync through the API")

	handEdits(t, ctx, branch, ids[2], ids[3], gone)
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(cctx, neonauthBinary(t), "auth", "resync",
		"--project-id", proj.ID, "--data-dir", data)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("neonauth auth resync: %v\nstdout:\n%s\nstderr:\n%s", err, &stdout, &stderr)
	}
	out := stdout.String()
	t.Logf("neonauth auth resync printed:\n%s", out)
	progress := fmt.Sprintf("resync: %d/%d users (100%%)\n", users, users)
	summary := fmt.Sprintf("resynced %d users into neondb.neon_auth.users_sync: "+
		"3 rows written, 1 removed, in ", users)
	switch {
	case !strings.Contains(out, progress):
		t.Errorf("CLI output has no progress line %q", progress)
	case !strings.Contains(out, summary):
		t.Errorf("CLI output has no summary %q", summary)
	case strings.ContainsAny(out, "\r\x1b"):
		t.Errorf("CLI output to a pipe draws a bar: %q", out)
	}
	check("after the resync by the CLI")

	switch {
	case !p.running() || !healthy(p.addr):
		t.Fatal("the service stopped with the CLI")
	case !postmasterUp(data, "metadata"):
		t.Fatal("the metadata database stopped with the CLI")
	case !postmasterUp(data, proj.BranchID):
		t.Fatal("the branch server stopped with the CLI")
	}
	id := s.Stack(t, in, "server", "POST", "/users",
		map[string]any{"primary_email": "after-cli@example.com"}).JSON(t)["id"].(string)
	visible(t, ctx, branch, id)
	st, err := c.syncStatus(ctx, proj.ID)
	if err != nil {
		t.Fatal(err)
	}
	if st["state"] != "ok" || st["last_resync_at"] == nil {
		t.Errorf("status after the resyncs: %v, want state ok with last_resync_at", st)
	}
}

// attemptsOf returns the most attempts of an auth project's waiting events, and how many
// events wait.
func attemptsOf(t *testing.T, ctx context.Context, meta *pgxpool.Pool,
	authProjectID string) (maxAttempts, pending int) {
	t.Helper()
	err := meta.QueryRow(ctx, `SELECT COALESCE(max(attempts), 0), count(*) FROM sync_events
		WHERE auth_project_id = $1`, authProjectID).Scan(&maxAttempts, &pending)
	if err != nil {
		t.Fatalf("read attempts: %v", err)
	}
	return maxAttempts, pending
}

// status reads a served project's sync status through the management API.
func (v *served) status() map[string]any {
	v.t.Helper()
	r := v.s.Neon(v.t, "GET", "/projects/"+v.p.ID+"/auth/sync_status", nil)
	if r.Status != http.StatusOK {
		v.t.Fatalf("sync status: %d %s", r.Status, r.Body)
	}
	return r.JSON(v.t)
}

// waitError waits until the sync status is "error" with a last_error that contains want.
func (v *served) waitError(want string) map[string]any {
	v.t.Helper()
	var st map[string]any
	waitFor(v.t, 15*time.Second, "sync status error", func() error {
		st = v.status()
		msg, _ := st["last_error"].(string)
		if st["state"] != "error" || !strings.Contains(msg, want) {
			return fmt.Errorf("status %v, want state error with %q", st, want)
		}
		return nil
	})
	return st
}

// resync runs a resync through the API.
func (v *served) resync() testserver.Response {
	v.t.Helper()
	return v.s.Neon(v.t, "POST", "/projects/"+v.p.ID+"/auth/resync", nil)
}

// TestDroppedTableIsAnErrorUntilResync drops neon_auth.users_sync by hand: the changes that
// follow wait, the status says "error" with the cause, the worker does not retry them in a
// fast loop, and a resync recreates the table and fills it with every user.
func TestDroppedTableIsAnErrorUntilResync(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	s := testserver.Start(t)
	v := newServed(t, s, "dropped")
	v.seed(ctx, "before", 3)
	branch := branchPool(t, ctx, s.Env.Console, v.p.BranchID)
	if _, err := branch.Exec(ctx, "DROP TABLE neon_auth.users_sync"); err != nil {
		t.Fatalf("drop users_sync: %v", err)
	}
	for i := range 3 {
		v.fetch(v.createV2(fmt.Sprintf("after-drop-%d@example.com", i), ptr("After drop")))
	}
	st := v.waitError(`relation "neon_auth.users_sync" does not exist`)
	t.Logf("status with the table dropped: %v", st)

	// A worker that retried fast would have tried several times in this while.
	time.Sleep(3 * time.Second)
	attempts, pending := attemptsOf(t, ctx, s.Env.Pool, v.in.AuthProjectID)
	if attempts > 1 || pending != 3 {
		t.Errorf("after 3 s: %d events waiting with up to %d attempts, want 3 with at most 1",
			pending, attempts)
	}
	metrics := s.Do(t, "GET", "/metrics", nil).Body
	failures, _, err := sample(metrics, "neonauth_sync_failures_total",
		`auth_project_id="`+v.in.AuthProjectID+`"`, `reason="table"`)
	if err != nil || failures != 1 {
		t.Errorf("table failures in /metrics: %v (%v), want 1", failures, err)
	}

	r := v.resync()
	if r.Status != http.StatusOK {
		t.Fatalf("resync: %d %s", r.Status, r.Body)
	}
	if res := r.JSON(t); num(res["users"]) != 6 || num(res["changed"]) != 6 {
		t.Errorf("resync result %s, want 6 users written", r.Body)
	}
	waitFor(t, 10*time.Second, "users_sync converges", func() error {
		if n, err := pendingEvents(ctx, s.Env.Pool, v.in.AuthProjectID); err != nil || n > 0 {
			return fmt.Errorf("%d events pending (%v)", n, err)
		}
		return v.converged(ctx, branch)
	})
	if st := v.status(); st["state"] != "ok" || st["last_error"] != nil {
		t.Errorf("status after the resync: %v, want ok without last_error", st)
	}
	id := v.createV2("after-resync@example.com", nil)
	v.fetch(id)
	visible(t, ctx, branch, id)
}

// TestAlteredTableIsAnError adds a NOT NULL column without a default to users_sync by hand,
// so that no new row can be written: the status says "error" with PostgreSQL's reason, a
// resync fails with it too, and once the column is gone a resync repairs the table.
func TestAlteredTableIsAnError(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	s := testserver.Start(t)
	v := newServed(t, s, "altered")
	v.seed(ctx, "before", 2)
	branch := branchPool(t, ctx, s.Env.Console, v.p.BranchID)
	for _, q := range []string{
		"ALTER TABLE neon_auth.users_sync ADD COLUMN x int NOT NULL DEFAULT 0",
		"ALTER TABLE neon_auth.users_sync ALTER COLUMN x DROP DEFAULT",
	} {
		if _, err := branch.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	v.fetch(v.createV2("after-alter@example.com", ptr("After alter")))
	const cause = `null value in column "x"`
	st := v.waitError(cause)
	t.Logf("status with the table altered: %v", st)

	r := v.resync()
	msg, _ := r.JSON(t)["message"].(string)
	if r.Status != http.StatusServiceUnavailable || !strings.Contains(msg, cause) {
		t.Errorf("resync of the altered table: %d %s, want 503 naming the cause", r.Status,
			r.Body)
	}
	if _, err := branch.Exec(ctx, "ALTER TABLE neon_auth.users_sync DROP COLUMN x"); err != nil {
		t.Fatalf("drop column: %v", err)
	}
	if r := v.resync(); r.Status != http.StatusOK {
		t.Fatalf("resync after the repair: %d %s", r.Status, r.Body)
	}
	waitFor(t, 10*time.Second, "users_sync converges", func() error {
		if n, err := pendingEvents(ctx, s.Env.Pool, v.in.AuthProjectID); err != nil || n > 0 {
			return fmt.Errorf("%d events pending (%v)", n, err)
		}
		return v.converged(ctx, branch)
	})
	if st := v.status(); st["state"] != "ok" {
		t.Errorf("status after the repair: %v, want ok", st)
	}
}

// convergedMany is converged for auth projects that sync into one users_sync table: it
// must hold exactly the users of all of them.
func convergedMany(ctx context.Context, meta, branch querier, raw map[string]json.RawMessage,
	authProjectIDs ...string) error {
	want := map[string]syncRow{}
	for _, id := range authProjectIDs {
		rows, err := authRows(ctx, meta, id)
		if err != nil {
			return err
		}
		maps.Copy(want, rows)
	}
	got, err := syncRows(ctx, branch)
	if err != nil {
		return err
	}
	var problems []string
	for id, w := range want {
		g, ok := got[id]
		if !ok {
			problems = append(problems, "missing row "+w.String())
			continue
		}
		w.Raw = raw[id]
		if p := rowDiff(w, g); p != "" {
			problems = append(problems, p)
		}
	}
	for id, g := range got {
		if _, ok := want[id]; !ok {
			problems = append(problems, "extra row "+g.String())
		}
	}
	return joinProblems(problems)
}

// TestResyncKeepsRowsOfOtherProjectsInTheTable attaches a second project to the database of
// a first one, so that the integrations of both sync into the same neon_auth.users_sync: a
// resync of either repairs its own users' rows and removes rows of no user, but keeps the
// rows of the other project's users.
func TestResyncKeepsRowsOfOtherProjectsInTheTable(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	s := testserver.Start(t)
	a := newServed(t, s, "first")
	r := s.Neon(t, "POST", "/projects", map[string]any{"project": map[string]any{
		"name": "attached", "connection_uri": a.p.ConnectionURI}})
	if r.Status != http.StatusCreated {
		t.Fatalf("attach the first project's database: %d %s", r.Status, r.Body)
	}
	var created struct {
		Project struct{ ID string } `json:"project"`
		Branch  struct{ ID string } `json:"branch"`
	}
	if err := json.Unmarshal(r.Body, &created); err != nil {
		t.Fatalf("attached project: %v", err)
	}
	bp := testserver.Project{ID: created.Project.ID, BranchID: created.Branch.ID}
	b := &served{t: t, s: s, p: bp, in: s.CreateIntegration(t, bp),
		raw: map[string]json.RawMessage{}}
	branch := branchPool(t, ctx, s.Env.Console, a.p.BranchID)

	var ids []string
	for i := range 4 {
		ids = append(ids, a.createV2(fmt.Sprintf("a-%d@example.com", i), ptr("A")))
		b.fetch(b.createV1(map[string]any{"primary_email": fmt.Sprintf("b-%d@example.com", i),
			"display_name": "B"}))
	}
	for _, id := range ids {
		a.fetch(id)
	}
	raw := map[string]json.RawMessage{}
	maps.Copy(raw, a.raw)
	maps.Copy(raw, b.raw)
	both := func() error {
		return convergedMany(ctx, s.Env.Pool, branch, raw, a.in.AuthProjectID,
			b.in.AuthProjectID)
	}
	waitFor(t, 10*time.Second, "both projects' users sync into the table", both)

	_, err := branch.Exec(ctx, `INSERT INTO neon_auth.users_sync (raw_json) VALUES
		('{"id": "no-such-user", "signed_up_at_millis": 0}')`)
	if err != nil {
		t.Fatalf("add a row of no user: %v", err)
	}
	_, err = branch.Exec(ctx, "DELETE FROM neon_auth.users_sync WHERE id = $1", ids[0])
	if err != nil {
		t.Fatalf("delete a row: %v", err)
	}
	for _, v := range []*served{a, b} {
		r := v.resync()
		if r.Status != http.StatusOK {
			t.Fatalf("resync: %d %s", r.Status, r.Body)
		}
		t.Logf("resync: %s", r.Body)
		if err := both(); err != nil {
			t.Fatalf("after a resync of %s: %v", v.p.ID, err)
		}
	}
}

// TestResyncOfUnreachableDatabaseIsRetrying runs a resync while the branch's server is
// stopped: it fails, and the sync status records why, as "retrying" (the database may come
// back by itself) rather than "error" (which asks for a repair). Once the server is back, a
// resync succeeds and clears the error.
func TestResyncOfUnreachableDatabaseIsRetrying(t *testing.T) {
	t.Parallel()
	o := openOffline(t)
	p := o.newProject("unreachable")
	w := o.worker(0)
	forget(t, w, p)
	p.create("waiting@example.com", nil) // no worker runs: its event waits
	cl, err := o.env.Computes.Open(p.BranchID)
	if err != nil {
		t.Fatalf("open branch cluster: %v", err)
	}
	if err := o.env.Computes.Stop(o.ctx, cl); err != nil {
		t.Fatalf("stop branch server: %v", err)
	}
	if _, err := w.Resync(o.ctx, p.AuthProjectID, nil); err == nil {
		t.Fatal("resync of a stopped server succeeded")
	}
	st, err := usersync.GetStatus(o.ctx, o.env.Pool, p.AuthProjectID)
	if err != nil {
		t.Fatal(err)
	}
	if st.State != "retrying" || st.LastError == "" || st.Pending != 1 {
		t.Errorf("status after the failed resync: %+v, want retrying with the error", st)
	}

	if err := o.env.Computes.Start(o.ctx, cl); err != nil {
		t.Fatalf("start branch server: %v", err)
	}
	if _, err := w.Resync(o.ctx, p.AuthProjectID, nil); err != nil {
		t.Fatalf("resync after the restart: %v", err)
	}
	p.drain(w, 10*time.Second)
	p.mustConverge()
	st, err = usersync.GetStatus(o.ctx, o.env.Pool, p.AuthProjectID)
	if err != nil {
		t.Fatal(err)
	}
	if st.State != "ok" || st.LastError != "" || st.LastResyncAt == nil {
		t.Errorf("status after the resync: %+v, want ok without an error", st)
	}
}
