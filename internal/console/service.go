package console

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
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
	conn, err := pgx.Connect(ctx, t.URI(database))
	if err != nil {
		return nil, errs.Wrap(fmt.Errorf("connect to branch server: %w", err),
			"branch server is unreachable")
	}
	return conn, nil
}

// ConnectBranch opens an administrator connection to a database of a branch, for the other
// domain packages (Neon Auth creates its schema through it).
func (s *Service) ConnectBranch(ctx context.Context, b Branch, database string) (*pgx.Conn, error) {
	return connect(ctx, b.Target, database)
}

func isUnique(err error) bool { return store.IsUniqueViolation(err, "") }
