package neonv2

import (
	"net/http"
	"strconv"

	"github.com/google/uuid"

	"github.com/neonauth/neonauth/internal/console"
	"github.com/neonauth/neonauth/internal/errs"
	"github.com/neonauth/neonauth/internal/httpapi"
)

func (a *API) routes(mux *http.ServeMux) {
	mux.Handle("GET "+Prefix+OpenAPIPath, a.openAPIHandler()) // no API key: see openapi.go
	a.implicitRoutes(mux)
	a.handle(mux, "GET /projects/{project_id}/auth/sync_status", a.syncStatus)
	a.handle(mux, "POST /projects/{project_id}/auth/resync", a.resync)
	a.handle(mux, "GET /api_keys", a.listAPIKeys)
	a.handle(mux, "POST /api_keys", a.createAPIKey)
	a.handle(mux, "DELETE /api_keys/{key_id}", a.revokeAPIKey)

	a.handle(mux, "GET /projects", a.listProjects)
	a.handle(mux, "POST /projects", a.createProject)
	a.handle(mux, "GET /projects/{project_id}", a.getProject)
	a.handle(mux, "DELETE /projects/{project_id}", a.deleteProject)
	a.handle(mux, "GET /projects/{project_id}/connection_uri", a.connectionURI)
	a.handle(mux, "GET /projects/{project_id}/operations/{operation_id}", a.getOperation)

	a.handle(mux, "GET /projects/{project_id}/branches", a.listBranches)
	a.handle(mux, "POST /projects/{project_id}/branches", a.createBranch)
	a.handle(mux, "GET /projects/{project_id}/branches/{branch_id}", a.getBranch)
	a.handle(mux, "GET /projects/{project_id}/branches/{branch_id}/databases", a.listDatabases)
	a.handle(mux, "POST /projects/{project_id}/branches/{branch_id}/databases", a.createDatabase)
	a.handle(mux, "GET /projects/{project_id}/branches/{branch_id}/roles", a.listRoles)
	a.handle(mux, "POST /projects/{project_id}/branches/{branch_id}/roles", a.createRole)
	a.handle(mux, "GET /projects/{project_id}/branches/{branch_id}/roles/{role_name}/reveal_password",
		a.revealPassword)

	a.handle(mux, "POST /projects/auth/create", a.createIntegration)
	a.handle(mux, "GET /projects/{project_id}/auth/integrations", a.listIntegrations)
	a.handle(mux, "POST /projects/auth/keys", a.createKeys)
	a.handle(mux, "POST /projects/auth/user", a.createUser)
	a.handle(mux, "POST /projects/auth/transfer_ownership", a.transfer)
	a.handle(mux, "DELETE /projects/{project_id}/auth/integration/{auth_provider}",
		a.deleteIntegration)
	a.handle(mux, "POST /projects/{project_id}/auth/rotate_signing_key", a.rotateSigningKey)
}

type apiKeyItem struct {
	ID               int64   `json:"id"`
	Name             string  `json:"name"`
	CreatedAt        string  `json:"created_at"`
	CreatedBy        any     `json:"created_by"`
	LastUsedAt       *string `json:"last_used_at"`
	LastUsedFromAddr string  `json:"last_used_from_addr"`
	ProjectID        string  `json:"project_id,omitempty"`
	Revoked          *bool   `json:"revoked,omitempty"`
}

func apiKey(k console.APIKey, createdBy any) apiKeyItem {
	it := apiKeyItem{ID: k.ID, Name: k.Name, CreatedAt: ts(k.CreatedAt), CreatedBy: createdBy,
		LastUsedFromAddr: k.LastUsedFromAddr, ProjectID: k.ProjectID}
	if k.LastUsedAt != nil {
		s := ts(*k.LastUsedAt)
		it.LastUsedAt = &s
	}
	return it
}

func (a *API) listAPIKeys(w http.ResponseWriter, r *http.Request, p console.Principal) error {
	keys, err := a.Console.ListAPIKeys(r.Context(), p)
	if err != nil {
		return err
	}
	acc, err := a.Console.Account(r.Context(), p)
	if err != nil {
		return err
	}
	by := map[string]string{"id": acc.ID.String(), "name": acc.Name, "image": ""}
	out := make([]apiKeyItem, 0, len(keys))
	for _, k := range keys {
		out = append(out, apiKey(k, by))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (a *API) createAPIKey(w http.ResponseWriter, r *http.Request, p console.Principal) error {
	var in struct {
		KeyName   string `json:"key_name"`
		ProjectID string `json:"project_id"`
	}
	if err := httpapi.DecodeJSON(r, &in, true); err != nil {
		return err
	}
	k, key, err := a.Console.CreateAPIKey(r.Context(), p, in.KeyName, in.ProjectID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"id": k.ID, "key": key, "name": k.Name, "created_at": ts(k.CreatedAt),
		"created_by": p.AccountID.String(), "project_id": k.ProjectID,
	})
	return nil
}

func (a *API) revokeAPIKey(w http.ResponseWriter, r *http.Request, p console.Principal) error {
	id, err := strconv.ParseInt(r.PathValue("key_id"), 10, 64)
	if err != nil {
		return errs.E(errs.Invalid, "key_id: must be an integer")
	}
	k, err := a.Console.RevokeAPIKey(r.Context(), p, id)
	if err != nil {
		return err
	}
	it := apiKey(k, p.AccountID.String())
	revoked := true
	it.Revoked = &revoked
	writeJSON(w, http.StatusOK, it)
	return nil
}

func (a *API) listProjects(w http.ResponseWriter, r *http.Request, p console.Principal) error {
	q := r.URL.Query()
	in := console.ListProjectsInput{Cursor: q.Get("cursor"), Search: q.Get("search")}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 400 {
			return errs.E(errs.Invalid, "limit: must be an integer between 1 and 400")
		}
		in.Limit = n
	}
	prjs, cursor, err := a.Console.ListProjects(r.Context(), p, in)
	if err != nil {
		return err
	}
	out := make([]projectJSON, 0, len(prjs))
	for _, prj := range prjs {
		out = append(out, project(prj))
	}
	body := map[string]any{"projects": out, "applications": map[string]any{},
		"integrations": map[string]any{}}
	if cursor != "" {
		body["pagination"] = map[string]string{"cursor": cursor}
	}
	writeJSON(w, http.StatusOK, body)
	return nil
}

type createProjectBody struct {
	Project *struct {
		Name      string `json:"name"`
		RegionID  string `json:"region_id"`
		PGVersion int    `json:"pg_version"`
		Branch    *struct {
			Name         string `json:"name"`
			RoleName     string `json:"role_name"`
			DatabaseName string `json:"database_name"`
		} `json:"branch"`
		ConnectionURI string `json:"connection_uri"`
	} `json:"project"`
}

func (a *API) createProject(w http.ResponseWriter, r *http.Request, p console.Principal) error {
	var body createProjectBody
	if err := httpapi.DecodeJSON(r, &body, true); err != nil {
		return err
	}
	if body.Project == nil {
		return errs.E(errs.Invalid, "project: is required")
	}
	in := console.CreateProjectInput{
		Name: body.Project.Name, RegionID: body.Project.RegionID,
		PGVersion: body.Project.PGVersion, ConnectionURI: body.Project.ConnectionURI,
	}
	if b := body.Project.Branch; b != nil {
		in.BranchName, in.RoleName, in.DatabaseName = b.Name, b.RoleName, b.DatabaseName
	}
	cp, err := a.Console.CreateProject(r.Context(), p, in)
	if err != nil {
		return err
	}
	uris := make([]connURIJSON, 0, len(cp.ConnectionURIs))
	for _, c := range cp.ConnectionURIs {
		uris = append(uris, connURI(c))
	}
	writeJSON(w, http.StatusCreated, map[string]any{
		"project": project(cp.Project), "connection_uris": uris, "roles": roles(cp.Roles),
		"databases": databases(cp.Databases), "operations": operations(cp.Operations),
		"branch":    branch(cp.Branch),
		"endpoints": []endpointJSON{endpoint(cp.Branch, cp.Project.RegionID)},
	})
	return nil
}

func (a *API) getProject(w http.ResponseWriter, r *http.Request, p console.Principal) error {
	prj, err := a.Console.GetProject(r.Context(), p, r.PathValue("project_id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"project": project(prj)})
	return nil
}

func (a *API) deleteProject(w http.ResponseWriter, r *http.Request, p console.Principal) error {
	prj, err := a.Console.DeleteProject(r.Context(), p, r.PathValue("project_id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"project": project(prj)})
	return nil
}

func (a *API) connectionURI(w http.ResponseWriter, r *http.Request, p console.Principal) error {
	q := r.URL.Query()
	pooled, _ := strconv.ParseBool(q.Get("pooled"))
	c, err := a.Console.ConnectionURI(r.Context(), p, r.PathValue("project_id"),
		console.ConnectionURIInput{BranchID: q.Get("branch_id"),
			DatabaseName: q.Get("database_name"), RoleName: q.Get("role_name"), Pooled: pooled})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]string{"uri": c.URI})
	return nil
}

func (a *API) getOperation(w http.ResponseWriter, r *http.Request, p console.Principal) error {
	id, err := uuid.Parse(r.PathValue("operation_id"))
	if err != nil {
		return errs.E(errs.NotFound, "operation not found")
	}
	o, err := a.Console.GetOperation(r.Context(), p, r.PathValue("project_id"), id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"operation": operation(o)})
	return nil
}

func (a *API) listBranches(w http.ResponseWriter, r *http.Request, p console.Principal) error {
	pg, err := parseBranchPage(r)
	if err != nil {
		return err
	}
	bs, err := a.Console.ListBranches(r.Context(), p, r.PathValue("project_id"))
	if err != nil {
		return err
	}
	bs, next := pg.apply(bs)
	out := make([]branchJSON, 0, len(bs))
	for _, b := range bs {
		out = append(out, branch(b))
	}
	pagination := map[string]string{"sort_by": pg.sortBy, "sort_order": pg.sortOrder}
	if next != "" {
		pagination["next"] = next
	}
	writeJSON(w, http.StatusOK, map[string]any{"branches": out, "annotations": map[string]any{},
		"pagination": pagination})
	return nil
}

func (a *API) createBranch(w http.ResponseWriter, r *http.Request, p console.Principal) error {
	var body struct {
		Branch *struct {
			Name     string `json:"name"`
			ParentID string `json:"parent_id"`
		} `json:"branch"`
	}
	if err := httpapi.DecodeJSON(r, &body, false); err != nil {
		return err
	}
	var in console.CreateBranchInput
	if body.Branch != nil {
		in = console.CreateBranchInput{Name: body.Branch.Name, ParentID: body.Branch.ParentID}
	}
	cb, err := a.Console.CreateBranch(r.Context(), p, r.PathValue("project_id"), in)
	if err != nil {
		return err
	}
	prj, err := a.Console.GetProject(r.Context(), p, cb.Branch.ProjectID)
	if err != nil {
		return err
	}
	dbs, err := a.Console.Databases(r.Context(), cb.Branch.ID)
	if err != nil {
		return err
	}
	rs, err := a.Console.ListRoles(r.Context(), p, prj.ID, cb.Branch.ID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, map[string]any{
		"branch": branch(cb.Branch), "operations": operations(cb.Operations),
		"endpoints": []endpointJSON{endpoint(cb.Branch, prj.RegionID)},
		"databases": databases(dbs), "roles": roles(rs), "connection_uris": []any{},
	})
	return nil
}

func (a *API) getBranch(w http.ResponseWriter, r *http.Request, p console.Principal) error {
	b, err := a.Console.GetBranch(r.Context(), p, r.PathValue("project_id"), r.PathValue("branch_id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"branch": branch(b), "annotation": map[string]any{
		"object": map[string]string{"type": "console/branch", "id": b.ID},
		"value":  map[string]string{},
	}})
	return nil
}

func (a *API) listDatabases(w http.ResponseWriter, r *http.Request, p console.Principal) error {
	ds, err := a.Console.ListDatabases(r.Context(), p, r.PathValue("project_id"),
		r.PathValue("branch_id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"databases": databases(ds)})
	return nil
}

func (a *API) createDatabase(w http.ResponseWriter, r *http.Request, p console.Principal) error {
	var body struct {
		Database *struct {
			Name      string `json:"name"`
			OwnerName string `json:"owner_name"`
		} `json:"database"`
	}
	if err := httpapi.DecodeJSON(r, &body, true); err != nil {
		return err
	}
	if body.Database == nil {
		return errs.E(errs.Invalid, "database: is required")
	}
	d, ops, err := a.Console.CreateDatabase(r.Context(), p, r.PathValue("project_id"),
		r.PathValue("branch_id"), body.Database.Name, body.Database.OwnerName)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, map[string]any{"database": database(d),
		"operations": operations(ops)})
	return nil
}

func (a *API) listRoles(w http.ResponseWriter, r *http.Request, p console.Principal) error {
	rs, err := a.Console.ListRoles(r.Context(), p, r.PathValue("project_id"), r.PathValue("branch_id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"roles": roles(rs)})
	return nil
}

func (a *API) createRole(w http.ResponseWriter, r *http.Request, p console.Principal) error {
	var body struct {
		Role *struct {
			Name string `json:"name"`
		} `json:"role"`
	}
	if err := httpapi.DecodeJSON(r, &body, true); err != nil {
		return err
	}
	if body.Role == nil {
		return errs.E(errs.Invalid, "role: is required")
	}
	rl, ops, err := a.Console.CreateRole(r.Context(), p, r.PathValue("project_id"),
		r.PathValue("branch_id"), body.Role.Name)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, map[string]any{"role": role(rl), "operations": operations(ops)})
	return nil
}

func (a *API) revealPassword(w http.ResponseWriter, r *http.Request, p console.Principal) error {
	pw, err := a.Console.RevealPassword(r.Context(), p, r.PathValue("project_id"),
		r.PathValue("branch_id"), r.PathValue("role_name"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]string{"password": pw})
	return nil
}
