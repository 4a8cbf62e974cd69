package usersync_test

import (
	"encoding/json"
	"time"

	"github.com/google/uuid"
)

// savedEvent is an outbox row as the identity service wrote it.
type savedEvent struct {
	UserID    uuid.UUID
	Version   int64
	Raw       json.RawMessage
	ChangedAt *time.Time
	DeletedAt *time.Time
}

// events returns copies of the project's events in the outbox, oldest first.
func (p *project) events() []savedEvent {
	t := p.o.t
	t.Helper()
	rows, err := p.o.env.Pool.Query(p.o.ctx, `SELECT user_id, version, raw_json, changed_at,
			deleted_at
		FROM sync_events WHERE auth_project_id = $1 ORDER BY id`, p.AuthProjectID)
	if err != nil {
		t.Fatalf("read events: %v", err)
	}
	defer rows.Close()
	var out []savedEvent
	for rows.Next() {
		var e savedEvent
		if err := rows.Scan(&e.UserID, &e.Version, &e.Raw, &e.ChangedAt, &e.DeletedAt); err != nil {
			t.Fatalf("scan event: %v", err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("read events: %v", err)
	}
	return out
}

// inject writes events into the outbox again, in the order given, as a replay, a late
// delivery or a test hook would.
func (p *project) inject(evs ...savedEvent) {
	t := p.o.t
	t.Helper()
	for _, e := range evs {
		_, err := p.o.env.Pool.Exec(p.o.ctx, `INSERT INTO sync_events (auth_project_id, user_id,
				version, raw_json, changed_at, deleted_at)
			VALUES ($1, $2, $3, $4, $5, $6)`,
			p.AuthProjectID, e.UserID, e.Version, e.Raw, e.ChangedAt, e.DeletedAt)
		if err != nil {
			t.Fatalf("inject event: %v", err)
		}
	}
}

// countEntries counts log entries over all users.
func countEntries(log map[string][]logEntry) int {
	n := 0
	for _, es := range log {
		n += len(es)
	}
	return n
}
