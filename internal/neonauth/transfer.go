package neonauth

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/neonauth/neonauth/internal/console"
	"github.com/neonauth/neonauth/internal/errs"
	"github.com/neonauth/neonauth/internal/secret"
	"github.com/neonauth/neonauth/internal/store"
)

// maxCodeAttempts is how many times one transfer code may be checked or confirmed.
const maxCodeAttempts = 20

// TransferPath is the path of the confirm page; the code follows as ?code=.
const TransferPath = "/integrations/neon/projects/transfer/confirm"

// notTransferable is Stack's answer to a transfer of a project that is not Neon-managed.
func notTransferable() error {
	return errs.PlainError(errs.Invalid, "This project either doesn't exist or the current "+
		"Neon client is not authorized to transfer it. Note that projects can only be "+
		"transferred once.")
}

// Transfer starts an ownership transfer and returns the confirm URL. The code in it is
// single-use and valid for TransferTTL; several codes may be outstanding, the first
// confirmation wins. A project that already left Neon management cannot be transferred
// again.
func (s *Service) Transfer(ctx context.Context, p console.Principal, projectID,
	provider string) (string, error) {
	in, err := s.find(ctx, p, projectID, provider)
	if err != nil {
		return "", err
	}
	code := secret.Code()
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		return s.addCode(ctx, tx, in.AuthProjectID, code)
	})
	if err != nil {
		return "", err
	}
	return s.PublicURL + TransferPath + "?code=" + code, nil
}

// addCode stores a new code for a project that is still Neon-managed. The project row is
// locked so that a confirmation running at the same time cannot slip in between.
func (s *Service) addCode(ctx context.Context, tx pgx.Tx, projectID, code string) error {
	var owned string
	err := tx.QueryRow(ctx, "SELECT owned_by FROM auth_projects WHERE id = $1 FOR UPDATE",
		projectID).Scan(&owned)
	if isNoRows(err) || (err == nil && owned != "neon") {
		return notTransferable()
	}
	if err != nil {
		return fmt.Errorf("lock project: %w", err)
	}
	_, err = tx.Exec(ctx, `INSERT INTO transfer_codes (code_hash, auth_project_id, expires_at)
		VALUES ($1, $2, $3)`, hashCode(code), projectID, s.now().Add(s.TransferTTL))
	if err != nil {
		return fmt.Errorf("insert transfer code: %w", err)
	}
	_, err = tx.Exec(ctx, `UPDATE integrations SET transfer_status = 'initiated'
		WHERE auth_project_id = $1 AND transfer_status IS DISTINCT FROM 'finished'`,
		projectID)
	if err != nil {
		return fmt.Errorf("mark transfer: %w", err)
	}
	return nil
}

// hashCode is the stored form of a code. Codes are lowercase, and compared without regard
// to letter case or surrounding space.
func hashCode(code string) []byte {
	return secret.Hash(strings.ToLower(strings.TrimSpace(code)))
}

// TransferInfo is what the confirm page shows about a pending transfer.
type TransferInfo struct {
	AuthProjectID string
	DisplayName   string
	ProjectID     string
	ExpiresAt     time.Time
}

type codeRow struct {
	projectID string
	expires   time.Time
	used      *time.Time
	attempts  int
}

// Code errors, with Stack's known-error codes.
func codeNotFound() error {
	return errs.KnownError(errs.NotFound, "VERIFICATION_CODE_NOT_FOUND",
		"The verification code does not exist for this project.", nil)
}

func codeExpired() error {
	return errs.KnownError(errs.Invalid, "VERIFICATION_CODE_EXPIRED",
		"The verification code has expired.", nil)
}

func codeUsed() error {
	return errs.KnownError(errs.Conflict, "VERIFICATION_CODE_ALREADY_USED",
		"The verification link has already been used.", nil)
}

func codeExhausted() error {
	return errs.KnownError(errs.Invalid, "VERIFICATION_CODE_MAX_ATTEMPTS_REACHED",
		"The verification code has been tried too many times.", nil)
}

// useCode locks a code, counts an attempt, and checks that it can still be used.
func (s *Service) useCode(ctx context.Context, tx pgx.Tx, code string) (codeRow, error) {
	return s.readCode(ctx, tx, code, true)
}

// readCode finds a code and checks that it can still be used; count says whether this is
// an attempt that uses up one of the code's tries.
func (s *Service) readCode(ctx context.Context, tx pgx.Tx, code string,
	count bool) (codeRow, error) {
	h := hashCode(code)
	var c codeRow
	q := `SELECT auth_project_id, expires_at, used_at, attempts + 1 FROM transfer_codes
		WHERE code_hash = $1`
	if count {
		q = `UPDATE transfer_codes SET attempts = attempts + 1
			WHERE code_hash = $1 RETURNING auth_project_id, expires_at, used_at, attempts`
	}
	err := tx.QueryRow(ctx, q, h).Scan(&c.projectID, &c.expires, &c.used, &c.attempts)
	switch {
	case isNoRows(err):
		return c, codeNotFound()
	case err != nil:
		return c, fmt.Errorf("find transfer code: %w", err)
	case c.used != nil:
		return c, codeUsed()
	case c.attempts > maxCodeAttempts:
		return c, codeExhausted()
	case !s.now().Before(c.expires):
		return c, codeExpired()
	}
	return c, nil
}

func isNoRows(err error) bool { return errors.Is(err, pgx.ErrNoRows) }

// PeekTransfer says what a code would transfer, or why it cannot be used, without changing
// anything (the confirm page's GET).
func (s *Service) PeekTransfer(ctx context.Context, code string) (TransferInfo, error) {
	var info TransferInfo
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		c, err := s.readCode(ctx, tx, code, false)
		if err != nil {
			return err
		}
		info, err = s.transferInfo(ctx, tx, c)
		return err
	})
	return info, err
}

// CheckTransfer validates a code for the confirm page and says what it would transfer. It
// changes nothing but the code's attempt count.
func (s *Service) CheckTransfer(ctx context.Context, code string) (TransferInfo, error) {
	var info TransferInfo
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		c, err := s.useCode(ctx, tx, code)
		if err != nil {
			return err
		}
		info, err = s.transferInfo(ctx, tx, c)
		return err
	})
	return info, err
}

func (s *Service) transferInfo(ctx context.Context, tx pgx.Tx, c codeRow) (TransferInfo, error) {
	info := TransferInfo{AuthProjectID: c.projectID, ExpiresAt: c.expires}
	var owned string
	err := tx.QueryRow(ctx, `SELECT a.display_name, a.owned_by, COALESCE(i.project_id, '')
		FROM auth_projects a LEFT JOIN integrations i ON i.auth_project_id = a.id
		WHERE a.id = $1`, c.projectID).Scan(&info.DisplayName, &owned, &info.ProjectID)
	if isNoRows(err) {
		return info, codeNotFound()
	}
	if err != nil {
		return info, fmt.Errorf("find transferred project: %w", err)
	}
	if owned != "neon" {
		return info, errs.PlainError(errs.Invalid, "The project to transfer was not "+
			"provisioned by Neon or has already been transferred.")
	}
	return info, nil
}

// ConfirmTransfer hands an auth project to an owner (a user of the internal project). It
// succeeds once per project: the code is used up and the project stops being Neon-managed.
func (s *Service) ConfirmTransfer(ctx context.Context, code string,
	owner uuid.UUID) (TransferInfo, error) {
	var info TransferInfo
	// failure is a refusal found inside the transaction, which still commits so that the
	// code's attempt count is kept.
	var failure error
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		c, err := s.useCode(ctx, tx, code)
		if err != nil {
			failure = err
			return nil
		}
		if _, err := tx.Exec(ctx, "SELECT 1 FROM auth_projects WHERE id = $1 FOR UPDATE",
			c.projectID); err != nil {
			return fmt.Errorf("lock project: %w", err)
		}
		if info, err = s.transferInfo(ctx, tx, c); err != nil {
			failure = err
			return nil
		}
		return s.finishTransfer(ctx, tx, code, c.projectID, owner)
	})
	if err != nil {
		return TransferInfo{}, err
	}
	if failure != nil {
		return TransferInfo{}, failure
	}
	return info, nil
}

// finishTransfer uses up the code and hands the project to its new owner.
func (s *Service) finishTransfer(ctx context.Context, tx pgx.Tx, code, projectID string,
	owner uuid.UUID) error {
	now := s.now()
	_, err := tx.Exec(ctx, "UPDATE transfer_codes SET used_at = $2 WHERE code_hash = $1",
		hashCode(code), now)
	if err != nil {
		return fmt.Errorf("use transfer code: %w", err)
	}
	_, err = tx.Exec(ctx, `UPDATE auth_projects SET owned_by = 'user', owner_user_id = $2,
		transferred_at = $3 WHERE id = $1`, projectID, owner, now)
	if err != nil {
		return fmt.Errorf("transfer project: %w", err)
	}
	_, err = tx.Exec(ctx, `UPDATE integrations SET transfer_status = 'finished'
		WHERE auth_project_id = $1`, projectID)
	if err != nil {
		return fmt.Errorf("finish transfer: %w", err)
	}
	return nil
}

func (s *Service) inTx(ctx context.Context, fn func(pgx.Tx) error) error {
	return store.InTx(ctx, s.DB, fn)
}

// OwnedProject is an auth project as its owner sees it.
type OwnedProject struct {
	AuthProjectID string
	DisplayName   string
	ProjectID     string
	BranchID      string
	DBName        string
	TransferredAt time.Time
}

// OwnedProjects lists the auth projects an owner received.
func (s *Service) OwnedProjects(ctx context.Context, owner uuid.UUID) ([]OwnedProject, error) {
	rows, err := s.DB.Query(ctx, `SELECT a.id, a.display_name, COALESCE(i.project_id, ''),
			COALESCE(i.branch_id, ''), COALESCE(i.db_name, ''), a.transferred_at
		FROM auth_projects a LEFT JOIN integrations i ON i.auth_project_id = a.id
		WHERE a.owner_user_id = $1 ORDER BY a.transferred_at`, owner)
	if err != nil {
		return nil, fmt.Errorf("list owned projects: %w", err)
	}
	defer rows.Close()
	var out []OwnedProject
	for rows.Next() {
		var o OwnedProject
		if err := rows.Scan(&o.AuthProjectID, &o.DisplayName, &o.ProjectID, &o.BranchID,
			&o.DBName, &o.TransferredAt); err != nil {
			return nil, fmt.Errorf("scan owned project: %w", err)
		}
		out = append(out, o)
	}
	return out, rows.Err()
}
