package neonv2

import (
	"net/http"

	"github.com/neonauth/neonauth/internal/console"
	"github.com/neonauth/neonauth/internal/errs"
	"github.com/neonauth/neonauth/internal/httpapi"
	"github.com/neonauth/neonauth/internal/neonauth"
)

// projectRef is the body of the keys and transfer calls. The other bodies repeat its fields
// instead of embedding it: the JSON decoder names a mistyped field of an embedded struct
// with the Go type's name ("projectRef.project_id"), which clients must not see.
type projectRef struct {
	ProjectID    *string `json:"project_id"`
	AuthProvider *string `json:"auth_provider"`
}

func (b projectRef) check() (string, string, error) {
	if b.ProjectID == nil || *b.ProjectID == "" {
		return "", "", errs.E(errs.Invalid, "project_id: is required")
	}
	if b.AuthProvider == nil {
		return "", "", errs.E(errs.Invalid, "auth_provider: is required")
	}
	if err := neonauth.CheckProvider(*b.AuthProvider); err != nil {
		return "", "", err
	}
	return *b.ProjectID, *b.AuthProvider, nil
}

func (a *API) createIntegration(w http.ResponseWriter, r *http.Request, p console.Principal) error {
	var body struct {
		ProjectID    *string `json:"project_id"`
		AuthProvider *string `json:"auth_provider"`
		BranchID     *string `json:"branch_id"`
		DatabaseName *string `json:"database_name"`
		RoleName     *string `json:"role_name"`
	}
	if err := httpapi.DecodeJSON(r, &body, true); err != nil {
		return err
	}
	project, provider, err := projectRef{body.ProjectID, body.AuthProvider}.check()
	if err != nil {
		return err
	}
	if body.BranchID == nil || *body.BranchID == "" {
		return errs.E(errs.Invalid, "branch_id: is required")
	}
	in := neonauth.CreateInput{AuthProvider: provider, ProjectID: project, BranchID: *body.BranchID}
	if body.DatabaseName != nil {
		in.DatabaseName = *body.DatabaseName
	}
	if body.RoleName != nil {
		in.RoleName = *body.RoleName
	}
	c, err := a.Auth.Create(r.Context(), p, in)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, authKeys(c, a.Identity))
	return nil
}

func (a *API) listIntegrations(w http.ResponseWriter, r *http.Request, p console.Principal) error {
	ins, err := a.Auth.List(r.Context(), p, r.PathValue("project_id"))
	if err != nil {
		return err
	}
	out := make([]integrationJSON, 0, len(ins))
	for _, in := range ins {
		out = append(out, integration(in, a.Identity))
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": out})
	return nil
}

func (a *API) createKeys(w http.ResponseWriter, r *http.Request, p console.Principal) error {
	var body projectRef
	if err := httpapi.DecodeJSON(r, &body, true); err != nil {
		return err
	}
	project, provider, err := body.check()
	if err != nil {
		return err
	}
	c, err := a.Auth.CreateKeys(r.Context(), p, project, provider)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, authKeys(c, a.Identity))
	return nil
}

func (a *API) createUser(w http.ResponseWriter, r *http.Request, p console.Principal) error {
	var body struct {
		ProjectID    *string `json:"project_id"`
		AuthProvider *string `json:"auth_provider"`
		Email        *string `json:"email"`
		Name         *string `json:"name"`
	}
	if err := httpapi.DecodeJSON(r, &body, true); err != nil {
		return err
	}
	project, provider, err := projectRef{body.ProjectID, body.AuthProvider}.check()
	if err != nil {
		return err
	}
	if body.Email == nil {
		return errs.E(errs.Invalid, "email: is required")
	}
	id, err := a.Auth.CreateUser(r.Context(), p, project, provider, *body.Email, body.Name)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, map[string]string{"id": id})
	return nil
}

func (a *API) transfer(w http.ResponseWriter, r *http.Request, p console.Principal) error {
	var body projectRef
	if err := httpapi.DecodeJSON(r, &body, true); err != nil {
		return err
	}
	project, provider, err := body.check()
	if err != nil {
		return err
	}
	url, err := a.Auth.Transfer(r.Context(), p, project, provider)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]string{"url": url})
	return nil
}

func (a *API) deleteIntegration(w http.ResponseWriter, r *http.Request, p console.Principal) error {
	var body struct {
		DeleteData *bool `json:"delete_data"`
	}
	if err := httpapi.DecodeJSON(r, &body, false); err != nil {
		return err
	}
	deleteData := body.DeleteData != nil && *body.DeleteData
	err := a.Auth.Delete(r.Context(), p, r.PathValue("project_id"), r.PathValue("auth_provider"),
		deleteData)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{})
	return nil
}

// rotateSigningKey is an extension: it rotates the signing key of the project's Stack auth
// project and answers with the new key id.
func (a *API) rotateSigningKey(w http.ResponseWriter, r *http.Request, p console.Principal) error {
	ins, err := a.Auth.List(r.Context(), p, r.PathValue("project_id"))
	if err != nil {
		return err
	}
	if len(ins) == 0 {
		return errs.E(errs.NotFound, "the project has no auth integration")
	}
	kid, err := a.Identity.RotateSigningKey(r.Context(), ins[0].AuthProjectID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]string{"kid": kid,
		"auth_provider_project_id": ins[0].AuthProjectID})
	return nil
}
