package usersync_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/neonauth/neonauth/internal/compute"
	"github.com/neonauth/neonauth/internal/testserver"
)

// The process-level tests run the real neonauth binary, kill it, start it again and run two
// of it on one metadata database. This file holds what they share: the binary, a process, the
// PostgreSQL servers of a data directory, and an HTTP client that reports connection errors
// instead of failing the test, so that a goroutine can retry while a process is down.

var (
	binDir    string // removed after the tests
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// TestMain gives the process tests a directory for the binary, and removes it afterwards.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "neonauth-usersync-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "create binary directory:", err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// neonauthBinary builds cmd/neonauth once for all the tests that run it.
func neonauthBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		binPath = filepath.Join(binDir, "neonauth")
		cmd := exec.Command("go", "build", "-o", binPath,
			"github.com/neonauth/neonauth/cmd/neonauth")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("build neonauth: %w\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// pgBin is the directory of the PostgreSQL binaries the service uses.
func pgBin(t *testing.T) string {
	t.Helper()
	bin, err := compute.FindBinaries(os.Getenv("NEONAUTH_PG_BIN"))
	if err != nil {
		t.Fatalf("find PostgreSQL binaries: %v", err)
	}
	return bin
}

// newDataDir returns a data directory for a service process. When the test ends, after its
// processes are stopped, every PostgreSQL server still running in it is stopped too: a
// killed service leaves its servers running.
func newDataDir(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	if err := os.Chmod(root, 0o711); err != nil {
		t.Fatalf("chmod temp dir: %v", err)
	}
	dir := filepath.Join(root, "data")
	t.Cleanup(func() { stopServers(t, dir) })
	return dir
}

// stopServers stops the PostgreSQL servers that run in a data directory.
func stopServers(t *testing.T, dataDir string) {
	root := filepath.Join(dataDir, "pg")
	entries, err := os.ReadDir(root)
	if err != nil {
		return // no server was ever created
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	m, err := compute.NewManager(pgBin(t), root, log)
	if err != nil {
		t.Errorf("compute manager for cleanup: %v", err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, e := range entries {
		cl, err := m.Open(e.Name())
		if err != nil || !m.Running(cl) {
			continue
		}
		if err := m.Stop(ctx, cl); err != nil {
			t.Errorf("stop server %s: %v", e.Name(), err)
		}
	}
}

// proc is a running `neonauth serve`.
type proc struct {
	t       *testing.T
	name    string
	dataDir string
	logPath string
	addr    string
	cmd     *exec.Cmd
	done    chan struct{} // closed when the process has exited
}

// procEnv is the environment added to a service process's: the management API's rate
// limits are off, since the tests send bursts of requests on purpose.
var procEnv = []string{"NEONAUTH_RATE_ACCOUNT_PER_MINUTE=0", "NEONAUTH_RATE_ROUTE_BURST=0"}

// startProc starts `neonauth serve` on a free loopback port with the data directory and
// extra flags, and waits until it answers /healthz. It is stopped when the test ends.
func startProc(t *testing.T, name, dataDir string, extra ...string) *proc {
	t.Helper()
	return startProcEnv(t, name, dataDir, nil, extra...)
}

// startProcEnv is startProc with extra environment variables (NAME=value).
func startProcEnv(t *testing.T, name, dataDir string, env []string, extra ...string) *proc {
	t.Helper()
	bin := neonauthBinary(t)
	logPath := filepath.Join(filepath.Dir(dataDir), name+".log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatalf("open process log: %v", err)
	}
	addrFile := filepath.Join(dataDir, "listen-address")
	_ = os.Remove(addrFile)
	args := append([]string{"serve", "--listen", "127.0.0.1:0", "--data-dir", dataDir,
		"--bcrypt-cost", "4", "--unsafe-fast-storage", "--db-max-conns", "8"}, extra...)
	cmd := exec.Command(bin, args...)
	cmd.Env = append(append(os.Environ(), procEnv...), env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	p := &proc{t: t, name: name, dataDir: dataDir, logPath: logPath, cmd: cmd,
		done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("log of %s (end):\n%s", name, tail(logPath, 6000))
		}
	})
	deadline := time.Now().Add(90 * time.Second)
	for {
		select {
		case <-p.done:
			t.Fatalf("%s exited before it was ready:\n%s", name, tail(logPath, 6000))
		default:
		}
		if b, err := os.ReadFile(addrFile); err == nil {
			p.addr = strings.TrimSpace(string(b))
			if healthy(p.addr) {
				return p
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready within 90 s:\n%s", name, tail(logPath, 6000))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// healthy reports whether the service at addr answers /healthz with 200.
func healthy(addr string) bool {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + addr + "/healthz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// tail returns the last n bytes of a file.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// running reports whether the process has not exited.
func (p *proc) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// kill SIGKILLs the process and waits until it is gone. Its PostgreSQL servers keep running.
func (p *proc) kill() {
	p.t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil && p.running() {
		p.t.Fatalf("kill %s: %v", p.name, err)
	}
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		p.t.Fatalf("%s did not exit within 30 s of SIGKILL", p.name)
	}
}

// stop ends the process gracefully (SIGTERM), killing it after 60 s.
func (p *proc) stop() {
	if !p.running() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(60 * time.Second):
		p.t.Errorf("%s did not stop within 60 s of SIGTERM; killing it", p.name)
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
		<-p.done
	}
}

// apiKey reads the admin key the first start wrote into the data directory.
func apiKey(t *testing.T, dataDir string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dataDir, "api-key"))
	if err != nil {
		t.Fatalf("read api key: %v", err)
	}
	return strings.TrimSpace(string(b))
}

// server is the testserver view of a process, for calls from the test goroutine that fail
// the test on any error.
func (p *proc) server(key string) *testserver.Server {
	return &testserver.Server{URL: "http://" + p.addr, APIKey: key,
		Client: &http.Client{Timeout: 60 * time.Second}}
}

// clusterURI is the superuser URI of a managed server of a data directory ("metadata" or a
// branch id), read from its files, so that it follows a server that moved to another port.
func clusterURI(t *testing.T, dataDir, cluster, database string) string {
	t.Helper()
	dir := filepath.Join(dataDir, "pg", cluster)
	pw, err := os.ReadFile(filepath.Join(dir, "superuser.password"))
	if err != nil {
		t.Fatalf("read password of %s: %v", cluster, err)
	}
	return fmt.Sprintf("postgres://postgres:%s@127.0.0.1:%d/%s?sslmode=disable",
		strings.TrimSpace(string(pw)), clusterPort(t, dataDir, cluster), database)
}

// clusterPort is the port a managed server last started on.
func clusterPort(t *testing.T, dataDir, cluster string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dataDir, "pg", cluster, "port"))
	if err != nil {
		t.Fatalf("read port of %s: %v", cluster, err)
	}
	port, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("port of %s: %v", cluster, err)
	}
	return port
}

// openPool opens a pool closed when the test ends.
func openPool(t *testing.T, uri string) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(uri)
	if err != nil {
		t.Fatalf("parse database uri: %v", err)
	}
	cfg.MaxConns = 4
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatalf("open pool: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// pgCtl runs pg_ctl as the postgres user on a managed server of a data directory.
func pgCtl(t *testing.T, dataDir, cluster string, args ...string) {
	t.Helper()
	dir := filepath.Join(dataDir, "pg", cluster)
	full := append([]string{"-u", "postgres", "--", filepath.Join(pgBin(t), "pg_ctl"),
		"-D", filepath.Join(dir, "pgdata")}, args...)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "runuser", full...).CombinedOutput()
	if err != nil {
		t.Fatalf("pg_ctl %v: %v\n%s\nserver log:\n%s", args, err, out,
			tail(filepath.Join(dir, "postgres.log"), 3000))
	}
}

// stopCluster stops a managed server behind the service's back.
func stopCluster(t *testing.T, dataDir, cluster string) {
	t.Helper()
	pgCtl(t, dataDir, cluster, "-m", "fast", "-w", "stop")
}

// startCluster starts a managed server again on the port it had.
func startCluster(t *testing.T, dataDir, cluster string) {
	t.Helper()
	port := clusterPort(t, dataDir, cluster)
	pgCtl(t, dataDir, cluster, "-o", "-p "+strconv.Itoa(port), "-l",
		filepath.Join(dataDir, "pg", cluster, "postgres.log"), "-w", "start")
}

// postmasterUp reports whether a managed server of a data directory runs.
func postmasterUp(dataDir, cluster string) bool {
	b, err := os.ReadFile(filepath.Join(dataDir, "pg", cluster, "pgdata", "postmaster.pid"))
	if err != nil {
		return false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0]))
	if err != nil || pid <= 0 {
		return false
	}
	return syscall.Kill(pid, 0) == nil
}

// errConn marks a request that did not get an answer: the process is down or was killed
// while answering. Such a request may or may not have taken effect.
var errConn = errors.New("no answer")

// client calls a service that may be down for a while, or that moves to another address
// when it is started again.
type client struct {
	key       string
	projectID string
	in        testserver.Integration
	addr      atomic.Pointer[string]
	http      *http.Client
}

func newClient(key, projectID string, in testserver.Integration, addr string) *client {
	c := &client{key: key, projectID: projectID, in: in,
		http: &http.Client{Timeout: 30 * time.Second}}
	c.setAddr(addr)
	return c
}

// setAddr points the client at a (restarted) service.
func (c *client) setAddr(addr string) { c.addr.Store(&addr) }

// do sends one request. A transport error is returned wrapping errConn.
func (c *client) do(ctx context.Context, method, path string, body any,
	headers ...string) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		js, err := json.Marshal(body)
		if err != nil {
			return 0, nil, fmt.Errorf("encode body: %w", err)
		}
		rd = bytes.NewReader(js)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://"+*c.addr.Load()+path, rd)
	if err != nil {
		return 0, nil, fmt.Errorf("new request: %w", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("%s %s: %w: %w", method, path, errConn, err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, fmt.Errorf("%s %s: read answer: %w: %w", method, path, errConn, err)
	}
	return resp.StatusCode, out, nil
}

// stack sends a provider API request with server access.
func (c *client) stack(ctx context.Context, method, path string, body any) (int, []byte, error) {
	return c.do(ctx, method, "/api/v1"+path, body, "x-stack-project-id", c.in.AuthProjectID,
		"x-stack-access-type", "server", "x-stack-secret-server-key", c.in.SecretKey)
}

// neon sends a management API request with the admin key.
func (c *client) neon(ctx context.Context, method, path string, body any) (int, []byte, error) {
	return c.do(ctx, method, "/api/v2"+path, body, "Authorization", "Bearer "+c.key)
}

// retry repeats a request while it gets no answer or a 5xx (the service is restarting, or
// lost its metadata connection), for at most a minute, and returns the first real answer.
func retry(ctx context.Context, send func() (int, []byte, error)) (int, []byte, error) {
	deadline := time.Now().Add(time.Minute)
	for {
		status, body, err := send()
		if err == nil && status < 500 {
			return status, body, nil
		}
		if err != nil && !errors.Is(err, errConn) {
			return 0, nil, err
		}
		if time.Now().After(deadline) {
			return status, body, fmt.Errorf("no answer within a minute: %d %s %v",
				status, body, err)
		}
		select {
		case <-ctx.Done():
			return 0, nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// userID decodes the id of a user from an answer.
func userID(body []byte) (string, error) {
	var u struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(body, &u); err != nil || u.ID == "" {
		return "", fmt.Errorf("no user id in %s (%v)", body, err)
	}
	return u.ID, nil
}

// serverJSON fetches a live user's server JSON, the raw_json its users_sync row must hold.
func (c *client) serverJSON(ctx context.Context, id string) (json.RawMessage, error) {
	status, body, err := retry(ctx, func() (int, []byte, error) {
		return c.stack(ctx, "GET", "/users/"+id, nil)
	})
	if err != nil {
		return nil, err
	}
	if status != http.StatusOK {
		return nil, fmt.Errorf("get user %s: %d %s", id, status, body)
	}
	return body, nil
}

// expectedRaw returns the raw_json every user of the auth project must have in users_sync:
// a live user's server JSON as GET /api/v1/users/{id} returns it now, and a deleted user's
// last server JSON as recorded in deleted (fetched just before the delete). It fetches with
// a few requests at a time.
func (c *client) expectedRaw(ctx context.Context, meta *pgxpool.Pool,
	deleted map[string]json.RawMessage) (map[string]json.RawMessage, error) {
	users, err := authRows(ctx, meta, c.in.AuthProjectID)
	if err != nil {
		return nil, err
	}
	out := map[string]json.RawMessage{}
	var (
		mu    sync.Mutex
		wg    sync.WaitGroup
		first error
		slots = make(chan struct{}, 8)
	)
	for id, u := range users {
		if u.DeletedAt != nil {
			raw, ok := deleted[id]
			if !ok {
				return nil, fmt.Errorf("deleted user %s: its last JSON was not recorded", id)
			}
			mu.Lock()
			out[id] = raw
			mu.Unlock()
			continue
		}
		slots <- struct{}{}
		wg.Go(func() {
			defer func() { <-slots }()
			raw, err := c.serverJSON(ctx, id)
			mu.Lock()
			defer mu.Unlock()
			if err != nil && first == nil {
				first = err
			}
			out[id] = raw
		})
	}
	wg.Wait()
	return out, first
}

// syncStatus reads an integration's sync status through the management API.
func (c *client) syncStatus(ctx context.Context, projectID string) (map[string]any, error) {
	status, body, err := c.neon(ctx, "GET", "/projects/"+projectID+"/auth/sync_status", nil)
	if err != nil {
		return nil, err
	}
	if status != http.StatusOK {
		return nil, fmt.Errorf("sync status: %d %s", status, body)
	}
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, fmt.Errorf("sync status: %w: %s", err, body)
	}
	return m, nil
}

// metric reads one sample of the service's /metrics: the value of name for the auth
// project (the sum over the other labels); ok is false when there is no such series.
func (c *client) metric(ctx context.Context, name, authProjectID string) (float64, bool, error) {
	status, body, err := c.do(ctx, "GET", "/metrics", nil)
	if err != nil {
		return 0, false, err
	}
	if status != http.StatusOK {
		return 0, false, fmt.Errorf("metrics: %d", status)
	}
	return sample(body, name, `auth_project_id="`+authProjectID+`"`)
}

// sample finds a metric in the Prometheus text format and returns the sum of its series
// that have all the labels given (each as name="value"); ok is false when none has.
func sample(text []byte, name string, labels ...string) (float64, bool, error) {
	var sum float64
	found := false
	for line := range strings.SplitSeq(string(text), "\n") {
		if !strings.HasPrefix(line, name+"{") {
			continue
		}
		match := true
		for _, l := range labels {
			match = match && strings.Contains(line, l)
		}
		if !match {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			return 0, false, fmt.Errorf("metric line %q: %w", line, err)
		}
		sum += v
		found = true
	}
	return sum, found, nil
}
