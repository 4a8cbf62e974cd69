package usersync

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/neonauth/neonauth/internal/console"
	"github.com/neonauth/neonauth/internal/errs"
	"github.com/neonauth/neonauth/internal/identity"
)

// TableMaker creates an integration's users_sync table again when it was dropped.
type TableMaker interface {
	EnsureTable(ctx context.Context, authProjectID string) error
}

// ResyncResult says what a resync did.
type ResyncResult struct {
	// Users is the number of auth users written (live and soft-deleted).
	Users int64
	// Changed is how many rows were inserted or repaired; rows already right are untouched.
	Changed int64
	// Removed is how many rows of users that do not exist were deleted.
	Removed  int64
	Duration time.Duration
}

// resyncBatch is how many users are read and copied at a time.
const resyncBatch = 2000

// Progress is told how many users are done out of how many.
type Progress func(done, total int64)

// Resync rebuilds an auth project's users_sync from its users: it recreates a dropped table,
// writes every user's current state (repairing rows edited by hand), and deletes rows of
// users that do not exist (keeping those of other auth projects that sync into the same
// table). It holds the project's sync lock meanwhile, so the worker waits; changes committed
// during the resync are applied after it.
func (w *Worker) Resync(ctx context.Context, authProjectID string,
	progress Progress) (ResyncResult, error) {
	w.init()
	start := time.Now()
	lockConn, err := w.DB.Acquire(ctx)
	if err != nil {
		return ResyncResult{}, fmt.Errorf("acquire metadata connection: %w", err)
	}
	defer lockConn.Release()
	_, err = lockConn.Exec(ctx, "SELECT pg_advisory_lock($1)", lockKey(authProjectID))
	if err != nil {
		return ResyncResult{}, fmt.Errorf("lock auth project: %w", err)
	}
	defer func() {
		// A connection that might still hold the session lock must not go back to the
		// pool, where it would keep the worker off this project for good.
		_, err := lockConn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)",
			lockKey(authProjectID))
		if err != nil {
			_ = lockConn.Hijack().Close(context.WithoutCancel(ctx))
		}
	}()

	br, db, ok, err := w.Targets.SyncTarget(ctx, authProjectID)
	if err != nil {
		return ResyncResult{}, fmt.Errorf("find sync target: %w", err)
	}
	if !ok {
		return ResyncResult{}, errs.E(errs.NotFound, "the auth project has no integration")
	}
	if tm, ok := w.Targets.(TableMaker); ok {
		if err := tm.EnsureTable(ctx, authProjectID); err != nil {
			_ = w.noteResyncError(ctx, authProjectID, err)
			return ResyncResult{}, err
		}
	}
	res, err := w.rebuild(ctx, authProjectID, br, db, progress)
	if err != nil {
		_ = w.noteResyncError(ctx, authProjectID, err)
		return res, err
	}
	res.Duration = time.Since(start)
	_, err = w.DB.Exec(ctx, `INSERT INTO sync_state (auth_project_id, state, last_resync_at)
		VALUES ($1, 'ok', now())
		ON CONFLICT (auth_project_id) DO UPDATE SET state = 'ok', last_error = NULL,
			last_resync_at = now()`, authProjectID)
	if err != nil {
		return res, fmt.Errorf("record resync: %w", err)
	}
	// Events that waited for a broken table may be tried at once.
	_, err = w.DB.Exec(ctx, `UPDATE sync_events SET next_attempt_at = now()
		WHERE auth_project_id = $1`, authProjectID)
	if err != nil {
		return res, fmt.Errorf("wake waiting events: %w", err)
	}
	w.Kick()
	return res, nil
}

// noteResyncError records why a resync failed in the sync status: "retrying" when the
// database could not be reached (the worker goes on trying), "error" otherwise.
func (w *Worker) noteResyncError(ctx context.Context, authProjectID string, cause error) error {
	state := "error"
	if classify(cause) == reasonUnreachable {
		state = "retrying"
	}
	tx, err := w.DB.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(ctx)
	if err := recordError(ctx, tx, authProjectID, state, cause); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit resync error: %w", err)
	}
	return nil
}

// rebuild does the work of a resync in one transaction on the branch database.
func (w *Worker) rebuild(ctx context.Context, authProjectID string, br console.Branch, db string,
	progress Progress) (ResyncResult, error) {
	var res ResyncResult
	var total int64
	err := w.DB.QueryRow(ctx, "SELECT count(*) FROM auth_users WHERE auth_project_id = $1",
		authProjectID).Scan(&total)
	if err != nil {
		return res, fmt.Errorf("count users: %w", err)
	}
	conn, err := pgx.Connect(ctx, br.Target.URI(db))
	if err != nil {
		return res, fmt.Errorf("connect to branch database: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	tx, err := conn.Begin(ctx)
	if err != nil {
		return res, fmt.Errorf("begin on branch database: %w", err)
	}
	defer tx.Rollback(ctx)
	_, err = tx.Exec(ctx, `CREATE TEMP TABLE neonauth_resync_rows (raw_json jsonb NOT NULL,
			updated_at timestamptz, deleted_at timestamptz) ON COMMIT DROP;
		CREATE TEMP TABLE neonauth_resync_ids (id text PRIMARY KEY) ON COMMIT DROP`)
	if err != nil {
		return res, fmt.Errorf("create resync tables: %w", err)
	}
	var after uuid.UUID
	for {
		users, err := w.usersAfter(ctx, authProjectID, after)
		if err != nil {
			return res, err
		}
		if len(users) == 0 {
			break
		}
		n, err := copyBatch(ctx, tx, users)
		if err != nil {
			return res, err
		}
		res.Users += int64(len(users))
		res.Changed += n
		after = users[len(users)-1].ID
		if progress != nil {
			progress(res.Users, max(total, res.Users))
		}
	}
	if err := w.keepOthers(ctx, tx, authProjectID); err != nil {
		return res, err
	}
	tag, err := tx.Exec(ctx, `DELETE FROM neon_auth.users_sync u
		WHERE NOT EXISTS (SELECT 1 FROM neonauth_resync_ids r WHERE r.id = u.id)`)
	if err != nil {
		return res, fmt.Errorf("remove rows of unknown users: %w", err)
	}
	res.Removed = tag.RowsAffected()
	if err := tx.Commit(ctx); err != nil {
		return res, fmt.Errorf("commit resync: %w", err)
	}
	return res, nil
}

func (w *Worker) usersAfter(ctx context.Context, authProjectID string,
	after uuid.UUID) ([]identity.User, error) {
	rows, err := w.DB.Query(ctx, `SELECT `+identity.UserColumns+` FROM auth_users
		WHERE auth_project_id = $1 AND id > $2 ORDER BY id LIMIT $3`,
		authProjectID, after, resyncBatch)
	if err != nil {
		return nil, fmt.Errorf("read users: %w", err)
	}
	defer rows.Close()
	var out []identity.User
	for rows.Next() {
		u, err := identity.ScanUser(rows)
		if err != nil {
			return nil, fmt.Errorf("scan user: %w", err)
		}
		out = append(out, u)
	}
	return out, rows.Err()
}

// copyBatch copies users into the staging table and upserts them, rewriting only rows that
// differ. It returns how many rows it inserted or repaired.
func copyBatch(ctx context.Context, tx pgx.Tx, users []identity.User) (int64, error) {
	rows := make([][]any, 0, len(users))
	for _, u := range users {
		raw, err := json.Marshal(u.Server())
		if err != nil {
			return 0, fmt.Errorf("encode user: %w", err)
		}
		rows = append(rows, []any{string(raw), u.UpdatedAt, u.DeletedAt})
	}
	_, err := tx.CopyFrom(ctx, pgx.Identifier{"neonauth_resync_rows"},
		[]string{"raw_json", "updated_at", "deleted_at"}, pgx.CopyFromRows(rows))
	if err != nil {
		return 0, fmt.Errorf("copy users: %w", err)
	}
	tag, err := tx.Exec(ctx, `INSERT INTO neon_auth.users_sync (raw_json, updated_at, deleted_at)
		SELECT raw_json, updated_at, deleted_at FROM neonauth_resync_rows
		ON CONFLICT (id) DO UPDATE SET raw_json = EXCLUDED.raw_json,
			updated_at = EXCLUDED.updated_at, deleted_at = EXCLUDED.deleted_at
		WHERE (users_sync.raw_json, users_sync.updated_at, users_sync.deleted_at)
			IS DISTINCT FROM (EXCLUDED.raw_json, EXCLUDED.updated_at, EXCLUDED.deleted_at)`)
	if err != nil {
		return 0, fmt.Errorf("upsert users_sync: %w", err)
	}
	_, err = tx.Exec(ctx, `INSERT INTO neonauth_resync_ids SELECT raw_json ->> 'id'
		FROM neonauth_resync_rows; TRUNCATE neonauth_resync_rows`)
	if err != nil {
		return 0, fmt.Errorf("record resynced ids: %w", err)
	}
	return tag.RowsAffected(), nil
}

// keepOthers adds to the ids a resync keeps the rows that are not the auth project's users
// but users of another auth project with an integration. Two projects can sync into one
// table (both attached to one database), and a resync of one must not remove the rows of
// the other; only rows of no such user are foreign. It reads the rows not kept so far, which
// are few unless the table is shared, and looks their ids up a batch at a time.
func (w *Worker) keepOthers(ctx context.Context, tx pgx.Tx, authProjectID string) error {
	rows, err := tx.Query(ctx, `SELECT u.id FROM neon_auth.users_sync u
		WHERE NOT EXISTS (SELECT 1 FROM neonauth_resync_ids r WHERE r.id = u.id)`)
	if err != nil {
		return fmt.Errorf("read rows of other users: %w", err)
	}
	others, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("read rows of other users: %w", err)
	}
	var ids []uuid.UUID
	for _, o := range others {
		// Rows the worker wrote have the canonical form; any other id is no user's.
		if id, err := uuid.Parse(o); err == nil && id.String() == o {
			ids = append(ids, id)
		}
	}
	for len(ids) > 0 {
		batch := ids[:min(len(ids), resyncBatch)]
		ids = ids[len(batch):]
		rows, err := w.DB.Query(ctx, `SELECT u.id::text FROM auth_users u
			WHERE u.id = ANY($1) AND u.auth_project_id <> $2 AND EXISTS (
				SELECT 1 FROM integrations i WHERE i.auth_project_id = u.auth_project_id)`,
			batch, authProjectID)
		if err != nil {
			return fmt.Errorf("find users of other projects: %w", err)
		}
		keep, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) ([]any, error) {
			var id string
			err := r.Scan(&id)
			return []any{id}, err
		})
		if err != nil {
			return fmt.Errorf("find users of other projects: %w", err)
		}
		_, err = tx.CopyFrom(ctx, pgx.Identifier{"neonauth_resync_ids"}, []string{"id"},
			pgx.CopyFromRows(keep))
		if err != nil {
			return fmt.Errorf("keep rows of other projects: %w", err)
		}
	}
	return nil
}
