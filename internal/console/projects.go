package console

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/neonauth/neonauth/internal/compute"
	"github.com/neonauth/neonauth/internal/errs"
	"github.com/neonauth/neonauth/internal/secret"
)

// CreateProjectInput is what a caller may choose about a new project. Empty fields take
// Neon's defaults.
type CreateProjectInput struct {
	Name         string
	RegionID     string
	PGVersion    int
	BranchName   string
	RoleName     string
	DatabaseName string
	// ConnectionURI attaches an existing PostgreSQL database as the default branch instead of
	// provisioning a server (an extension of Neon's API).
	ConnectionURI string
}

func (in *CreateProjectInput) normalise(defaultPG int) error {
	if utf8.RuneCountInString(in.Name) > 256 {
		return errs.E(errs.Invalid, "project.name: must be at most 256 characters")
	}
	if in.BranchName == "" {
		in.BranchName = "main"
	}
	if utf8.RuneCountInString(in.BranchName) > 256 {
		return errs.E(errs.Invalid, "project.branch.name: must be at most 256 characters")
	}
	if in.PGVersion == 0 {
		in.PGVersion = defaultPG
	}
	if in.PGVersion != defaultPG {
		return errs.E(errs.Invalid,
			"project.pg_version: this server runs PostgreSQL %d only", defaultPG)
	}
	if in.ConnectionURI != "" {
		return nil
	}
	if in.DatabaseName == "" {
		in.DatabaseName = "neondb"
	}
	if in.RoleName == "" {
		in.RoleName = in.DatabaseName + "_owner"
	}
	if err := checkIdentifier("project.branch.database_name", in.DatabaseName); err != nil {
		return err
	}
	return checkIdentifier("project.branch.role_name", in.RoleName)
}

// CreateProject creates a project with its default branch: a new PostgreSQL server with an
// owner role and a database, or an attached existing database.
func (s *Service) CreateProject(
	ctx context.Context, p Principal, in CreateProjectInput,
) (*CreatedProject, error) {
	if p.ProjectID != "" {
		return nil, errs.E(errs.Forbidden, "a project-scoped API key cannot create projects")
	}
	if err := in.normalise(s.PGVersion); err != nil {
		return nil, err
	}
	prj := Project{
		ID: newProjectID(), AccountID: p.AccountID, Name: in.Name, RegionID: in.RegionID,
		PGVersion: in.PGVersion, StorePasswords: true, HistoryRetentionSeconds: 86400,
	}
	if prj.Name == "" {
		prj.Name = prj.ID
	}
	if prj.RegionID == "" {
		prj.RegionID = s.RegionID
	}
	br := Branch{
		ID: newBranchID(), ProjectID: prj.ID, Name: in.BranchName, Default: true,
		EndpointID: newEndpointID(), CurrentState: "ready",
	}
	prj.DefaultBranchID = br.ID

	var dbs []Database
	var roles []Role
	var err error
	if in.ConnectionURI != "" {
		br.ComputeKind = ComputeAttached
		dbs, roles, err = s.attach(ctx, &br, in.ConnectionURI)
	} else {
		br.ComputeKind = ComputeManaged
		dbs, roles, err = s.provision(ctx, &br, in.RoleName, in.DatabaseName)
	}
	if err != nil {
		return nil, err
	}
	ops := []Operation{
		newOperation(prj.ID, br.ID, br.EndpointID, "create_timeline"),
		newOperation(prj.ID, br.ID, br.EndpointID, "start_compute"),
	}
	if err := s.insertProject(ctx, &prj, &br, dbs, roles, ops); err != nil {
		s.dropCompute(ctx, br)
		return nil, err
	}
	out := &CreatedProject{Project: prj, Branch: br, Databases: dbs, Roles: roles, Operations: ops}
	for _, d := range dbs {
		for _, r := range roles {
			if r.Name == d.OwnerName && r.Password != "" {
				out.ConnectionURIs = append(out.ConnectionURIs, br.connectionURI(d.Name, r))
			}
		}
	}
	return out, nil
}

func (b Branch) connectionURI(database string, r Role) ConnectionURI {
	opts := ""
	if b.ComputeKind == ComputeAttached {
		opts = b.Target.Options
	}
	return ConnectionURI{
		URI:  connURI(b.Target.Host, b.Target.Port, r.Name, r.Password, database, opts),
		Host: b.Target.Host, Port: b.Target.Port, Database: database, Role: r.Name,
		Password: r.Password,
	}
}

func newOperation(project, branch, endpoint, action string) Operation {
	now := time.Now().UTC()
	return Operation{
		ID: uuid.New(), ProjectID: project, BranchID: branch, EndpointID: endpoint,
		Action: action, Status: "finished", CreatedAt: now, UpdatedAt: now,
	}
}

// provision starts a new managed server for a branch and creates its owner role and database.
func (s *Service) provision(
	ctx context.Context, br *Branch, role, database string,
) ([]Database, []Role, error) {
	if s.Computes == nil {
		return nil, nil, errs.E(errs.Invalid,
			"this server has no PostgreSQL binaries to run branches; attach a database with "+
				"project.connection_uri instead")
	}
	cl, err := s.Computes.Create(ctx, br.ID)
	if err != nil {
		return nil, nil, errs.Wrap(err, "could not start a PostgreSQL server for the branch")
	}
	br.ClusterName = cl.Name
	br.Target = managedTarget(cl)
	password := secret.Password()
	conn, err := connect(ctx, br.Target, "postgres")
	if err != nil {
		s.dropCompute(ctx, *br)
		return nil, nil, err
	}
	defer conn.Close(ctx)
	stmts := []string{
		"CREATE ROLE " + quoteIdent(role) + " LOGIN CREATEDB PASSWORD " +
			quoteLiteral(password),
		"CREATE DATABASE " + quoteIdent(database) + " OWNER " + quoteIdent(role),
	}
	for _, q := range stmts {
		if _, err := conn.Exec(ctx, q); err != nil {
			s.dropCompute(ctx, *br)
			return nil, nil, pgError(err, "database or role")
		}
	}
	now := time.Now().UTC()
	dbs := []Database{{BranchID: br.ID, Name: database, OwnerName: role, CreatedAt: now, UpdatedAt: now}}
	roles := []Role{{BranchID: br.ID, Name: role, Password: password, CreatedAt: now, UpdatedAt: now}}
	return dbs, roles, nil
}

func managedTarget(cl *compute.Cluster) Target {
	return Target{Host: "127.0.0.1", Port: cl.Port, User: cl.User, Password: cl.Password,
		AdminDatabase: "postgres", Superuser: true}
}

// attach points a branch at an existing database and reads its databases and roles.
func (s *Service) attach(ctx context.Context, br *Branch, uri string) ([]Database, []Role, error) {
	t, err := parseTarget(uri)
	if err != nil {
		return nil, nil, err
	}
	br.Target = t
	conn, err := connect(ctx, t, "")
	if err != nil {
		// The cause stays in the log: echoing a driver's error would let a caller probe
		// ports and read bytes of whatever answers.
		s.Log.Info("attach: cannot connect", "host", t.Host, "port", t.Port, "err", err)
		return nil, nil, errs.E(errs.Invalid, "project.connection_uri: cannot connect to "+
			"the database: check its host, port, user, password, database and sslmode")
	}
	defer conn.Close(ctx)
	dbs, err := readDatabases(ctx, conn, br.ID, t.AdminDatabase)
	if err != nil {
		return nil, nil, err
	}
	roles, err := readRoles(ctx, conn, br.ID)
	if err != nil {
		return nil, nil, err
	}
	for i := range roles {
		if roles[i].Name == t.User {
			roles[i].Password = t.Password
		}
	}
	return dbs, roles, nil
}

func parseTarget(uri string) (Target, error) {
	u, err := url.Parse(uri)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") || u.Host == "" {
		return Target{}, errs.E(errs.Invalid,
			"project.connection_uri: must be a postgresql:// URI with a host")
	}
	port := 5432
	if ps := u.Port(); ps != "" {
		if port, err = strconv.Atoi(ps); err != nil {
			return Target{}, errs.E(errs.Invalid, "project.connection_uri: bad port")
		}
	}
	pw, _ := u.User.Password()
	t := Target{
		Host: u.Hostname(), Port: port, User: u.User.Username(), Password: pw,
		AdminDatabase: strings.TrimPrefix(u.Path, "/"),
	}
	if t.User == "" || t.AdminDatabase == "" || t.Password == "" {
		return Target{}, errs.E(errs.Invalid,
			"project.connection_uri: must name a user, its password and a database")
	}
	opts, err := attachOptions(u.Query())
	if err != nil {
		return Target{}, err
	}
	t.Options = opts
	return t, nil
}

// attachParams are the connection parameters an attach URI may carry. Others (host=,
// passfile=, service=, sslrootcert= …) would let a caller point the service at local files
// or other servers than the URI's host.
var attachParams = map[string]bool{"sslmode": true, "application_name": true}

func attachOptions(q url.Values) (string, error) {
	out := url.Values{}
	for k, v := range q {
		if !attachParams[k] {
			return "", errs.E(errs.Invalid,
				"project.connection_uri: parameter %q is not allowed (only sslmode and "+
					"application_name)", k)
		}
		out[k] = v
	}
	return out.Encode(), nil
}

func readDatabases(
	ctx context.Context, conn *pgx.Conn, branch, primary string,
) ([]Database, error) {
	rows, err := conn.Query(ctx, `SELECT datname, pg_get_userbyid(datdba) FROM pg_database
		WHERE NOT datistemplate AND (datname <> 'postgres' OR datname = $1) ORDER BY datname`,
		primary)
	if err != nil {
		return nil, errs.Wrap(err, "read databases of the attached server")
	}
	now := time.Now().UTC()
	var out []Database
	for rows.Next() {
		d := Database{BranchID: branch, CreatedAt: now, UpdatedAt: now}
		if err := rows.Scan(&d.Name, &d.OwnerName); err != nil {
			return nil, errs.Wrap(err, "read databases of the attached server")
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

func readRoles(ctx context.Context, conn *pgx.Conn, branch string) ([]Role, error) {
	rows, err := conn.Query(ctx, `SELECT rolname FROM pg_roles
		WHERE rolcanlogin AND rolname !~ '^pg_' ORDER BY rolname`)
	if err != nil {
		return nil, errs.Wrap(err, "read roles of the attached server")
	}
	now := time.Now().UTC()
	var out []Role
	for rows.Next() {
		r := Role{BranchID: branch, CreatedAt: now, UpdatedAt: now}
		if err := rows.Scan(&r.Name); err != nil {
			return nil, errs.Wrap(err, "read roles of the attached server")
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// dropCompute removes the server of a branch that could not be recorded.
func (s *Service) dropCompute(ctx context.Context, br Branch) {
	if br.ComputeKind != ComputeManaged || br.ClusterName == "" || s.Computes == nil {
		return
	}
	cl, err := s.Computes.Open(br.ClusterName)
	if err == nil {
		err = s.Computes.Remove(context.WithoutCancel(ctx), cl)
	}
	if err != nil {
		s.Log.Error("remove branch server", "branch_id", br.ID, "err", err)
	}
}

func (s *Service) insertProject(
	ctx context.Context, prj *Project, br *Branch, dbs []Database, roles []Role, ops []Operation,
) error {
	tx, err := s.DB.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(ctx)
	err = tx.QueryRow(ctx, `INSERT INTO projects (id, account_id, name, region_id, pg_version)
		VALUES ($1, $2, $3, $4, $5) RETURNING created_at, updated_at`,
		prj.ID, prj.AccountID, prj.Name, prj.RegionID, prj.PGVersion).
		Scan(&prj.CreatedAt, &prj.UpdatedAt)
	if err != nil {
		return fmt.Errorf("insert project: %w", err)
	}
	if err := s.insertBranch(ctx, tx, br, dbs, roles); err != nil {
		return err
	}
	if err := insertOperations(ctx, tx, ops); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// insertBranch records a branch with its databases and roles inside tx; the passwords are
// stored sealed.
func (s *Service) insertBranch(ctx context.Context, tx pgx.Tx, br *Branch, dbs []Database,
	roles []Role) error {
	t := br.Target
	adminSealed, err := s.seal(t.Password, adminPasswordContext)
	if err != nil {
		return err
	}
	err = tx.QueryRow(ctx, `INSERT INTO branches (id, project_id, name, parent_id, is_default,
			endpoint_id, compute_kind, cluster_name, host, port, admin_user,
			admin_password_sealed, admin_database, attach_options)
		VALUES ($1, $2, $3, NULLIF($4, ''), $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
		RETURNING created_at, updated_at`,
		br.ID, br.ProjectID, br.Name, br.ParentID, br.Default, br.EndpointID, br.ComputeKind,
		br.ClusterName, t.Host, t.Port, t.User, adminSealed, t.AdminDatabase, t.Options).
		Scan(&br.CreatedAt, &br.UpdatedAt)
	if err != nil {
		if isUnique(err) {
			return errs.E(errs.Conflict, "branch name already exists")
		}
		return fmt.Errorf("insert branch: %w", err)
	}
	for i := range dbs {
		err := tx.QueryRow(ctx, `INSERT INTO databases (branch_id, name, owner_name)
			VALUES ($1, $2, $3) RETURNING id, created_at, updated_at`,
			br.ID, dbs[i].Name, dbs[i].OwnerName).Scan(&dbs[i].ID, &dbs[i].CreatedAt, &dbs[i].UpdatedAt)
		if err != nil {
			return fmt.Errorf("insert database: %w", err)
		}
	}
	for i := range roles {
		var sealed *string
		if roles[i].Password != "" {
			v, err := s.seal(roles[i].Password, rolePasswordContext)
			if err != nil {
				return err
			}
			sealed = &v
		}
		err := tx.QueryRow(ctx, `INSERT INTO roles (branch_id, name, password_sealed, protected)
			VALUES ($1, $2, $3, $4) RETURNING created_at, updated_at`,
			br.ID, roles[i].Name, sealed, roles[i].Protected).
			Scan(&roles[i].CreatedAt, &roles[i].UpdatedAt)
		if err != nil {
			return fmt.Errorf("insert role: %w", err)
		}
	}
	return nil
}

func insertOperations(ctx context.Context, tx pgx.Tx, ops []Operation) error {
	for _, o := range ops {
		_, err := tx.Exec(ctx, `INSERT INTO operations (id, project_id, branch_id, endpoint_id,
				action, status, total_duration_ms, created_at, updated_at)
			VALUES ($1, $2, NULLIF($3, ''), NULLIF($4, ''), $5, $6, $7, $8, $9)`,
			o.ID, o.ProjectID, o.BranchID, o.EndpointID, o.Action, o.Status, o.TotalDurationMS,
			o.CreatedAt, o.UpdatedAt)
		if err != nil {
			return fmt.Errorf("insert operation: %w", err)
		}
	}
	return nil
}

const projectColumns = `p.id, p.account_id, p.name, p.region_id, p.pg_version, p.store_passwords,
	p.history_retention_seconds, p.created_at, p.updated_at,
	COALESCE((SELECT b.id FROM branches b WHERE b.project_id = p.id AND b.is_default), '')`

func scanProject(row pgx.Row) (Project, error) {
	var p Project
	err := row.Scan(&p.ID, &p.AccountID, &p.Name, &p.RegionID, &p.PGVersion, &p.StorePasswords,
		&p.HistoryRetentionSeconds, &p.CreatedAt, &p.UpdatedAt, &p.DefaultBranchID)
	return p, err
}

// GetProject returns one of the principal's projects; another account's project is not found.
func (s *Service) GetProject(ctx context.Context, p Principal, id string) (Project, error) {
	prj, err := scanProject(s.DB.QueryRow(ctx, `SELECT `+projectColumns+` FROM projects p
		WHERE p.id = $1 AND p.account_id = $2 AND ($3 = '' OR p.id = $3)`,
		id, p.AccountID, p.ProjectID))
	if isNoRows(err) {
		return Project{}, errs.E(errs.NotFound, "project not found")
	}
	if err != nil {
		return Project{}, fmt.Errorf("get project: %w", err)
	}
	return prj, nil
}

// ListProjectsInput selects a page of projects.
type ListProjectsInput struct {
	Cursor string
	Limit  int
	Search string
}

// ListProjects returns a page of projects ordered by creation, and the cursor of the next.
func (s *Service) ListProjects(
	ctx context.Context, p Principal, in ListProjectsInput,
) ([]Project, string, error) {
	if in.Limit == 0 {
		in.Limit = 10
	}
	if in.Limit < 1 || in.Limit > 400 {
		return nil, "", errs.E(errs.Invalid, "limit: must be between 1 and 400")
	}
	rows, err := s.DB.Query(ctx, `SELECT `+projectColumns+` FROM projects p
		WHERE p.account_id = $1 AND ($2 = '' OR p.id = $2)
		AND ($3 = '' OR (p.created_at, p.id) >
			(SELECT c.created_at, c.id FROM projects c WHERE c.id = $3))
		AND ($4 = '' OR p.name ILIKE '%' || $4 || '%' OR p.id ILIKE '%' || $4 || '%')
		ORDER BY p.created_at, p.id LIMIT $5`,
		p.AccountID, p.ProjectID, in.Cursor, in.Search, in.Limit)
	if err != nil {
		return nil, "", fmt.Errorf("list projects: %w", err)
	}
	defer rows.Close()
	var out []Project
	for rows.Next() {
		prj, err := scanProject(rows)
		if err != nil {
			return nil, "", fmt.Errorf("scan project: %w", err)
		}
		out = append(out, prj)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("list projects: %w", err)
	}
	cursor := in.Cursor
	if len(out) > 0 {
		cursor = out[len(out)-1].ID
	}
	return out, cursor, nil
}

// DeleteProject removes a project, its integrations and the servers of its managed branches.
func (s *Service) DeleteProject(ctx context.Context, p Principal, id string) (Project, error) {
	prj, err := s.GetProject(ctx, p, id)
	if err != nil {
		return Project{}, err
	}
	if s.BeforeProjectDelete != nil {
		if err := s.BeforeProjectDelete(ctx, id); err != nil {
			return Project{}, err
		}
	}
	branches, err := s.branches(ctx, id)
	if err != nil {
		return Project{}, err
	}
	tag, err := s.DB.Exec(ctx, "DELETE FROM projects WHERE id = $1", id)
	if err != nil {
		return Project{}, fmt.Errorf("delete project: %w", err)
	}
	if tag.RowsAffected() == 0 {
		// A concurrent delete removed it first; it owns the removal of the servers.
		return Project{}, errs.E(errs.NotFound, "project not found")
	}
	for _, b := range branches {
		s.dropCompute(ctx, b)
	}
	return prj, nil
}

// StartComputes starts the managed servers of every branch, as after a service restart, and
// records a port that had to change.
func (s *Service) StartComputes(ctx context.Context) error {
	if s.Computes == nil {
		return nil
	}
	rows, err := s.DB.Query(ctx,
		"SELECT id, cluster_name FROM branches WHERE compute_kind = 'managed'")
	if err != nil {
		return fmt.Errorf("list managed branches: %w", err)
	}
	type item struct{ id, cluster string }
	var items []item
	for rows.Next() {
		var it item
		if err := rows.Scan(&it.id, &it.cluster); err != nil {
			return fmt.Errorf("scan branch: %w", err)
		}
		items = append(items, it)
	}
	rows.Close()
	for _, it := range items {
		cl, err := s.Computes.Open(it.cluster)
		if err == nil {
			err = s.Computes.Start(ctx, cl)
		}
		if err != nil {
			s.Log.Error("start branch server", "branch_id", it.id, "err", err)
			continue
		}
		_, err = s.DB.Exec(ctx, "UPDATE branches SET port = $2 WHERE id = $1 AND port <> $2",
			it.id, cl.Port)
		if err != nil {
			return fmt.Errorf("record branch port: %w", err)
		}
	}
	return nil
}
