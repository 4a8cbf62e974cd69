package usersync_test

import (
	"testing"
	"time"

	"github.com/google/uuid"
)

// TestHandEditedRowsAreNotRepaired documents what happens today when someone edits
// neon_auth.users_sync by hand. The worker writes a user's row only when that user changes,
// and then only when the change is newer than the row's updated_at and the row is not
// soft-deleted. So:
//
//   - an edited row stays as edited, however long other users keep syncing;
//   - the user's next change replaces the whole row (raw_json, updated_at, deleted_at) with
//     the user's state, because that change is newer than the row;
//   - a row deleted by hand comes back at the user's next change, and not before (a deleted
//     user has no next change, so its row stays gone);
//   - a row whose updated_at was moved into the future, or whose deleted_at was set, by hand
//     is not repaired by later changes: the version guard takes it for newer, or deleted, and
//     skips them (updated_at only until the user changes after that time; deleted_at forever).
//
// Repairing rows without a change of the user (a resync) is a later issue.
func TestHandEditedRowsAreNotRepaired(t *testing.T) {
	t.Parallel()
	o := openOffline(t)
	p := o.newProject("hand")
	w := o.worker(0)
	forget(t, w, p)
	var ids []uuid.UUID
	for _, email := range []string{"edited@example.com", "dropped@example.com",
		"future@example.com", "marked@example.com"} {
		ids = append(ids, p.create(email, ptr("Synced")))
	}
	edited, dropped, future, marked := ids[0], ids[1], ids[2], ids[3]
	p.drain(w, 10*time.Second)
	p.mustConverge()

	p.handEdit(`UPDATE neon_auth.users_sync
		SET raw_json = jsonb_set(raw_json, '{display_name}', '"Edited"') WHERE id = $1`, edited)
	p.handEdit("DELETE FROM neon_auth.users_sync WHERE id = $1", dropped)
	p.handEdit(`UPDATE neon_auth.users_sync SET updated_at = now() + interval '1 year'
		WHERE id = $1`, future)
	p.handEdit("UPDATE neon_auth.users_sync SET deleted_at = now() WHERE id = $1", marked)

	other := p.create("other@example.com", nil)
	p.drain(w, 10*time.Second)
	if d := p.rowProblem(other); d != "" {
		t.Fatalf("other user did not sync: %s", d)
	}
	if r, _ := p.row(edited); str(r.Name) != `"Edited"` {
		t.Errorf("edited row before the user's next change: %v, want it still edited", r)
	}
	if _, ok := p.row(dropped); ok {
		t.Errorf("dropped row came back before the user's next change")
	}

	for _, id := range ids {
		p.rename(id, "Changed")
	}
	p.drain(w, 10*time.Second)
	for _, id := range []uuid.UUID{edited, dropped} {
		if d := p.rowProblem(id); d != "" {
			t.Errorf("after the user's next change: %s", d)
		}
	}
	for _, id := range []uuid.UUID{future, marked} {
		if r, _ := p.row(id); str(r.Name) != `"Synced"` {
			t.Errorf("row %v: want it left as it was (name \"Synced\"), the guard skipping "+
				"the change", r)
		}
	}
}

// handEdit changes users_sync as a person with a SQL console would.
func (p *project) handEdit(sql string, id uuid.UUID) {
	p.o.t.Helper()
	tag, err := p.Branch.Exec(p.o.ctx, sql, id.String())
	if err != nil || tag.RowsAffected() != 1 {
		p.o.t.Fatalf("hand edit %q: %v (%d rows)", sql, err, tag.RowsAffected())
	}
}

// rowProblem describes how a user's row differs from the user, or returns "".
func (p *project) rowProblem(id uuid.UUID) string {
	p.o.t.Helper()
	want, err := authRows(p.o.ctx, p.o.env.Pool, p.AuthProjectID)
	if err != nil {
		p.o.t.Fatal(err)
	}
	w, ok := want[id.String()]
	if !ok {
		p.o.t.Fatalf("no user %s", id)
	}
	p.mu.Lock()
	w.Raw = p.raw[id.String()]
	p.mu.Unlock()
	got, ok := p.row(id)
	if !ok {
		return "missing row " + w.String()
	}
	return rowDiff(w, got)
}
