package stackv1

import (
	"net/http"
	"regexp"
	"strconv"

	"github.com/google/uuid"

	"github.com/neonauth/neonauth/internal/errs"
	"github.com/neonauth/neonauth/internal/identity"
)

// clientPatchFields are what a user may change about itself with client access.
var clientPatchFields = []string{"display_name", "profile_image_url", "client_metadata",
	"selected_team_id", "totp_secret_base64", "otp_auth_enabled", "passkey_auth_enabled",
	"primary_email"}

// serverUserFields are the server create and update schema's keys.
var serverUserFields = []string{"primary_email", "primary_email_verified",
	"primary_email_auth_enabled", "password", "password_hash", "display_name",
	"profile_image_url", "client_metadata", "client_read_only_metadata", "server_metadata",
	"selected_team_id", "otp_auth_enabled", "passkey_auth_enabled", "totp_secret_base64",
	"is_anonymous", "restricted_by_admin", "restricted_by_admin_reason",
	"restricted_by_admin_private_details", "country_code", "risk_scores", "oauth_providers"}

// bcryptMCF is the shape of an imported password hash.
var bcryptMCF = regexp.MustCompile(`^\$2[ayb]\$(\d\d)\$[./A-Za-z0-9]{53}$`)

func (a *API) userJSON(ra *reqAuth, u identity.User) any {
	if ra.AccessType == accessClient {
		return u.Client()
	}
	return u.Server()
}

func (a *API) getMe(w http.ResponseWriter, r *http.Request, ra *reqAuth) error {
	if err := need(ra, accessClient, accessServer, accessAdmin); err != nil {
		return err
	}
	if ra.User == nil {
		return known(errs.Invalid, "CANNOT_GET_OWN_USER_WITHOUT_USER",
			"You have specified 'me' as a userId, but did not provide authentication for a user.",
			nil)
	}
	a.json(w, r, http.StatusOK, a.userJSON(ra, *ra.User))
	return nil
}

func (a *API) patchMe(w http.ResponseWriter, r *http.Request, ra *reqAuth) error {
	if err := need(ra, accessClient, accessServer, accessAdmin); err != nil {
		return err
	}
	if ra.User == nil {
		return known(errs.Invalid, "CANNOT_GET_OWN_USER_WITHOUT_USER",
			"You have specified 'me' as a userId, but did not provide authentication for a user.",
			nil)
	}
	allowed := serverUserFields
	if ra.AccessType == accessClient {
		allowed = clientPatchFields
	}
	return a.update(w, r, ra, ra.User.ID, allowed)
}

func (a *API) update(w http.ResponseWriter, r *http.Request, ra *reqAuth, id uuid.UUID,
	allowed []string) error {
	m, err := readBody(r)
	if err != nil {
		return err
	}
	f := newFields(m, allowed...)
	in := identity.UpdateUserInput{
		SetDisplayName: f.has("display_name"), DisplayName: f.str("display_name"),
		SetEmail: f.has("primary_email"), Email: f.str("primary_email"),
		EmailVerified:      f.boolean("primary_email_verified"),
		EmailAuthEnabled:   f.boolean("primary_email_auth_enabled"),
		SetProfileImageURL: f.has("profile_image_url"), ProfileImageURL: f.str("profile_image_url"),
		Password: f.str("password"), PasswordHash: f.str("password_hash"),
		SetClientMetadata: f.has("client_metadata"), ClientMetadata: f.raw("client_metadata"),
		SetClientReadOnly:      f.has("client_read_only_metadata"),
		ClientReadOnlyMetadata: f.raw("client_read_only_metadata"),
		SetServerMetadata:      f.has("server_metadata"), ServerMetadata: f.raw("server_metadata"),
	}
	if f.err != nil {
		return f.err
	}
	if err := checkHash(in.PasswordHash); err != nil {
		return err
	}
	if in.Password != nil && in.PasswordHash != nil {
		return schemaError("password and password_hash cannot both be set")
	}
	u, err := a.Identity.UpdateUser(r.Context(), ra.ProjectID, id, in)
	if err != nil {
		return err
	}
	a.json(w, r, http.StatusOK, a.userJSON(ra, u))
	return nil
}

func checkHash(h *string) error {
	if h == nil {
		return nil
	}
	m := bcryptMCF.FindStringSubmatch(*h)
	if m == nil {
		return schemaError("password_hash must be a bcrypt hash in Modular Crypt Format")
	}
	if cost, _ := strconv.Atoi(m[1]); cost > 16 || cost < 4 {
		return schemaError("password_hash cost must be between 4 and 16")
	}
	return nil
}

func (a *API) listUsers(w http.ResponseWriter, r *http.Request, ra *reqAuth) error {
	if err := need(ra, accessServer, accessAdmin); err != nil {
		return err
	}
	q := r.URL.Query()
	limit := 0
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return schemaError("query.limit must be a positive integer")
		}
		limit = n
	}
	var cursor *uuid.UUID
	if s := q.Get("cursor"); s != "" {
		c, err := uuid.Parse(s)
		if err != nil {
			return schemaError("query.cursor must be a UUID")
		}
		cursor = &c
	}
	if ob := q.Get("order_by"); ob != "" && ob != "signed_up_at" {
		return schemaError("query.order_by must be signed_up_at")
	}
	desc := q.Get("desc") == "true"
	users, next, err := a.Identity.ListUsers(r.Context(), ra.ProjectID, identity.ListOptions{
		Limit: limit, Cursor: cursor, Desc: desc, Query: q.Get("query")})
	if err != nil {
		return err
	}
	items := make([]identity.ServerUser, 0, len(users))
	for _, u := range users {
		items = append(items, u.Server())
	}
	var nc *string
	if next != nil {
		s := next.String()
		nc = &s
	}
	a.json(w, r, http.StatusOK, map[string]any{"items": items, "is_paginated": true,
		"pagination": map[string]any{"next_cursor": nc}})
	return nil
}

func (a *API) createUser(w http.ResponseWriter, r *http.Request, ra *reqAuth) error {
	if err := need(ra, accessServer, accessAdmin); err != nil {
		return err
	}
	m, err := readBody(r)
	if err != nil {
		return err
	}
	f := newFields(m, serverUserFields...)
	in := identity.CreateUserInput{
		Email: f.str("primary_email"), DisplayName: f.str("display_name"),
		ProfileImageURL: f.str("profile_image_url"), Password: f.str("password"),
		PasswordHash: f.str("password_hash"), ClientMetadata: f.raw("client_metadata"),
		ClientReadOnlyMetadata: f.raw("client_read_only_metadata"),
		ServerMetadata:         f.raw("server_metadata"),
	}
	if b := f.boolean("primary_email_verified"); b != nil {
		in.EmailVerified = *b
	}
	if b := f.boolean("primary_email_auth_enabled"); b != nil {
		in.EmailAuthEnabled = *b
	}
	if f.err != nil {
		return f.err
	}
	if err := checkHash(in.PasswordHash); err != nil {
		return err
	}
	if in.EmailAuthEnabled && in.Email == nil {
		return errs.PlainError(errs.Invalid,
			"primary_email_auth_enabled cannot be true without primary_email")
	}
	u, err := a.Identity.CreateUser(r.Context(), ra.ProjectID, in)
	if err != nil {
		return err
	}
	a.json(w, r, http.StatusCreated, u.Server())
	return nil
}

func parseUserID(r *http.Request) (uuid.UUID, error) {
	id, err := uuid.Parse(r.PathValue("user_id"))
	if err != nil {
		return uuid.UUID{}, known(errs.NotFound, "USER_NOT_FOUND", "User not found.", nil)
	}
	return id, nil
}

func (a *API) getUser(w http.ResponseWriter, r *http.Request, ra *reqAuth) error {
	if r.PathValue("user_id") == "me" {
		return a.getMe(w, r, ra)
	}
	if err := need(ra, accessServer, accessAdmin); err != nil {
		return err
	}
	id, err := parseUserID(r)
	if err != nil {
		return err
	}
	u, err := a.Identity.GetUser(r.Context(), ra.ProjectID, id)
	if err != nil {
		return err
	}
	a.json(w, r, http.StatusOK, u.Server())
	return nil
}

func (a *API) patchUser(w http.ResponseWriter, r *http.Request, ra *reqAuth) error {
	if r.PathValue("user_id") == "me" {
		return a.patchMe(w, r, ra)
	}
	if err := need(ra, accessServer, accessAdmin); err != nil {
		return err
	}
	id, err := parseUserID(r)
	if err != nil {
		return err
	}
	return a.update(w, r, ra, id, serverUserFields)
}

func (a *API) deleteUser(w http.ResponseWriter, r *http.Request, ra *reqAuth) error {
	if err := need(ra, accessServer, accessAdmin); err != nil {
		return err
	}
	id, err := parseUserID(r)
	if err != nil {
		return err
	}
	if err := a.Identity.DeleteUser(r.Context(), ra.ProjectID, id); err != nil {
		return err
	}
	a.json(w, r, http.StatusOK, map[string]bool{"success": true})
	return nil
}
