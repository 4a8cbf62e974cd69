package usersync_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/neonauth/neonauth/internal/testserver"
)

// TestSyncStatusAndMetricsFollowProgress checks the sync status endpoint and the sync series
// of /metrics on a healthy integration: nothing applied at first, then every change counted
// once it is applied, with no backlog left; the endpoint's answers for a project without an
// integration, an unknown provider and a caller without a key; and no series left once the
// integration is removed.
func TestSyncStatusAndMetricsFollowProgress(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	s := testserver.Start(t)
	v := newServed(t, s, "status")
	branch := branchPool(t, ctx, s.Env.Console, v.p.BranchID)

	st := v.status()
	switch {
	case st["auth_provider_project_id"] != v.in.AuthProjectID:
		t.Errorf("status of auth project %v, want %s", st["auth_provider_project_id"],
			v.in.AuthProjectID)
	case st["state"] != "ok", num(st["pending_events"]) != 0, num(st["applied_events"]) != 0,
		st["last_applied_at"] != nil, st["last_error"] != nil, st["last_resync_at"] != nil:
		t.Errorf("status of a new integration: %v, want ok with nothing applied", st)
	}

	const users = 5
	var ids []string
	for i := range users {
		ids = append(ids, v.createV2(fmt.Sprintf("status-%d@example.com", i), nil))
	}
	v.patch(ids[0], map[string]any{"display_name": "Renamed"})
	v.remove(ids[1])
	const changes = users + 2
	for _, id := range ids[2:] {
		v.fetch(id)
	}
	v.fetch(ids[0])
	waitFor(t, 10*time.Second, "users_sync converges", func() error {
		return v.converged(ctx, branch)
	})
	waitFor(t, 10*time.Second, "status counts every change", func() error {
		st = v.status()
		if num(st["applied_events"]) != changes || num(st["pending_events"]) != 0 ||
			st["last_applied_at"] == nil || st["state"] != "ok" {
			return fmt.Errorf("status %v, want %d applied, none pending", st, changes)
		}
		return nil
	})
	if age := num(st["oldest_pending_age_seconds"]); age != 0 {
		t.Errorf("oldest pending age %v with nothing pending, want 0", age)
	}

	project := `auth_project_id="` + v.in.AuthProjectID + `"`
	waitFor(t, 15*time.Second, "metrics count every change", func() error {
		text := s.Do(t, "GET", "/metrics", nil).Body
		for _, m := range []struct {
			name string
			want float64
		}{
			{"neonauth_sync_events_applied_total", changes},
			{"neonauth_sync_lag_seconds_count", changes},
			{"neonauth_sync_pending_events", 0},
			{"neonauth_sync_oldest_pending_seconds", 0},
		} {
			got, ok, err := sample(text, m.name, project)
			switch {
			case err != nil:
				return err
			case !ok:
				return fmt.Errorf("no %s series", m.name)
			case got != m.want:
				return fmt.Errorf("%s = %v, want %v", m.name, got, m.want)
			}
		}
		for _, name := range []string{"neonauth_sync_retries_total",
			"neonauth_sync_failures_total"} {
			if got, _, err := sample(text, name, project); err != nil || got != 0 {
				return fmt.Errorf("%s = %v (%v) on a healthy integration", name, got, err)
			}
		}
		got, ok, err := sample(text, "neonauth_http_requests_total",
			`route="GET /api/v2/projects/{project_id}/auth/sync_status"`, `status="200"`)
		if err != nil || !ok || got < 1 {
			return fmt.Errorf("sync_status requests counted: %v %v %v", got, ok, err)
		}
		return nil
	})

	other := s.CreateProject(t, "no-integration")
	for _, c := range []struct {
		what, method, path string
		want               int
	}{
		{"a project without an integration", "GET",
			"/projects/" + other.ID + "/auth/sync_status", http.StatusNotFound},
		{"an unknown provider", "GET",
			"/projects/" + v.p.ID + "/auth/sync_status?auth_provider=nope",
			http.StatusBadRequest},
		{"a resync of a project without an integration", "POST",
			"/projects/" + other.ID + "/auth/resync", http.StatusNotFound},
	} {
		if r := s.Neon(t, c.method, c.path, nil); r.Status != c.want {
			t.Errorf("%s: %d %s, want %d", c.what, r.Status, r.Body, c.want)
		}
	}
	r := s.Do(t, "GET", "/api/v2/projects/"+v.p.ID+"/auth/sync_status", nil)
	if r.Status != http.StatusUnauthorized {
		t.Errorf("status without an API key: %d %s, want 401", r.Status, r.Body)
	}

	r = s.Neon(t, "DELETE", "/projects/"+v.p.ID+"/auth/integration/stack", nil)
	if r.Status/100 != 2 {
		t.Fatalf("delete the integration: %d %s", r.Status, r.Body)
	}
	waitFor(t, 15*time.Second, "metrics drop the removed integration", func() error {
		text := s.Do(t, "GET", "/metrics", nil).Body
		for line := range strings.SplitSeq(string(text), "\n") {
			if strings.Contains(line, project) {
				return fmt.Errorf("series left: %s", line)
			}
		}
		return nil
	})
}
