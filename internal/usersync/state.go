package usersync

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Failure reasons, as reported in metrics and logs.
const (
	reasonUnreachable = "unreachable"
	reasonTable       = "table"
	reasonOther       = "other"
)

// classify tells a database that cannot be reached (wait and retry) from a table that is
// missing or was altered so that our rows no longer fit (an error state until repaired).
func classify(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code[:2] {
		case "42", "23", "22", "3F", "0A":
			// syntax or access rule (undefined table or column, privileges), integrity,
			// data, missing schema, unsupported feature: something about the table changed.
			return reasonTable
		case "08", "57", "53":
			return reasonUnreachable
		}
		return reasonOther
	}
	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, context.DeadlineExceeded) ||
		pgconn.SafeToRetry(err) || pgconn.Timeout(err) {
		return reasonUnreachable
	}
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		return reasonUnreachable
	}
	return reasonOther
}

func recordApplied(ctx context.Context, tx pgx.Tx, authProjectID string, n int) error {
	_, err := tx.Exec(ctx, `INSERT INTO sync_state (auth_project_id, state, last_applied_at,
			applied_total)
		VALUES ($1, 'ok', now(), $2)
		ON CONFLICT (auth_project_id) DO UPDATE SET state = 'ok',
			last_applied_at = now(), applied_total = sync_state.applied_total + $2`,
		authProjectID, n)
	if err != nil {
		return fmt.Errorf("record sync state: %w", err)
	}
	return nil
}

func recordError(ctx context.Context, tx pgx.Tx, authProjectID, state string, cause error) error {
	_, err := tx.Exec(ctx, `INSERT INTO sync_state (auth_project_id, state, last_error,
			last_error_at)
		VALUES ($1, $2, $3, now())
		ON CONFLICT (auth_project_id) DO UPDATE SET state = $2, last_error = $3,
			last_error_at = now()`, authProjectID, state, cause.Error())
	if err != nil {
		return fmt.Errorf("record sync error: %w", err)
	}
	return nil
}

// Status is what an integration's sync is doing.
type Status struct {
	// State is "ok", "retrying" (the database cannot be reached) or "error" (the table is
	// missing or altered; see LastError, and repair with a resync).
	State string
	// Pending is the number of changes not yet applied.
	Pending int64
	// OldestPending is the age of the oldest change not yet applied (0 without one).
	OldestPending time.Duration
	// LastAppliedAt is when a change was last applied, if ever.
	LastAppliedAt *time.Time
	// Applied counts the changes applied so far.
	Applied int64
	// LastError and LastErrorAt describe the most recent failure, if any.
	LastError    string
	LastErrorAt  *time.Time
	LastResyncAt *time.Time
}

// GetStatus reads an auth project's sync status from the metadata database.
func GetStatus(ctx context.Context, db *pgxpool.Pool, authProjectID string) (Status, error) {
	st := Status{State: "ok"}
	var oldest *float64
	err := db.QueryRow(ctx, `SELECT count(*), EXTRACT(EPOCH FROM now() - min(created_at))
		FROM sync_events WHERE auth_project_id = $1`, authProjectID).Scan(&st.Pending, &oldest)
	if err != nil {
		return Status{}, fmt.Errorf("count pending events: %w", err)
	}
	if oldest != nil {
		st.OldestPending = time.Duration(*oldest * float64(time.Second))
	}
	var lastErr *string
	err = db.QueryRow(ctx, `SELECT state, last_applied_at, applied_total, last_error,
			last_error_at, last_resync_at
		FROM sync_state WHERE auth_project_id = $1`, authProjectID).
		Scan(&st.State, &st.LastAppliedAt, &st.Applied, &lastErr, &st.LastErrorAt,
			&st.LastResyncAt)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return Status{}, fmt.Errorf("read sync state: %w", err)
	}
	if lastErr != nil {
		st.LastError = *lastErr
	}
	if st.Pending == 0 && st.State == "retrying" {
		st.State = "ok"
	}
	return st, nil
}

// RefreshGauges sets the pending and oldest-pending gauges of every auth project with an
// integration, and drops those of auth projects that no longer have one.
func (w *Worker) RefreshGauges(ctx context.Context) error {
	if w.Metrics == nil {
		return nil
	}
	w.init()
	rows, err := w.DB.Query(ctx, `SELECT i.auth_project_id, count(e.id),
			COALESCE(EXTRACT(EPOCH FROM now() - min(e.created_at)), 0)
		FROM integrations i LEFT JOIN sync_events e ON e.auth_project_id = i.auth_project_id
		GROUP BY i.auth_project_id`)
	if err != nil {
		return fmt.Errorf("read backlog: %w", err)
	}
	defer rows.Close()
	seen := map[string]bool{}
	for rows.Next() {
		var id string
		var n int64
		var age float64
		if err := rows.Scan(&id, &n, &age); err != nil {
			return fmt.Errorf("scan backlog: %w", err)
		}
		w.Metrics.SyncPending.WithLabelValues(id).Set(float64(n))
		w.Metrics.SyncOldest.WithLabelValues(id).Set(age)
		seen[id] = true
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read backlog: %w", err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for id := range w.gauged {
		if !seen[id] {
			w.Metrics.SyncPending.DeleteLabelValues(id)
			w.Metrics.SyncOldest.DeleteLabelValues(id)
		}
	}
	w.gauged = seen
	return nil
}
