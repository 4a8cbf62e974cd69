package usersync_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/uuid"
)

func ptr[T any](v T) *T { return &v }

// TestReplayedAndStaleEventsKeepNewestState applies a user's events a second time, then in
// the wrong order, then a crafted event older than the row: the row keeps the newest state
// and nothing changes it, although the worker offers every one of those writes.
func TestReplayedAndStaleEventsKeepNewestState(t *testing.T) {
	t.Parallel()
	o := openOffline(t)
	p := o.newProject("replay")
	installApplyLog(t, o.ctx, p.Branch)
	w := o.worker(0)
	forget(t, w, p)

	id := p.create("replay@example.com", ptr("First"))
	p.rename(id, "Second")
	p.rename(id, "Third")
	saved := p.events()
	if len(saved) != 3 {
		t.Fatalf("got %d events, want 3", len(saved))
	}
	p.drain(w, 10*time.Second)
	p.mustConverge()
	want, _ := p.row(id)

	p.inject(saved...)                     // the same events again
	p.inject(saved[2], saved[0], saved[1]) // the newest first, then older ones
	crafted := saved[2]
	crafted.Raw = json.RawMessage(`{"id": "` + id.String() + `", "display_name": "Crafted"}`)
	crafted.ChangedAt = ptr(want.UpdatedAt.Add(-time.Millisecond))
	p.inject(crafted) // older than the row, with other content
	p.drain(w, 10*time.Second)

	got, _ := p.row(id)
	if d := rowDiff(want, got); d != "" {
		t.Errorf("replays changed the row: %s", d)
	}
	p.mustConverge()
	if n := len(applyLog(t, o.ctx, p.Branch, "try")[id.String()]); n != 3+3+3+1 {
		t.Errorf("worker offered %d writes, want 10 (3 events, 6 replays, 1 crafted)", n)
	}
	if sets := applyLog(t, o.ctx, p.Branch, "set")[id.String()]; len(sets) != 3 {
		t.Errorf("row changed %d times, want 3 (create and two renames): %v", len(sets), sets)
	}
}

// TestB11SoftDeleteSticks is the sync part of case B11: a deleted user's row stays, soft
// deleted, through a stale update carrying the user's old JSON, a late event dated after the
// delete and a replayed creation; signing up again with the email adds a second, live row.
func TestB11SoftDeleteSticks(t *testing.T) {
	t.Parallel()
	o := openOffline(t)
	p := o.newProject("b11")
	w := o.worker(0)
	forget(t, w, p)

	const email = "user@example.com"
	tok, err := o.env.Identity.SignUp(o.ctx, p.AuthProjectID, email, "correct-horse-1")
	if err != nil {
		t.Fatalf("sign up: %v", err)
	}
	u1 := tok.UserID
	p.rememberID(u1)
	p.rename(u1, "Old Name")
	history := p.events() // creation, rename
	p.drain(w, 10*time.Second)

	p.remove(u1)
	p.drain(w, 10*time.Second)
	deleted, ok := p.row(u1)
	if !ok || deleted.DeletedAt == nil {
		t.Fatalf("after DELETE: row %v (present %v), want a soft-deleted row", deleted, ok)
	}
	p.mustConverge()

	stale := history[1] // the rename: old JSON, dated before the delete
	late := history[1]
	late.ChangedAt = ptr(time.Now().Add(time.Hour)) // dated after the delete, not deleted
	p.inject(stale, late, history[0])
	p.drain(w, 10*time.Second)
	if got, _ := p.row(u1); rowDiff(deleted, got) != "" {
		t.Errorf("stale events changed the deleted row: %s", rowDiff(deleted, got))
	}

	tok2, err := o.env.Identity.SignUp(o.ctx, p.AuthProjectID, email, "correct-horse-1")
	if err != nil {
		t.Fatalf("sign up again: %v", err)
	}
	if tok2.UserID == u1 {
		t.Fatalf("sign-up again returned the deleted user's id")
	}
	p.rememberID(tok2.UserID)
	p.drain(w, 10*time.Second)
	p.mustConverge()
	checkTwoRows(t, p, email, u1, tok2.UserID)
}

// checkTwoRows checks that email has a soft-deleted row for old and a live one for cur.
func checkTwoRows(t *testing.T, p *project, email string, old, cur uuid.UUID) {
	t.Helper()
	rows, err := syncRows(p.o.ctx, p.Branch)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range rows {
		if str(r.Email) == str(&email) {
			ids = append(ids, r.ID)
		}
	}
	if len(ids) != 2 || rows[old.String()].DeletedAt == nil || rows[cur.String()].DeletedAt != nil {
		t.Errorf("rows for %s: %v, want %s deleted and %s live", email, ids, old, cur)
	}
}

// rememberID records a user's current server JSON, for a user created elsewhere.
func (p *project) rememberID(id uuid.UUID) {
	p.o.t.Helper()
	u, err := p.o.env.Identity.GetUser(p.o.ctx, p.AuthProjectID, id)
	if err != nil {
		p.o.t.Fatalf("get user: %v", err)
	}
	p.remember(u)
}

// TestWaitingEventIsNotOvertaken makes a user's creation wait for a retry and then updates
// the user: the update must not be applied before the creation it follows.
func TestWaitingEventIsNotOvertaken(t *testing.T) {
	t.Parallel()
	o := openOffline(t)
	p := o.newProject("order")
	installApplyLog(t, o.ctx, p.Branch)
	w := o.worker(0)
	forget(t, w, p)

	id := p.create("order@example.com", ptr("Created"))
	o.exec(`UPDATE sync_events SET attempts = 1, next_attempt_at = now() + interval '1 hour',
		last_error = 'simulated outage' WHERE auth_project_id = '` + p.AuthProjectID + `'`)
	p.rename(id, "Renamed")
	n, err := w.Round(o.ctx)
	if err != nil {
		t.Fatalf("round: %v", err)
	}
	if _, ok := p.row(id); n != 0 || ok || p.pending() != 2 {
		t.Fatalf("round applied %d events (row present %v, %d pending) while the oldest waits",
			n, ok, p.pending())
	}

	o.exec(`UPDATE sync_events SET next_attempt_at = now()
		WHERE auth_project_id = '` + p.AuthProjectID + `'`)
	p.drain(w, 10*time.Second)
	p.mustConverge()
	tries := applyLog(t, o.ctx, p.Branch, "try")[id.String()]
	if err := inOrder(tries); err != nil || len(tries) != 2 {
		t.Errorf("writes %v: want creation then rename (%v)", tries, err)
	}
}
