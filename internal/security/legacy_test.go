package security_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/neonauth/neonauth/internal/sealbox"
	"github.com/neonauth/neonauth/internal/server"
	"github.com/neonauth/neonauth/internal/testserver"
)

func withMasterKey(keys string) testserver.Option {
	return func(c *server.Config) { c.MasterKey = keys }
}

func newKey(t *testing.T) string {
	t.Helper()
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// TestPlaintextSealedAtStart covers a data directory made before secrets were sealed, and
// the rotation through NEONAUTH_MASTER_KEY: a service with key K1 issues secrets, some of
// which are then put back in plaintext; started with "K2,K1" it seals the plaintext ones
// and seals the K1 ones again, all with K2; started with K2 alone everything works; started
// with K1 alone it refuses to start.
func TestPlaintextSealedAtStart(t *testing.T) {
	data := tempRoot(t)
	k1, k2 := newKey(t), newKey(t)
	var x *issued
	t.Run("K1, then plaintext", func(t *testing.T) {
		s := testserver.Start(t, withDataDir(data), withMasterKey(k1))
		x = issue(t, s)
		if _, err := os.Stat(filepath.Join(data, "master-key")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("a master key file was made although NEONAUTH_MASTER_KEY is set: %v", err)
		}
		unseal(t, s, x)
	})
	if t.Failed() {
		return
	}
	t.Run("K2,K1 seals everything with K2", func(t *testing.T) {
		s := testserver.Start(t, withDataDir(data), withMasterKey(k2+","+k1))
		only2, err := sealbox.New(rawKey(t, k2))
		if err != nil {
			t.Fatal(err)
		}
		allSealedWith(t, s, only2)
		verifyAgain(t, s, x)
	})
	if t.Failed() {
		return
	}
	t.Run("K2 alone", func(t *testing.T) {
		s := testserver.Start(t, withDataDir(data), withMasterKey(k2))
		verifyAgain(t, s, x)
		ctx := context.Background()
		pw, err := s.Env.Console.SealSecrets(ctx)
		if err != nil {
			t.Fatal(err)
		}
		sk, err := s.Env.Identity.SealSigningKeys(ctx)
		if err != nil || pw+sk != 0 {
			t.Errorf("sealing again wrote %d passwords and %d signing keys (%v), want none",
				pw, sk, err)
		}
	})
	t.Run("K1 alone is refused", func(t *testing.T) {
		refused(t, data, k1)
	})
	t.Run("no key is refused", func(t *testing.T) {
		refused(t, data, "")
		if _, err := os.Stat(filepath.Join(data, "master-key")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("a master key file was made for a database sealed with another key: %v",
				err)
		}
	})
}

// refused checks that the service does not start on data with the master keys given (the
// value of NEONAUTH_MASTER_KEY; none means the key file), and says why.
func refused(t *testing.T, data, keys string) {
	t.Helper()
	cfg := server.Defaults()
	cfg.DataDir, cfg.Fast, cfg.BcryptCost = data, true, 4
	cfg.PGBin, cfg.MasterKey = os.Getenv("NEONAUTH_PG_BIN"), keys
	env, err := server.Open(context.Background(), cfg,
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err == nil {
		env.Close()
		t.Fatal("the service started with master keys that open none of its secrets")
	}
	if !strings.Contains(err.Error(), "master key") {
		t.Errorf("error %q does not point at the master key", err)
	}
	t.Logf("refused: %v", err)
}

// unseal puts secrets back as a service before sealing stored them: the owner role's
// password and the default branch's administrator password, and the integration's signing
// key. The child branch's and the other secrets stay sealed with the current key.
func unseal(t *testing.T, s *testserver.Server, x *issued) {
	t.Helper()
	ctx := context.Background()
	db := s.Env.Pool
	cl, err := s.Env.Computes.Open(x.BranchID)
	if err != nil {
		t.Fatal(err)
	}
	var der []byte
	for _, k := range signingKeys(t, s) {
		if k.KID == x.KID {
			if der, err = k.MarshalPrivate(); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{`UPDATE roles SET password = $3, password_sealed = NULL
			WHERE branch_id = $1 AND name = $2`,
			[]any{x.BranchID, x.OwnerRole, x.passwords[x.OwnerRole]}},
		{`UPDATE branches SET admin_password = $2, admin_password_sealed = NULL WHERE id = $1`,
			[]any{x.BranchID, cl.Password}},
		{`UPDATE signing_keys SET private_der = $2, private_sealed = NULL WHERE kid = $1`,
			[]any{x.KID, der}},
	} {
		tag, err := db.Exec(ctx, q.sql, q.args...)
		if err != nil || tag.RowsAffected() != 1 {
			t.Fatalf("%s: %v (%d rows)", q.sql, err, tag.RowsAffected())
		}
	}
}

// allSealedWith checks that no plaintext secret is left and that every sealed one opens
// with box.
func allSealedWith(t *testing.T, s *testserver.Server, box *sealbox.Box) {
	t.Helper()
	ctx := context.Background()
	for _, c := range []struct{ table, plain, sealed string }{
		{"roles", "password", "password_sealed"},
		{"branches", "admin_password", "admin_password_sealed"},
		{"signing_keys", "private_der", "private_sealed"},
	} {
		var plain, n int
		err := s.Env.Pool.QueryRow(ctx, `SELECT count(`+c.plain+`), count(`+c.sealed+`)
			FROM `+c.table).Scan(&plain, &n)
		if err != nil {
			t.Fatal(err)
		}
		if plain != 0 || n == 0 {
			t.Errorf("%s: %d plaintext values and %d sealed ones", c.table, plain, n)
		}
		rows, err := s.Env.Pool.Query(ctx, `SELECT `+c.sealed+` FROM `+c.table+
			` WHERE `+c.sealed+` IS NOT NULL`)
		if err != nil {
			t.Fatal(err)
		}
		var sealed []string
		for rows.Next() {
			var v string
			if err := rows.Scan(&v); err != nil {
				t.Fatal(err)
			}
			sealed = append(sealed, v)
		}
		rows.Close()
		for _, v := range sealed {
			if _, err := box.Open(v, c.table+"."+c.sealed); err != nil {
				t.Errorf("%s.%s: a value does not open with the new key alone: %v",
					c.table, c.sealed, err)
			}
		}
	}
}
