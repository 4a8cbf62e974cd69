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

// signingKeyContext binds a sealed private key to the column that holds it.
const signingKeyContext = "signing_keys.private_sealed"

// errNoBox is returned when a signing key must be sealed or opened and the service has no
// box.
var errNoBox = errors.New("identity: no master key to seal signing keys with")

// openSigningKey opens the sealed PKCS#8 DER of a signing key.
func (s *Service) openSigningKey(kid, sealed string) ([]byte, error) {
	der, err := s.Box.Open(sealed, signingKeyContext)
	if err != nil {
		return nil, fmt.Errorf("open signing key %s: %w", kid, err)
	}
	return der, nil
}

// storedSigningKey is a signing key's private half as stored, in either form.
type storedSigningKey struct {
	kid    string
	plain  []byte
	sealed *string
}

// storedSigningKeys reads the private half of every signing key, in either form.
func (s *Service) storedSigningKeys(ctx context.Context) ([]storedSigningKey, error) {
	rows, err := s.DB.Query(ctx, `SELECT kid, private_der, private_sealed FROM signing_keys`)
	if err != nil {
		return nil, fmt.Errorf("read signing keys: %w", err)
	}
	defer rows.Close()
	var out []storedSigningKey
	for rows.Next() {
		var k storedSigningKey
		if err := rows.Scan(&k.kid, &k.plain, &k.sealed); err != nil {
			return nil, fmt.Errorf("read signing keys: %w", err)
		}
		out = append(out, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read signing keys: %w", err)
	}
	return out, nil
}

// SealSigningKeys seals the private keys still stored in plaintext (a data directory made
// before they were sealed), and seals again, with the current master key, those sealed with
// an older key. It returns how many it wrote. It can run again at any time, and alongside
// the service: a row is only updated while it still holds what was read. A key that does
// not open (its master key is missing) is an error.
func (s *Service) SealSigningKeys(ctx context.Context) (int, error) {
	if s.Box == nil {
		return 0, errNoBox
	}
	stored, err := s.storedSigningKeys(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, k := range stored {
		der := k.plain
		if k.sealed != nil {
			if k.plain == nil && s.Box.Current(*k.sealed) {
				continue
			}
			if der, err = s.openSigningKey(k.kid, *k.sealed); err != nil {
				return n, err
			}
		}
		tag, err := s.DB.Exec(ctx, `UPDATE signing_keys SET private_der = NULL,
			private_sealed = $2 WHERE kid = $1 AND private_der IS NOT DISTINCT FROM $3
			AND private_sealed IS NOT DISTINCT FROM $4`,
			k.kid, s.Box.Seal(der, signingKeyContext), k.plain, k.sealed)
		if err != nil {
			return n, fmt.Errorf("seal signing key %s: %w", k.kid, err)
		}
		n += int(tag.RowsAffected())
	}
	return n, nil
}

// StaleSigningKeys counts the private keys not sealed with the current master key.
func (s *Service) StaleSigningKeys(ctx context.Context) (int, error) {
	if s.Box == nil {
		return 0, errNoBox
	}
	stored, err := s.storedSigningKeys(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, k := range stored {
		if k.plain != nil || k.sealed == nil || !s.Box.Current(*k.sealed) {
			n++
		}
	}
	return n, nil
}

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
	if s.Box == nil {
		return projectKeys{}, errNoBox
	}
	rows, err := s.DB.Query(ctx, `SELECT kid, private_sealed, superseded_at IS NULL,
		retire_after FROM signing_keys WHERE auth_project_id = $1
		AND (retire_after IS NULL OR retire_after > $2)
		ORDER BY created_at DESC`, projectID, s.now())
	if err != nil {
		return projectKeys{}, fmt.Errorf("load signing keys: %w", err)
	}
	defer rows.Close()
	pk := projectKeys{loaded: time.Now()}
	for rows.Next() {
		var kid string
		var sealed *string
		var current bool
		var retire *time.Time
		if err := rows.Scan(&kid, &sealed, &current, &retire); err != nil {
			return projectKeys{}, fmt.Errorf("scan signing key: %w", err)
		}
		if sealed == nil {
			return projectKeys{}, fmt.Errorf("signing key %s: private key not sealed", kid)
		}
		der, err := s.openSigningKey(kid, *sealed)
		if err != nil {
			return projectKeys{}, err
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
		return s.insertSigningKey(ctx, tx, projectID)
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
