package security_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/neonauth/neonauth/internal/identity/jwt"
	"github.com/neonauth/neonauth/internal/server"
	"github.com/neonauth/neonauth/internal/testserver"
)

// pgBin is where the PostgreSQL 15 client programs are.
const pgBin = "/usr/lib/postgresql/15/bin"

func withDataDir(dir string) testserver.Option {
	return func(c *server.Config) { c.DataDir = dir }
}

// TestDumpHasNoSecrets issues a secret of every kind, dumps the metadata database with
// pg_dump and looks for each secret in it, in every encoding: none may appear. The signing
// keys are looked for as their PKCS#8 DER and as the JWK private member d. Then the service
// starts again on the same data directory and master key, and everything still works.
func TestDumpHasNoSecrets(t *testing.T) {
	data := tempRoot(t)
	var x *issued
	t.Run("issue and dump", func(t *testing.T) {
		s := testserver.Start(t, withDataDir(data))
		x = issue(t, s)
		secrets := x.asBytes()
		for _, b := range []string{x.BranchID, x.ChildBranchID} {
			cl, err := s.Env.Computes.Open(b)
			if err != nil {
				t.Fatal(err)
			}
			secrets["administrator password of "+b] = []byte(cl.Password)
		}
		for i, k := range masterKeys(t, s.Env.Config.MasterKeyPath()) {
			secrets["master key "+strconv.Itoa(i)] = rawKey(t, k)
		}
		keys := signingKeys(t, s)
		if len(keys) < 2 {
			t.Fatalf("%d signing keys, want the internal project's and the integration's",
				len(keys))
		}
		for _, k := range keys {
			der, err := k.MarshalPrivate()
			if err != nil {
				t.Fatal(err)
			}
			secrets["PKCS#8 DER of signing key "+k.KID] = der
			secrets["private scalar d of signing key "+k.KID] = k.Private.D.FillBytes(
				make([]byte, 32))
		}
		dump := pgDump(t, s)
		if !bytes.Contains(dump, []byte("sb1:")) || !bytes.Contains(dump, []byte(x.KID)) {
			t.Fatalf("the dump holds no sealed value or no kid: is it the metadata database?")
		}
		absent(t, "the metadata database dump", dump, secrets)
	})
	if t.Failed() {
		return
	}
	t.Run("restart", func(t *testing.T) {
		s := testserver.Start(t, withDataDir(data))
		verifyAgain(t, s, x)
	})
}

// signingKeys opens every stored signing key with the service's box, checking on the way
// that no plaintext copy remains.
func signingKeys(t *testing.T, s *testserver.Server) []*jwt.SigningKey {
	t.Helper()
	ctx := context.Background()
	rows, err := s.Env.Pool.Query(ctx, `SELECT kid, private_der IS NULL, private_sealed
		FROM signing_keys`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []*jwt.SigningKey
	for rows.Next() {
		var kid, sealed string
		var noPlain bool
		if err := rows.Scan(&kid, &noPlain, &sealed); err != nil {
			t.Fatal(err)
		}
		if !noPlain {
			t.Errorf("signing key %s keeps its plaintext DER", kid)
		}
		der, err := s.Env.Box.Open(sealed, "signing_keys.private_sealed")
		if err != nil {
			t.Fatalf("open signing key %s: %v", kid, err)
		}
		if _, err := x509.ParsePKCS8PrivateKey(der); err != nil {
			t.Fatalf("signing key %s: %v", kid, err)
		}
		k, err := jwt.ParseSigningKey(kid, der)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, k)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// pgDump dumps the metadata database of a service (its managed cluster) as plain SQL. The
// password goes through the environment; as root, pg_dump runs as the postgres user.
func pgDump(t *testing.T, s *testserver.Server) []byte {
	t.Helper()
	if s.Env.Config.DatabaseURL != "" {
		t.Skip("the metadata database is not a managed cluster")
	}
	cl, err := s.Env.Computes.Open("metadata")
	if err != nil {
		t.Fatal(err)
	}
	pw, err := os.ReadFile(filepath.Join(s.Env.Config.DataDir, "pg", "metadata",
		"superuser.password"))
	if err != nil || strings.TrimSpace(string(pw)) != cl.Password {
		t.Fatalf("superuser.password of the metadata cluster: %v", err)
	}
	cmd := exec.Command(filepath.Join(pgBin, "pg_dump"), "--host", "127.0.0.1",
		"--port", strconv.Itoa(cl.Port), "--username", cl.User, "--no-password",
		"--dbname", "postgres")
	cmd.Env = []string{"PGPASSWORD=" + cl.Password, "PGSSLMODE=disable", "HOME=/tmp",
		"PATH=/usr/bin:/bin"}
	cmd.Dir = "/"
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("running as root without a postgres user: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		cmd.SysProcAttr = &syscall.SysProcAttr{
			Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("pg_dump: %v: %s", err, stderr.String())
	}
	if !bytes.Contains(out, []byte("CREATE TABLE public.signing_keys")) {
		t.Fatalf("pg_dump output lacks the signing_keys table: %.500s", out)
	}
	t.Logf("dump: %d bytes", len(out))
	return out
}
