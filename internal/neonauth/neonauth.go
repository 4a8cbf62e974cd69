// Package neonauth is the Neon Auth integration domain: it ties a project's database to an
// auth project of the provider. Create, list, SDK keys, users, ownership transfer and delete
// follow Neon's "Manage Neon Auth using the API".
package neonauth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/neonauth/neonauth/internal/console"
	"github.com/neonauth/neonauth/internal/errs"
	"github.com/neonauth/neonauth/internal/identity"
	"github.com/neonauth/neonauth/internal/store"
)

// ProviderStack is the one supported auth provider.
const ProviderStack = "stack"

// SchemaName and TableName are where users are synced in the target database.
const (
	SchemaName = "neon_auth"
	TableName  = "users_sync"
)

// Service manages integrations.
type Service struct {
	DB       *pgxpool.Pool
	Console  *console.Service
	Identity *identity.Service
	Log      *slog.Logger
	// PublicURL is the base of transfer links.
	PublicURL string
	// TransferTTL is how long a transfer code is valid.
	TransferTTL time.Duration
	// Forget, when set, is told that an auth project no longer syncs (the sync worker
	// closes its connections to the database).
	Forget func(authProjectID string)
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// Integration is a project's integration with an auth provider.
type Integration struct {
	ProjectID      string
	AuthProvider   string
	AuthProjectID  string
	BranchID       string
	DBName         string
	RoleName       string
	CreatedAt      time.Time
	OwnedBy        string
	TransferStatus *string
	Name           string
}

// Created is a new integration, or new keys of one, with the keys shown once.
type Created struct {
	Integration Integration
	Keys        identity.Keys
}

// CheckProvider validates an auth_provider value.
func CheckProvider(provider string) error {
	if provider == "" {
		return errs.E(errs.Invalid, "auth_provider: is required")
	}
	if provider != ProviderStack {
		return errs.E(errs.Invalid,
			"auth_provider: %q is not supported; supported providers: %s", provider, ProviderStack)
	}
	return nil
}

// CreateInput is a create request. Empty names take Neon's defaults.
type CreateInput struct {
	AuthProvider string
	ProjectID    string
	BranchID     string
	DatabaseName string
	RoleName     string
}

// Create provisions an auth project for a database: the integration row, the auth project with
// its first key pair and signing key, and the neon_auth.users_sync table in the database,
// owned by the role. A second create for the same project and provider is a conflict.
func (s *Service) Create(
	ctx context.Context, p console.Principal, in CreateInput,
) (*Created, error) {
	if err := CheckProvider(in.AuthProvider); err != nil {
		return nil, err
	}
	if in.BranchID == "" {
		return nil, errs.E(errs.Invalid, "branch_id: is required")
	}
	prj, err := s.Console.GetProject(ctx, p, in.ProjectID)
	if err != nil {
		return nil, err
	}
	br, err := s.checkTarget(ctx, &in)
	if err != nil {
		return nil, err
	}
	if _, err := s.get(ctx, s.DB, in.ProjectID, in.AuthProvider); err == nil {
		return nil, alreadyExists()
	}

	tx, err := s.DB.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(ctx)
	ap, keys, err := s.Identity.CreateProjectTx(ctx, tx, prj.Name)
	if err != nil {
		return nil, err
	}
	var created time.Time
	err = tx.QueryRow(ctx, `INSERT INTO integrations (project_id, auth_provider, auth_project_id,
			branch_id, db_name, role_name) VALUES ($1, $2, $3, $4, $5, $6)
		RETURNING created_at`, in.ProjectID, in.AuthProvider, ap.ID, br.ID, in.DatabaseName,
		in.RoleName).Scan(&created)
	if store.IsUniqueViolation(err, "integrations_pkey") {
		return nil, alreadyExists()
	}
	if err != nil {
		return nil, fmt.Errorf("insert integration: %w", err)
	}
	if err := s.createTable(ctx, br, in.DatabaseName, in.RoleName); err != nil {
		return nil, err
	}
	if err := tx.Commit(ctx); err != nil {
		if store.IsUniqueViolation(err, "") {
			return nil, alreadyExists()
		}
		return nil, fmt.Errorf("commit integration: %w", err)
	}
	in2 := Integration{
		ProjectID: in.ProjectID, AuthProvider: in.AuthProvider, AuthProjectID: ap.ID,
		BranchID: br.ID, DBName: in.DatabaseName, RoleName: in.RoleName, CreatedAt: created,
		OwnedBy: "neon", Name: prj.Name,
	}
	return &Created{Integration: in2, Keys: keys}, nil
}

func alreadyExists() error {
	return errs.E(errs.Conflict, "an integration with this auth provider already exists "+
		"for the project")
}

// checkTarget finds the branch, fills in the default database and role, and checks that
// they exist on it.
func (s *Service) checkTarget(ctx context.Context, in *CreateInput) (console.Branch, error) {
	br, err := s.Console.Branch(ctx, in.ProjectID, in.BranchID)
	if err != nil {
		return console.Branch{}, err
	}
	dbs, err := s.Console.Databases(ctx, br.ID)
	if err != nil {
		return console.Branch{}, err
	}
	if in.DatabaseName == "" {
		in.DatabaseName = defaultDatabase(br, dbs)
	}
	i := slices.IndexFunc(dbs, func(d console.Database) bool { return d.Name == in.DatabaseName })
	if i < 0 {
		return console.Branch{}, errs.E(errs.NotFound, "database %q not found on branch %s",
			in.DatabaseName, br.ID)
	}
	if in.RoleName == "" {
		in.RoleName = dbs[i].OwnerName
	}
	var exists bool
	err = s.DB.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM roles WHERE branch_id = $1 AND name = $2)",
		br.ID, in.RoleName).Scan(&exists)
	if err != nil {
		return console.Branch{}, fmt.Errorf("check role: %w", err)
	}
	if !exists {
		return console.Branch{}, errs.E(errs.NotFound, "role %q not found on branch %s",
			in.RoleName, br.ID)
	}
	return br, nil
}

// defaultDatabase is the database a create without database_name uses: neondb, as Neon's
// docs say, when the branch has it; otherwise the project's own default database (the one
// an attached URI names, or the first one made with the project). The role then defaults
// to that database's owner, which is neondb_owner for a default project.
func defaultDatabase(br console.Branch, dbs []console.Database) string {
	has := func(name string) bool {
		return slices.ContainsFunc(dbs, func(d console.Database) bool { return d.Name == name })
	}
	switch {
	case has("neondb"):
		return "neondb"
	case br.ComputeKind == console.ComputeAttached && has(br.Target.AdminDatabase):
		return br.Target.AdminDatabase
	case len(dbs) > 0:
		return dbs[0].Name
	}
	return "neondb"
}

// usersSyncDDL is Neon's table, created only where it is missing so that a re-create after a
// delete that kept the data works.
const usersSyncDDL = `CREATE TABLE IF NOT EXISTS neon_auth.users_sync (
	raw_json jsonb NOT NULL,
	id text GENERATED ALWAYS AS ((raw_json ->> 'id'::text)) STORED NOT NULL,
	name text GENERATED ALWAYS AS ((raw_json ->> 'display_name'::text)) STORED,
	email text GENERATED ALWAYS AS ((raw_json ->> 'primary_email'::text)) STORED,
	created_at timestamp with time zone GENERATED ALWAYS AS (
		to_timestamp(
			(trunc((((raw_json ->> 'signed_up_at_millis'::text))::bigint)::double precision)
				/ (1000)::double precision)
		)
	) STORED,
	updated_at timestamp with time zone,
	deleted_at timestamp with time zone,
	CONSTRAINT users_sync_pkey PRIMARY KEY (id)
)`

func (s *Service) createTable(ctx context.Context, br console.Branch, database, role string) error {
	conn, err := s.Console.ConnectBranch(ctx, br, database)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	owner := pgx.Identifier{role}.Sanitize()
	stmts := []string{
		"CREATE SCHEMA IF NOT EXISTS neon_auth AUTHORIZATION " + owner,
		usersSyncDDL,
		"CREATE INDEX IF NOT EXISTS users_sync_deleted_at_idx ON neon_auth.users_sync " +
			"USING btree (deleted_at)",
		"ALTER SCHEMA neon_auth OWNER TO " + owner,
		"ALTER TABLE neon_auth.users_sync OWNER TO " + owner,
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		return errs.Wrap(fmt.Errorf("begin: %w", err), "could not create neon_auth.users_sync")
	}
	defer tx.Rollback(ctx)
	// Two projects attached to one database may create their integrations at once; "IF NOT
	// EXISTS" alone then loses the race on the catalog's unique index.
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", ddlLock); err != nil {
		return tableError(err, database, role)
	}
	for _, q := range stmts {
		if _, err := tx.Exec(ctx, q); err != nil {
			return tableError(err, database, role)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return tableError(err, database, role)
	}
	return nil
}

// ddlLock is the advisory lock key that serialises the neon_auth DDL in a target database
// ("neonauth" in ASCII).
const ddlLock int64 = 0x6e656f6e61757468

// tableError maps a failure to create the schema. A missing privilege is the caller's to
// fix (an attached database whose user may not hand objects to the role), not a server
// fault, so it is a 400 that says what PostgreSQL refused.
func tableError(err error, database, role string) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "42501" {
		return errs.E(errs.Invalid, "role_name: cannot create neon_auth owned by %q in database "+
			"%q: %s", role, database, pe.Message)
	}
	return errs.Wrap(fmt.Errorf("create users_sync: %w", err),
		"could not create neon_auth.users_sync in the database")
}

const integrationColumns = `i.project_id, i.auth_provider, i.auth_project_id, i.branch_id,
	i.db_name, i.role_name, i.created_at, a.owned_by, i.transfer_status, a.display_name`

type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

func scanIntegration(row pgx.Row) (Integration, error) {
	var in Integration
	err := row.Scan(&in.ProjectID, &in.AuthProvider, &in.AuthProjectID, &in.BranchID,
		&in.DBName, &in.RoleName, &in.CreatedAt, &in.OwnedBy, &in.TransferStatus, &in.Name)
	return in, err
}

func (s *Service) get(
	ctx context.Context, q querier, projectID, provider string,
) (Integration, error) {
	in, err := scanIntegration(q.QueryRow(ctx, `SELECT `+integrationColumns+`
		FROM integrations i JOIN auth_projects a ON a.id = i.auth_project_id
		WHERE i.project_id = $1 AND i.auth_provider = $2`, projectID, provider))
	if errors.Is(err, pgx.ErrNoRows) {
		return Integration{}, errs.E(errs.NotFound,
			"no %s integration exists for project %s", provider, projectID)
	}
	if err != nil {
		return Integration{}, fmt.Errorf("get integration: %w", err)
	}
	return in, nil
}

// find checks the provider and the principal's access to the project, then returns the
// integration.
func (s *Service) find(
	ctx context.Context, p console.Principal, projectID, provider string,
) (Integration, error) {
	if err := CheckProvider(provider); err != nil {
		return Integration{}, err
	}
	if _, err := s.Console.GetProject(ctx, p, projectID); err != nil {
		return Integration{}, err
	}
	return s.get(ctx, s.DB, projectID, provider)
}

// List returns a project's integrations.
func (s *Service) List(
	ctx context.Context, p console.Principal, projectID string,
) ([]Integration, error) {
	if _, err := s.Console.GetProject(ctx, p, projectID); err != nil {
		return nil, err
	}
	rows, err := s.DB.Query(ctx, `SELECT `+integrationColumns+`
		FROM integrations i JOIN auth_projects a ON a.id = i.auth_project_id
		WHERE i.project_id = $1 ORDER BY i.created_at`, projectID)
	if err != nil {
		return nil, fmt.Errorf("list integrations: %w", err)
	}
	defer rows.Close()
	out := []Integration{}
	for rows.Next() {
		in, err := scanIntegration(rows)
		if err != nil {
			return nil, fmt.Errorf("scan integration: %w", err)
		}
		out = append(out, in)
	}
	return out, rows.Err()
}

// CreateKeys adds a new key pair to an integration's auth project.
func (s *Service) CreateKeys(
	ctx context.Context, p console.Principal, projectID, provider string,
) (*Created, error) {
	in, err := s.find(ctx, p, projectID, provider)
	if err != nil {
		return nil, err
	}
	tx, err := s.DB.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(ctx)
	keys, err := s.Identity.CreateKeysTx(ctx, tx, in.AuthProjectID)
	if err != nil {
		return nil, err
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("commit keys: %w", err)
	}
	return &Created{Integration: in, Keys: keys}, nil
}

// MaxUserName is the management API's limit on a user's name, in characters.
const MaxUserName = 255

// CreateUser creates a user in an integration's auth project. The same email in any letter
// case is a conflict, as for sign-up.
func (s *Service) CreateUser(
	ctx context.Context, p console.Principal, projectID, provider, email string, name *string,
) (string, error) {
	email2, err := identity.NormaliseEmail("email", email)
	if err != nil {
		return "", err
	}
	if name != nil {
		if err := identity.CheckDisplayName("name", *name, MaxUserName); err != nil {
			return "", err
		}
	}
	in, err := s.find(ctx, p, projectID, provider)
	if err != nil {
		return "", err
	}
	u, err := s.Identity.CreateUser(ctx, in.AuthProjectID, identity.CreateUserInput{
		Email: &email2, DisplayName: name, EmailAuthEnabled: true,
	})
	if errs.Is(err, errs.Conflict) {
		return "", errs.E(errs.Conflict, "a user with email %q already exists", email2)
	}
	if err != nil {
		return "", err
	}
	return u.ID.String(), nil
}

// Delete removes an integration: its auth project goes (keys, JWKS, users, sessions) and its
// sync stops. The neon_auth schema stays unless deleteData is set.
func (s *Service) Delete(
	ctx context.Context, p console.Principal, projectID, provider string, deleteData bool,
) error {
	in, err := s.find(ctx, p, projectID, provider)
	if err != nil {
		return err
	}
	if err := s.remove(ctx, in); err != nil {
		return err
	}
	if !deleteData {
		return nil
	}
	br, err := s.Console.Branch(ctx, projectID, in.BranchID)
	if err != nil {
		return err
	}
	conn, err := s.Console.ConnectBranch(ctx, br, in.DBName)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "DROP SCHEMA IF EXISTS neon_auth CASCADE"); err != nil {
		return errs.Wrap(err, "could not drop the neon_auth schema")
	}
	return nil
}

func (s *Service) remove(ctx context.Context, in Integration) error {
	tx, err := s.DB.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(ctx)
	tag, err := tx.Exec(ctx, "DELETE FROM integrations WHERE project_id = $1 AND auth_provider = $2",
		in.ProjectID, in.AuthProvider)
	if err != nil {
		return fmt.Errorf("delete integration: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return errs.E(errs.NotFound, "no %s integration exists for project %s",
			in.AuthProvider, in.ProjectID)
	}
	if err := s.Identity.DeleteProjectTx(ctx, tx, in.AuthProjectID); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit delete: %w", err)
	}
	if s.Forget != nil {
		s.Forget(in.AuthProjectID)
	}
	return nil
}

// RemoveProject removes every integration of a project that is being deleted.
func (s *Service) RemoveProject(ctx context.Context, projectID string) error {
	rows, err := s.DB.Query(ctx, `SELECT `+integrationColumns+`
		FROM integrations i JOIN auth_projects a ON a.id = i.auth_project_id
		WHERE i.project_id = $1`, projectID)
	if err != nil {
		return fmt.Errorf("list integrations: %w", err)
	}
	var all []Integration
	for rows.Next() {
		in, err := scanIntegration(rows)
		if err != nil {
			rows.Close()
			return fmt.Errorf("scan integration: %w", err)
		}
		all = append(all, in)
	}
	rows.Close()
	for _, in := range all {
		if err := s.remove(ctx, in); err != nil {
			return err
		}
	}
	return nil
}

// SyncTarget tells the sync worker where an auth project's users go. ok is false when the
// project has no integration any more.
func (s *Service) SyncTarget(
	ctx context.Context, authProjectID string,
) (console.Branch, string, bool, error) {
	var projectID, branchID, db, role string
	err := s.DB.QueryRow(ctx, `SELECT project_id, branch_id, db_name, role_name FROM integrations
		WHERE auth_project_id = $1`, authProjectID).Scan(&projectID, &branchID, &db, &role)
	if errors.Is(err, pgx.ErrNoRows) {
		return console.Branch{}, "", false, nil
	}
	if err != nil {
		return console.Branch{}, "", false, fmt.Errorf("find sync target: %w", err)
	}
	br, err := s.Console.Branch(ctx, projectID, branchID)
	if err != nil {
		return console.Branch{}, "", false, err
	}
	// Rows are written as the table's owner, never as the server's superuser: the owner can
	// put triggers on the table, and they run with the rights of whoever writes.
	if br.Target, err = s.Console.RoleTarget(ctx, br, role); err != nil {
		return console.Branch{}, "", false, err
	}
	return br, db, true, nil
}
