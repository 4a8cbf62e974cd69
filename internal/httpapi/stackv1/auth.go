package stackv1

import (
	"net/http"
	"strings"

	"github.com/google/uuid"

	"github.com/neonauth/neonauth/internal/errs"
	"github.com/neonauth/neonauth/internal/identity"
	"github.com/neonauth/neonauth/internal/identity/jwt"
)

// Access types.
const (
	accessClient = "client"
	accessServer = "server"
	accessAdmin  = "admin"
)

// reqAuth is what a request proved: its project, access type and, with an access token, its
// user and session.
type reqAuth struct {
	ProjectID  string
	AccessType string
	User       *identity.User
	Claims     *jwt.Claims
}

func known(kind errs.Kind, code, msg string, details map[string]any) error {
	return errs.KnownError(kind, code, msg, details)
}

// authenticate resolves the Stack headers of a request. It returns nil without error when the
// request carries no access type and no key.
func (a *API) authenticate(r *http.Request) (*reqAuth, error) {
	ctx := r.Context()
	access := header(r, "access-type")
	projectID := header(r, "project-id")
	pck, ssk := header(r, "publishable-client-key"), header(r, "secret-server-key")
	sak := header(r, "super-secret-admin-key")
	if access == "" {
		if pck != "" || ssk != "" || sak != "" || header(r, "admin-access-token") != "" {
			return nil, known(errs.Invalid, "PROJECT_KEY_WITHOUT_ACCESS_TYPE",
				"If you provide a project key, you must also provide an access type.", nil)
		}
		return nil, nil
	}
	if access != accessClient && access != accessServer && access != accessAdmin {
		// The SDK decodes this error from details.accessType (camelCase).
		return nil, known(errs.Invalid, "INVALID_ACCESS_TYPE",
			"The x-stack-access-type header must be 'client', 'server', or 'admin', but was '"+
				access+"'.", map[string]any{"accessType": access})
	}
	if projectID == "" {
		return nil, known(errs.Invalid, "ACCESS_TYPE_WITHOUT_PROJECT_ID",
			"The x-stack-access-type header was given without an x-stack-project-id header.",
			map[string]any{"request_type": access})
	}
	if _, err := a.Identity.GetProject(ctx, projectID); err != nil {
		return nil, err
	}
	if branch := header(r, "branch-id"); branch != "" && branch != "main" {
		return nil, known(errs.Invalid, "BRANCH_DOES_NOT_EXIST",
			"The branch does not exist.", map[string]any{"branch_id": branch})
	}
	if err := a.checkKeys(r, access, projectID, pck, ssk); err != nil {
		return nil, err
	}
	ra := &reqAuth{ProjectID: projectID, AccessType: access}
	if tok := header(r, "access-token"); tok != "" {
		if err := a.resolveUser(r, ra, tok); err != nil {
			return nil, err
		}
	}
	return ra, nil
}

func (a *API) checkKeys(r *http.Request, access, projectID, pck, ssk string) error {
	ctx := r.Context()
	pid := map[string]any{"project_id": projectID}
	switch access {
	case accessClient:
		if projectID == identity.InternalProject && pck == "" {
			return nil
		}
		if pck == "" {
			return known(errs.Unauthenticated, "PUBLISHABLE_CLIENT_KEY_REQUIRED_FOR_PROJECT",
				"A publishable client key is required for this project.", pid)
		}
		ok, err := a.Identity.CheckPublishableKey(ctx, projectID, pck)
		if err != nil {
			return err
		}
		if !ok {
			return known(errs.Unauthenticated, "INVALID_PUBLISHABLE_CLIENT_KEY",
				"The publishable key is not valid for the project.", pid)
		}
	case accessServer:
		if ssk == "" {
			return known(errs.Unauthenticated, "SERVER_AUTHENTICATION_REQUIRED",
				"Server authentication is required: send a secret server key.", nil)
		}
		ok, err := a.Identity.CheckSecretServerKey(ctx, projectID, ssk)
		if err != nil {
			return err
		}
		if !ok {
			return known(errs.Unauthenticated, "INVALID_SECRET_SERVER_KEY",
				"The secret server key is not valid for the project.", pid)
		}
	case accessAdmin:
		return known(errs.Unauthenticated, "INVALID_SUPER_SECRET_ADMIN_KEY",
			"The super secret admin key is not valid for the project.", pid)
	}
	return nil
}

func (a *API) resolveUser(r *http.Request, ra *reqAuth, tok string) error {
	claims, err := a.Identity.VerifyAccessToken(r.Context(), ra.ProjectID, tok)
	if err != nil {
		return err
	}
	uid, err := uuid.Parse(claims.Subject)
	if err != nil {
		return known(errs.Unauthenticated, "UNPARSABLE_ACCESS_TOKEN",
			"Access token is not parsable.", nil)
	}
	u, err := a.Identity.GetUser(r.Context(), ra.ProjectID, uid)
	if errs.Is(err, errs.NotFound) {
		return known(errs.Unauthenticated, "UNPARSABLE_ACCESS_TOKEN",
			"The user of this access token no longer exists.", nil)
	}
	if err != nil {
		return err
	}
	ra.User, ra.Claims = &u, claims
	return nil
}

// need checks that a request is authenticated with one of the access types.
func need(ra *reqAuth, types ...string) error {
	if ra == nil {
		return known(errs.Invalid, "ACCESS_TYPE_REQUIRED",
			"You must specify an access level for this Stack project: send the "+
				"x-stack-access-type header.", nil)
	}
	for _, t := range types {
		if ra.AccessType == t {
			return nil
		}
	}
	return known(errs.Unauthenticated, "INSUFFICIENT_ACCESS_TYPE",
		"The x-stack-access-type header must be "+strings.Join(types, " or ")+".",
		map[string]any{"actual_access_type": ra.AccessType, "allowed_access_types": types})
}

func needUser(ra *reqAuth) error {
	if ra.User == nil {
		return known(errs.Unauthenticated, "USER_AUTHENTICATION_REQUIRED",
			"User authentication required for this endpoint.", nil)
	}
	return nil
}
