package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/neonauth/neonauth/internal/server"
	"github.com/neonauth/neonauth/internal/testserver"
)

// Load of the create-to-visible phase: an open-loop generator at syncRate users per second
// for syncWindow, at most syncInFlight creates outstanding at once.
const (
	syncRate     = 1000
	syncWindow   = 10 * time.Second
	syncInFlight = 512
	// syncDrain bounds the wait for the last users to reach users_sync.
	syncDrain = 60 * time.Second
	// settle is the pause before a load phase, so that the start-up work of a new branch
	// server (its first checkpoint, autovacuum of the new catalogs) is not measured.
	settle = 2 * time.Second
)

// Size of the resync phase.
const (
	resyncUsers = 100_000
	rawBatch    = 100
)

// rawUpsert is the statement of stack-choices §4.3 against the real users_sync table: its id
// is generated from raw_json, so only raw_json and updated_at are written.
const rawUpsert = `INSERT INTO neon_auth.users_sync (raw_json, updated_at) VALUES ($1, now())
ON CONFLICT (id) DO UPDATE SET raw_json = EXCLUDED.raw_json, updated_at = EXCLUDED.updated_at`

// BenchmarkSync measures, in one run, with fsync on in every PostgreSQL server (c.Fast =
// false): the time from a user's creation to its row being visible in users_sync while users
// are created through the management API at a steady 1,000 per second (and, to tell the sync
// path from the API's own cost, through the Stack server API); and the throughput of
// Worker.Resync next to a raw batched upsert of the same rows into the same table. It runs
// its phases once, whatever b.N is.
func BenchmarkSync(b *testing.B) {
	s := testserver.Start(b, func(c *server.Config) {
		c.Fast = false
		c.DBMaxConns = 16
	})
	if s.Env.Computes == nil {
		b.Fatal("no managed PostgreSQL: the benchmark needs its own branch servers")
	}
	loadBefore := loadAvg()
	ctx := b.Context()
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		MaxIdleConns: syncInFlight, MaxIdleConnsPerHost: syncInFlight}}
	p, in := latencyProject(b, s, "sync-latency")
	b.ResetTimer()

	lat := createToVisible(ctx, b, s, in.AuthProjectID, func(i int64) (string, error) {
		return createUser(ctx, hc, s, p.ID, fmt.Sprintf("sync-%d@example.com", i))
	})
	// The same load through the Stack server API, whose key check only reads: it writes the
	// same rows and events, so it shows the sync path without the management API's key write.
	_, in1 := latencyProject(b, s, "sync-latency-stack")
	stack := createToVisible(ctx, b, s, in1.AuthProjectID, func(i int64) (string, error) {
		return createStackUser(ctx, hc, s, in1, fmt.Sprintf("stack-%d@example.com", i))
	})

	p2 := s.CreateProject(b, "sync-resync")
	in2 := s.CreateIntegration(b, p2)
	rs := resyncVersusRaw(ctx, b, s, in2.AuthProjectID)
	b.StopTimer()

	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(ms(lat.visible.p50), "visible_p50_ms")
	b.ReportMetric(ms(lat.visible.p99), "visible_p99_ms")
	b.ReportMetric(ms(lat.visible.max), "visible_max_ms")
	b.ReportMetric(lat.rate, "create_rate")
	b.ReportMetric(ms(stack.visible.p99), "visible_stack_p99_ms")
	b.ReportMetric(stack.rate, "create_stack_rate")
	b.ReportMetric(rs.resync, "resync_rows_per_s")
	b.ReportMetric(rs.raw, "raw_upsert_rows_per_s")
	b.ReportMetric(rs.resync/rs.raw, "resync_over_raw")

	fmt.Printf("\nfsync on (Fast=false), metadata pool 16 connections; load average "+
		"before: %s, after: %s\n", loadBefore, loadAvg())
	lat.print("management API, POST /api/v2/projects/auth/user")
	stack.print("Stack server API, POST /api/v1/users")
	fmt.Printf("\nresync of %d users into an empty users_sync: %v = %.0f rows/s\n",
		rs.users, rs.resyncTook.Round(time.Millisecond), rs.resync)
	fmt.Printf("raw pgx.Batch of %d upserts, same rows, empty table: %v = %.0f rows/s\n",
		rawBatch, rs.rawTook.Round(time.Millisecond), rs.raw)
	fmt.Printf("resync / raw: %.3f\n", rs.resync/rs.raw)
}

// loadAvg returns the machine's 1, 5 and 15 minute load averages, to tell a quiet run from
// one that shared the cores with other work.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	return strings.Join(f[:min(3, len(f))], " ")
}

// dist is a latency distribution.
type dist struct {
	n                  int
	p50, p99, max, min time.Duration
}

func (d dist) String() string {
	r := func(x time.Duration) time.Duration { return x.Round(10 * time.Microsecond) }
	return fmt.Sprintf("n=%d p50=%v p99=%v max=%v min=%v", d.n, r(d.p50), r(d.p99), r(d.max),
		r(d.min))
}

// distOf sorts ds and returns its percentiles (nearest rank).
func distOf(ds []time.Duration) dist {
	if len(ds) == 0 {
		return dist{}
	}
	slices.Sort(ds)
	rank := func(q float64) time.Duration {
		return ds[max(0, int(math.Ceil(q*float64(len(ds))))-1)]
	}
	return dist{n: len(ds), p50: rank(0.50), p99: rank(0.99), max: ds[len(ds)-1],
		min: ds[0]}
}

// latency is what the create-to-visible phase measured.
type latency struct {
	offered, ok, failed, shed int64
	// rate is the achieved creates per second: 201s over the time from the first request
	// to the last 201.
	rate float64
	// request is POST to 201; visible is signed_up_at to the users_sync commit; after201 is
	// the 201's arrival to that commit.
	request, visible, after201 dist
	// applies is how many branch transactions wrote the rows.
	applies int64
}

// print writes the phase's figures to the summary; via names the API the users came through.
func (l latency) print(via string) {
	fmt.Printf("\ncreates through the %s:\n", via)
	fmt.Printf("  %d offered at %d/s over %v, %d ok, %d failed, %d shed "+
		"(more than %d in flight); achieved %.1f/s\n", l.offered, syncRate, syncWindow, l.ok,
		l.failed, l.shed, syncInFlight, l.rate)
	fmt.Printf("  request (POST -> 201):    %v\n", l.request)
	fmt.Printf("  signed_up_at -> visible:  %v\n", l.visible)
	fmt.Printf("  201 received -> visible:  %v\n", l.after201)
	fmt.Printf("  apply transactions on the branch: %d (%.1f rows each)\n", l.applies,
		float64(l.ok)/float64(max(l.applies, 1)))
}

// latencyProject creates a project and its integration whose branch server records commit
// timestamps: a row's commit time is the moment it became visible to readers of users_sync.
func latencyProject(b *testing.B, s *testserver.Server, name string) (testserver.Project,
	testserver.Integration) {
	b.Helper()
	s.Env.Computes.SetExtraConfig(map[string]string{"track_commit_timestamp": "on"})
	defer s.Env.Computes.SetExtraConfig(nil)
	p := s.CreateProject(b, name)
	return p, s.CreateIntegration(b, p)
}

// createToVisible creates users with create (given the user's number, it returns the new
// user's id) at syncRate for syncWindow, and measures when each one became visible in the
// auth project's users_sync.
func createToVisible(ctx context.Context, b *testing.B, s *testserver.Server,
	authProjectID string, create func(i int64) (string, error)) latency {
	b.Helper()
	time.Sleep(settle)
	var (
		out      latency
		mu       sync.Mutex
		got201   = map[string]time.Time{}
		requests []time.Duration
		lastDone time.Time
		firstErr error
		wg       sync.WaitGroup
		slots    = make(chan struct{}, syncInFlight)
	)
	total := int64(syncRate * syncWindow / time.Second)
	tick := time.NewTicker(time.Second / syncRate)
	start := time.Now()
	hardStop := start.Add(2 * syncWindow)
	for out.offered < total && time.Now().Before(hardStop) {
		<-tick.C
		// Fire every create that is due by now, so that a late tick does not lower the rate.
		due := min(total, int64(time.Since(start)*syncRate/time.Second)+1)
		for ; out.offered < due; out.offered++ {
			select {
			case slots <- struct{}{}:
			default:
				out.shed++
				continue
			}
			wg.Add(1)
			go func(i int64) {
				defer func() { <-slots; wg.Done() }()
				sent := time.Now()
				id, err := create(i)
				done := time.Now()
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					out.failed++
					if firstErr == nil {
						firstErr = err
					}
					return
				}
				out.ok++
				got201[id] = done
				requests = append(requests, done.Sub(sent))
				if done.After(lastDone) {
					lastDone = done
				}
			}(out.offered)
		}
	}
	tick.Stop()
	wg.Wait()
	if firstErr != nil {
		b.Errorf("%d creates failed, the first: %v", out.failed, firstErr)
	}
	if out.ok == 0 {
		b.Fatal("no user was created")
	}
	out.rate = float64(out.ok) / lastDone.Sub(start).Seconds()
	out.request = distOf(requests)

	conn := branchConn(ctx, b, s, authProjectID)
	defer conn.Close(context.WithoutCancel(ctx))
	waitRows(ctx, b, conn, out.ok)

	signedUp := map[string]time.Time{}
	rows, err := s.Env.Pool.Query(ctx, `SELECT id::text, signed_up_at FROM auth_users
		WHERE auth_project_id = $1`, authProjectID)
	if err != nil {
		b.Fatalf("read signed_up_at: %v", err)
	}
	var id string
	var at time.Time
	_, err = pgx.ForEachRow(rows, []any{&id, &at}, func() error {
		signedUp[id] = at
		return nil
	})
	if err != nil {
		b.Fatalf("read signed_up_at: %v", err)
	}
	rows, err = conn.Query(ctx, `SELECT id, pg_xact_commit_timestamp(xmin)
		FROM neon_auth.users_sync`)
	if err != nil {
		b.Fatalf("read commit timestamps: %v", err)
	}
	var visible, after201 []time.Duration
	_, err = pgx.ForEachRow(rows, []any{&id, &at}, func() error {
		if t, ok := signedUp[id]; ok {
			visible = append(visible, at.Sub(t))
		}
		if t, ok := got201[id]; ok {
			after201 = append(after201, at.Sub(t))
		}
		return nil
	})
	if err != nil {
		b.Fatalf("read commit timestamps: %v", err)
	}
	if int64(len(after201)) != out.ok {
		b.Fatalf("%d of %d created users are in users_sync", len(after201), out.ok)
	}
	out.visible, out.after201 = distOf(visible), distOf(after201)
	err = conn.QueryRow(ctx, "SELECT count(DISTINCT xmin::text) FROM neon_auth.users_sync").
		Scan(&out.applies)
	if err != nil {
		b.Fatalf("count apply transactions: %v", err)
	}
	return out
}

// createUser creates a user through the management API and returns its id.
func createUser(ctx context.Context, hc *http.Client, s *testserver.Server, projectID,
	email string) (string, error) {
	return post(ctx, hc, s.URL+"/api/v2/projects/auth/user", map[string]any{
		"project_id": projectID, "auth_provider": "stack", "email": email,
		"name": "Sync Bench"}, "Authorization", "Bearer "+s.APIKey)
}

// createStackUser creates a user through the Stack server API and returns its id.
func createStackUser(ctx context.Context, hc *http.Client, s *testserver.Server,
	in testserver.Integration, email string) (string, error) {
	return post(ctx, hc, s.URL+"/api/v1/users", map[string]any{"primary_email": email,
		"display_name": "Sync Bench", "primary_email_auth_enabled": true},
		"x-stack-project-id", in.AuthProjectID, "x-stack-access-type", "server",
		"x-stack-secret-server-key", in.SecretKey)
}

// post sends a JSON body with header pairs, expects 201 and returns the id in the answer.
func post(ctx context.Context, hc *http.Client, url string, body any,
	headers ...string) (string, error) {
	js, err := json.Marshal(body)
	if err != nil {
		return "", fmt.Errorf("encode request: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, "POST", url, bytes.NewReader(js))
	if err != nil {
		return "", fmt.Errorf("new request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := hc.Do(req)
	if err != nil {
		return "", fmt.Errorf("post %s: %w", url, err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", fmt.Errorf("read response: %w", err)
	}
	if resp.StatusCode != http.StatusCreated {
		return "", fmt.Errorf("post %s: status %d: %s", url, resp.StatusCode, out)
	}
	var r struct{ ID string }
	if err := json.Unmarshal(out, &r); err != nil {
		return "", fmt.Errorf("decode response %s: %w", out, err)
	}
	if r.ID == "" {
		return "", fmt.Errorf("response without an id: %s", out)
	}
	return r.ID, nil
}

// branchConn connects to the database an auth project syncs to, as the server's
// administrator (the benchmark truncates and checkpoints; the worker itself writes as the
// table's owner).
func branchConn(ctx context.Context, b *testing.B, s *testserver.Server,
	authProjectID string) *pgx.Conn {
	b.Helper()
	br, db, ok, err := s.Env.Auth.SyncTarget(ctx, authProjectID)
	if err != nil || !ok {
		b.Fatalf("find sync target of %s: %v (found %v)", authProjectID, err, ok)
	}
	admin, err := s.Env.Console.Branch(ctx, br.ProjectID, br.ID)
	if err != nil {
		b.Fatalf("find branch: %v", err)
	}
	conn, err := pgx.Connect(ctx, admin.Target.URI(db))
	if err != nil {
		b.Fatalf("connect to branch database: %v", err)
	}
	return conn
}

// waitRows waits, at most syncDrain, until users_sync holds n rows.
func waitRows(ctx context.Context, b *testing.B, conn *pgx.Conn, n int64) {
	b.Helper()
	deadline := time.Now().Add(syncDrain)
	for {
		var have int64
		err := conn.QueryRow(ctx, "SELECT count(*) FROM neon_auth.users_sync").Scan(&have)
		if err != nil {
			b.Fatalf("count users_sync: %v", err)
		}
		if have >= n {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("users_sync has %d of %d rows after %v", have, n, syncDrain)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// throughput is what the resync phase measured, in rows per second.
type throughput struct {
	users               int64
	resync, raw         float64
	resyncTook, rawTook time.Duration
}

// resyncVersusRaw fills an auth project with resyncUsers users, times Worker.Resync into its
// emptied users_sync, then times a raw batched upsert of the same rows into the emptied
// table on one connection.
func resyncVersusRaw(ctx context.Context, b *testing.B, s *testserver.Server,
	authProjectID string) throughput {
	b.Helper()
	now := time.Now().UTC().Truncate(time.Microsecond)
	rows := make([][]any, resyncUsers)
	for i := range rows {
		rows[i] = []any{uuid.New(), authProjectID, fmt.Sprintf("resync-%d@example.com", i),
			false, true, fmt.Sprintf("Resync User %d", i), now, now, int64(1)}
	}
	n, err := s.Env.Pool.CopyFrom(ctx, pgx.Identifier{"auth_users"}, []string{"id",
		"auth_project_id", "primary_email", "primary_email_verified",
		"primary_email_auth_enabled", "display_name", "signed_up_at", "last_active_at",
		"version"}, pgx.CopyFromRows(rows))
	if err != nil || n != resyncUsers {
		b.Fatalf("copy %d users into auth_users: %d copied: %v", resyncUsers, n, err)
	}
	if _, err := s.Env.Pool.Exec(ctx, "ANALYZE auth_users"); err != nil {
		b.Fatalf("analyze auth_users: %v", err)
	}

	conn := branchConn(ctx, b, s, authProjectID)
	defer conn.Close(context.WithoutCancel(ctx))
	empty(ctx, b, conn)
	var out throughput
	start := time.Now()
	res, err := s.Env.Worker.Resync(ctx, authProjectID, nil)
	out.resyncTook = time.Since(start)
	if err != nil {
		b.Fatalf("resync: %v", err)
	}
	if res.Users != resyncUsers || res.Changed != resyncUsers {
		b.Fatalf("resync wrote %d users, changed %d, want %d", res.Users, res.Changed,
			resyncUsers)
	}
	out.users = res.Users
	out.resync = float64(res.Users) / out.resyncTook.Seconds()

	raw := make([]string, 0, resyncUsers)
	rs, err := conn.Query(ctx, "SELECT raw_json::text FROM neon_auth.users_sync")
	if err != nil {
		b.Fatalf("read raw_json: %v", err)
	}
	var js string
	if _, err := pgx.ForEachRow(rs, []any{&js}, func() error {
		raw = append(raw, js)
		return nil
	}); err != nil {
		b.Fatalf("read raw_json: %v", err)
	}
	empty(ctx, b, conn)
	start = time.Now()
	for i := 0; i < len(raw); i += rawBatch {
		batch := &pgx.Batch{}
		for _, r := range raw[i:min(i+rawBatch, len(raw))] {
			batch.Queue(rawUpsert, r)
		}
		if err := conn.SendBatch(ctx, batch).Close(); err != nil {
			b.Fatalf("raw upsert: %v", err)
		}
	}
	out.rawTook = time.Since(start)
	out.raw = float64(len(raw)) / out.rawTook.Seconds()
	return out
}

// empty truncates users_sync and checkpoints, so that each timed write starts from an empty
// table and no earlier write's checkpoint lands in it.
func empty(ctx context.Context, b *testing.B, conn *pgx.Conn) {
	b.Helper()
	if _, err := conn.Exec(ctx, "TRUNCATE neon_auth.users_sync"); err != nil {
		b.Fatalf("empty users_sync: %v", err)
	}
	if _, err := conn.Exec(ctx, "CHECKPOINT"); err != nil {
		b.Fatalf("checkpoint: %v", err)
	}
}
