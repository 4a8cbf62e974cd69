package security_test

import (
	"bytes"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/neonauth/neonauth/internal/testserver"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
	buildDir  string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		_ = os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// binary builds the neonauth command once for the tests of the real process.
func binary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		if buildDir, buildErr = os.MkdirTemp("", "neonauth-security-"); buildErr != nil {
			return
		}
		binPath = filepath.Join(buildDir, "neonauth")
		out, err := exec.Command("go", "build", "-o", binPath,
			"github.com/neonauth/neonauth/cmd/neonauth").CombinedOutput()
		if err != nil {
			buildErr = &buildError{err: err, out: out}
		}
	})
	if buildErr != nil {
		t.Fatalf("build neonauth: %v", buildErr)
	}
	return binPath
}

type buildError struct {
	err error
	out []byte
}

func (e *buildError) Error() string { return e.err.Error() + "\n" + string(e.out) }

// proc is a running `neonauth serve`.
type proc struct {
	cmd     *exec.Cmd
	logPath string
	data    string
	srv     *testserver.Server
}

// serve runs `neonauth serve` on a free loopback port with the data directory and extra
// environment, and waits until it answers /healthz. Its output goes to a log file.
func serve(t *testing.T, data string, env ...string) *proc {
	t.Helper()
	logPath := filepath.Join(filepath.Dir(data), "serve-"+strconv.FormatInt(
		time.Now().UnixNano(), 36)+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	addrFile := filepath.Join(data, "listen-address")
	_ = os.Remove(addrFile)
	cmd := exec.Command(binary(t), "serve", "--listen", "127.0.0.1:0", "--data-dir", data,
		"--bcrypt-cost", "4", "--unsafe-fast-storage")
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, logPath: logPath, data: data}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			_ = cmd.Wait()
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		b, err := os.ReadFile(addrFile)
		if err == nil {
			addr := strings.TrimSpace(string(b))
			resp, err := http.Get("http://" + addr + "/healthz")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					key, err := os.ReadFile(filepath.Join(data, "api-key"))
					if err != nil {
						t.Fatal(err)
					}
					p.srv = &testserver.Server{URL: "http://" + addr,
						APIKey: strings.TrimSpace(string(key)),
						Client: &http.Client{Timeout: 60 * time.Second}}
					return p
				}
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("serve did not become ready:\n%s", p.log(t))
	return nil
}

// stop sends SIGTERM and waits for a clean exit.
func (p *proc) stop(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve exited with %v:\n%s", err, p.log(t))
		}
	case <-time.After(60 * time.Second):
		t.Fatal("serve did not stop within 60 s of SIGTERM")
	}
}

func (p *proc) log(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// adminPasswords reads the administrator passwords of branch servers from their clusters.
func adminPasswords(t *testing.T, data string, x *issued) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for _, b := range []string{x.BranchID, x.ChildBranchID, "metadata"} {
		pw, err := os.ReadFile(filepath.Join(data, "pg", b, "superuser.password"))
		if err != nil {
			t.Fatal(err)
		}
		out["administrator password of "+b] = bytes.TrimSpace(pw)
	}
	return out
}

// TestLogHasNoSecrets runs the real binary at debug level with the master key in
// NEONAUTH_MASTER_KEY, issues and uses a secret of every kind through HTTP, stops it and
// looks for every secret in its log: none may appear. The PostgreSQL servers it starts must
// not inherit the master key either.
func TestLogHasNoSecrets(t *testing.T) {
	data := tempRoot(t)
	key := newKey(t)
	p := serve(t, data, "NEONAUTH_LOG_LEVEL=debug", "NEONAUTH_MASTER_KEY="+key)
	x := issue(t, p.srv)
	secrets := x.asBytes()
	for n, v := range adminPasswords(t, data, x) {
		secrets[n] = v
	}
	secrets["master key"] = rawKey(t, key)
	if _, err := os.Stat(filepath.Join(data, "master-key")); err == nil {
		t.Error("a master key file was made although NEONAUTH_MASTER_KEY is set")
	}
	pid, err := os.ReadFile(filepath.Join(data, "pg", "metadata", "pgdata", "postmaster.pid"))
	if err != nil {
		t.Fatal(err)
	}
	environ, err := os.ReadFile("/proc/" + strings.SplitN(string(pid), "\n", 2)[0] + "/environ")
	if err != nil {
		t.Fatalf("environment of the metadata postmaster: %v", err)
	}
	if bytes.Contains(environ, []byte("NEONAUTH_MASTER_KEY")) {
		t.Error("the metadata PostgreSQL server inherited NEONAUTH_MASTER_KEY")
	}
	for n, v := range rejected(t, p.srv, x) {
		secrets[n] = v
	}
	p.stop(t)

	log := p.log(t)
	for _, want := range []string{"level=DEBUG", "msg=request",
		"path=/api/v1/auth/password/sign-up", "path=/api/v2/projects/auth/transfer_ownership"} {
		if !bytes.Contains(log, []byte(want)) {
			t.Fatalf("the log lacks %q: was it at debug level?\n%s", want, log)
		}
	}
	absent(t, "the service log", log, secrets)
	t.Logf("log: %d bytes", len(log))
}

// TestMasterKeyRotation rotates the master key of the file with `neonauth master-key
// rotate`: refused while the service runs, done once it is stopped; after a restart
// everything works and the file holds only the new key.
func TestMasterKeyRotation(t *testing.T) {
	data := tempRoot(t)
	p := serve(t, data)
	x := issue(t, p.srv)
	keyFile := filepath.Join(data, "master-key")
	st, err := os.Stat(keyFile)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("master key file: %v %v", err, st)
	}
	old := masterKeys(t, keyFile)
	if len(old) != 1 {
		t.Fatalf("%d keys in a new master key file, want 1", len(old))
	}

	rotate := func() ([]byte, error) {
		cmd := exec.Command(binary(t), "master-key", "rotate", "--data-dir", data)
		return cmd.CombinedOutput()
	}
	out, err := rotate()
	if err == nil || !strings.Contains(string(out), "stop it") {
		t.Fatalf("rotate while the service runs: %v\n%s", err, out)
	}
	if got := masterKeys(t, keyFile); len(got) != 1 || got[0] != old[0] {
		t.Fatal("a refused rotation changed the master key file")
	}
	p.stop(t)

	out, err = rotate()
	if err != nil || !strings.Contains(string(out), "master key rotated") {
		t.Fatalf("rotate: %v\n%s", err, out)
	}
	t.Logf("rotate: %s", bytes.TrimSpace(out))
	keys := masterKeys(t, keyFile)
	if len(keys) != 1 || keys[0] == old[0] {
		t.Fatalf("master key file after rotation: %d keys, old key kept: %v", len(keys),
			len(keys) > 0 && keys[0] == old[0])
	}
	raw, _ := os.ReadFile(keyFile)
	if strings.Contains(string(raw), old[0]) {
		t.Fatal("the old master key is still in the file")
	}
	if st, err := os.Stat(keyFile); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("master key file after rotation: %v %v", err, st)
	}

	p = serve(t, data)
	verifyAgain(t, p.srv, x)
	p.stop(t)
}

// rejected sends made-up secrets of each kind, which the service refuses, and returns them:
// an error path must not log what it refused either.
func rejected(t *testing.T, s *testserver.Server, x *issued) map[string][]byte {
	t.Helper()
	fake := func(prefix string) string { return prefix + newKey(t)[:40] }
	out := map[string][]byte{}
	apiKey := fake("")
	r := s.Do(t, "GET", "/api/v2/projects", nil, "Authorization", "Bearer "+apiKey)
	want(t, "a made-up API key", r, http.StatusUnauthorized)
	out["made-up API key"] = []byte(apiKey)

	in := x.Integration
	in.SecretKey = fake("ssk_")
	r = s.Stack(t, in, "server", "GET", "/users", nil)
	if r.Status < 400 {
		t.Fatalf("a made-up secret server key: %d", r.Status)
	}
	out["made-up secret server key"] = []byte(in.SecretKey)

	refresh := fake("")
	r = s.Stack(t, x.Integration, "client", "POST", "/auth/sessions/current/refresh", nil,
		"x-stack-refresh-token", refresh)
	if r.Status < 400 {
		t.Fatalf("a made-up refresh token: %d", r.Status)
	}
	out["made-up refresh token"] = []byte(refresh)

	access := x.secrets["access token"]
	forged := access[:len(access)-10] + "AAAAAAAAAA"
	r = s.Stack(t, x.Integration, "client", "GET", "/users/me", nil,
		"x-stack-access-token", forged)
	if r.Status < 400 {
		t.Fatalf("a forged access token: %d", r.Status)
	}
	out["forged access token"] = []byte(forged)

	code := fake("")
	r = s.Do(t, "POST", "/api/v1/integrations/neon/projects/transfer/confirm/check",
		map[string]string{"code": code}, "x-stack-project-id", "internal",
		"x-stack-access-type", "client", "Content-Type", "application/json")
	if r.Status < 400 {
		t.Fatalf("a made-up transfer code: %d", r.Status)
	}
	out["made-up transfer code"] = []byte(code)

	r = s.Stack(t, x.Integration, "client", "POST", "/auth/password/sign-in",
		map[string]string{"email": x.Email, "password": "a wrong password 12345"})
	if r.Status < 400 {
		t.Fatalf("a wrong password: %d", r.Status)
	}
	out["wrong user password"] = []byte("a wrong password 12345")
	return out
}
