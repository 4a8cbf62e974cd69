package console

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/neonauth/neonauth/internal/errs"
	"github.com/neonauth/neonauth/internal/secret"
)

// maxKeyName is Neon's limit on an API key's name.
const maxKeyName = 64

// Bootstrap creates the first account and its admin API key when the metadata database has no
// account yet, and writes the key to keyFile with mode 0600. It reports whether it did.
func (s *Service) Bootstrap(ctx context.Context, keyFile string) (bool, error) {
	var n int
	if err := s.DB.QueryRow(ctx, "SELECT count(*) FROM accounts").Scan(&n); err != nil {
		return false, fmt.Errorf("count accounts: %w", err)
	}
	if n > 0 {
		return false, nil
	}
	_, key, err := s.CreateAccount(ctx, "default")
	if err != nil {
		return false, err
	}
	if err := WriteKeyFile(keyFile, key); err != nil {
		return false, err
	}
	return true, nil
}

// WriteKeyFile writes an API key to path with mode 0600.
func WriteKeyFile(path, key string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("create key file directory: %w", err)
	}
	if err := os.WriteFile(path, []byte(key+"\n"), 0o600); err != nil {
		return fmt.Errorf("write key file: %w", err)
	}
	return os.Chmod(path, 0o600)
}

// CreateAccount creates an account with a first admin API key and returns the key.
func (s *Service) CreateAccount(ctx context.Context, name string) (Account, string, error) {
	name = strings.TrimSpace(name)
	if name == "" {
		return Account{}, "", errs.E(errs.Invalid, "name: must not be empty")
	}
	acc := Account{ID: uuid.New(), Name: name}
	tx, err := s.DB.Begin(ctx)
	if err != nil {
		return Account{}, "", fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(ctx)
	err = tx.QueryRow(ctx,
		"INSERT INTO accounts (id, name) VALUES ($1, $2) RETURNING created_at",
		acc.ID, acc.Name).Scan(&acc.CreatedAt)
	if err != nil {
		return Account{}, "", fmt.Errorf("insert account: %w", err)
	}
	_, key, err := insertKey(ctx, tx, acc.ID, "admin", "")
	if err != nil {
		return Account{}, "", err
	}
	if err := tx.Commit(ctx); err != nil {
		return Account{}, "", fmt.Errorf("commit account: %w", err)
	}
	return acc, key, nil
}

func insertKey(
	ctx context.Context, tx pgx.Tx, account uuid.UUID, name, project string,
) (APIKey, string, error) {
	key := secret.APIKey()
	k := APIKey{AccountID: account, Name: name, ProjectID: project}
	err := tx.QueryRow(ctx, `
		INSERT INTO api_keys (account_id, name, key_hash, project_id)
		VALUES ($1, $2, $3, NULLIF($4, ''))
		RETURNING id, created_at`,
		account, name, secret.Hash(key), project).Scan(&k.ID, &k.CreatedAt)
	if err != nil {
		return APIKey{}, "", fmt.Errorf("insert api key: %w", err)
	}
	return k, key, nil
}

// CreateAPIKey creates an API key for the principal's account. A non-empty projectID makes it
// a project-scoped key. A project-scoped principal can only create keys for its own project.
func (s *Service) CreateAPIKey(
	ctx context.Context, p Principal, name, projectID string,
) (APIKey, string, error) {
	if strings.TrimSpace(name) == "" {
		return APIKey{}, "", errs.E(errs.Invalid, "key_name: must not be empty")
	}
	if len([]rune(name)) > maxKeyName {
		return APIKey{}, "", errs.E(errs.Invalid, "key_name: must be at most %d characters", maxKeyName)
	}
	if p.ProjectID != "" {
		if projectID != "" && projectID != p.ProjectID {
			return APIKey{}, "", errs.E(errs.NotFound, "project not found")
		}
		projectID = p.ProjectID
	}
	if projectID != "" {
		if _, err := s.GetProject(ctx, p, projectID); err != nil {
			return APIKey{}, "", err
		}
	}
	tx, err := s.DB.Begin(ctx)
	if err != nil {
		return APIKey{}, "", fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(ctx)
	k, key, err := insertKey(ctx, tx, p.AccountID, name, projectID)
	if err != nil {
		return APIKey{}, "", err
	}
	if err := tx.Commit(ctx); err != nil {
		return APIKey{}, "", fmt.Errorf("commit api key: %w", err)
	}
	return k, key, nil
}

// CreateAPIKeyOffline creates a key for the first account, for the CLI working on the data dir.
func (s *Service) CreateAPIKeyOffline(ctx context.Context, name string) (APIKey, string, error) {
	var id uuid.UUID
	err := s.DB.QueryRow(ctx, "SELECT id FROM accounts ORDER BY created_at LIMIT 1").Scan(&id)
	if err != nil {
		return APIKey{}, "", fmt.Errorf("find first account: %w", err)
	}
	return s.CreateAPIKey(ctx, Principal{AccountID: id}, name, "")
}

const keyColumns = `id, account_id, name, COALESCE(project_id, ''), created_at, last_used_at,
	last_used_from_addr, revoked_at`

func scanKey(row pgx.Row) (APIKey, error) {
	var k APIKey
	err := row.Scan(&k.ID, &k.AccountID, &k.Name, &k.ProjectID, &k.CreatedAt, &k.LastUsedAt,
		&k.LastUsedFromAddr, &k.RevokedAt)
	return k, err
}

// ListAPIKeys lists the account's keys that are not revoked.
func (s *Service) ListAPIKeys(ctx context.Context, p Principal) ([]APIKey, error) {
	rows, err := s.DB.Query(ctx, `SELECT `+keyColumns+` FROM api_keys
		WHERE account_id = $1 AND revoked_at IS NULL
		AND ($2 = '' OR project_id = $2) ORDER BY id`, p.AccountID, p.ProjectID)
	if err != nil {
		return nil, fmt.Errorf("list api keys: %w", err)
	}
	defer rows.Close()
	var out []APIKey
	for rows.Next() {
		k, err := scanKey(rows)
		if err != nil {
			return nil, fmt.Errorf("scan api key: %w", err)
		}
		out = append(out, k)
	}
	return out, rows.Err()
}

// RevokeAPIKey revokes one of the account's keys.
func (s *Service) RevokeAPIKey(ctx context.Context, p Principal, id int64) (APIKey, error) {
	k, err := scanKey(s.DB.QueryRow(ctx, `UPDATE api_keys SET revoked_at = now()
		WHERE id = $1 AND account_id = $2 AND revoked_at IS NULL
		AND ($3 = '' OR project_id = $3)
		RETURNING `+keyColumns, id, p.AccountID, p.ProjectID))
	if isNoRows(err) {
		return APIKey{}, errs.E(errs.NotFound, "API key not found")
	}
	if err != nil {
		return APIKey{}, fmt.Errorf("revoke api key: %w", err)
	}
	return k, nil
}

// Authenticate resolves a bearer API key to its principal and records its use.
func (s *Service) Authenticate(ctx context.Context, key, addr string) (Principal, error) {
	if !strings.HasPrefix(key, "napi_") {
		return Principal{}, errs.E(errs.Unauthenticated, "authorization failed: invalid API key")
	}
	var p Principal
	var project *string
	var lastUsed *time.Time
	var lastAddr string
	err := s.DB.QueryRow(ctx, `SELECT id, account_id, project_id, last_used_at,
			last_used_from_addr
		FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL`, secret.Hash(key)).
		Scan(&p.KeyID, &p.AccountID, &project, &lastUsed, &lastAddr)
	if isNoRows(err) {
		return Principal{}, errs.E(errs.Unauthenticated, "authorization failed: invalid API key")
	}
	if err != nil {
		return Principal{}, fmt.Errorf("look up api key: %w", err)
	}
	if project != nil {
		p.ProjectID = *project
	}
	if lastUsed == nil || time.Since(*lastUsed) > keyUseResolution || lastAddr != addr {
		s.recordUse(ctx, p.KeyID, addr)
	}
	return p, nil
}

// keyUseResolution is how stale a key's last_used_at may get: writing it on every request
// would make every request of one key queue on the same row.
const keyUseResolution = time.Minute

func (s *Service) recordUse(ctx context.Context, id int64, addr string) {
	_, err := s.DB.Exec(ctx, `UPDATE api_keys SET last_used_at = now(), last_used_from_addr = $2
		WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute'
			OR last_used_from_addr <> $2)`, id, addr)
	if err != nil {
		s.Log.Warn("record api key use", "api_key_id", id, "err", err)
	}
}

// Account returns the principal's account.
func (s *Service) Account(ctx context.Context, p Principal) (Account, error) {
	var a Account
	err := s.DB.QueryRow(ctx, "SELECT id, name, email, created_at FROM accounts WHERE id = $1",
		p.AccountID).Scan(&a.ID, &a.Name, &a.Email, &a.CreatedAt)
	if err != nil {
		return Account{}, fmt.Errorf("get account: %w", err)
	}
	return a, nil
}
