package console

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/neonauth/neonauth/internal/compute"
	"github.com/neonauth/neonauth/internal/errs"
	"github.com/neonauth/neonauth/internal/sealbox"
	"github.com/neonauth/neonauth/internal/store"
)

// Service is the management domain, backed by the metadata database and the computes.
type Service struct {
	DB *pgxpool.Pool
	// Computes runs managed PostgreSQL servers; nil when the service can only attach.
	Computes *compute.Manager
	Log      *slog.Logger
	// Box seals the role and administrator passwords in the metadata database; without it
	// nothing that stores or reads one works.
	Box *sealbox.Box
	// RegionID is reported as every project's region.
	RegionID string
	// PGVersion is the major version of the managed PostgreSQL servers.
	PGVersion int
	// BeforeProjectDelete, when set, runs before a project's branches are removed (the Neon
	// Auth integrations use it to stop their sync and drop their auth projects).
	BeforeProjectDelete func(ctx context.Context, projectID string) error
}

func isNoRows(err error) bool { return errors.Is(err, pgx.ErrNoRows) }

// quoteLiteral quotes s as an SQL string literal, for the few utility statements (CREATE ROLE
// … PASSWORD) that cannot take bound parameters. standard_conforming_strings is on.
func quoteLiteral(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

// quoteIdent quotes s as an SQL identifier.
func quoteIdent(s string) string { return pgx.Identifier{s}.Sanitize() }

// checkIdentifier validates a database or role name: it is used as an exact, quoted
// PostgreSQL identifier, so it must fit PostgreSQL's 63-byte limit and hold no NUL.
func checkIdentifier(field, name string) error {
	switch {
	case name == "":
		return errs.E(errs.Invalid, "%s: must not be empty", field)
	case len(name) > 63:
		return errs.E(errs.Invalid, "%s: must be at most 63 bytes", field)
	case !utf8.ValidString(name) || strings.ContainsRune(name, 0):
		return errs.E(errs.Invalid, "%s: must be valid UTF-8 without NUL characters", field)
	case strings.HasPrefix(name, "pg_"):
		return errs.E(errs.Invalid, "%s: names starting with pg_ are reserved", field)
	}
	return nil
}

// pgError maps an error from a branch server to a domain error.
func pgError(err error, what string) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		// 23505: a concurrent CREATE of the same name lost the race on the catalog's
		// unique index instead of seeing the existing object.
		case "42710", "42P04", "23505":
			return errs.E(errs.Conflict, "%s already exists", what)
		case "42704", "3D000":
			return errs.E(errs.NotFound, "%s not found", what)
		// 42501: the server refused the statement to the role the service connects as
		// (an attached database whose user lacks CREATEROLE or CREATEDB).
		case "42939", "42602", "42622", "42501":
			return errs.E(errs.Invalid, "%s: %s", what, pe.Message)
		}
	}
	return errs.Wrap(err, "%s: branch server failed", what)
}

// connect opens an administrator connection to a database of a branch's server.
func connect(ctx context.Context, t Target, database string) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(t.URI(database))
	if err != nil {
		return nil, errs.Wrap(fmt.Errorf("parse branch server address: %w", err),
			"branch server address is invalid")
	}
	cfg.ConnectTimeout = 10 * time.Second
	// A failed statement must not be written to the server's log with its text: it may hold
	// a password (CREATE ROLE … PASSWORD). Only a superuser may set this; elsewhere the
	// server's own setting stays.
	if t.Superuser {
		cfg.RuntimeParams["log_min_error_statement"] = "panic"
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, errs.Wrap(fmt.Errorf("connect to branch server: %w", err),
			"branch server is unreachable")
	}
	return conn, nil
}

// RoleTarget is how the service connects to a branch as one of its roles, to write rows
// into tables that role owns: a table's owner can attach triggers to it, and those must
// never run with the administrator's rights. An attached branch's target is the user the
// owner gave us, and is returned as it is.
func (s *Service) RoleTarget(ctx context.Context, b Branch, role string) (Target, error) {
	if b.ComputeKind != ComputeManaged {
		return b.Target, nil
	}
	r, err := s.role(ctx, b.ID, role)
	if err != nil {
		return Target{}, err
	}
	if r.Password == "" {
		return Target{}, errs.E(errs.PreconditionFailed,
			"the password of role %q is not known to neonauth", role)
	}
	t := b.Target
	t.User, t.Password, t.Superuser = role, r.Password, false
	return t, nil
}

// ConnectBranch opens an administrator connection to a database of a branch, for the other
// domain packages (Neon Auth creates its schema through it).
func (s *Service) ConnectBranch(ctx context.Context, b Branch, database string) (*pgx.Conn, error) {
	return connect(ctx, b.Target, database)
}

func isUnique(err error) bool { return store.IsUniqueViolation(err, "") }
