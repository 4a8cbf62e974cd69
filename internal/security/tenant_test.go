package security_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/neonauth/neonauth/internal/pgtest"
	"github.com/neonauth/neonauth/internal/testserver"
)

// TestTenantCannotEscapeItsDatabase: a project's owner role, which the tenant holds, cannot
// make itself more than the owner of its database, and nothing the service runs in that
// database (the sync) runs with the server's superuser rights. Both held once: the role had
// CREATEROLE (enough, on PostgreSQL 15, to grant itself pg_execute_server_program), and
// the sync wrote as the superuser, so a trigger on users_sync ran as one.
func TestTenantCannotEscapeItsDatabase(t *testing.T) {
	ctx := context.Background()
	s := testserver.Start(t)
	p := s.CreateProject(t, "tenant")
	in := s.CreateIntegration(t, p)
	conn, err := pgx.Connect(ctx, p.ConnectionURI)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)

	var createRole, super bool
	err = conn.QueryRow(ctx, `SELECT rolcreaterole, rolsuper FROM pg_roles
		WHERE rolname = current_user`).Scan(&createRole, &super)
	if err != nil || createRole || super {
		t.Fatalf("owner role: createrole=%v superuser=%v (%v)", createRole, super, err)
	}
	for _, grant := range []string{"pg_execute_server_program", "pg_read_server_files",
		"pg_write_server_files"} {
		_, err := conn.Exec(ctx, "GRANT "+grant+" TO CURRENT_USER")
		if err == nil {
			t.Fatalf("the owner role granted itself %s", grant)
		}
	}

	const spy = `
CREATE TABLE public.writers (who text, super bool);
CREATE FUNCTION public.spy() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO public.writers SELECT current_user, rolsuper FROM pg_roles
		WHERE rolname = current_user;
	RETURN NEW;
END $$;
CREATE TRIGGER spy BEFORE INSERT OR UPDATE ON neon_auth.users_sync
	FOR EACH ROW EXECUTE FUNCTION public.spy();`
	if _, err := conn.Exec(ctx, spy); err != nil {
		t.Fatal(err)
	}
	r := s.Neon(t, "POST", "/projects/auth/user", map[string]any{"project_id": p.ID,
		"auth_provider": "stack", "email": "spied@example.com"})
	if r.Status != http.StatusCreated {
		t.Fatalf("create user: %d %s", r.Status, r.Body)
	}
	_ = in
	deadline := time.Now().Add(10 * time.Second)
	for {
		var who string
		var isSuper bool
		err := conn.QueryRow(ctx, "SELECT who, super FROM public.writers LIMIT 1").
			Scan(&who, &isSuper)
		if err == nil {
			if isSuper || who != "neondb_owner" {
				t.Fatalf("the sync wrote users_sync as %q (superuser %v)", who, isSuper)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the sync never wrote the row: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestAttachURIParameters: an attach URI may not carry connection parameters that point the
// service at local files or other hosts, must carry a password, and a failed connection does
// not echo what answered.
func TestAttachURIParameters(t *testing.T) {
	s := testserver.Start(t)
	cl := pgtest.Start(t)
	base := cl.URI("postgres")
	for _, uri := range []string{
		base + "&servicefile=/tmp/x&service=a",
		base + "&host=/tmp",
		base + "&passfile=/root/.pgpass",
		strings.Replace(base, ":"+cl.Password+"@", "@", 1),
		"postgresql://u:p@127.0.0.1:1/db?sslmode=disable",
	} {
		r := s.Neon(t, "POST", "/projects", map[string]any{"project": map[string]any{
			"connection_uri": uri}})
		if r.Status != http.StatusBadRequest {
			t.Fatalf("attach %q: %d %s", uri, r.Status, r.Body)
		}
		if strings.Contains(string(r.Body), "refused") || strings.Contains(string(r.Body), cl.Password) {
			t.Fatalf("attach %q: the answer echoes the driver: %s", uri, r.Body)
		}
	}
	r := s.Neon(t, "POST", "/projects", map[string]any{"project": map[string]any{
		"connection_uri": base + "&application_name=mine"}})
	if r.Status != http.StatusCreated {
		t.Fatalf("a plain attach URI: %d %s", r.Status, r.Body)
	}
}
