package compute

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// newTestManager returns a Manager rooted in a fresh temp directory whose log goes to the
// test log. fast turns fsync off, as internal/pgtest does.
func newTestManager(t *testing.T, fast bool) *Manager {
	t.Helper()
	return managerAt(t, t.TempDir(), fast)
}

// managerAt is newTestManager with a given root.
func managerAt(t *testing.T, root string, fast bool) *Manager {
	t.Helper()
	bin, err := FindBinaries("")
	if err != nil {
		t.Fatalf("PostgreSQL binaries are needed for this test: %v", err)
	}
	log := slog.New(slog.NewTextHandler(testLog{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	m, err := NewManager(bin, root, log)
	if err != nil {
		t.Fatal(err)
	}
	if fast {
		m.SetExtraConfig(map[string]string{"fsync": "off", "synchronous_commit": "off"})
	}
	t.Cleanup(func() { m.StopAll(context.Background()) })
	return m
}

type testLog struct{ t *testing.T }

func (w testLog) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func connect(t *testing.T, ctx context.Context, c *Cluster) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(ctx, c.URI("postgres"))
	if err != nil {
		t.Fatalf("connect to cluster %q on port %d: %v", c.Name, c.Port, err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}

func exec1(t *testing.T, ctx context.Context, c *Cluster, sql string) {
	t.Helper()
	conn, err := pgx.Connect(ctx, c.URI("postgres"))
	if err != nil {
		t.Fatalf("connect to cluster %q on port %d: %v", c.Name, c.Port, err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func queryInt(t *testing.T, ctx context.Context, c *Cluster, sql string) int {
	t.Helper()
	conn, err := pgx.Connect(ctx, c.URI("postgres"))
	if err != nil {
		t.Fatalf("connect to cluster %q on port %d: %v", c.Name, c.Port, err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, sql).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

// TestLifecycle runs one cluster through create, stop, start, a service restart, a start on
// a busy port, a crash and removal. It uses the production configuration (fsync on).
func TestLifecycle(t *testing.T) {
	ctx := testContext(t)
	m := newTestManager(t, false)

	c, err := m.Create(ctx, "main")
	if err != nil {
		t.Fatal(err)
	}
	if c.Port == 0 || c.User != "postgres" || c.Dir != filepath.Join(m.root, "main") {
		t.Fatalf("unexpected cluster %+v", *c)
	}
	if !regexp.MustCompile(`^[A-Za-z0-9]{32}$`).MatchString(c.Password) {
		t.Fatalf("password is not 32 alphanumerics (len %d)", len(c.Password))
	}
	checkFiles(t, c)
	if m.cred != nil {
		fi, err := os.Stat(c.dataDir())
		if err != nil {
			t.Fatal(err)
		}
		if uid := fi.Sys().(*syscall.Stat_t).Uid; uid != m.cred.Uid {
			t.Errorf("data directory owned by uid %d, want the postgres user %d", uid, m.cred.Uid)
		}
	}

	if got := queryInt(t, ctx, c, "SELECT 1"); got != 1 {
		t.Fatalf("SELECT 1 = %d", got)
	}
	conn := connect(t, ctx, c)
	var listen, sockets, buffers string
	if err := conn.QueryRow(ctx, `SELECT current_setting('listen_addresses'),
		current_setting('unix_socket_directories'), current_setting('shared_buffers')`).
		Scan(&listen, &sockets, &buffers); err != nil {
		t.Fatal(err)
	}
	if listen != "127.0.0.1" || sockets != "" || buffers != "32MB" {
		t.Fatalf("settings: listen_addresses=%q unix_socket_directories=%q shared_buffers=%q",
			listen, sockets, buffers)
	}
	_ = conn.Close(ctx)

	// A wrong password is refused: authentication really is scram-sha-256.
	bad := *c
	bad.Password = "wrong"
	if conn, err := pgx.Connect(ctx, bad.URI("postgres")); err == nil {
		_ = conn.Close(ctx)
		t.Fatal("connected with a wrong password")
	}

	exec1(t, ctx, c, "CREATE TABLE kept (v text); INSERT INTO kept VALUES ('before stop')")

	// Stop, then Start on the same port.
	port := c.Port
	if err := m.Stop(ctx, c); err != nil {
		t.Fatal(err)
	}
	if m.Running(c) {
		t.Fatal("running after Stop")
	}
	if err := m.Stop(ctx, c); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	if err := m.Start(ctx, c); err != nil {
		t.Fatal(err)
	}
	if c.Port != port {
		t.Errorf("port changed from %d to %d though it was free", port, c.Port)
	}
	if n := queryInt(t, ctx, c, "SELECT count(*) FROM kept"); n != 1 {
		t.Fatalf("after restart: %d rows, want 1", n)
	}
	// Start on a running cluster is a no-op.
	if err := m.Start(ctx, c); err != nil {
		t.Fatal(err)
	}

	// A service restart: a new Manager opens the stopped cluster and starts it.
	if err := m.Stop(ctx, c); err != nil {
		t.Fatal(err)
	}
	m2 := managerAt(t, m.root, false)
	c2, err := m2.Open("main")
	if err != nil {
		t.Fatal(err)
	}
	if c2.Password != c.Password || c2.Port != c.Port || c2.Dir != c.Dir {
		t.Fatalf("Open: got port %d dir %q, want port %d dir %q (or password differs)",
			c2.Port, c2.Dir, c.Port, c.Dir)
	}
	if m2.Running(c2) {
		t.Fatal("Open started the cluster")
	}
	if err := m2.Start(ctx, c2); err != nil {
		t.Fatal(err)
	}
	if n := queryInt(t, ctx, c2, "SELECT count(*) FROM kept"); n != 1 {
		t.Fatalf("after service restart: %d rows, want 1", n)
	}

	// Another process would find it running: Start adopts it and learns its port.
	c3, err := m.Open("main")
	if err != nil {
		t.Fatal(err)
	}
	c3.Port = 1
	if err := m.Start(ctx, c3); err != nil {
		t.Fatal(err)
	}
	if c3.Port != c2.Port {
		t.Fatalf("adopted running cluster: port %d, want %d", c3.Port, c2.Port)
	}
	m.untrack(c3)

	// Busy port: something else took the port while the cluster was stopped.
	if err := m2.Stop(ctx, c2); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(c2.Port)))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	old := c2.Port
	// pg_ctl itself reports the busy port in a way start recognizes and retries on.
	if err := m2.pgctlStart(ctx, c2, old); !errors.Is(err, errPortBusy) {
		t.Fatalf("pg_ctl start on a busy port: %v, want errPortBusy", err)
	}
	if err := m2.Start(ctx, c2); err != nil {
		t.Fatal(err)
	}
	if c2.Port == old {
		t.Fatal("started on a busy port")
	}
	if saved, _ := os.ReadFile(filepath.Join(c2.Dir, "port")); strings.TrimSpace(
		string(saved)) != strconv.Itoa(c2.Port) {
		t.Fatalf("port file %q, want %d", saved, c2.Port)
	}
	if n := queryInt(t, ctx, c2, "SELECT count(*) FROM kept"); n != 1 {
		t.Fatalf("after port change: %d rows, want 1", n)
	}
	_ = l.Close()

	// A crash: SIGKILL the postmaster, leaving a stale postmaster.pid behind.
	pid, _, ok := m2.postmaster(c2)
	if !ok {
		t.Fatal("no running postmaster found")
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return !m2.Running(c2) })
	if _, err := os.Stat(filepath.Join(c2.dataDir(), "postmaster.pid")); err != nil {
		t.Fatalf("expected a stale postmaster.pid: %v", err)
	}
	c4, err := m2.Open("main")
	if err != nil {
		t.Fatal(err)
	}
	if err := m2.Start(ctx, c4); err != nil {
		t.Fatal(err)
	}
	if n := queryInt(t, ctx, c4, "SELECT count(*) FROM kept"); n != 1 {
		t.Fatalf("after crash: %d rows, want 1", n)
	}

	// Remove stops it and deletes the directory.
	if err := m2.Remove(ctx, c4); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(c4.Dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("directory still there after Remove: %v", err)
	}
	if m2.Running(c4) {
		t.Fatal("running after Remove")
	}
	if _, err := m2.Open("main"); err == nil {
		t.Fatal("Open of a removed cluster succeeded")
	}
}

// checkFiles checks the files a new cluster keeps beside its data directory.
func checkFiles(t *testing.T, c *Cluster) {
	t.Helper()
	pwFile := filepath.Join(c.Dir, "superuser.password")
	fi, err := os.Stat(pwFile)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("%s has mode %v, want 0600", pwFile, fi.Mode().Perm())
	}
	if pw, _ := os.ReadFile(pwFile); strings.TrimSpace(string(pw)) != c.Password {
		t.Error("password file does not hold the password")
	}
	if port, _ := os.ReadFile(filepath.Join(c.Dir, "port")); strings.TrimSpace(
		string(port)) != strconv.Itoa(c.Port) {
		t.Errorf("port file %q, want %d", port, c.Port)
	}
	logData, err := os.ReadFile(filepath.Join(c.Dir, "postgres.log"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(logData, []byte("ready to accept connections")) {
		t.Errorf("postgres.log does not show the server starting:\n%s", logData)
	}
	if bytes.Contains(logData, []byte(c.Password)) {
		t.Error("postgres.log contains the password")
	}
	hba, err := os.ReadFile(filepath.Join(c.dataDir(), "pg_hba.conf"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`host\s+all\s+all\s+127\.0\.0\.1/32\s+scram-sha-256`,
		`host\s+all\s+all\s+::1/128\s+scram-sha-256`,
		`host\s+replication\s+all\s+127\.0\.0\.1/32\s+scram-sha-256`,
		`host\s+replication\s+all\s+::1/128\s+scram-sha-256`,
	} {
		if !regexp.MustCompile(want).Match(hba) {
			t.Errorf("pg_hba.conf lacks %s", want)
		}
	}
	if regexp.MustCompile(`(?m)^\s*[^#\s].*\s(trust|md5|password|peer)\s*$`).Match(hba) {
		t.Errorf("pg_hba.conf allows a method other than scram-sha-256:\n%s", hba)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatal("timed out waiting")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestClone(t *testing.T) {
	ctx := testContext(t)
	m := newTestManager(t, true)
	parent, err := m.Create(ctx, "parent")
	if err != nil {
		t.Fatal(err)
	}
	exec1(t, ctx, parent, `CREATE TABLE items (id int PRIMARY KEY);
		INSERT INTO items SELECT generate_series(1, 100)`)

	clone, err := m.Clone(ctx, parent, "child")
	if err != nil {
		t.Fatal(err)
	}
	if clone.Port == parent.Port {
		t.Fatalf("clone and parent share port %d", clone.Port)
	}
	if clone.Password != parent.Password {
		t.Error("clone has a different superuser password")
	}
	if pw, _ := os.ReadFile(filepath.Join(clone.Dir, "superuser.password")); strings.TrimSpace(
		string(pw)) != parent.Password {
		t.Error("clone's password file does not hold the parent's password")
	}
	if n := queryInt(t, ctx, clone, "SELECT count(*) FROM items"); n != 100 {
		t.Fatalf("clone has %d rows, want 100", n)
	}
	if n := queryInt(t, ctx, clone, "SELECT pg_is_in_recovery()::int"); n != 0 {
		t.Fatal("clone is a standby, want a writable primary")
	}
	exec1(t, ctx, clone, "INSERT INTO items VALUES (101); CREATE TABLE only_clone (x int)")
	if n := queryInt(t, ctx, clone, "SELECT count(*) FROM items"); n != 101 {
		t.Fatalf("clone has %d rows after insert, want 101", n)
	}
	if n := queryInt(t, ctx, parent, "SELECT count(*) FROM items"); n != 100 {
		t.Fatalf("parent has %d rows after a write to the clone, want 100", n)
	}
	if n := queryInt(t, ctx, parent,
		"SELECT count(*) FROM pg_tables WHERE tablename = 'only_clone'"); n != 0 {
		t.Fatal("table created in the clone shows up in the parent")
	}

	if _, err := m.Clone(ctx, parent, "child"); err == nil {
		t.Fatal("Clone over an existing cluster succeeded")
	}
	// StopAll stops both.
	m.StopAll(ctx)
	if m.Running(parent) || m.Running(clone) {
		t.Fatal("StopAll left a cluster running")
	}
	if _, err := m.Clone(ctx, parent, "child2"); err == nil {
		t.Fatal("Clone of a stopped parent succeeded")
	}
}

func TestCreateErrors(t *testing.T) {
	ctx := testContext(t)
	m := newTestManager(t, true)
	for _, name := range []string{"", ".", "..", "a/b", "../x", "-x", strings.Repeat("a", 101)} {
		if _, err := m.Create(ctx, name); err == nil {
			t.Errorf("Create(%q) succeeded", name)
		}
	}
	if err := os.Mkdir(filepath.Join(m.root, "taken"), 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Create(ctx, "taken"); !errors.Is(err, os.ErrExist) {
		t.Errorf("Create over an existing directory: %v, want ErrExist", err)
	}
	if _, err := os.Stat(filepath.Join(m.root, "taken")); err != nil {
		t.Errorf("Create removed a directory it did not make: %v", err)
	}

	// A server that cannot start: Create fails with the server log and cleans up.
	m.SetExtraConfig(map[string]string{"fsync": "off", "shared_buffers": "lots"})
	_, err := m.Create(ctx, "broken")
	if err == nil || !strings.Contains(err.Error(), "shared_buffers") {
		t.Fatalf("Create with a bad setting: %v, want an error naming shared_buffers", err)
	}
	t.Logf("expected error: %v", err)
	if _, err := os.Stat(filepath.Join(m.root, "broken")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("failed Create left its directory behind: %v", err)
	}
}

func TestURI(t *testing.T) {
	c := &Cluster{Port: 5433, User: "postgres", Password: "p@ss/w:rd"}
	got := c.URI("my db")
	u, err := url.Parse(got)
	if err != nil {
		t.Fatal(err)
	}
	pw, _ := u.User.Password()
	if u.Scheme != "postgres" || u.Host != "127.0.0.1:5433" || u.User.Username() != "postgres" ||
		pw != "p@ss/w:rd" || u.Path != "/my db" || u.RawQuery != "sslmode=disable" {
		t.Fatalf("URI = %q", got)
	}
	c.Password = "abc123"
	if got, want := c.URI("postgres"),
		"postgres://postgres:abc123@127.0.0.1:5433/postgres?sslmode=disable"; got != want {
		t.Fatalf("URI = %q, want %q", got, want)
	}
}

func TestRandomPassword(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		pw, err := randomPassword()
		if err != nil {
			t.Fatal(err)
		}
		if !regexp.MustCompile(`^[A-Za-z0-9]{32}$`).MatchString(pw) {
			t.Fatalf("password %q is not 32 alphanumerics", pw)
		}
		if seen[pw] {
			t.Fatal("repeated password")
		}
		seen[pw] = true
	}
}

func TestFindBinaries(t *testing.T) {
	good, err := FindBinaries("")
	if err != nil {
		t.Skipf("no PostgreSQL binaries here: %v", err)
	}
	if dir, err := FindBinaries(good); err != nil || dir != good {
		t.Fatalf("FindBinaries(%q) = %q, %v", good, dir, err)
	}
	// A bad hint falls back to the other places.
	if dir, err := FindBinaries(filepath.Join(t.TempDir(), "nope")); err != nil || dir != good {
		t.Fatalf("FindBinaries(bad hint) = %q, %v; want %q", dir, err, good)
	}

	// pg_ctl on PATH through a symlink: its real directory is used.
	linkDir := t.TempDir()
	err = os.Symlink(filepath.Join(good, "pg_ctl"), filepath.Join(linkDir, "pg_ctl"))
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", linkDir)
	noGlob := filepath.Join(t.TempDir(), "*", "bin")
	if dir, err := findBinaries("", exec.LookPath, noGlob); err != nil || dir != good {
		t.Fatalf("via PATH symlink = %q, %v; want %q", dir, err, good)
	}

	// Nothing anywhere: the error says how to install them.
	t.Setenv("PATH", "")
	_, err = findBinaries(filepath.Join(t.TempDir(), "nope"), exec.LookPath, noGlob)
	if !errors.Is(err, ErrNoBinaries) {
		t.Fatalf("error %v does not wrap ErrNoBinaries", err)
	}
	for _, want := range []string{"apt-get install postgresql", "--pg-bin", "pg_basebackup"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if msg := notFoundMessage(nil); !strings.Contains(msg, "apt-get install postgresql") {
		t.Errorf("notFoundMessage = %q", msg)
	}
	if _, err := NewManager(t.TempDir(), t.TempDir(), nil); !errors.Is(err, ErrNoBinaries) {
		t.Errorf("NewManager with a bad binary directory: %v, want ErrNoBinaries", err)
	}
}

func TestSortNewestFirst(t *testing.T) {
	paths := []string{
		"/usr/lib/postgresql/9.6/bin", "/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/x/bin",
		"/usr/lib/postgresql/17/bin", "/usr/lib/postgresql/10/bin",
	}
	sortNewestFirst(paths)
	want := "17 15 10 9.6 x"
	var got []string
	for _, p := range paths {
		got = append(got, filepath.Base(filepath.Dir(p)))
	}
	if strings.Join(got, " ") != want {
		t.Fatalf("order %v, want %s", got, want)
	}
}

func TestRootAccess(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("only matters when running as root")
	}
	parent := t.TempDir()
	root := filepath.Join(parent, "a", "clusters")
	if err := os.MkdirAll(filepath.Dir(root), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{parent, filepath.Dir(root)} {
		if err := os.Chmod(dir, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	bin, err := FindBinaries("")
	if err != nil {
		t.Skip(err)
	}
	if _, err := NewManager(bin, root, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{parent, filepath.Dir(root), root} {
		fi, err := os.Stat(dir)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o701 {
			t.Errorf("%s has mode %v, want 0701 (o+x added, no o+r)", dir, fi.Mode().Perm())
		}
	}
}

// TestConcurrent creates, uses and removes several clusters at once.
func TestConcurrent(t *testing.T) {
	ctx := testContext(t)
	m := newTestManager(t, true)
	const n = 4
	clusters := make([]*Cluster, n)
	errs := make(chan error, n)
	for i := range n {
		go func() {
			c, err := m.Create(ctx, "c"+strconv.Itoa(i))
			clusters[i] = c
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	ports := map[int]bool{}
	for _, c := range clusters {
		if ports[c.Port] {
			t.Fatalf("port %d used twice", c.Port)
		}
		ports[c.Port] = true
		if got := queryInt(t, ctx, c, "SELECT 1"); got != 1 {
			t.Fatalf("SELECT 1 = %d", got)
		}
	}
	for _, c := range clusters {
		go func() { errs <- m.Remove(ctx, c) }()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}
