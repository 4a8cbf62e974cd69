package usersync_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// applyLogDDL records, in the same transaction as the worker's write, every row the worker
// offers users_sync ("try": a BEFORE INSERT trigger sees every upsert, also those the version
// guard then turns into nothing) and every write that changed a row ("set").
const applyLogDDL = `
CREATE TABLE public.apply_log (
	n bigserial PRIMARY KEY,
	kind text NOT NULL,
	id text NOT NULL,
	updated_at timestamptz,
	deleted_at timestamptz
);
-- The worker writes as the table's owner, not as a superuser.
GRANT INSERT, SELECT ON public.apply_log TO PUBLIC;
GRANT USAGE ON SEQUENCE public.apply_log_n_seq TO PUBLIC;
CREATE FUNCTION public.log_try() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO public.apply_log (kind, id, updated_at, deleted_at)
	VALUES ('try', NEW.raw_json ->> 'id', NEW.updated_at, NEW.deleted_at);
	RETURN NEW;
END $$;
CREATE FUNCTION public.log_set() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO public.apply_log (kind, id, updated_at, deleted_at)
	VALUES ('set', NEW.id, NEW.updated_at, NEW.deleted_at);
	RETURN NULL;
END $$;
CREATE TRIGGER log_try BEFORE INSERT ON neon_auth.users_sync
	FOR EACH ROW EXECUTE FUNCTION public.log_try();
CREATE TRIGGER log_insert AFTER INSERT ON neon_auth.users_sync
	FOR EACH ROW EXECUTE FUNCTION public.log_set();
CREATE TRIGGER log_update AFTER UPDATE ON neon_auth.users_sync
	FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*) EXECUTE FUNCTION public.log_set();
`

// installApplyLog adds the apply log to a branch's users_sync database.
func installApplyLog(t *testing.T, ctx context.Context, branch *pgxpool.Pool) {
	t.Helper()
	if _, err := branch.Exec(ctx, applyLogDDL); err != nil {
		t.Fatalf("install apply log: %v", err)
	}
}

// logEntry is one write the worker offered ("try") or made ("set").
type logEntry struct {
	N         int64
	Kind, ID  string
	UpdatedAt *time.Time
	DeletedAt *time.Time
}

func (e logEntry) String() string {
	return fmt.Sprintf("#%d %s updated_at=%s deleted_at=%s", e.N, e.Kind, ts(e.UpdatedAt),
		ts(e.DeletedAt))
}

// applyLog returns the entries of one kind, per user id, in the order they were written.
func applyLog(t *testing.T, ctx context.Context, branch *pgxpool.Pool,
	kind string) map[string][]logEntry {
	t.Helper()
	rows, err := branch.Query(ctx, `SELECT n, kind, id, updated_at, deleted_at
		FROM public.apply_log WHERE kind = $1 ORDER BY n`, kind)
	if err != nil {
		t.Fatalf("read apply log: %v", err)
	}
	defer rows.Close()
	out := map[string][]logEntry{}
	for rows.Next() {
		var e logEntry
		if err := rows.Scan(&e.N, &e.Kind, &e.ID, &e.UpdatedAt, &e.DeletedAt); err != nil {
			t.Fatalf("scan apply log: %v", err)
		}
		out[e.ID] = append(out[e.ID], e)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("read apply log: %v", err)
	}
	return out
}

// inOrder reports whether one user's entries follow the user's history: the creation (no
// updated_at) first, then strictly increasing updated_at, and nothing after a delete.
func inOrder(es []logEntry) error {
	for i, e := range es {
		if i == 0 {
			continue
		}
		prev := es[i-1]
		switch {
		case e.UpdatedAt == nil:
			return fmt.Errorf("entry %v after %v: a creation after another change", e, prev)
		case prev.DeletedAt != nil:
			return fmt.Errorf("entry %v after the delete %v", e, prev)
		case prev.UpdatedAt != nil && !prev.UpdatedAt.Before(*e.UpdatedAt):
			return fmt.Errorf("entry %v after %v: not newer", e, prev)
		}
	}
	return nil
}
