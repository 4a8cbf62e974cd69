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
	rows, err := s.DB.Query(ctx, `SELECT kid, private_der, superseded_at IS NULL
		FROM signing_keys WHERE auth_project_id = $1
		AND (retire_after IS NULL OR retire_after > now())
		ORDER BY created_at DESC`, projectID)
	if err != nil {
		return projectKeys{}, fmt.Errorf("load signing keys: %w", err)
	}
	defer rows.Close()
	pk := projectKeys{loaded: time.Now()}
	for rows.Next() {
		var kid string
		var der []byte
		var current bool
		if err := rows.Scan(&kid, &der, &current); err != nil {
			return projectKeys{}, fmt.Errorf("scan signing key: %w", err)
		}
		k, err := jwt.ParseSigningKey(kid, der)
		if err != nil {
			return projectKeys{}, fmt.Errorf("parse signing key %s: %w", kid, err)
		}
		if current && pk.signing == nil {
			pk.signing = k
		}
		pk.public = append(pk.public, k.Public())
	}
	if err := rows.Err(); err != nil {
		return projectKeys{}, fmt.Errorf("load signing keys: %w", err)
	}
	if pk.signing == nil {
		return projectKeys{}, errs.E(errs.NotFound, "auth project not found")
	}
	return pk, nil
}

// JWKS returns the public keys a project publishes: its current key and, during the overlap
// after a rotation, the keys it replaced.
func (s *Service) JWKS(ctx context.Context, projectID string) (jwt.JWKS, error) {
	pk, err := s.keys(ctx, projectID)
	if err != nil {
		return jwt.JWKS{}, err
	}
	out := jwt.JWKS{Keys: make([]jwt.JWK, 0, len(pk.public))}
	for _, p := range pk.public {
		out.Keys = append(out.Keys, p.JWK())
	}
	return out, nil
}

// RotateSigningKey makes a new signing key current. The replaced key stays published, and
// tokens signed with it keep verifying, for RotationOverlap.
func (s *Service) RotateSigningKey(ctx context.Context, projectID string) (string, error) {
	if _, err := s.GetProject(ctx, projectID); err != nil {
		return "", err
	}
	overlap := s.RotationOverlap
	if overlap <= s.AccessTTL {
		overlap = 2 * s.AccessTTL
	}
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `UPDATE signing_keys SET superseded_at = now(),
			retire_after = now() + $2::interval
			WHERE auth_project_id = $1 AND superseded_at IS NULL`, projectID, overlap)
		if err != nil {
			return fmt.Errorf("supersede signing key: %w", err)
		}
		return insertSigningKey(ctx, tx, projectID)
	})
	if err != nil {
		return "", err
	}
	s.forget(projectID)
	pk, err := s.keys(ctx, projectID)
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

// VerifyAccessToken checks an access token of a project and returns its claims.
func (s *Service) VerifyAccessToken(ctx context.Context, projectID, token string) (*jwt.Claims, error) {
	pk, err := s.keys(ctx, projectID)
	if err != nil {
		return nil, err
	}
	v := jwt.Verifier{
		Keys: func(kid string) (jwt.PublicKey, bool) {
			for _, p := range pk.public {
				if p.KID == kid {
					return p, true
				}
			}
			return jwt.PublicKey{}, false
		},
		Audience: projectID, Issuer: s.Issuer(projectID), Skew: s.ClockSkew, Now: s.Now,
	}
	c, err := v.Verify(token)
	switch {
	case err == nil:
		return c, nil
	case errors.Is(err, jwt.ErrExpired):
		details := map[string]any{"project_id": projectID}
		if c != nil {
			details["expired_at_millis"] = c.Expiry * 1000
			details["user_id"] = c.Subject
			details["refresh_token_id"] = c.RefreshTokenID
		}
		return nil, errs.KnownError(errs.Unauthenticated, "ACCESS_TOKEN_EXPIRED",
			"Access token has expired. Please refresh it and try again.", details)
	case errors.Is(err, jwt.ErrAudience):
		actual := ""
		if u, uerr := jwt.Unverified(token); uerr == nil {
			actual = u.Audience
		}
		return nil, errs.KnownError(errs.Unauthenticated, "INVALID_PROJECT_FOR_ACCESS_TOKEN",
			"Access token not valid for this project.",
			map[string]any{"expected_project_id": projectID, "actual_project_id": actual})
	default:
		return nil, errs.KnownError(errs.Unauthenticated, "UNPARSABLE_ACCESS_TOKEN",
			"Access token is not parsable.", nil)
	}
}
