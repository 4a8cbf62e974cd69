// Package identity is the auth provider's domain: auth projects with their keys and signing
// keys, users, passwords, sessions and refresh tokens, and access-token issue and verify.
// Every user change is written with its sync event in one transaction (the outbox that the
// usersync package drains into neon_auth.users_sync).
package identity

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/neonauth/neonauth/internal/errs"
	"github.com/neonauth/neonauth/internal/identity/jwt"
	"github.com/neonauth/neonauth/internal/sealbox"
	"github.com/neonauth/neonauth/internal/secret"
)

// InternalProject is the id of the auth project whose users are the owners of transferred
// projects (the accounts of the web pages), as Stack's "internal" project.
const InternalProject = "internal"

// Service is the provider domain.
type Service struct {
	DB  *pgxpool.Pool
	Log *slog.Logger
	// Box seals the signing keys' private halves in the metadata database; without it no
	// signing key can be made or read.
	Box *sealbox.Box
	// PublicURL is the service's base URL; issuers and JWKS URLs start with it.
	PublicURL string
	// BcryptCost is the cost of new password hashes.
	BcryptCost int
	// AccessTTL and RefreshTTL are the lifetimes of access and refresh tokens.
	AccessTTL  time.Duration
	RefreshTTL time.Duration
	// RotationOverlap is how long a replaced signing key stays published.
	RotationOverlap time.Duration
	// ClockSkew is the allowance when checking token expiry.
	ClockSkew time.Duration
	// Changed, when set, is called after a user change commits (it wakes the sync worker).
	Changed func()
	// Now is the clock; nil means time.Now.
	Now func() time.Time

	hashSlots chan struct{}
	dummyOnce sync.Once
	dummy     []byte
	mu        sync.Mutex
	keyCache  map[string]projectKeys
}

type projectKeys struct {
	loaded  time.Time
	signing *jwt.SigningKey
	public  []publishedKey
}

// publishedKey is a verification key and, for a replaced key, when it stops being
// published and accepted.
type publishedKey struct {
	key         jwt.PublicKey
	retireAfter *time.Time
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// Project is an auth project.
type Project struct {
	ID            string
	DisplayName   string
	OwnedBy       string
	OwnerUserID   *uuid.UUID
	TransferredAt *time.Time
	CreatedAt     time.Time
}

// Keys is a publishable client key and secret server key pair, shown once.
type Keys struct {
	PublishableClientKey string
	SecretServerKey      string
}

// Issuer returns the iss claim of a project's tokens.
func (s *Service) Issuer(projectID string) string {
	return s.PublicURL + "/api/v1/projects/" + projectID
}

// JWKSURL returns the URL of a project's published keys.
func (s *Service) JWKSURL(projectID string) string {
	return s.Issuer(projectID) + "/.well-known/jwks.json"
}

// CreateProjectTx creates an auth project with a first key pair and signing key inside tx.
func (s *Service) CreateProjectTx(ctx context.Context, tx pgx.Tx, displayName string) (
	Project, Keys, error) {
	p := Project{ID: uuid.NewString(), DisplayName: displayName, OwnedBy: "neon"}
	err := tx.QueryRow(ctx, `INSERT INTO auth_projects (id, display_name) VALUES ($1, $2)
		RETURNING created_at`, p.ID, displayName).Scan(&p.CreatedAt)
	if err != nil {
		return Project{}, Keys{}, fmt.Errorf("insert auth project: %w", err)
	}
	keys, err := s.CreateKeysTx(ctx, tx, p.ID)
	if err != nil {
		return Project{}, Keys{}, err
	}
	if err := s.insertSigningKey(ctx, tx, p.ID); err != nil {
		return Project{}, Keys{}, err
	}
	return p, keys, nil
}

// CreateKeysTx adds a new key pair to a project inside tx; earlier pairs keep working.
func (s *Service) CreateKeysTx(ctx context.Context, tx pgx.Tx, projectID string) (Keys, error) {
	k := Keys{PublishableClientKey: secret.PublishableKey(),
		SecretServerKey: secret.SecretServerKey()}
	_, err := tx.Exec(ctx, `INSERT INTO auth_keys (id, auth_project_id, pck_hash, ssk_hash)
		VALUES ($1, $2, $3, $4)`, uuid.New(), projectID,
		secret.Hash(k.PublishableClientKey), secret.Hash(k.SecretServerKey))
	if err != nil {
		return Keys{}, fmt.Errorf("insert auth keys: %w", err)
	}
	return k, nil
}

// insertSigningKey makes a new current signing key for a project inside tx. Its private half
// (PKCS#8 DER) is stored sealed under the master key.
func (s *Service) insertSigningKey(ctx context.Context, tx pgx.Tx, projectID string) error {
	if s.Box == nil {
		return errNoBox
	}
	k, err := jwt.NewSigningKey()
	if err != nil {
		return fmt.Errorf("generate signing key: %w", err)
	}
	der, err := k.MarshalPrivate()
	if err != nil {
		return fmt.Errorf("encode signing key: %w", err)
	}
	_, err = tx.Exec(ctx, `INSERT INTO signing_keys (kid, auth_project_id, private_sealed)
		VALUES ($1, $2, $3)`, k.KID, projectID, s.Box.Seal(der, signingKeyContext))
	if err != nil {
		return fmt.Errorf("insert signing key: %w", err)
	}
	return nil
}

// DeleteProjectTx removes an auth project and everything in it inside tx: its keys stop
// working, its JWKS disappears, its users and sessions go, and its pending sync events.
func (s *Service) DeleteProjectTx(ctx context.Context, tx pgx.Tx, projectID string) error {
	_, err := tx.Exec(ctx, "DELETE FROM sync_events WHERE auth_project_id = $1", projectID)
	if err != nil {
		return fmt.Errorf("delete sync events: %w", err)
	}
	_, err = tx.Exec(ctx, "DELETE FROM sync_state WHERE auth_project_id = $1", projectID)
	if err != nil {
		return fmt.Errorf("delete sync state: %w", err)
	}
	if _, err := tx.Exec(ctx, "DELETE FROM auth_projects WHERE id = $1", projectID); err != nil {
		return fmt.Errorf("delete auth project: %w", err)
	}
	s.forget(projectID)
	return nil
}

func (s *Service) forget(projectID string) {
	s.mu.Lock()
	delete(s.keyCache, projectID)
	s.mu.Unlock()
}

// GetProject returns an auth project.
func (s *Service) GetProject(ctx context.Context, id string) (Project, error) {
	var p Project
	err := s.DB.QueryRow(ctx, `SELECT id, display_name, owned_by, owner_user_id, transferred_at,
		created_at FROM auth_projects WHERE id = $1`, id).
		Scan(&p.ID, &p.DisplayName, &p.OwnedBy, &p.OwnerUserID, &p.TransferredAt, &p.CreatedAt)
	if isNoRows(err) {
		return Project{}, errs.KnownError(errs.Invalid, "CURRENT_PROJECT_NOT_FOUND",
			"The current project does not exist.", map[string]any{"project_id": id})
	}
	if err != nil {
		return Project{}, fmt.Errorf("get auth project: %w", err)
	}
	return p, nil
}

// EnsureInternalProject creates the internal project (the owners' project) when missing.
func (s *Service) EnsureInternalProject(ctx context.Context) error {
	tag, err := s.DB.Exec(ctx, `INSERT INTO auth_projects (id, display_name) VALUES ($1, $2)
		ON CONFLICT (id) DO NOTHING`, InternalProject, "neonauth owners")
	if err != nil {
		return fmt.Errorf("create internal project: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return nil
	}
	tx, err := s.DB.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(ctx)
	if err := s.insertSigningKey(ctx, tx, InternalProject); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// CheckPublishableKey reports whether key is a live publishable client key of the project.
func (s *Service) CheckPublishableKey(ctx context.Context, projectID, key string) (bool, error) {
	return s.checkKey(ctx, "pck_hash", projectID, key)
}

// CheckSecretServerKey reports whether key is a live secret server key of the project.
func (s *Service) CheckSecretServerKey(ctx context.Context, projectID, key string) (bool, error) {
	return s.checkKey(ctx, "ssk_hash", projectID, key)
}

func (s *Service) checkKey(ctx context.Context, column, projectID, key string) (bool, error) {
	if key == "" {
		return false, nil
	}
	var ok bool
	q := `SELECT EXISTS (SELECT 1 FROM auth_keys WHERE auth_project_id = $1 AND ` +
		column + ` = $2 AND revoked_at IS NULL)`
	if err := s.DB.QueryRow(ctx, q, projectID, secret.Hash(key)).Scan(&ok); err != nil {
		return false, fmt.Errorf("check key: %w", err)
	}
	return ok, nil
}
