package console

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// The contexts of the sealed passwords: each value is bound to the column that holds it, so
// that a value moved to another column does not open.
const (
	rolePasswordContext  = "roles.password_sealed"
	adminPasswordContext = "branches.admin_password_sealed"
)

// errNoBox is returned when a password must be sealed or opened and the service has no box.
var errNoBox = errors.New("console: no master key to seal passwords with")

// seal seals a password for the column named by context.
func (s *Service) seal(password, context string) (string, error) {
	if s.Box == nil {
		return "", errNoBox
	}
	return s.Box.Seal([]byte(password), context), nil
}

// open opens a password sealed for the column named by context.
func (s *Service) open(sealed, context string) (string, error) {
	if s.Box == nil {
		return "", errNoBox
	}
	pt, err := s.Box.Open(sealed, context)
	if err != nil {
		return "", fmt.Errorf("open %s: %w", context, err)
	}
	return string(pt), nil
}

// sealedColumn describes a table column of sealed passwords and the plaintext column it
// replaced (still filled in a data directory made before passwords were sealed).
type sealedColumn struct {
	table string
	// keys is the table's primary key, all text columns.
	keys                   []string
	plain, sealed, context string
}

var sealedColumns = []sealedColumn{
	{table: "roles", keys: []string{"branch_id", "name"}, plain: "password",
		sealed: "password_sealed", context: rolePasswordContext},
	{table: "branches", keys: []string{"id"}, plain: "admin_password",
		sealed: "admin_password_sealed", context: adminPasswordContext},
}

// storedPassword is one row of a sealedColumn as read.
type storedPassword struct {
	key           []any
	plain, sealed *string
}

// SealSecrets seals the role and administrator passwords still stored in plaintext, and
// seals again, with the current master key, those sealed with an older key. It returns how
// many values it wrote. It can run again at any time (it writes nothing when every value is
// sealed with the current key) and alongside the service: a row is only updated while it
// still holds what was read. A value that does not open (a key missing from the master
// keys) is an error.
func (s *Service) SealSecrets(ctx context.Context) (int, error) {
	if s.Box == nil {
		return 0, errNoBox
	}
	n := 0
	for _, c := range sealedColumns {
		rows, err := s.storedPasswords(ctx, c)
		if err != nil {
			return n, err
		}
		for _, r := range rows {
			var password string
			switch {
			case r.sealed != nil:
				if r.plain == nil && s.Box.Current(*r.sealed) {
					continue
				}
				if password, err = s.open(*r.sealed, c.context); err != nil {
					return n, fmt.Errorf("%s %v: %w", c.table, r.key, err)
				}
			default:
				password = *r.plain
			}
			k := len(c.keys)
			q := fmt.Sprintf(`UPDATE %s SET %s = NULL, %s = $%d WHERE %s
				AND %s IS NOT DISTINCT FROM $%d AND %s IS NOT DISTINCT FROM $%d`,
				c.table, c.plain, c.sealed, k+1, c.match(), c.plain, k+2, c.sealed, k+3)
			args := append(r.key, s.Box.Seal([]byte(password), c.context), r.plain, r.sealed)
			tag, err := s.DB.Exec(ctx, q, args...)
			if err != nil {
				return n, fmt.Errorf("seal %s.%s: %w", c.table, c.plain, err)
			}
			n += int(tag.RowsAffected())
		}
	}
	return n, nil
}

// match is the condition that selects one row by its key, from parameters $1, $2, ….
func (c sealedColumn) match() string {
	conds := make([]string, len(c.keys))
	for i, k := range c.keys {
		conds[i] = fmt.Sprintf("%s = $%d", k, i+1)
	}
	return strings.Join(conds, " AND ")
}

// StaleSecrets counts the passwords that are not sealed with the current master key: in
// plaintext, or sealed with an older key. It is zero after SealSecrets unless the service
// wrote with another key meanwhile.
func (s *Service) StaleSecrets(ctx context.Context) (int, error) {
	if s.Box == nil {
		return 0, errNoBox
	}
	n := 0
	for _, c := range sealedColumns {
		rows, err := s.storedPasswords(ctx, c)
		if err != nil {
			return n, err
		}
		for _, r := range rows {
			if r.plain != nil || !s.Box.Current(*r.sealed) {
				n++
			}
		}
	}
	return n, nil
}

// storedPasswords reads every stored value of a sealed column, in either form.
func (s *Service) storedPasswords(ctx context.Context, c sealedColumn) ([]storedPassword, error) {
	q := fmt.Sprintf("SELECT %s, %s, %s FROM %s WHERE %s IS NOT NULL OR %s IS NOT NULL",
		strings.Join(c.keys, ", "), c.plain, c.sealed, c.table, c.plain, c.sealed)
	rows, err := s.DB.Query(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("read %s.%s: %w", c.table, c.sealed, err)
	}
	defer rows.Close()
	var out []storedPassword
	for rows.Next() {
		keys := make([]string, len(c.keys))
		r := storedPassword{key: make([]any, len(c.keys))}
		dest := make([]any, 0, len(c.keys)+2)
		for i := range keys {
			dest = append(dest, &keys[i])
		}
		if err := rows.Scan(append(dest, &r.plain, &r.sealed)...); err != nil {
			return nil, fmt.Errorf("read %s.%s: %w", c.table, c.sealed, err)
		}
		for i, k := range keys {
			r.key[i] = k
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read %s.%s: %w", c.table, c.sealed, err)
	}
	return out, nil
}
