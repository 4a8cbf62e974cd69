// Package usersync drains the outbox of user changes into each integration's
// neon_auth.users_sync table. Changes of one auth project are applied in commit order, as
// version-guarded upserts, so a replayed or late event never overwrites a newer state and a
// soft-deleted row stays deleted. A database that cannot be reached is retried with capped,
// jittered backoff while the other databases keep syncing.
package usersync

import (
	"context"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/neonauth/neonauth/internal/console"
	"github.com/neonauth/neonauth/internal/metrics"
)

// Targets finds where an auth project's users are synced.
type Targets interface {
	SyncTarget(ctx context.Context, authProjectID string) (console.Branch, string, bool, error)
}

// Worker applies outbox events.
type Worker struct {
	DB      *pgxpool.Pool
	Targets Targets
	Log     *slog.Logger
	// Poll is how often the outbox is read when nothing wakes the worker.
	Poll time.Duration
	// Batch is the most events applied in one round for one auth project.
	Batch int
	// MaxBackoff caps the retry delay of an unreachable database.
	MaxBackoff time.Duration
	// Timeout bounds one apply to a database (connect, upserts, commit), so that a server
	// that hangs, or a row lock someone holds on users_sync, delays the other auth projects
	// by at most this long instead of stopping the worker.
	Timeout time.Duration

	// Metrics, when set, receives lag, applied, retry and failure figures.
	Metrics *metrics.Metrics
	// Parallel is how many auth projects are synced at once, so that one slow database
	// does not hold up the others.
	Parallel int

	kick  chan struct{}
	once  sync.Once
	mu    sync.Mutex
	pools map[string]*pgxpool.Pool // by auth project id
	// gauged are the auth projects whose backlog gauges RefreshGauges set last time.
	gauged map[string]bool
}

func (w *Worker) init() {
	w.once.Do(func() {
		w.kick = make(chan struct{}, 1)
		w.pools = map[string]*pgxpool.Pool{}
		if w.Poll == 0 {
			w.Poll = 500 * time.Millisecond
		}
		if w.Batch == 0 {
			w.Batch = 500
		}
		if w.MaxBackoff == 0 {
			w.MaxBackoff = 30 * time.Second
		}
		if w.Parallel == 0 {
			w.Parallel = 4
		}
		if w.Timeout == 0 {
			w.Timeout = 15 * time.Second
		}
		if w.Log == nil {
			w.Log = slog.Default()
		}
	})
}

// gaugeEvery is how often the backlog gauges are read from the outbox.
const gaugeEvery = 5 * time.Second

// Kick wakes the worker: a change was committed.
func (w *Worker) Kick() {
	w.init()
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// Forget closes the connections to an auth project's database and drops its metric series:
// the project no longer syncs (its integration was removed).
func (w *Worker) Forget(authProjectID string) {
	w.closePool(authProjectID)
	w.Metrics.Forget(authProjectID)
}

// closePool closes the connections to an auth project's database.
func (w *Worker) closePool(authProjectID string) {
	w.init()
	w.mu.Lock()
	p := w.pools[authProjectID]
	delete(w.pools, authProjectID)
	w.mu.Unlock()
	if p != nil {
		p.Close()
	}
}

// Run applies events until ctx ends.
func (w *Worker) Run(ctx context.Context) {
	w.init()
	t := time.NewTicker(w.Poll)
	defer t.Stop()
	defer w.closeAll()
	var gauges time.Time
	for {
		if time.Since(gauges) > gaugeEvery {
			gauges = time.Now()
			if err := w.RefreshGauges(ctx); err != nil && ctx.Err() == nil {
				w.Log.Warn("refresh sync gauges", "err", err)
			}
		}
		for {
			n, err := w.Round(ctx)
			if err != nil && ctx.Err() == nil {
				w.Log.Error("sync round failed", "err", err)
			}
			if n == 0 || err != nil {
				break
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-w.kick:
		case <-t.C:
		}
	}
}

func (w *Worker) closeAll() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for id, p := range w.pools {
		p.Close()
		delete(w.pools, id)
	}
}

// dueProjects lists the auth projects whose oldest event is due. A project whose oldest
// event waits for a retry waits as a whole, so that a newer change never overtakes an
// older one.
const dueProjects = `SELECT auth_project_id FROM (
		SELECT DISTINCT ON (auth_project_id) auth_project_id, next_attempt_at
		FROM sync_events ORDER BY auth_project_id, id) oldest
	WHERE next_attempt_at <= now() LIMIT 1000`

// Round applies one batch for every auth project with due events and returns how many
// events it applied.
func (w *Worker) Round(ctx context.Context) (int, error) {
	w.init()
	rows, err := w.DB.Query(ctx, dueProjects)
	if err != nil {
		return 0, fmt.Errorf("find due events: %w", err)
	}
	projects, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return 0, fmt.Errorf("find due events: %w", err)
	}
	var (
		mu    sync.Mutex
		total int
		wg    sync.WaitGroup
		slots = make(chan struct{}, w.Parallel)
	)
	for _, p := range projects {
		slots <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-slots; wg.Done() }()
			n, err := w.syncProject(ctx, p)
			if err != nil && ctx.Err() == nil {
				w.Log.Error("sync project failed", "auth_project_id", p, "err", err)
			}
			mu.Lock()
			total += n
			mu.Unlock()
		}()
	}
	wg.Wait()
	return total, ctx.Err()
}

type event struct {
	id        int64
	created   time.Time
	raw       []byte
	changedAt *time.Time
	deletedAt *time.Time
	attempts  int
}

// lockKey maps an auth project to an advisory lock, so that one process at a time applies
// its events and their order holds across replicas.
func lockKey(authProjectID string) int64 {
	h := fnv.New64a()
	h.Write([]byte("usersync:" + authProjectID))
	return int64(h.Sum64())
}

func (w *Worker) syncProject(ctx context.Context, authProjectID string) (int, error) {
	tx, err := w.DB.Begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(ctx)
	var locked bool
	err = tx.QueryRow(ctx, "SELECT pg_try_advisory_xact_lock($1)", lockKey(authProjectID)).
		Scan(&locked)
	if err != nil {
		return 0, fmt.Errorf("lock auth project: %w", err)
	}
	if !locked {
		return 0, nil // another worker is applying this project's events
	}
	evs, err := w.due(ctx, tx, authProjectID)
	if err != nil || len(evs) == 0 {
		return 0, err
	}
	br, db, ok, err := w.Targets.SyncTarget(ctx, authProjectID)
	if err != nil {
		return 0, fmt.Errorf("find sync target: %w", err)
	}
	if ok {
		actx, cancel := context.WithTimeout(ctx, w.Timeout)
		err = w.apply(actx, authProjectID, br, db, evs)
		cancel()
	}
	if err != nil {
		return 0, w.fail(ctx, tx, authProjectID, evs, err)
	}
	ids := make([]int64, len(evs))
	for i, e := range evs {
		ids[i] = e.id
	}
	if _, err := tx.Exec(ctx, "DELETE FROM sync_events WHERE id = ANY($1)", ids); err != nil {
		return 0, fmt.Errorf("delete applied events: %w", err)
	}
	if err := recordApplied(ctx, tx, authProjectID, len(evs)); err != nil {
		return 0, err
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, fmt.Errorf("commit applied events: %w", err)
	}
	w.observeApplied(authProjectID, evs)
	return len(evs), nil
}

// fail puts a batch back for a later attempt and records why, so that the cause is visible
// in the sync status instead of hidden in a retry loop.
func (w *Worker) fail(ctx context.Context, tx pgx.Tx, authProjectID string, evs []event,
	cause error) error {
	reason := classify(cause)
	attempt := evs[0].attempts + 1
	delay := w.backoff(attempt)
	state := "retrying"
	if reason == reasonTable {
		// The table is gone or no longer takes our rows: retrying fast cannot help, a
		// resync (or a fix by hand) can.
		delay, state = w.MaxBackoff, "error"
	}
	if err := w.retryLater(ctx, tx, evs, cause, delay); err != nil {
		return err
	}
	if err := recordError(ctx, tx, authProjectID, state, cause); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit retry: %w", err)
	}
	if w.Metrics != nil {
		w.Metrics.SyncRetries.WithLabelValues(authProjectID).Inc()
		w.Metrics.SyncFailures.WithLabelValues(authProjectID, reason).Inc()
	}
	level := slog.LevelWarn
	if reason == reasonTable {
		level = slog.LevelError
	}
	w.Log.Log(ctx, level, "sync deferred", "auth_project_id", authProjectID,
		"events", len(evs), "attempt", attempt, "reason", reason, "state", state, "err", cause)
	return nil
}

func (w *Worker) observeApplied(authProjectID string, evs []event) {
	if w.Metrics == nil {
		return
	}
	now := time.Now()
	lag := w.Metrics.SyncLag.WithLabelValues(authProjectID)
	for _, e := range evs {
		lag.Observe(now.Sub(e.created).Seconds())
	}
	w.Metrics.SyncApplied.WithLabelValues(authProjectID).Add(float64(len(evs)))
}

// due returns the project's oldest events, in commit order, up to the first one that is not
// due yet: events are applied strictly in order, so none may skip a waiting older one.
func (w *Worker) due(ctx context.Context, tx pgx.Tx, authProjectID string) ([]event, error) {
	rows, err := tx.Query(ctx, `SELECT id, created_at, raw_json, changed_at, deleted_at, attempts,
			next_attempt_at <= now()
		FROM sync_events WHERE auth_project_id = $1 ORDER BY id LIMIT $2`,
		authProjectID, w.Batch)
	if err != nil {
		return nil, fmt.Errorf("read events: %w", err)
	}
	defer rows.Close()
	var out []event
	for rows.Next() {
		var e event
		var due bool
		err := rows.Scan(&e.id, &e.created, &e.raw, &e.changedAt, &e.deletedAt, &e.attempts, &due)
		if err != nil {
			return nil, fmt.Errorf("scan event: %w", err)
		}
		if !due {
			break
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read events: %w", err)
	}
	return out, nil
}

// upsert writes one user's state unless the stored row is newer or soft-deleted. updated_at
// is NULL until the first update, and strictly increases with each later change.
const upsert = `INSERT INTO neon_auth.users_sync (raw_json, updated_at, deleted_at)
VALUES ($1, $2, $3)
ON CONFLICT (id) DO UPDATE SET raw_json = EXCLUDED.raw_json,
	updated_at = EXCLUDED.updated_at, deleted_at = EXCLUDED.deleted_at
WHERE users_sync.deleted_at IS NULL
	AND (users_sync.updated_at IS NULL OR users_sync.updated_at < EXCLUDED.updated_at)`

func (w *Worker) apply(ctx context.Context, authProjectID string, br console.Branch, db string,
	evs []event) error {
	pool, err := w.pool(ctx, authProjectID, br, db)
	if err != nil {
		return err
	}
	b := &pgx.Batch{}
	for _, e := range evs {
		b.Queue(upsert, string(e.raw), e.changedAt, e.deletedAt)
	}
	tx, err := pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin on branch database: %w", err)
	}
	defer tx.Rollback(ctx)
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("upsert users_sync: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit users_sync: %w", err)
	}
	return nil
}

func (w *Worker) pool(ctx context.Context, authProjectID string, br console.Branch,
	db string) (*pgxpool.Pool, error) {
	uri := br.Target.URI(db)
	w.mu.Lock()
	p := w.pools[authProjectID]
	w.mu.Unlock()
	if p != nil && p.Config().ConnString() == uri {
		return p, nil
	}
	if p != nil {
		w.closePool(authProjectID)
	}
	cfg, err := pgxpool.ParseConfig(uri)
	if err != nil {
		return nil, fmt.Errorf("parse branch database uri: %w", err)
	}
	cfg.MaxConns = 2
	cfg.ConnConfig.ConnectTimeout = 5 * time.Second
	// A lock held on users_sync (by the table's owner, say) must not keep the worker waiting:
	// the batch fails fast and is retried later.
	cfg.ConnConfig.RuntimeParams["lock_timeout"] = "3s"
	cfg.ConnConfig.RuntimeParams["statement_timeout"] = "10s"
	np, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open branch database: %w", err)
	}
	w.mu.Lock()
	w.pools[authProjectID] = np
	w.mu.Unlock()
	return np, nil
}

// backoff is the delay before retry number attempt: doubling from 250 ms, capped, with up to
// 50% jitter so that many waiting projects do not retry in step.
func (w *Worker) backoff(attempt int) time.Duration {
	d := 250 * time.Millisecond
	for i := 1; i < attempt && d < w.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, w.MaxBackoff)
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
}

func (w *Worker) retryLater(ctx context.Context, tx pgx.Tx, evs []event, cause error,
	delay time.Duration) error {
	msg := cause.Error()
	var ids []int64
	for _, e := range evs {
		ids = append(ids, e.id)
	}
	_, err := tx.Exec(ctx, `UPDATE sync_events SET attempts = attempts + 1,
		next_attempt_at = now() + $2::interval, last_error = $3 WHERE id = ANY($1)`,
		ids, delay, msg)
	if err != nil {
		return fmt.Errorf("schedule retry: %w", err)
	}
	return nil
}
