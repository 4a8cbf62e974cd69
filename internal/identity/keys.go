package identity

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/neonauth/neonauth/internal/errs"
	"github.com/neonauth/neonauth/internal/identity/jwt"
)

// keyCacheTTL bounds how long another replica's rotation can go unseen.
const keyCacheTTL = 30 * time.Second

// reloadGap is the least time between two reloads forced by a token with an unknown kid, so
// that tokens with made-up kids cannot turn every request into a database read.
const reloadGap = time.Second

func (s *Service) hashSlot() func() {
	s.mu.Lock()
	if s.hashSlots == nil {
		s.hashSlots = make(chan struct{}, 2*runtime.NumCPU())
	}
	slots := s.hashSlots
	s.mu.Unlock()
	slots <- struct{}{}
	return func() { <-slots }
}

// keys returns a project's current signing key and published keys, cached briefly.
func (s *Service) keys(ctx context.Context, projectID string) (projectKeys, error) {
	s.mu.Lock()
	pk, ok := s.keyCache[projectID]
	s.mu.Unlock()
	if ok && time.Since(pk.loaded) < keyCacheTTL {
		return pk, nil
	}
	return s.reloadKeys(ctx, projectID)
}

// reloadKeys reads a project's keys from the database and caches them.
func (s *Service) reloadKeys(ctx context.Context, projectID string) (projectKeys, error) {
	pk, err := s.loadKeys(ctx, projectID)
	if err != nil {
		return projectKeys{}, err
	}
	s.mu.Lock()
	if s.keyCache == nil {
		s.keyCache = map[string]projectKeys{}
	}
	s.keyCache[projectID] = pk
	s.mu.Unlock()
	return pk, nil
}

func (s *Service) loadKeys(ctx context.Context, projectID string) (projectKeys, error) {
	rows, err := s.DB.Query(ctx, `SELECT kid, private_der, superseded_at IS NULL, retire_after
		FROM signing_keys WHERE auth_project_id = $1
		AND (retire_after IS NULL OR retire_after > $2)
		ORDER BY created_at DESC`, projectID, s.now())
	if err != nil {
		return projectKeys{}, fmt.Errorf("load signing keys: %w", err)
	}
	defer rows.Close()
	pk := projectKeys{loaded: time.Now()}
	for rows.Next() {
		var kid string
		var der []byte
		var current bool
		var retire *time.Time
		if err := rows.Scan(&kid, &der, &current, &retire); err != nil {
			return projectKeys{}, fmt.Errorf("scan signing key: %w", err)
		}
		k, err := jwt.ParseSigningKey(kid, der)
		if err != nil {
			return projectKeys{}, fmt.Errorf("parse signing key %s: %w", kid, err)
		}
		if current && pk.signing == nil {
			pk.signing = k
		}
		pk.public = append(pk.public, publishedKey{key: k.Public(), retireAfter: retire})
	}
	if err := rows.Err(); err != nil {
		return projectKeys{}, fmt.Errorf("load signing keys: %w", err)
	}
	if pk.signing == nil {
		return projectKeys{}, errs.E(errs.NotFound, "auth project not found")
	}
	return pk, nil
}

// live returns the published keys that have not reached their retirement at the service
// clock's now, so that a cached key set never outlives a key's overlap window.
func (s *Service) live(pk projectKeys) []jwt.PublicKey {
	now := s.now()
	out := make([]jwt.PublicKey, 0, len(pk.public))
	for _, p := range pk.public {
		if p.retireAfter == nil || p.retireAfter.After(now) {
			out = append(out, p.key)
		}
	}
	return out
}

// JWKS returns the public keys a project publishes: its current key and, during the overlap
// after a rotation, the keys it replaced.
func (s *Service) JWKS(ctx context.Context, projectID string) (jwt.JWKS, error) {
	pk, err := s.keys(ctx, projectID)
	if err != nil {
		return jwt.JWKS{}, err
	}
	live := s.live(pk)
	out := jwt.JWKS{Keys: make([]jwt.JWK, 0, len(live))}
	for _, p := range live {
		out.Keys = append(out.Keys, p.JWK())
	}
	return out, nil
}

// RotateSigningKey makes a new signing key current. The replaced key stays published, and
// tokens signed with it keep verifying, for RotationOverlap (at least twice AccessTTL, so
// that every token it signed expires first).
func (s *Service) RotateSigningKey(ctx context.Context, projectID string) (string, error) {
	if _, err := s.GetProject(ctx, projectID); err != nil {
		return "", err
	}
	overlap := s.RotationOverlap
	if overlap < 2*s.AccessTTL {
		overlap = 2 * s.AccessTTL
	}
	now := s.now()
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `UPDATE signing_keys SET superseded_at = $2, retire_after = $3
			WHERE auth_project_id = $1 AND superseded_at IS NULL`,
			projectID, now, now.Add(overlap))
		if err != nil {
			return fmt.Errorf("supersede signing key: %w", err)
		}
		return insertSigningKey(ctx, tx, projectID)
	})
	if err != nil {
		return "", err
	}
	pk, err := s.reloadKeys(ctx, projectID)
	if err != nil {
		return "", err
	}
	return pk.signing.KID, nil
}

// issueToken signs an access token for a user's session.
func (s *Service) issueToken(ctx context.Context, u User, sessionID uuid.UUID) (string, error) {
	pk, err := s.keys(ctx, u.ProjectID)
	if err != nil {
		return "", err
	}
	now := s.now()
	c := jwt.Claims{
		Issuer: s.Issuer(u.ProjectID), Subject: u.ID.String(), Audience: u.ProjectID,
		IssuedAt: now.Unix(), Expiry: now.Add(s.AccessTTL).Unix(), ProjectID: u.ProjectID,
		BranchID: "main", RefreshTokenID: sessionID.String(), Role: "authenticated",
		Name: u.DisplayName, Email: u.PrimaryEmail, EmailVerified: u.PrimaryEmailVerified,
		SignedUpAt: u.SignedUpAt.Unix(),
	}
	tok, err := jwt.Sign(pk.signing, c)
	if err != nil {
		return "", fmt.Errorf("sign access token: %w", err)
	}
	return tok, nil
}

// VerifyAccessToken checks an access token of a project and returns its claims. A token of
// another project, valid there, gives INVALID_PROJECT_FOR_ACCESS_TOKEN; an expired one
// ACCESS_TOKEN_EXPIRED; anything else that does not verify UNPARSABLE_ACCESS_TOKEN.
func (s *Service) VerifyAccessToken(ctx context.Context, projectID, token string) (
	*jwt.Claims, error) {
	if u, err := jwt.Unverified(token); err == nil && u.Audience != "" &&
		u.Audience != projectID {
		return nil, s.foreignToken(ctx, projectID, u.Audience, token)
	}
	c, err := s.verify(ctx, projectID, token)
	if err != nil {
		return nil, tokenError(projectID, c, err)
	}
	return c, nil
}

// verify checks a token against a project's live keys, reloading them once when the token
// names a kid they lack (a rotation made by another replica).
func (s *Service) verify(ctx context.Context, projectID, token string) (*jwt.Claims, error) {
	pk, err := s.keys(ctx, projectID)
	if err != nil {
		return nil, err
	}
	c, err := s.verifier(projectID, pk).Verify(token)
	if errors.Is(err, jwt.ErrUnknownKey) && time.Since(pk.loaded) > reloadGap {
		if pk, err = s.reloadKeys(ctx, projectID); err != nil {
			return nil, err
		}
		c, err = s.verifier(projectID, pk).Verify(token)
	}
	return c, err
}

func (s *Service) verifier(projectID string, pk projectKeys) jwt.Verifier {
	live := s.live(pk)
	return jwt.Verifier{
		Keys: func(kid string) (jwt.PublicKey, bool) {
			for _, p := range live {
				if p.KID == kid {
					return p, true
				}
			}
			return jwt.PublicKey{}, false
		},
		Audience: projectID, Issuer: s.Issuer(projectID), Skew: s.ClockSkew, Now: s.Now,
	}
}

// foreignToken classifies a token whose audience is another project: it is only reported as
// that project's token when it verifies there.
func (s *Service) foreignToken(ctx context.Context, projectID, other, token string) error {
	c, err := s.verify(ctx, other, token)
	if err == nil {
		return errs.KnownError(errs.Unauthenticated, "INVALID_PROJECT_FOR_ACCESS_TOKEN",
			"Access token not valid for this project.",
			map[string]any{"expected_project_id": projectID, "actual_project_id": other})
	}
	return tokenError(other, c, err)
}

func unparsable() error {
	return errs.KnownError(errs.Unauthenticated, "UNPARSABLE_ACCESS_TOKEN",
		"Access token is not parsable.", nil)
}

// tokenError maps a verification failure to its known error; a failure to load the keys
// (other than a project without keys) stays an internal error.
func tokenError(projectID string, c *jwt.Claims, err error) error {
	switch {
	case errors.Is(err, jwt.ErrExpired):
		details := map[string]any{"project_id": projectID}
		if c != nil {
			details["expired_at_millis"] = c.Expiry * 1000
			details["user_id"] = c.Subject
			details["refresh_token_id"] = c.RefreshTokenID
		}
		return errs.KnownError(errs.Unauthenticated, "ACCESS_TOKEN_EXPIRED",
			"Access token has expired. Please refresh it and try again.", details)
	case errs.Is(err, errs.NotFound) || isVerifyError(err):
		return unparsable()
	default:
		return err
	}
}

// isVerifyError reports whether err is one of the token checks of the jwt package (as
// opposed to a database failure while loading keys).
func isVerifyError(err error) bool {
	for _, e := range []error{jwt.ErrMalformed, jwt.ErrAlgorithm, jwt.ErrUnknownKey,
		jwt.ErrSignature, jwt.ErrAudience, jwt.ErrIssuer} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}
