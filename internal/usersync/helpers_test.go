package usersync_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/neonauth/neonauth/internal/console"
)

// testContext is a context that ends with the test, or after two minutes at the latest.
func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// waitFor polls check every 20 ms until it returns nil, and fails the test with the last
// error when that has not happened within limit. It returns how long it waited.
func waitFor(t *testing.T, limit time.Duration, what string, check func() error) time.Duration {
	t.Helper()
	start := time.Now()
	deadline := start.Add(limit)
	for {
		err := check()
		if err == nil {
			return time.Since(start)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v: %v", what, limit, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// branchPool opens an administrator pool on the integration's database of a branch, as the
// worker itself connects. It is closed when the test ends.
func branchPool(t *testing.T, ctx context.Context, cs *console.Service,
	branchID string) *pgxpool.Pool {
	t.Helper()
	br, err := cs.BranchByID(ctx, branchID)
	if err != nil {
		t.Fatalf("find branch %s: %v", branchID, err)
	}
	pool, err := pgxpool.New(ctx, br.Target.URI("neondb"))
	if err != nil {
		t.Fatalf("open branch database: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// syncRow is one row of neon_auth.users_sync, or the state a row should have.
type syncRow struct {
	ID        string
	Email     *string
	Name      *string
	Raw       json.RawMessage
	UpdatedAt *time.Time
	DeletedAt *time.Time
}

func (r syncRow) String() string {
	return fmt.Sprintf("{id=%s email=%s name=%s updated_at=%s deleted_at=%s}", r.ID,
		str(r.Email), str(r.Name), ts(r.UpdatedAt), ts(r.DeletedAt))
}

func str(s *string) string {
	if s == nil {
		return "NULL"
	}
	return fmt.Sprintf("%q", *s)
}

func ts(t *time.Time) string {
	if t == nil {
		return "NULL"
	}
	return t.UTC().Format(time.RFC3339Nano)
}

type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// syncRows reads every row of neon_auth.users_sync, by id.
func syncRows(ctx context.Context, db querier) (map[string]syncRow, error) {
	rows, err := db.Query(ctx, `SELECT id, email, name, raw_json, updated_at, deleted_at
		FROM neon_auth.users_sync`)
	if err != nil {
		return nil, fmt.Errorf("read users_sync: %w", err)
	}
	return collect(rows)
}

// authRows reads every user of an auth project from the metadata database, deleted ones too,
// as the rows users_sync should hold (without raw_json).
func authRows(ctx context.Context, meta querier, authProjectID string) (map[string]syncRow, error) {
	rows, err := meta.Query(ctx, `SELECT id::text, primary_email, display_name, NULL::jsonb,
			updated_at, deleted_at
		FROM auth_users WHERE auth_project_id = $1`, authProjectID)
	if err != nil {
		return nil, fmt.Errorf("read auth_users: %w", err)
	}
	return collect(rows)
}

func collect(rows pgx.Rows) (map[string]syncRow, error) {
	defer rows.Close()
	out := map[string]syncRow{}
	for rows.Next() {
		var r syncRow
		err := rows.Scan(&r.ID, &r.Email, &r.Name, &r.Raw, &r.UpdatedAt, &r.DeletedAt)
		if err != nil {
			return nil, fmt.Errorf("scan row: %w", err)
		}
		out[r.ID] = r
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read rows: %w", err)
	}
	return out, nil
}

// converged reports how users_sync differs from the auth project's users: it must hold exactly
// one row per user, deleted users included, with the user's id, email, name, updated_at and
// deleted_at, and raw_json equal to raw[id], the user's last server JSON.
func converged(ctx context.Context, meta, branch querier, authProjectID string,
	raw map[string]json.RawMessage) error {
	want, err := authRows(ctx, meta, authProjectID)
	if err != nil {
		return err
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
		r, ok := raw[id]
		if !ok {
			return fmt.Errorf("test bug: no expected raw_json for user %s", id)
		}
		w.Raw = r
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

func joinProblems(problems []string) error {
	if len(problems) == 0 {
		return nil
	}
	sort.Strings(problems)
	if len(problems) > 5 {
		problems = append(problems[:5], fmt.Sprintf("… and %d more", len(problems)-5))
	}
	return errors.New(strings.Join(problems, "; "))
}

// rowDiff describes how row got differs from want, or returns "".
func rowDiff(want, got syncRow) string {
	switch {
	case str(want.Email) != str(got.Email),
		str(want.Name) != str(got.Name),
		ts(want.UpdatedAt) != ts(got.UpdatedAt),
		ts(want.DeletedAt) != ts(got.DeletedAt):
		return fmt.Sprintf("row %v, want %v", got, want)
	}
	if err := sameJSON(want.Raw, got.Raw); err != nil {
		return fmt.Sprintf("row %s: raw_json: %v", want.ID, err)
	}
	return ""
}

// sameJSON reports whether two JSON documents have the same value, key order aside.
func sameJSON(want, got []byte) error {
	var w, g any
	if err := json.Unmarshal(want, &w); err != nil {
		return fmt.Errorf("bad expected JSON: %w", err)
	}
	if err := json.Unmarshal(got, &g); err != nil {
		return fmt.Errorf("bad JSON: %w", err)
	}
	if !reflect.DeepEqual(w, g) {
		return fmt.Errorf("got %s, want %s", got, want)
	}
	return nil
}

// pendingEvents counts an auth project's events still in the outbox.
func pendingEvents(ctx context.Context, meta *pgxpool.Pool, authProjectID string) (int, error) {
	var n int
	err := meta.QueryRow(ctx, "SELECT count(*) FROM sync_events WHERE auth_project_id = $1",
		authProjectID).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count events: %w", err)
	}
	return n, nil
}
