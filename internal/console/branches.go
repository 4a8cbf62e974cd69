package console

import (
	"context"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/neonauth/neonauth/internal/errs"
	"github.com/neonauth/neonauth/internal/secret"
)

const branchColumns = `id, project_id, name, COALESCE(parent_id, ''), is_default, endpoint_id,
	compute_kind, cluster_name, current_state, created_at, updated_at, host, port, admin_user,
	admin_password_sealed, admin_database, attach_options`

// scanBranch reads a row of branchColumns and opens its administrator password.
func (s *Service) scanBranch(row pgx.Row) (Branch, error) {
	var b Branch
	var sealed *string
	t := &b.Target
	err := row.Scan(&b.ID, &b.ProjectID, &b.Name, &b.ParentID, &b.Default, &b.EndpointID,
		&b.ComputeKind, &b.ClusterName, &b.CurrentState, &b.CreatedAt, &b.UpdatedAt, &t.Host,
		&t.Port, &t.User, &sealed, &t.AdminDatabase, &t.Options)
	if err != nil {
		return b, err
	}
	if sealed == nil {
		return b, fmt.Errorf("branch %s: administrator password not sealed", b.ID)
	}
	if t.Password, err = s.open(*sealed, adminPasswordContext); err != nil {
		return b, fmt.Errorf("branch %s: %w", b.ID, err)
	}
	t.Superuser = b.ComputeKind == ComputeManaged
	return b, nil
}

func (s *Service) branches(ctx context.Context, projectID string) ([]Branch, error) {
	rows, err := s.DB.Query(ctx, `SELECT `+branchColumns+` FROM branches WHERE project_id = $1
		ORDER BY created_at, id`, projectID)
	if err != nil {
		return nil, fmt.Errorf("list branches: %w", err)
	}
	defer rows.Close()
	var out []Branch
	for rows.Next() {
		b, err := s.scanBranch(rows)
		if err != nil {
			return nil, fmt.Errorf("scan branch: %w", err)
		}
		out = append(out, s.live(ctx, b))
	}
	return out, rows.Err()
}

// ListBranches lists the branches of one of the principal's projects.
func (s *Service) ListBranches(
	ctx context.Context, p Principal, projectID string,
) ([]Branch, error) {
	if _, err := s.GetProject(ctx, p, projectID); err != nil {
		return nil, err
	}
	return s.branches(ctx, projectID)
}

// GetBranch returns a branch of one of the principal's projects.
func (s *Service) GetBranch(
	ctx context.Context, p Principal, projectID, branchID string,
) (Branch, error) {
	if _, err := s.GetProject(ctx, p, projectID); err != nil {
		return Branch{}, err
	}
	return s.Branch(ctx, projectID, branchID)
}

// Branch returns a branch by id within a project, without an access check (for the other
// domain packages, which have checked the project already).
func (s *Service) Branch(ctx context.Context, projectID, branchID string) (Branch, error) {
	b, err := s.scanBranch(s.DB.QueryRow(ctx, `SELECT `+branchColumns+` FROM branches
		WHERE project_id = $1 AND id = $2`, projectID, branchID))
	if isNoRows(err) {
		return Branch{}, errs.E(errs.NotFound, "branch not found")
	}
	if err != nil {
		return Branch{}, fmt.Errorf("get branch: %w", err)
	}
	return s.live(ctx, b), nil
}

// BranchByID returns a branch by id alone, without an access check.
func (s *Service) BranchByID(ctx context.Context, branchID string) (Branch, error) {
	b, err := s.scanBranch(s.DB.QueryRow(ctx,
		`SELECT `+branchColumns+` FROM branches WHERE id = $1`, branchID))
	if isNoRows(err) {
		return Branch{}, errs.E(errs.NotFound, "branch not found")
	}
	if err != nil {
		return Branch{}, fmt.Errorf("get branch: %w", err)
	}
	return s.live(ctx, b), nil
}

// CreateBranchInput is what a caller may choose about a new branch.
type CreateBranchInput struct {
	Name     string
	ParentID string
}

// CreateBranch creates a child branch: a new PostgreSQL server holding a copy of its parent's
// data, with the parent's roles and databases.
func (s *Service) CreateBranch(
	ctx context.Context, p Principal, projectID string, in CreateBranchInput,
) (*CreatedBranch, error) {
	prj, err := s.GetProject(ctx, p, projectID)
	if err != nil {
		return nil, err
	}
	if in.ParentID == "" {
		in.ParentID = prj.DefaultBranchID
	}
	parent, err := s.Branch(ctx, projectID, in.ParentID)
	if errs.Is(err, errs.NotFound) {
		return nil, errs.E(errs.NotFound, "branch.parent_id: parent branch not found")
	}
	if err != nil {
		return nil, err
	}
	if parent.ComputeKind != ComputeManaged || s.Computes == nil {
		return nil, errs.E(errs.Invalid,
			"branch.parent_id: branches can only be made from branches whose server this "+
				"service runs; an attached database cannot be branched")
	}
	br := Branch{
		ID: newBranchID(), ProjectID: projectID, ParentID: parent.ID, EndpointID: newEndpointID(),
		ComputeKind: ComputeManaged, CurrentState: "ready", Name: strings.TrimSpace(in.Name),
	}
	if br.Name == "" {
		br.Name = br.ID
	}
	if utf8.RuneCountInString(br.Name) > 256 {
		return nil, errs.E(errs.Invalid, "branch.name: must be at most 256 characters")
	}
	pcl, err := s.Computes.Open(parent.ClusterName)
	if err != nil {
		return nil, errs.Wrap(err, "could not find the parent branch's server")
	}
	cl, err := s.Computes.Clone(ctx, pcl, br.ID)
	if err != nil {
		return nil, errs.Wrap(err, "could not copy the parent branch's server")
	}
	br.ClusterName = cl.Name
	br.Target = managedTarget(cl)
	if err := s.insertChild(ctx, &br, parent.ID); err != nil {
		s.dropCompute(ctx, br)
		return nil, err
	}
	ops := []Operation{newOperation(projectID, br.ID, br.EndpointID, "create_branch"),
		newOperation(projectID, br.ID, br.EndpointID, "start_compute")}
	if err := s.recordOperations(ctx, ops); err != nil {
		return nil, err
	}
	return &CreatedBranch{Branch: br, Operations: ops}, nil
}

func (s *Service) insertChild(ctx context.Context, br *Branch, parentID string) error {
	tx, err := s.DB.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(ctx)
	if err := s.insertBranch(ctx, tx, br, nil, nil); err != nil {
		return err
	}
	_, err = tx.Exec(ctx, `INSERT INTO databases (branch_id, name, owner_name)
		SELECT $1, name, owner_name FROM databases WHERE branch_id = $2`, br.ID, parentID)
	if err != nil {
		return fmt.Errorf("copy databases: %w", err)
	}
	// The sealed passwords are bound to their column, not to their row: they copy as they are.
	_, err = tx.Exec(ctx, `INSERT INTO roles (branch_id, name, password_sealed, protected)
		SELECT $1, name, password_sealed, protected FROM roles WHERE branch_id = $2`,
		br.ID, parentID)
	if err != nil {
		return fmt.Errorf("copy roles: %w", err)
	}
	return tx.Commit(ctx)
}

func (s *Service) recordOperations(ctx context.Context, ops []Operation) error {
	tx, err := s.DB.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(ctx)
	if err := insertOperations(ctx, tx, ops); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// ListDatabases lists the databases of a branch.
func (s *Service) ListDatabases(
	ctx context.Context, p Principal, projectID, branchID string,
) ([]Database, error) {
	if _, err := s.GetBranch(ctx, p, projectID, branchID); err != nil {
		return nil, err
	}
	return s.Databases(ctx, branchID)
}

// Databases lists the databases of a branch, without an access check.
func (s *Service) Databases(ctx context.Context, branchID string) ([]Database, error) {
	rows, err := s.DB.Query(ctx, `SELECT id, branch_id, name, owner_name, created_at, updated_at
		FROM databases WHERE branch_id = $1 ORDER BY id`, branchID)
	if err != nil {
		return nil, fmt.Errorf("list databases: %w", err)
	}
	defer rows.Close()
	var out []Database
	for rows.Next() {
		var d Database
		err := rows.Scan(&d.ID, &d.BranchID, &d.Name, &d.OwnerName, &d.CreatedAt, &d.UpdatedAt)
		if err != nil {
			return nil, fmt.Errorf("scan database: %w", err)
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// CreateDatabase creates a database on a branch's server, owned by one of its roles.
func (s *Service) CreateDatabase(
	ctx context.Context, p Principal, projectID, branchID, name, owner string,
) (Database, []Operation, error) {
	b, err := s.GetBranch(ctx, p, projectID, branchID)
	if err != nil {
		return Database{}, nil, err
	}
	if err := checkIdentifier("database.name", name); err != nil {
		return Database{}, nil, err
	}
	if err := checkIdentifier("database.owner_name", owner); err != nil {
		return Database{}, nil, err
	}
	if _, err := s.role(ctx, branchID, owner); err != nil {
		return Database{}, nil, errs.E(errs.NotFound, "database.owner_name: role not found")
	}
	conn, err := connect(ctx, b.Target, "")
	if err != nil {
		return Database{}, nil, err
	}
	defer conn.Close(ctx)
	q := "CREATE DATABASE " + quoteIdent(name) + " OWNER " + quoteIdent(owner)
	if _, err := conn.Exec(ctx, q); err != nil {
		return Database{}, nil, pgError(err, "database")
	}
	d := Database{BranchID: branchID, Name: name, OwnerName: owner}
	err = s.DB.QueryRow(ctx, `INSERT INTO databases (branch_id, name, owner_name)
		VALUES ($1, $2, $3) RETURNING id, created_at, updated_at`, branchID, name, owner).
		Scan(&d.ID, &d.CreatedAt, &d.UpdatedAt)
	if err != nil {
		return Database{}, nil, fmt.Errorf("record database: %w", err)
	}
	ops := []Operation{newOperation(projectID, branchID, b.EndpointID, "apply_config")}
	return d, ops, s.recordOperations(ctx, ops)
}

// ListRoles lists the roles of a branch, without their passwords.
func (s *Service) ListRoles(
	ctx context.Context, p Principal, projectID, branchID string,
) ([]Role, error) {
	if _, err := s.GetBranch(ctx, p, projectID, branchID); err != nil {
		return nil, err
	}
	rows, err := s.DB.Query(ctx, `SELECT branch_id, name, protected, created_at, updated_at
		FROM roles WHERE branch_id = $1 ORDER BY created_at, name`, branchID)
	if err != nil {
		return nil, fmt.Errorf("list roles: %w", err)
	}
	defer rows.Close()
	var out []Role
	for rows.Next() {
		var r Role
		if err := rows.Scan(&r.BranchID, &r.Name, &r.Protected, &r.CreatedAt, &r.UpdatedAt); err != nil {
			return nil, fmt.Errorf("scan role: %w", err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

func (s *Service) role(ctx context.Context, branchID, name string) (Role, error) {
	var r Role
	var pw *string
	err := s.DB.QueryRow(ctx, `SELECT branch_id, name, password_sealed, protected, created_at,
		updated_at FROM roles WHERE branch_id = $1 AND name = $2`, branchID, name).
		Scan(&r.BranchID, &r.Name, &pw, &r.Protected, &r.CreatedAt, &r.UpdatedAt)
	if isNoRows(err) {
		return Role{}, errs.E(errs.NotFound, "role not found")
	}
	if err != nil {
		return Role{}, fmt.Errorf("get role: %w", err)
	}
	if pw != nil {
		if r.Password, err = s.open(*pw, rolePasswordContext); err != nil {
			return Role{}, fmt.Errorf("role %s of branch %s: %w", name, branchID, err)
		}
	}
	return r, nil
}

// CreateRole creates a login role with a random password on a branch's server.
func (s *Service) CreateRole(
	ctx context.Context, p Principal, projectID, branchID, name string,
) (Role, []Operation, error) {
	b, err := s.GetBranch(ctx, p, projectID, branchID)
	if err != nil {
		return Role{}, nil, err
	}
	if err := checkIdentifier("role.name", name); err != nil {
		return Role{}, nil, err
	}
	conn, err := connect(ctx, b.Target, "")
	if err != nil {
		return Role{}, nil, err
	}
	defer conn.Close(ctx)
	password := secret.Password()
	sealed, err := s.seal(password, rolePasswordContext)
	if err != nil {
		return Role{}, nil, err
	}
	q := "CREATE ROLE " + quoteIdent(name) + " LOGIN PASSWORD " + quoteLiteral(password)
	if _, err := conn.Exec(ctx, q); err != nil {
		return Role{}, nil, pgError(err, "role")
	}
	r := Role{BranchID: branchID, Name: name, Password: password}
	// The row may outlive a role dropped by hand on the server: the new role replaces it.
	err = s.DB.QueryRow(ctx, `INSERT INTO roles (branch_id, name, password_sealed)
		VALUES ($1, $2, $3)
		ON CONFLICT (branch_id, name) DO UPDATE SET password_sealed = EXCLUDED.password_sealed,
			password = NULL, updated_at = now()
		RETURNING created_at, updated_at`, branchID, name, sealed).
		Scan(&r.CreatedAt, &r.UpdatedAt)
	if err != nil {
		return Role{}, nil, fmt.Errorf("record role: %w", err)
	}
	ops := []Operation{newOperation(projectID, branchID, b.EndpointID, "apply_config")}
	return r, ops, s.recordOperations(ctx, ops)
}

// RevealPassword returns a role's password. A role whose password the service does not know
// (a role of an attached database) is a precondition failure, as in Neon.
func (s *Service) RevealPassword(
	ctx context.Context, p Principal, projectID, branchID, name string,
) (string, error) {
	if _, err := s.GetBranch(ctx, p, projectID, branchID); err != nil {
		return "", err
	}
	r, err := s.role(ctx, branchID, name)
	if err != nil {
		return "", err
	}
	if r.Password == "" {
		return "", errs.E(errs.PreconditionFailed,
			"the password of this role is not stored by neonauth")
	}
	return r.Password, nil
}

// ConnectionURIInput selects the connection string to build.
type ConnectionURIInput struct {
	BranchID     string
	DatabaseName string
	RoleName     string
	Pooled       bool
}

// ConnectionURI returns a connection string for a role and database of a branch (the default
// branch when none is named). There is no pooler: a pooled URI is the direct one.
func (s *Service) ConnectionURI(
	ctx context.Context, p Principal, projectID string, in ConnectionURIInput,
) (ConnectionURI, error) {
	prj, err := s.GetProject(ctx, p, projectID)
	if err != nil {
		return ConnectionURI{}, err
	}
	if in.DatabaseName == "" {
		return ConnectionURI{}, errs.E(errs.Invalid, "database_name: is required")
	}
	if in.RoleName == "" {
		return ConnectionURI{}, errs.E(errs.Invalid, "role_name: is required")
	}
	if in.BranchID == "" {
		in.BranchID = prj.DefaultBranchID
	}
	b, err := s.Branch(ctx, projectID, in.BranchID)
	if err != nil {
		return ConnectionURI{}, err
	}
	dbs, err := s.Databases(ctx, b.ID)
	if err != nil {
		return ConnectionURI{}, err
	}
	found := false
	for _, d := range dbs {
		found = found || d.Name == in.DatabaseName
	}
	if !found {
		return ConnectionURI{}, errs.E(errs.NotFound, "database not found")
	}
	r, err := s.role(ctx, b.ID, in.RoleName)
	if err != nil {
		return ConnectionURI{}, err
	}
	if r.Password == "" {
		return ConnectionURI{}, errs.E(errs.PreconditionFailed,
			"the password of this role is not stored by neonauth")
	}
	return b.connectionURI(in.DatabaseName, r), nil
}

// GetOperation returns an operation of one of the principal's projects.
func (s *Service) GetOperation(
	ctx context.Context, p Principal, projectID string, id uuid.UUID,
) (Operation, error) {
	if _, err := s.GetProject(ctx, p, projectID); err != nil {
		return Operation{}, err
	}
	var o Operation
	var branch, endpoint, msg *string
	err := s.DB.QueryRow(ctx, `SELECT id, project_id, branch_id, endpoint_id, action, status,
			error, total_duration_ms, created_at, updated_at
		FROM operations WHERE project_id = $1 AND id = $2`, projectID, id).
		Scan(&o.ID, &o.ProjectID, &branch, &endpoint, &o.Action, &o.Status, &msg,
			&o.TotalDurationMS, &o.CreatedAt, &o.UpdatedAt)
	if isNoRows(err) {
		return Operation{}, errs.E(errs.NotFound, "operation not found")
	}
	if err != nil {
		return Operation{}, fmt.Errorf("get operation: %w", err)
	}
	o.BranchID, o.EndpointID, o.Error = deref(branch), deref(endpoint), deref(msg)
	return o, nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// live corrects the port of a managed branch whose server moved to another port when it was
// started again (the port is busy after a restart, say): the compute's port file is the
// truth, and the metadata follows it.
func (s *Service) live(ctx context.Context, b Branch) Branch {
	if b.ComputeKind != ComputeManaged || s.Computes == nil || b.ClusterName == "" {
		return b
	}
	cl, err := s.Computes.Open(b.ClusterName)
	if err != nil || cl.Port == 0 || cl.Port == b.Target.Port {
		return b
	}
	b.Target.Port = cl.Port
	_, err = s.DB.Exec(ctx, "UPDATE branches SET port = $2 WHERE id = $1 AND port <> $2",
		b.ID, cl.Port)
	if err != nil {
		s.Log.Warn("record branch port", "branch_id", b.ID, "err", err)
	}
	return b
}
