package identity

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"golang.org/x/crypto/bcrypt"

	"github.com/neonauth/neonauth/internal/errs"
	"github.com/neonauth/neonauth/internal/store"
)

func isNoRows(err error) bool { return errors.Is(err, pgx.ErrNoRows) }

// Password limits, in characters.
const (
	MinPassword = 8
	MaxPassword = 70
)

// CreateUserInput is a new user. Nil fields are absent.
type CreateUserInput struct {
	Email                  *string
	EmailVerified          bool
	EmailAuthEnabled       bool
	DisplayName            *string
	ProfileImageURL        *string
	Password               *string
	PasswordHash           *string
	ClientMetadata         json.RawMessage
	ClientReadOnlyMetadata json.RawMessage
	ServerMetadata         json.RawMessage
	CheckPasswordLength    bool
}

// userColumnNames are the columns of auth_users a User is read from, in fields order.
var userColumnNames = []string{"id", "auth_project_id", "primary_email",
	"primary_email_verified", "primary_email_auth_enabled", "display_name",
	"profile_image_url", "password_hash", "client_metadata", "client_read_only_metadata",
	"server_metadata", "signed_up_at", "last_active_at", "updated_at", "version", "deleted_at"}

// UserColumns is the select list that ScanUser reads.
var UserColumns = prefixed("")

// prefixed returns the select list with each column qualified by p (a table alias and dot).
func prefixed(p string) string {
	cols := make([]string, len(userColumnNames))
	for i, c := range userColumnNames {
		cols[i] = p + c
	}
	return strings.Join(cols, ", ")
}

// ScanUser reads a user from a row selected with UserColumns.
func ScanUser(row pgx.Row) (User, error) { return scanUser(row) }

// fields are the scan targets of UserColumns, in order.
func (u *User) fields() []any {
	return []any{&u.ID, &u.ProjectID, &u.PrimaryEmail, &u.PrimaryEmailVerified,
		&u.PrimaryEmailAuthEnabled, &u.DisplayName, &u.ProfileImageURL, &u.PasswordHash,
		&u.ClientMetadata, &u.ClientReadOnlyMetadata, &u.ServerMetadata, &u.SignedUpAt,
		&u.LastActiveAt, &u.UpdatedAt, &u.Version, &u.DeletedAt}
}

func scanUser(row pgx.Row) (User, error) {
	var u User
	err := row.Scan(u.fields()...)
	return u, err
}

// checkPassword applies Stack's length rule (8–70 characters, counted as UTF-16 code units,
// as JavaScript counts them).
func checkPassword(pw string) error {
	n := 0
	for _, r := range pw {
		n++
		if r > 0xFFFF {
			n++
		}
	}
	if n < MinPassword {
		return errs.KnownError(errs.Invalid, "PASSWORD_TOO_SHORT",
			fmt.Sprintf("Password too short. Minimum length is %d.", MinPassword),
			map[string]any{"min_length": MinPassword})
	}
	if n > MaxPassword {
		return errs.KnownError(errs.Invalid, "PASSWORD_TOO_LONG",
			fmt.Sprintf("Password too long. Maximum length is %d.", MaxPassword),
			map[string]any{"maxLength": MaxPassword})
	}
	return nil
}

// bcryptMax is the longest input bcrypt uses; it ignores (x/crypto refuses) the rest.
const bcryptMax = 72

// passwordBytes is what bcrypt hashes for a password: the password itself, or, when it is
// longer than bcrypt's 72-byte input (70 characters of CJK text are 210 bytes), the base64
// of its SHA-256, so that no part of the password is silently ignored.
func passwordBytes(pw string) []byte {
	if len(pw) <= bcryptMax {
		return []byte(pw)
	}
	sum := sha256.Sum256([]byte(pw))
	return []byte(base64.StdEncoding.EncodeToString(sum[:]))
}

// HashPassword hashes a password with bcrypt at the configured cost, at most two hashes at a
// time per core so that a burst cannot exhaust memory or starve other requests.
func (s *Service) HashPassword(pw string) (string, error) {
	release := s.hashSlot()
	defer release()
	h, err := bcrypt.GenerateFromPassword(passwordBytes(pw), s.BcryptCost)
	if err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	return string(h), nil
}

func (s *Service) normaliseInput(in *CreateUserInput) error {
	if in.Email != nil {
		e, err := NormaliseEmail("primary_email", *in.Email)
		if err != nil {
			return err
		}
		in.Email = &e
	}
	if in.EmailAuthEnabled && in.Email == nil {
		return errs.KnownError(errs.Invalid, "SCHEMA_ERROR",
			"primary_email_auth_enabled cannot be true without primary_email",
			map[string]any{"message": "primary_email_auth_enabled requires primary_email"})
	}
	if in.DisplayName != nil && *in.DisplayName == "" {
		in.DisplayName = nil
	}
	if in.DisplayName != nil {
		if err := CheckDisplayName("display_name", *in.DisplayName, MaxDisplayName); err != nil {
			return err
		}
	}
	err := checkProfile(in.ProfileImageURL, in.ClientMetadata, in.ClientReadOnlyMetadata,
		in.ServerMetadata)
	if err != nil {
		return err
	}
	if in.Password != nil && in.PasswordHash != nil {
		return errs.KnownError(errs.Invalid, "SCHEMA_ERROR",
			"password and password_hash cannot both be set",
			map[string]any{"message": "password and password_hash cannot both be set"})
	}
	if in.Password != nil {
		if err := checkPassword(*in.Password); err != nil && (in.CheckPasswordLength ||
			errs.As(err).Known == "PASSWORD_TOO_LONG") {
			return err
		}
		h, err := s.HashPassword(*in.Password)
		if err != nil {
			return err
		}
		in.PasswordHash = &h
	}
	return nil
}

func emailExists(email string) error {
	return errs.KnownError(errs.Conflict, "USER_EMAIL_ALREADY_EXISTS",
		"A user with email \""+email+"\" already exists.",
		map[string]any{"email": email, "would_work_if_email_was_verified": false})
}

// CreateUser creates a user in a project, with its sync event.
func (s *Service) CreateUser(ctx context.Context, projectID string, in CreateUserInput) (
	User, error) {
	if err := s.normaliseInput(&in); err != nil {
		return User{}, err
	}
	now := s.now().UTC().Truncate(time.Microsecond)
	var u User
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var err error
		u, err = scanUser(tx.QueryRow(ctx, `INSERT INTO auth_users (id, auth_project_id,
				primary_email, primary_email_verified, primary_email_auth_enabled, display_name,
				profile_image_url, password_hash, client_metadata, client_read_only_metadata,
				server_metadata, signed_up_at, last_active_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12)
			RETURNING `+UserColumns,
			uuid.New(), projectID, in.Email, in.EmailVerified, in.EmailAuthEnabled,
			in.DisplayName, in.ProfileImageURL, in.PasswordHash, jsonArg(in.ClientMetadata),
			jsonArg(in.ClientReadOnlyMetadata), jsonArg(in.ServerMetadata), now))
		if store.IsUniqueViolation(err, "auth_users_email_unique") {
			return emailExists(*in.Email)
		}
		if err != nil {
			return fmt.Errorf("insert user: %w", err)
		}
		return writeEvent(ctx, tx, u)
	})
	if err != nil {
		return User{}, err
	}
	s.changed()
	return u, nil
}

func jsonArg(m json.RawMessage) any {
	if len(m) == 0 || string(m) == "null" {
		return nil
	}
	return string(m)
}

func (s *Service) changed() {
	if s.Changed != nil {
		s.Changed()
	}
}

func (s *Service) inTx(ctx context.Context, fn func(pgx.Tx) error) error {
	return store.InTx(ctx, s.DB, fn)
}

// writeEvent records the user's new state in the outbox, when the project is synced to a
// database (it has an integration).
func writeEvent(ctx context.Context, tx pgx.Tx, u User) error {
	raw, err := json.Marshal(u.Server())
	if err != nil {
		return fmt.Errorf("encode user: %w", err)
	}
	_, err = tx.Exec(ctx, `INSERT INTO sync_events (auth_project_id, user_id, version, raw_json,
			changed_at, deleted_at)
		SELECT $1, $2, $3, $4, $5, $6
		WHERE EXISTS (SELECT 1 FROM integrations WHERE auth_project_id = $1)`,
		u.ProjectID, u.ID, u.Version, raw, u.UpdatedAt, u.DeletedAt)
	if err != nil {
		return fmt.Errorf("write sync event: %w", err)
	}
	return nil
}

func userNotFound() error {
	return errs.KnownError(errs.NotFound, "USER_NOT_FOUND", "User not found.", nil)
}

// GetUser returns a live user of a project.
func (s *Service) GetUser(ctx context.Context, projectID string, id uuid.UUID) (User, error) {
	u, err := scanUser(s.DB.QueryRow(ctx, `SELECT `+UserColumns+` FROM auth_users
		WHERE auth_project_id = $1 AND id = $2 AND deleted_at IS NULL`, projectID, id))
	if isNoRows(err) {
		return User{}, userNotFound()
	}
	if err != nil {
		return User{}, fmt.Errorf("get user: %w", err)
	}
	return u, nil
}

// ListOptions select and order a page of users.
type ListOptions struct {
	// Limit is the most users returned; 0 means all.
	Limit int
	// Cursor is the id of the first user of the page, a next cursor of an earlier page.
	Cursor *uuid.UUID
	// Desc orders the newest sign-up first.
	Desc bool
	// Query, when not empty, keeps the users whose id equals it or whose display name or
	// primary email contains it, ignoring letter case.
	Query string
}

// likeEscaper makes a text match itself literally in a LIKE pattern.
var likeEscaper = strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)

// ListUsers returns a page of live users ordered by sign-up time and id, and the id of the
// first user of the next page (nil on the last page).
func (s *Service) ListUsers(ctx context.Context, projectID string, o ListOptions) (
	[]User, *uuid.UUID, error) {
	order, cmp := "ASC", ">="
	if o.Desc {
		order, cmp = "DESC", "<="
	}
	q := `SELECT ` + UserColumns + ` FROM auth_users u WHERE auth_project_id = $1
		AND deleted_at IS NULL
		AND ($2::uuid IS NULL OR (signed_up_at, id) ` + cmp + `
			(SELECT c.signed_up_at, c.id FROM auth_users c
			WHERE c.auth_project_id = $1 AND c.id = $2))
		AND ($4 = '' OR id::text = lower($4) OR display_name ILIKE $5 OR primary_email ILIKE $5)
		ORDER BY signed_up_at ` + order + `, id ` + order + ` LIMIT $3`
	n := o.Limit + 1
	if o.Limit <= 0 {
		n = 1 << 30
	}
	pattern := "%" + likeEscaper.Replace(o.Query) + "%"
	rows, err := s.DB.Query(ctx, q, projectID, o.Cursor, n, o.Query, pattern)
	if err != nil {
		return nil, nil, fmt.Errorf("list users: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (User, error) {
		return scanUser(r)
	})
	if err != nil {
		return nil, nil, fmt.Errorf("list users: %w", err)
	}
	if o.Limit > 0 && len(out) > o.Limit {
		next := out[o.Limit].ID
		return out[:o.Limit], &next, nil
	}
	return out, nil, nil
}

// UpdateUserInput changes a user. Nil fields stay as they are; a Set flag with a nil value
// clears the field.
type UpdateUserInput struct {
	DisplayName            *string
	SetDisplayName         bool
	Email                  *string
	SetEmail               bool
	EmailVerified          *bool
	EmailAuthEnabled       *bool
	ProfileImageURL        *string
	SetProfileImageURL     bool
	Password               *string
	PasswordHash           *string
	ClientMetadata         json.RawMessage
	SetClientMetadata      bool
	ClientReadOnlyMetadata json.RawMessage
	SetClientReadOnly      bool
	ServerMetadata         json.RawMessage
	SetServerMetadata      bool
}

// UpdateUser applies a change to a live user, bumps its version, sets updated_at, and writes
// the sync event. A password change signs the user out everywhere.
func (s *Service) UpdateUser(ctx context.Context, projectID string, id uuid.UUID,
	in UpdateUserInput) (User, error) {
	if err := s.normaliseUpdate(&in); err != nil {
		return User{}, err
	}
	var u User
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		cur, err := scanUser(tx.QueryRow(ctx, `SELECT `+UserColumns+` FROM auth_users
			WHERE auth_project_id = $1 AND id = $2 AND deleted_at IS NULL FOR UPDATE`,
			projectID, id))
		if isNoRows(err) {
			return userNotFound()
		}
		if err != nil {
			return fmt.Errorf("lock user: %w", err)
		}
		in.apply(&cur)
		u, err = s.saveUser(ctx, tx, cur)
		if store.IsUniqueViolation(err, "auth_users_email_unique") {
			return emailExists(*cur.PrimaryEmail)
		}
		if err != nil {
			return err
		}
		if in.PasswordHash != nil {
			_, err = tx.Exec(ctx, "DELETE FROM sessions WHERE user_id = $1", id)
		}
		return err
	})
	if err != nil {
		return User{}, err
	}
	s.changed()
	return u, nil
}

func (s *Service) normaliseUpdate(in *UpdateUserInput) error {
	if in.SetDisplayName && in.DisplayName != nil && *in.DisplayName == "" {
		in.DisplayName = nil
	}
	if in.DisplayName != nil {
		if err := CheckDisplayName("display_name", *in.DisplayName, MaxDisplayName); err != nil {
			return err
		}
	}
	err := checkProfile(in.ProfileImageURL, in.ClientMetadata, in.ClientReadOnlyMetadata,
		in.ServerMetadata)
	if err != nil {
		return err
	}
	if in.SetEmail && in.Email != nil {
		e, err := NormaliseEmail("primary_email", *in.Email)
		if err != nil {
			return err
		}
		in.Email = &e
	}
	if in.Password != nil {
		if err := checkPassword(*in.Password); err != nil {
			return err
		}
		h, err := s.HashPassword(*in.Password)
		if err != nil {
			return err
		}
		in.PasswordHash = &h
	}
	return nil
}

func (in UpdateUserInput) apply(u *User) {
	if in.SetDisplayName {
		u.DisplayName = in.DisplayName
	}
	if in.SetEmail {
		if in.Email == nil || u.PrimaryEmail == nil || *u.PrimaryEmail != *in.Email {
			u.PrimaryEmailVerified = false
		}
		u.PrimaryEmail = in.Email
	}
	if in.EmailVerified != nil {
		u.PrimaryEmailVerified = *in.EmailVerified
	}
	if in.EmailAuthEnabled != nil {
		u.PrimaryEmailAuthEnabled = *in.EmailAuthEnabled
	}
	if in.SetProfileImageURL {
		u.ProfileImageURL = in.ProfileImageURL
	}
	if in.PasswordHash != nil {
		u.PasswordHash = in.PasswordHash
	}
	if in.SetClientMetadata {
		u.ClientMetadata = in.ClientMetadata
	}
	if in.SetClientReadOnly {
		u.ClientReadOnlyMetadata = in.ClientReadOnlyMetadata
	}
	if in.SetServerMetadata {
		u.ServerMetadata = in.ServerMetadata
	}
}

// saveUser writes a changed user: version+1 and an updated_at strictly after the previous
// one, so that the sync can order changes by it.
func (s *Service) saveUser(ctx context.Context, tx pgx.Tx, u User) (User, error) {
	out, err := scanUser(tx.QueryRow(ctx, `UPDATE auth_users SET primary_email = $3,
			primary_email_verified = $4, primary_email_auth_enabled = $5, display_name = $6,
			profile_image_url = $7, password_hash = $8, client_metadata = $9,
			client_read_only_metadata = $10, server_metadata = $11, deleted_at = $12,
			version = version + 1,
			updated_at = GREATEST(clock_timestamp(),
				COALESCE(updated_at, signed_up_at) + interval '1 microsecond')
		WHERE auth_project_id = $1 AND id = $2 RETURNING `+UserColumns,
		u.ProjectID, u.ID, u.PrimaryEmail, u.PrimaryEmailVerified, u.PrimaryEmailAuthEnabled,
		u.DisplayName, u.ProfileImageURL, u.PasswordHash, jsonArg(u.ClientMetadata),
		jsonArg(u.ClientReadOnlyMetadata), jsonArg(u.ServerMetadata), u.DeletedAt))
	if err != nil {
		return User{}, fmt.Errorf("update user: %w", err)
	}
	return out, writeEvent(ctx, tx, out)
}

// DeleteUser deletes a user: its sessions end, its email is free again, and its row in
// users_sync is soft-deleted (deleted_at set, row kept). A deleted user never comes back.
func (s *Service) DeleteUser(ctx context.Context, projectID string, id uuid.UUID) error {
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		cur, err := scanUser(tx.QueryRow(ctx, `SELECT `+UserColumns+` FROM auth_users
			WHERE auth_project_id = $1 AND id = $2 AND deleted_at IS NULL FOR UPDATE`,
			projectID, id))
		if isNoRows(err) {
			return userNotFound()
		}
		if err != nil {
			return fmt.Errorf("lock user: %w", err)
		}
		now := s.now().UTC()
		cur.DeletedAt = &now
		if _, err := s.saveUser(ctx, tx, cur); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, "DELETE FROM sessions WHERE user_id = $1", id)
		return err
	})
	if err != nil {
		return err
	}
	s.changed()
	return nil
}
