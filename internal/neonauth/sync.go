package neonauth

import (
	"context"

	"github.com/neonauth/neonauth/internal/console"
	"github.com/neonauth/neonauth/internal/errs"
)

// EnsureTable creates neon_auth.users_sync again in an integration's database if it was
// dropped (the resync's first step). It is a no-op when the table is there.
func (s *Service) EnsureTable(ctx context.Context, authProjectID string) error {
	var projectID, provider string
	err := s.DB.QueryRow(ctx, `SELECT project_id, auth_provider FROM integrations
		WHERE auth_project_id = $1`, authProjectID).Scan(&projectID, &provider)
	if isNoRows(err) {
		return errs.E(errs.NotFound, "the auth project has no integration")
	}
	if err != nil {
		return errs.Wrap(err, "find integration")
	}
	in, err := s.get(ctx, s.DB, projectID, provider)
	if err != nil {
		return err
	}
	br, err := s.Console.Branch(ctx, projectID, in.BranchID)
	if err != nil {
		return err
	}
	return s.createTable(ctx, br, in.DBName, in.RoleName)
}

// AuthProjectOf returns the auth project of a project's integration, checking the
// principal's access first.
func (s *Service) AuthProjectOf(
	ctx context.Context, p console.Principal, projectID, provider string,
) (string, error) {
	in, err := s.find(ctx, p, projectID, provider)
	if err != nil {
		return "", err
	}
	return in.AuthProjectID, nil
}

// IntegrationOf returns a project's integration with a provider, without an access check
// (for offline administration of the data directory).
func (s *Service) IntegrationOf(
	ctx context.Context, projectID, provider string,
) (Integration, error) {
	if err := CheckProvider(provider); err != nil {
		return Integration{}, err
	}
	return s.get(ctx, s.DB, projectID, provider)
}
