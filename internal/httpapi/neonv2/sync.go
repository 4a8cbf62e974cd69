package neonv2

import (
	"net/http"
	"time"

	"github.com/neonauth/neonauth/internal/console"
	"github.com/neonauth/neonauth/internal/errs"
	"github.com/neonauth/neonauth/internal/neonauth"
	"github.com/neonauth/neonauth/internal/usersync"
)

// The sync extensions: an integration's sync status, and a resync that rebuilds its
// neon_auth.users_sync from the auth project's users. Both take ?auth_provider= (default
// stack).

func provider(r *http.Request) string {
	if p := r.URL.Query().Get("auth_provider"); p != "" {
		return p
	}
	return neonauth.ProviderStack
}

func optionalTime(t *time.Time) *string {
	if t == nil {
		return nil
	}
	s := ts(*t)
	return &s
}

func (a *API) syncStatus(w http.ResponseWriter, r *http.Request, p console.Principal) error {
	id, err := a.Auth.AuthProjectOf(r.Context(), p, r.PathValue("project_id"), provider(r))
	if err != nil {
		return err
	}
	st, err := usersync.GetStatus(r.Context(), a.Sync.DB, id)
	if err != nil {
		return err
	}
	var lastErr *string
	if st.LastError != "" {
		lastErr = &st.LastError
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"auth_provider_project_id":   id,
		"state":                      st.State,
		"pending_events":             st.Pending,
		"oldest_pending_age_seconds": st.OldestPending.Seconds(),
		"applied_events":             st.Applied,
		"last_applied_at":            optionalTime(st.LastAppliedAt),
		"last_error":                 lastErr,
		"last_error_at":              optionalTime(st.LastErrorAt),
		"last_resync_at":             optionalTime(st.LastResyncAt),
	})
	return nil
}

func (a *API) resync(w http.ResponseWriter, r *http.Request, p console.Principal) error {
	if err := r.ParseForm(); err != nil {
		return errs.E(errs.Invalid, "bad query string")
	}
	id, err := a.Auth.AuthProjectOf(r.Context(), p, r.PathValue("project_id"), provider(r))
	if err != nil {
		return err
	}
	res, err := a.Sync.Resync(r.Context(), id, nil)
	if err != nil && errs.KindOf(err) == errs.Internal {
		// The cause (a database that cannot be reached, a table that cannot take rows) is
		// what the caller needs to fix it.
		return &errs.Error{Kind: errs.Unavailable, Message: "resync failed: " + err.Error(),
			Cause: err}
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"auth_provider_project_id": id, "users": res.Users, "changed": res.Changed,
		"removed": res.Removed, "duration_ms": res.Duration.Milliseconds(),
	})
	return nil
}
