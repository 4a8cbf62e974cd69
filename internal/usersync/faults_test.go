package usersync_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/neonauth/neonauth/internal/testserver"
)

// The fault tests of the sync: a branch server that goes away, a service process killed in
// the middle of a stream of changes, two processes on one metadata database of which one is
// killed, late and duplicate events, and names that are hard to store. Each ends by checking
// that users_sync holds exactly the auth project's users, deleted ones included.

// TestOutageBacklogWaitsVisiblyAndDrains stops the branch's PostgreSQL server while 2,000
// users are created (and some renamed and deleted) through the API of a real service
// process: the sync status says "retrying" with a growing backlog and the error, /metrics
// counts retries and pending events, and once the server is back the backlog drains and
// users_sync matches the users.
func TestOutageBacklogWaitsVisiblyAndDrains(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	data := newDataDir(t)
	p := startProc(t, "outage", data)
	key := apiKey(t, data)
	s := p.server(key)
	proj := s.CreateProject(t, "outage")
	in := s.CreateIntegration(t, proj)
	c := newClient(key, proj.ID, in, p.addr)
	meta := openPool(t, clusterURI(t, data, "metadata", "postgres"))

	const users, renamed, removed, workers = 2000, 300, 20, 8
	start := time.Now()
	var (
		created atomic.Int64
		mu      sync.Mutex
		deleted = map[string]json.RawMessage{}
		failure error
		wg      sync.WaitGroup
		jobs    = make(chan int)
	)
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if failure == nil {
			failure = err
		}
	}
	for range workers {
		wg.Go(func() {
			for i := range jobs {
				raw, err := c.userHistory(ctx, i, i < renamed, i >= users-removed)
				if err != nil {
					fail(err)
					continue
				}
				created.Add(1)
				if raw != nil {
					mu.Lock()
					deleted[raw.id] = raw.last
					mu.Unlock()
				}
			}
		})
	}
	go func() {
		defer close(jobs)
		for i := range users {
			select {
			case jobs <- i:
			case <-ctx.Done():
				return
			}
		}
	}()

	waitFor(t, 30*time.Second, "the first users are created", func() error {
		if n := created.Load(); n < 50 {
			return fmt.Errorf("%d created", n)
		}
		return nil
	})
	stopCluster(t, data, proj.BranchID)
	t.Logf("branch server stopped after %d of %d users", created.Load(), users)

	st := waitStatus(t, ctx, c, proj.ID, 20*time.Second, func(st map[string]any) error {
		switch {
		case st["state"] != "retrying":
			return fmt.Errorf("state %v", st["state"])
		case num(st["pending_events"]) == 0:
			return errors.New("no pending events")
		case st["last_error"] == nil:
			return errors.New("no last_error")
		}
		return nil
	})
	t.Logf("during the outage: %d pending, last_error %v", int(num(st["pending_events"])),
		st["last_error"])
	age1 := num(st["oldest_pending_age_seconds"])
	time.Sleep(1200 * time.Millisecond)
	st = waitStatus(t, ctx, c, proj.ID, 5*time.Second, func(map[string]any) error { return nil })
	if age2 := num(st["oldest_pending_age_seconds"]); age2 < age1+1 {
		t.Errorf("oldest pending age went from %.3f s to %.3f s in 1.2 s, want it growing",
			age1, age2)
	}
	waitFor(t, 20*time.Second, "metrics show retries and pending events", func() error {
		for _, name := range []string{"neonauth_sync_retries_total",
			"neonauth_sync_pending_events"} {
			v, _, err := c.metric(ctx, name, in.AuthProjectID)
			if err != nil {
				return err
			}
			if v <= 0 {
				return fmt.Errorf("%s = %v", name, v)
			}
		}
		return nil
	})

	wg.Wait()
	if failure != nil {
		t.Fatalf("changes during the outage: %v", failure)
	}
	t.Logf("%d creates, %d renames, %d deletes took %v", users, renamed, removed,
		time.Since(start))
	raw, err := c.expectedRaw(ctx, meta, deleted)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := c.syncStatus(ctx, proj.ID); err != nil || num(st["pending_events"]) == 0 {
		t.Fatalf("before the restart: status %v (%v), want pending events", st, err)
	}

	startCluster(t, data, proj.BranchID)
	restarted := time.Now()
	branch := openPool(t, clusterURI(t, data, proj.BranchID, "neondb"))
	waitFor(t, 60*time.Second, "backlog drains and users_sync converges", func() error {
		if n, err := pendingEvents(ctx, meta, in.AuthProjectID); err != nil || n > 0 {
			return fmt.Errorf("%d events pending (%v)", n, err)
		}
		return converged(ctx, meta, branch, in.AuthProjectID, raw)
	})
	t.Logf("backlog drained %v after the restart", time.Since(restarted))
	st, err = c.syncStatus(ctx, proj.ID)
	if err != nil {
		t.Fatal(err)
	}
	if st["state"] != "ok" || num(st["pending_events"]) != 0 {
		t.Errorf("status after the backlog drained: %v, want state ok and nothing pending", st)
	}
}

// waitStatus polls the sync status until check accepts it, and returns it.
func waitStatus(t *testing.T, ctx context.Context, c *client, projectID string,
	limit time.Duration, check func(map[string]any) error) map[string]any {
	t.Helper()
	var st map[string]any
	waitFor(t, limit, "sync status", func() error {
		var err error
		if st, err = c.syncStatus(ctx, projectID); err != nil {
			return err
		}
		if err := check(st); err != nil {
			return fmt.Errorf("%w: %v", err, st)
		}
		return nil
	})
	return st
}

// num reads a JSON number (0 when it is not one).
func num(v any) float64 {
	f, _ := v.(float64)
	return f
}

// removal is the last server JSON of a user deleted afterwards.
type removal struct {
	id   string
	last json.RawMessage
}

// userHistory creates user i (through the management API for every fourth one, as a server
// call of the provider API otherwise), renames it when rename is set, and deletes it when
// remove is set, returning its last JSON then. The service must answer every request.
func (c *client) userHistory(ctx context.Context, i int, rename, remove bool) (*removal, error) {
	email := fmt.Sprintf("user-%d@example.com", i)
	var status int
	var body []byte
	var err error
	if i%4 == 0 {
		status, body, err = c.neon(ctx, "POST", "/projects/auth/user", map[string]any{
			"project_id": c.projectID, "auth_provider": "stack", "email": email,
			"name": fmt.Sprintf("User %d", i)})
	} else {
		status, body, err = c.stack(ctx, "POST", "/users", map[string]any{
			"primary_email": email, "display_name": fmt.Sprintf("User %d ✓", i),
			"client_metadata": map[string]any{"i": i}})
	}
	if err != nil {
		return nil, err
	}
	if status != http.StatusCreated && status != http.StatusOK {
		return nil, fmt.Errorf("create user %d: %d %s", i, status, body)
	}
	id, err := userID(body)
	if err != nil {
		return nil, err
	}
	if rename {
		status, body, err := c.stack(ctx, "PATCH", "/users/"+id,
			map[string]any{"display_name": fmt.Sprintf("Renamed %d", i)})
		if err != nil {
			return nil, err
		}
		if status != http.StatusOK {
			return nil, fmt.Errorf("rename user %d: %d %s", i, status, body)
		}
	}
	if !remove {
		return nil, nil
	}
	last, err := c.serverJSON(ctx, id)
	if err != nil {
		return nil, err
	}
	status, body, err = c.stack(ctx, "DELETE", "/users/"+id, nil)
	if err != nil {
		return nil, err
	}
	if status != http.StatusOK {
		return nil, fmt.Errorf("delete user %d: %d %s", i, status, body)
	}
	return &removal{id: id, last: last}, nil
}

// stream is a load of user changes: each of its goroutines creates a user, renames it twice
// and deletes every fourth one, over and over until stopped. Every change that gets no
// answer is sent again, through the client pick chooses for that attempt, until one answers.
type stream struct {
	pick func(worker, attempt int) *client
	ops  atomic.Int64 // changes answered
	stop atomic.Bool
	wg   sync.WaitGroup

	mu      sync.Mutex
	deleted map[string]json.RawMessage
	err     error
}

// startStream starts workers goroutines sending changes.
func startStream(ctx context.Context, prefix string, workers int,
	pick func(worker, attempt int) *client) *stream {
	s := &stream{pick: pick, deleted: map[string]json.RawMessage{}}
	for w := range workers {
		s.wg.Go(func() {
			for n := 0; !s.stop.Load() && ctx.Err() == nil; n++ {
				name := fmt.Sprintf("%s-%d-%d", prefix, w, n)
				if err := s.cycle(ctx, w, name, n%4 == 3); err != nil {
					s.mu.Lock()
					if s.err == nil {
						s.err = err
					}
					s.mu.Unlock()
					return
				}
			}
		})
	}
	return s
}

// send sends one change until it is answered and returns the answer.
func (s *stream) send(ctx context.Context, w int,
	req func(c *client, attempt int) (int, []byte, error)) (int, []byte, error) {
	deadline := time.Now().Add(time.Minute)
	for attempt := 0; ; attempt++ {
		status, body, err := req(s.pick(w, attempt), attempt)
		if err == nil && status < 500 {
			return status, body, nil
		}
		if err != nil && !errors.Is(err, errConn) {
			return 0, nil, err
		}
		if time.Now().After(deadline) {
			return status, body, fmt.Errorf("no answer within a minute: %d %s %v",
				status, body, err)
		}
		select {
		case <-ctx.Done():
			return 0, nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// cycle creates a user, renames it twice and deletes it when remove is set. A creation that
// got no answer may have happened: it is sent again with another address, so that both
// users may exist, each with its own history.
func (s *stream) cycle(ctx context.Context, w int, name string, remove bool) error {
	status, body, err := s.send(ctx, w, func(c *client, attempt int) (int, []byte, error) {
		return c.stack(ctx, "POST", "/users", map[string]any{
			"primary_email": fmt.Sprintf("%s-%d@example.com", name, attempt),
			"display_name":  name, "server_metadata": map[string]any{"attempt": attempt}})
	})
	if err != nil {
		return err
	}
	if status != http.StatusCreated {
		return fmt.Errorf("create %s: %d %s", name, status, body)
	}
	id, err := userID(body)
	if err != nil {
		return err
	}
	s.ops.Add(1)
	for r := range 2 {
		status, body, err := s.send(ctx, w, func(c *client, _ int) (int, []byte, error) {
			return c.stack(ctx, "PATCH", "/users/"+id,
				map[string]any{"display_name": fmt.Sprintf("%s renamed %d", name, r)})
		})
		if err != nil {
			return err
		}
		if status != http.StatusOK {
			return fmt.Errorf("rename %s: %d %s", name, status, body)
		}
		s.ops.Add(1)
	}
	if !remove {
		return nil
	}
	status, body, err = s.send(ctx, w, func(c *client, _ int) (int, []byte, error) {
		return c.stack(ctx, "GET", "/users/"+id, nil)
	})
	if err != nil {
		return err
	}
	if status != http.StatusOK {
		return fmt.Errorf("get %s: %d %s", name, status, body)
	}
	last := json.RawMessage(body)
	status, body, err = s.send(ctx, w, func(c *client, attempt int) (int, []byte, error) {
		return c.stack(ctx, "DELETE", "/users/"+id, nil)
	})
	if err != nil {
		return err
	}
	// A delete sent again after one that took effect without an answer finds no user.
	if status != http.StatusOK && status != http.StatusNotFound {
		return fmt.Errorf("delete %s: %d %s", name, status, body)
	}
	s.mu.Lock()
	s.deleted[id] = last
	s.mu.Unlock()
	s.ops.Add(1)
	return nil
}

// waitOps waits until at least n changes were answered.
func (s *stream) waitOps(t *testing.T, n int64, limit time.Duration) {
	t.Helper()
	waitFor(t, limit, fmt.Sprintf("%d changes", n), func() error {
		if err := s.failed(); err != nil {
			t.Fatalf("stream: %v", err)
		}
		if got := s.ops.Load(); got < n {
			return fmt.Errorf("%d changes", got)
		}
		return nil
	})
}

func (s *stream) failed() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// finish stops the stream, waits for its goroutines and fails the test on their errors.
func (s *stream) finish(t *testing.T) {
	t.Helper()
	s.stop.Store(true)
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(90 * time.Second):
		t.Fatal("stream did not stop within 90 s")
	}
	if err := s.failed(); err != nil {
		t.Fatalf("stream: %v", err)
	}
}

// checkEachChangeOnce checks the apply log of users_sync against the users: every user's row
// was written once for each of its changes (its version counts them), never twice, and in
// the order of its history.
func checkEachChangeOnce(t *testing.T, ctx context.Context, meta, branch *pgxpool.Pool,
	authProjectID string) {
	t.Helper()
	rows, err := meta.Query(ctx, `SELECT id::text, version FROM auth_users
		WHERE auth_project_id = $1`, authProjectID)
	if err != nil {
		t.Fatalf("read versions: %v", err)
	}
	versions := map[string]int{}
	for rows.Next() {
		var id string
		var v int
		if err := rows.Scan(&id, &v); err != nil {
			t.Fatalf("scan version: %v", err)
		}
		versions[id] = v
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("read versions: %v", err)
	}
	sets := applyLog(t, ctx, branch, "set")
	var problems []string
	for id, v := range versions {
		if len(sets[id]) != v {
			problems = append(problems, fmt.Sprintf("user %s: %d writes for %d changes: %v",
				id, len(sets[id]), v, sets[id]))
		}
		if err := inOrder(sets[id]); err != nil {
			problems = append(problems, fmt.Sprintf("user %s: %v", id, err))
		}
	}
	for id := range sets {
		if _, ok := versions[id]; !ok {
			problems = append(problems, "writes for unknown user "+id)
		}
	}
	if err := joinProblems(problems); err != nil {
		t.Errorf("apply log: %v", err)
	}
	t.Logf("apply log: %d writes, %d offered, for %d users", countEntries(sets),
		countEntries(applyLog(t, ctx, branch, "try")), len(versions))
}

// pauseDDL makes the next worker that finished writing a batch to users_sync wait 2 s
// before it deletes the batch from the outbox, once it is armed (a row in pause_armed): the
// window in which a killed process leaves events applied but still in the outbox, to be
// applied again by whoever takes over. Workers whose metadata connections are named "two"
// never wait. A worker that is killed while waiting rolls back, the arming included.
const pauseDDL = `
CREATE TABLE public.pause_armed (armed bool);
CREATE FUNCTION public.pause_after_apply() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF current_setting('application_name') <> 'two'
			AND EXISTS (SELECT 1 FROM public.pause_armed) THEN
		DELETE FROM public.pause_armed;
		PERFORM pg_sleep(2);
	END IF;
	RETURN NULL;
END $$;
CREATE TRIGGER pause_after_apply AFTER DELETE ON public.sync_events
	FOR EACH STATEMENT EXECUTE FUNCTION public.pause_after_apply();
`

// killInWindow arms the pause of pauseDDL, waits until a worker of p waits in it, with its
// batch committed to users_sync and not yet deleted from the outbox, and SIGKILLs p then.
func killInWindow(t *testing.T, ctx context.Context, meta *pgxpool.Pool, p *proc) {
	t.Helper()
	if _, err := meta.Exec(ctx, "INSERT INTO public.pause_armed VALUES (true)"); err != nil {
		t.Fatalf("arm the pause: %v", err)
	}
	waitFor(t, 20*time.Second, "a worker waits between users_sync and the outbox", func() error {
		var n int
		err := meta.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE wait_event = 'PgSleep' AND query LIKE 'DELETE FROM sync_events%'`).Scan(&n)
		if err == nil && n == 0 {
			err = errors.New("none yet")
		}
		return err
	})
	p.kill()
}

// checkReplayed checks that some events were offered to users_sync again (after a kill in
// the window of pauseDDL), which checkEachChangeOnce then shows changed nothing.
func checkReplayed(t *testing.T, ctx context.Context, branch *pgxpool.Pool) {
	t.Helper()
	tries := countEntries(applyLog(t, ctx, branch, "try"))
	sets := countEntries(applyLog(t, ctx, branch, "set"))
	if tries <= sets {
		t.Errorf("%d writes offered for %d made: the batch of the killed process was not "+
			"applied again", tries, sets)
	}
}

// TestKilledServiceLosesNothing SIGKILLs the service process in the middle of a stream of
// user changes, whose client keeps going and retries what gets no answer, at the worst
// moment: a batch is written to users_sync and still in the outbox. Started again on the
// same data directory, the service applies that batch again and the rest: users_sync
// converges, and its apply log shows every change written exactly once and in order.
func TestKilledServiceLosesNothing(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	data := newDataDir(t)
	p1 := startProc(t, "first", data)
	key := apiKey(t, data)
	s := p1.server(key)
	proj := s.CreateProject(t, "killed")
	in := s.CreateIntegration(t, proj)
	branch := openPool(t, clusterURI(t, data, proj.BranchID, "neondb"))
	installApplyLog(t, ctx, branch)
	meta := openPool(t, clusterURI(t, data, "metadata", "postgres"))
	if _, err := meta.Exec(ctx, pauseDDL); err != nil {
		t.Fatalf("install the pause: %v", err)
	}

	c := newClient(key, proj.ID, in, p1.addr)
	st := startStream(ctx, "kill", 4, func(int, int) *client { return c })
	st.waitOps(t, 100, 60*time.Second)
	killInWindow(t, ctx, meta, p1)
	atKill := st.ops.Load()
	t.Logf("killed the service after %d changes", atKill)
	p2 := startProc(t, "second", data)
	c.setAddr(p2.addr)
	st.waitOps(t, atKill+150, 60*time.Second)
	st.finish(t)

	raw, err := c.expectedRaw(ctx, meta, st.deleted)
	if err != nil {
		t.Fatal(err)
	}
	took := waitFor(t, 30*time.Second, "users_sync converges", func() error {
		if n, err := pendingEvents(ctx, meta, in.AuthProjectID); err != nil || n > 0 {
			return fmt.Errorf("%d events pending (%v)", n, err)
		}
		return converged(ctx, meta, branch, in.AuthProjectID, raw)
	})
	t.Logf("%d changes, %d users; converged %v after the stream ended", st.ops.Load(),
		len(raw), took)
	checkEachChangeOnce(t, ctx, meta, branch, in.AuthProjectID)
	checkReplayed(t, ctx, branch)
}

// TestSecondProcessTakesOver runs two service processes on one metadata database (the
// second with --database-url and its own data directory) and sends a stream of changes
// through both, then SIGKILLs the first with a batch written to users_sync and still in the
// outbox: the second applies that batch again and all later changes within seconds,
// users_sync converges, and no change was written twice or out of order.
func TestSecondProcessTakesOver(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	data1 := newDataDir(t)
	p1 := startProc(t, "one", data1)
	key := apiKey(t, data1)
	proj := p1.server(key).CreateProject(t, "two")
	in := p1.server(key).CreateIntegration(t, proj)
	metaURI := clusterURI(t, data1, "metadata", "postgres")
	meta := openPool(t, metaURI)
	if _, err := meta.Exec(ctx, pauseDDL); err != nil {
		t.Fatalf("install the pause: %v", err)
	}
	// Processes that share a metadata database share its master keys too.
	keys := "NEONAUTH_MASTER_KEY_FILE=" + filepath.Join(data1, "master-key")
	p2 := startProcEnv(t, "two", newDataDir(t), []string{keys},
		"--database-url", metaURI+"&application_name=two")
	branch := openPool(t, clusterURI(t, data1, proj.BranchID, "neondb"))
	installApplyLog(t, ctx, branch)

	c1, c2 := newClient(key, proj.ID, in, p1.addr), newClient(key, proj.ID, in, p2.addr)
	var dead atomic.Bool
	var turn atomic.Int64
	st := startStream(ctx, "both", 4, func(int, int) *client {
		if dead.Load() || turn.Add(1)%2 == 0 {
			return c2
		}
		return c1
	})
	st.waitOps(t, 100, 60*time.Second)
	killInWindow(t, ctx, meta, p1)
	dead.Store(true)
	atKill := st.ops.Load()
	killed := time.Now()
	t.Logf("killed the first process after %d changes", atKill)

	status, body, err := c2.stack(ctx, "POST", "/users",
		map[string]any{"primary_email": "after-kill@example.com"})
	if err != nil || status != http.StatusCreated {
		t.Fatalf("create a user through the second process: %d %s %v", status, body, err)
	}
	id, err := userID(body)
	if err != nil {
		t.Fatal(err)
	}
	// The killed process's metadata session ends once its pause is over (2 s); the second
	// process must then take the project over at its next poll.
	waitFor(t, 10*time.Second, "the second process applies a change", func() error {
		var n int
		err := branch.QueryRow(ctx, "SELECT count(*) FROM neon_auth.users_sync WHERE id = $1",
			id).Scan(&n)
		if err == nil && n != 1 {
			err = fmt.Errorf("%d rows", n)
		}
		return err
	})
	t.Logf("a change through the second process was applied %v after the kill",
		time.Since(killed))
	st.waitOps(t, atKill+150, 60*time.Second)
	st.finish(t)

	raw, err := c2.expectedRaw(ctx, meta, st.deleted)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 15*time.Second, "users_sync converges", func() error {
		if n, err := pendingEvents(ctx, meta, in.AuthProjectID); err != nil || n > 0 {
			return fmt.Errorf("%d events pending (%v)", n, err)
		}
		return converged(ctx, meta, branch, in.AuthProjectID, raw)
	})
	checkEachChangeOnce(t, ctx, meta, branch, in.AuthProjectID)
	checkReplayed(t, ctx, branch)
	if !healthy(p2.addr) {
		t.Errorf("the second process is not healthy")
	}
}

// TestLateAndDuplicateEventsKeepNewestState lets the running service's worker apply, after
// a user's history, crafted copies of its events: the newest again (a duplicate), the
// creation and the first rename (late), a rename after the delete, and an event older than
// the row with other content. Every row keeps the newest state, and a later change still
// applies.
func TestLateAndDuplicateEventsKeepNewestState(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	s := testserver.Start(t)
	v := newServed(t, s, "late")
	branch := branchPool(t, ctx, s.Env.Console, v.p.BranchID)

	live := v.createV1(map[string]any{"primary_email": "live@example.com",
		"display_name": "First"})
	gone := v.createV1(map[string]any{"primary_email": "gone@example.com",
		"display_name": "First"})
	var hist []craftedEvent
	hist = append(hist, v.snapshot(ctx, live))
	v.patch(live, map[string]any{"display_name": "Second"})
	hist = append(hist, v.snapshot(ctx, live))
	v.patch(live, map[string]any{"display_name": "Third"})
	hist = append(hist, v.snapshot(ctx, live))
	v.patch(gone, map[string]any{"display_name": "Renamed"})
	goneRenamed := v.snapshot(ctx, gone)
	v.fetch(live)
	v.remove(gone)
	waitFor(t, 10*time.Second, "users_sync converges", func() error {
		return v.converged(ctx, branch)
	})
	before, err := syncRows(ctx, branch)
	if err != nil {
		t.Fatal(err)
	}

	older := hist[2]
	older.Raw = json.RawMessage(`{"id": "` + live + `", "display_name": "Crafted"}`)
	at := older.ChangedAt.Add(-time.Millisecond)
	older.ChangedAt = &at
	v.craft(ctx, hist[2], hist[0], hist[1], hist[2], older, goneRenamed)
	waitFor(t, 10*time.Second, "crafted events applied", func() error {
		if n, err := pendingEvents(ctx, s.Env.Pool, v.in.AuthProjectID); err != nil || n > 0 {
			return fmt.Errorf("%d events pending (%v)", n, err)
		}
		return nil
	})
	after, err := syncRows(ctx, branch)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{live, gone} {
		if d := rowDiff(before[id], after[id]); d != "" {
			t.Errorf("crafted events changed a row: %s", d)
		}
	}
	if err := v.converged(ctx, branch); err != nil {
		t.Errorf("after the crafted events: %v", err)
	}

	v.patch(live, map[string]any{"display_name": "Fourth"})
	v.fetch(live)
	waitFor(t, 10*time.Second, "a later change applies", func() error {
		return v.converged(ctx, branch)
	})
}

// craftedEvent is the content of an outbox row for a user's state.
type craftedEvent struct {
	UserID    string
	Version   int64
	Raw       json.RawMessage
	ChangedAt *time.Time
	DeletedAt *time.Time
}

// snapshot returns the event the user's current state was recorded with.
func (v *served) snapshot(ctx context.Context, id string) craftedEvent {
	v.t.Helper()
	r := v.s.Stack(v.t, v.in, "server", "GET", "/users/"+id, nil)
	if r.Status != http.StatusOK {
		v.t.Fatalf("get user %s: %d %s", id, r.Status, r.Body)
	}
	e := craftedEvent{UserID: id, Raw: r.Body}
	err := v.s.Env.Pool.QueryRow(ctx, `SELECT version, updated_at, deleted_at FROM auth_users
		WHERE id = $1`, id).Scan(&e.Version, &e.ChangedAt, &e.DeletedAt)
	if err != nil {
		v.t.Fatalf("read user %s: %v", id, err)
	}
	return e
}

// craft writes events into the outbox in one transaction, in the order given.
func (v *served) craft(ctx context.Context, evs ...craftedEvent) {
	v.t.Helper()
	tx, err := v.s.Env.Pool.Begin(ctx)
	if err != nil {
		v.t.Fatalf("begin: %v", err)
	}
	defer tx.Rollback(ctx)
	for _, e := range evs {
		_, err := tx.Exec(ctx, `INSERT INTO sync_events (auth_project_id, user_id, version,
				raw_json, changed_at, deleted_at)
			VALUES ($1, $2, $3, $4, $5, $6)`,
			v.in.AuthProjectID, e.UserID, e.Version, e.Raw, e.ChangedAt, e.DeletedAt)
		if err != nil {
			v.t.Fatalf("craft event: %v", err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		v.t.Fatalf("commit crafted events: %v", err)
	}
}

// TestHardNamesSyncByteForByte creates and renames users whose names hold emoji, control
// characters, combining marks and other text that is easy to mangle, through both APIs:
// users_sync holds every name byte for byte. A name or metadata with a NUL character is
// refused with 400 and leaves nothing in the outbox that could stall it: users created
// afterwards sync.
func TestHardNamesSyncByteForByte(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	s := testserver.Start(t)
	v := newServed(t, s, "names")
	branch := branchPool(t, ctx, s.Env.Console, v.p.BranchID)

	names := []string{
		"👩🏽‍💻 Zoë 李",                               // emoji with skin tone and ZWJ, Latin, Han
		"👨‍👩‍👧‍👦🇺🇦",                                // ZWJ family, flag
		"e\u0301 vs \u00e9",                        // decomposed and composed é
		"\u0301\u0302 leading combining marks",     // marks without a base
		"tab\tnew\nline\rret\x01\x1b[31mred\x7f",   // control characters
		"\u200b\u200d\ufeff\u2028\u2029 invisible", // zero-width, BOM, line separators
		"  spaces kept  ",
		"עברית مرحبا", // right to left
		"𝔘𝔫𝔦𝔠𝔬𝔡𝔢 \U0010FFFD",
		`"quotes" \backslash\ <tag> & 'single'`,
	}
	want := map[string]string{}
	for i, name := range names {
		var id string
		if i%2 == 0 {
			id = v.createV2(fmt.Sprintf("name-%d@example.com", i), &name)
		} else {
			id = v.createV1(map[string]any{"primary_email": fmt.Sprintf("name-%d@example.com", i),
				"display_name": "placeholder"})
			v.patch(id, map[string]any{"display_name": name})
		}
		want[id] = name
	}

	refused := []struct {
		what string
		send func() testserver.Response
	}{
		{"management API create", func() testserver.Response {
			return s.Neon(t, "POST", "/projects/auth/user", map[string]any{
				"project_id": v.p.ID, "auth_provider": "stack",
				"email": "nul-v2@example.com", "name": "nul\x00name"})
		}},
		{"provider API create", func() testserver.Response {
			return s.Stack(t, v.in, "server", "POST", "/users", map[string]any{
				"primary_email": "nul-v1@example.com", "display_name": "nul\x00name"})
		}},
		{"provider API rename", func() testserver.Response {
			var some string
			for id := range want {
				some = id
				break
			}
			return s.Stack(t, v.in, "server", "PATCH", "/users/"+some,
				map[string]any{"display_name": "\x00"})
		}},
		{"provider API metadata", func() testserver.Response {
			return s.Stack(t, v.in, "server", "POST", "/users", map[string]any{
				"primary_email":   "nul-meta@example.com",
				"server_metadata": map[string]any{"k": "a\x00b"}})
		}},
	}
	for _, r := range refused {
		if got := r.send(); got.Status != http.StatusBadRequest {
			t.Errorf("%s with a NUL character: %d %s, want 400", r.what, got.Status, got.Body)
		}
	}
	after := v.createV1(map[string]any{"primary_email": "after-nul@example.com",
		"display_name": "After ✓"})
	want[after] = "After ✓"

	for id := range want {
		v.fetch(id)
	}
	waitFor(t, 15*time.Second, "users_sync converges", func() error {
		if n, err := pendingEvents(ctx, s.Env.Pool, v.in.AuthProjectID); err != nil || n > 0 {
			return fmt.Errorf("%d events pending (%v)", n, err)
		}
		return v.converged(ctx, branch)
	})
	rows, err := syncRows(ctx, branch)
	if err != nil {
		t.Fatal(err)
	}
	for id, name := range want {
		var raw struct {
			DisplayName string `json:"display_name"`
		}
		if err := json.Unmarshal(rows[id].Raw, &raw); err != nil {
			t.Fatalf("raw_json of %s: %v", id, err)
		}
		switch got := rows[id].Name; {
		case got == nil || *got != name:
			t.Errorf("name column of %s: %s, want %q", id, str(got), name)
		case raw.DisplayName != name:
			t.Errorf("raw_json display_name of %s: %q, want %q", id, raw.DisplayName, name)
		}
	}
}
