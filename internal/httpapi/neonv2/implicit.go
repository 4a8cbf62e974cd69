package neonv2

import (
	"net/http"

	"github.com/neonauth/neonauth/internal/console"
)

// The calls Neon's official clients make on their own (neonctl before most commands, the
// SDKs' helpers), answered from what neonauth has: one user per account, no organizations,
// no shared projects, one endpoint per branch.

func (a *API) implicitRoutes(mux *http.ServeMux) {
	a.handle(mux, "GET /users/me", a.currentUser)
	a.handle(mux, "GET /users/me/organizations", a.organizations)
	a.handle(mux, "GET /auth", a.authDetails)
	a.handle(mux, "GET /projects/shared", a.sharedProjects)
	a.handle(mux, "GET /projects/{project_id}/endpoints", a.projectEndpoints)
	a.handle(mux, "GET /projects/{project_id}/branches/{branch_id}/endpoints", a.branchEndpoints)
}

func (a *API) currentUser(w http.ResponseWriter, r *http.Request, p console.Principal) error {
	acc, err := a.Console.Account(r.Context(), p)
	if err != nil {
		return err
	}
	email := acc.Email
	if email == "" {
		// Accounts have no address of their own; the spec wants a non-empty one.
		email = acc.ID.String() + "@localhost"
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"id": acc.ID.String(), "email": email, "login": acc.Name, "name": acc.Name,
		"last_name": "", "image": "", "active_seconds_limit": 0, "projects_limit": 0,
		"branches_limit": 0, "max_autoscaling_limit": 0.25, "compute_seconds_limit": 0,
		"plan":          "self_hosted",
		"auth_accounts": []any{},
	})
	return nil
}

func (a *API) organizations(w http.ResponseWriter, r *http.Request, _ console.Principal) error {
	writeJSON(w, http.StatusOK, map[string]any{"organizations": []any{}})
	return nil
}

func (a *API) authDetails(w http.ResponseWriter, r *http.Request, p console.Principal) error {
	method := "api_key_user"
	if p.ProjectID != "" {
		method = "api_key_org"
	}
	writeJSON(w, http.StatusOK, map[string]string{"account_id": p.AccountID.String(),
		"auth_method": method})
	return nil
}

func (a *API) sharedProjects(w http.ResponseWriter, r *http.Request, _ console.Principal) error {
	writeJSON(w, http.StatusOK, map[string]any{"projects": []any{}})
	return nil
}

func (a *API) projectEndpoints(w http.ResponseWriter, r *http.Request, p console.Principal) error {
	prj, err := a.Console.GetProject(r.Context(), p, r.PathValue("project_id"))
	if err != nil {
		return err
	}
	bs, err := a.Console.ListBranches(r.Context(), p, prj.ID)
	if err != nil {
		return err
	}
	out := make([]endpointJSON, 0, len(bs))
	for _, b := range bs {
		out = append(out, endpoint(b, prj.RegionID))
	}
	writeJSON(w, http.StatusOK, map[string]any{"endpoints": out})
	return nil
}

func (a *API) branchEndpoints(w http.ResponseWriter, r *http.Request, p console.Principal) error {
	prj, err := a.Console.GetProject(r.Context(), p, r.PathValue("project_id"))
	if err != nil {
		return err
	}
	b, err := a.Console.GetBranch(r.Context(), p, prj.ID, r.PathValue("branch_id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"endpoints": []endpointJSON{endpoint(b, prj.RegionID)}})
	return nil
}
