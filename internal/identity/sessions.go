package identity

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"golang.org/x/crypto/bcrypt"

	"github.com/neonauth/neonauth/internal/errs"
	"github.com/neonauth/neonauth/internal/secret"
)

// Tokens are what a sign-in hands out.
type Tokens struct {
	AccessToken  string
	RefreshToken string
	UserID       uuid.UUID
	SessionID    uuid.UUID
}

// dummyHash is compared against when no user matches, so that an unknown email costs as much
// as a wrong password.
// It is made at the configured cost, once.
func (s *Service) dummyHash() []byte {
	s.dummyOnce.Do(func() {
		cost := s.BcryptCost
		if cost < bcrypt.MinCost {
			cost = bcrypt.DefaultCost
		}
		s.dummy, _ = bcrypt.GenerateFromPassword([]byte("neonauth-no-such-user"), cost)
	})
	return s.dummy
}

func mismatch() error {
	return errs.KnownError(errs.Invalid, "EMAIL_PASSWORD_MISMATCH", "Wrong e-mail or password.",
		nil)
}

// SignUp creates a password user and signs it in. The address is checked before the
// password, as in Stack Auth (its schema runs before the password rules).
func (s *Service) SignUp(ctx context.Context, projectID, email, password string) (Tokens, error) {
	if _, err := NormaliseEmail("email", email); err != nil {
		return Tokens{}, err
	}
	if err := checkPassword(password); err != nil {
		return Tokens{}, err
	}
	u, err := s.CreateUser(ctx, projectID, CreateUserInput{
		Email: &email, EmailAuthEnabled: true, Password: &password, CheckPasswordLength: true,
	})
	if err != nil {
		return Tokens{}, err
	}
	return s.StartSession(ctx, u, 0)
}

// SignIn checks an email and password and starts a session. A wrong password and an unknown
// email give the same error, after the same amount of work.
func (s *Service) SignIn(ctx context.Context, projectID, email, password string) (Tokens, error) {
	e, err := NormaliseEmail("email", email)
	if err != nil {
		return Tokens{}, err
	}
	u, err := scanUser(s.DB.QueryRow(ctx, `SELECT `+UserColumns+` FROM auth_users
		WHERE auth_project_id = $1 AND primary_email = $2 AND deleted_at IS NULL
		AND primary_email_auth_enabled`, projectID, e))
	if err != nil && !isNoRows(err) {
		return Tokens{}, fmt.Errorf("find user: %w", err)
	}
	hash := s.dummyHash()
	if err == nil && u.PasswordHash != nil {
		hash = []byte(*u.PasswordHash)
	}
	release := s.hashSlot()
	cmpErr := bcrypt.CompareHashAndPassword(hash, passwordBytes(password))
	release()
	if err != nil || u.PasswordHash == nil || cmpErr != nil {
		return Tokens{}, mismatch()
	}
	if err := s.touch(ctx, &u); err != nil {
		return Tokens{}, err
	}
	return s.StartSession(ctx, u, 0)
}

// touch records activity: it moves the user's last_active_at to now. Activity alone is not
// a change of the user: it bumps no version and writes no sync event.
func (s *Service) touch(ctx context.Context, u *User) error {
	err := s.DB.QueryRow(ctx, `UPDATE auth_users SET last_active_at = GREATEST(last_active_at, $3)
		WHERE auth_project_id = $1 AND id = $2 AND deleted_at IS NULL RETURNING last_active_at`,
		u.ProjectID, u.ID, s.now()).Scan(&u.LastActiveAt)
	if isNoRows(err) {
		return mismatch() // deleted while its password was being checked
	}
	if err != nil {
		return fmt.Errorf("record user activity: %w", err)
	}
	return nil
}

// StartSession creates a session (a refresh token, stored only as a hash) and its first
// access token. ttl is the session's lifetime; 0 means RefreshTTL.
func (s *Service) StartSession(ctx context.Context, u User, ttl time.Duration) (Tokens, error) {
	t := Tokens{RefreshToken: secret.RefreshToken(), UserID: u.ID, SessionID: uuid.New()}
	if ttl <= 0 {
		ttl = s.RefreshTTL
	}
	expires := s.now().Add(ttl)
	// created_at and last_used_at take the database clock; expires_at the service clock.
	_, err := s.DB.Exec(ctx, `INSERT INTO sessions (id, auth_project_id, user_id, token_hash,
		expires_at) VALUES ($1, $2, $3, $4, $5)`,
		t.SessionID, u.ProjectID, u.ID, secret.Hash(t.RefreshToken), expires)
	if err != nil {
		return Tokens{}, fmt.Errorf("insert session: %w", err)
	}
	if t.AccessToken, err = s.issueToken(ctx, u, t.SessionID); err != nil {
		return Tokens{}, err
	}
	return t, nil
}

func refreshInvalid() error {
	return errs.KnownError(errs.Unauthenticated, "REFRESH_TOKEN_NOT_FOUND_OR_EXPIRED",
		"Refresh token not found for this project, or the session has expired/been revoked.", nil)
}

// refreshQuery marks a live session and its live user as active, in one statement, and
// returns the session id and the user.
var refreshQuery = `WITH s AS (UPDATE sessions SET last_used_at = $3
		WHERE auth_project_id = $1 AND token_hash = $2 AND expires_at > $3
		RETURNING id, user_id)
	UPDATE auth_users u SET last_active_at = GREATEST(u.last_active_at, $3) FROM s
	WHERE u.id = s.user_id AND u.deleted_at IS NULL
	RETURNING s.id, ` + prefixed("u.")

// Refresh issues a new access token for a live refresh token and records the activity (the
// user's last_active_at). The refresh token is not rotated, as in Stack Auth.
func (s *Service) Refresh(ctx context.Context, projectID, refreshToken string) (Tokens, error) {
	var sid uuid.UUID
	var u User
	err := s.DB.QueryRow(ctx, refreshQuery, projectID, secret.Hash(refreshToken), s.now()).
		Scan(append([]any{&sid}, u.fields()...)...)
	if isNoRows(err) {
		return Tokens{}, refreshInvalid()
	}
	if err != nil {
		return Tokens{}, fmt.Errorf("refresh session: %w", err)
	}
	tok, err := s.issueToken(ctx, u, sid)
	if err != nil {
		return Tokens{}, err
	}
	return Tokens{AccessToken: tok, RefreshToken: refreshToken, UserID: u.ID, SessionID: sid},
		nil
}

// SignOut ends a session; its refresh token stops working at once.
func (s *Service) SignOut(ctx context.Context, projectID string, sessionID uuid.UUID) error {
	tag, err := s.DB.Exec(ctx, "DELETE FROM sessions WHERE auth_project_id = $1 AND id = $2",
		projectID, sessionID)
	if err != nil {
		return fmt.Errorf("delete session: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return refreshInvalid()
	}
	return nil
}

// SessionUser returns the live user of a live session, for cookie sessions of the web pages.
func (s *Service) SessionUser(ctx context.Context, projectID, refreshToken string) (User, error) {
	u, err := scanUser(s.DB.QueryRow(ctx, `SELECT `+prefixed("u.")+` FROM sessions s
		JOIN auth_users u ON u.id = s.user_id
		WHERE s.auth_project_id = $1 AND s.token_hash = $2 AND s.expires_at > now()
		AND u.deleted_at IS NULL`, projectID, secret.Hash(refreshToken)))
	if isNoRows(err) {
		return User{}, refreshInvalid()
	}
	if err != nil {
		return User{}, fmt.Errorf("find session user: %w", err)
	}
	return u, nil
}

// SignOutToken ends the session of a refresh token.
func (s *Service) SignOutToken(ctx context.Context, projectID, refreshToken string) error {
	_, err := s.DB.Exec(ctx, "DELETE FROM sessions WHERE auth_project_id = $1 AND token_hash = $2",
		projectID, secret.Hash(refreshToken))
	if err != nil {
		return fmt.Errorf("delete session: %w", err)
	}
	return nil
}
