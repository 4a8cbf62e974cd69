package main_test

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// buildBinary compiles neonauth once for the process-level tests.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "neonauth")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}

type proc struct {
	cmd  *exec.Cmd
	log  *os.File
	addr string
}

// startServe runs `neonauth serve` on a free port and waits until /healthz answers.
func startServe(t *testing.T, bin, dataDir string) *proc {
	t.Helper()
	logf, err := os.Create(filepath.Join(filepath.Dir(dataDir), "serve.log"))
	if err != nil {
		t.Fatal(err)
	}
	_ = os.Remove(filepath.Join(dataDir, "listen-address"))
	cmd := exec.Command(bin, "serve", "--listen", "127.0.0.1:0", "--data-dir", dataDir,
		"--bcrypt-cost", "4", "--unsafe-fast-storage")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, log: logf}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			_ = cmd.Wait()
		}
	})
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		b, err := os.ReadFile(filepath.Join(dataDir, "listen-address"))
		if err == nil {
			p.addr = strings.TrimSpace(string(b))
			resp, err := http.Get("http://" + p.addr + "/healthz")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					return p
				}
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	out, _ := os.ReadFile(logf.Name())
	t.Fatalf("serve did not become ready:\n%s", out)
	return nil
}

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
			out, _ := os.ReadFile(p.log.Name())
			t.Fatalf("serve exited with %v:\n%s", err, out)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("serve did not stop within 60 s of SIGTERM")
	}
}

func postJSON(t *testing.T, url, key string, body string) map[string]any {
	t.Helper()
	req, _ := http.NewRequest("POST", url, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil || resp.StatusCode >= 300 {
		t.Fatalf("POST %s: %d %v %v", url, resp.StatusCode, err, m)
	}
	return m
}

// postmasterRunning reports whether a postmaster holds the data directory.
func postmasterRunning(pgdata string) bool {
	b, err := os.ReadFile(filepath.Join(pgdata, "postmaster.pid"))
	if err != nil {
		return false
	}
	pid := strings.SplitN(string(b), "\n", 2)[0]
	_, err = os.Stat("/proc/" + pid)
	return err == nil
}

// TestServeLifecycle runs the real binary: first start creates the key file (0600), SIGTERM
// stops the service and every PostgreSQL server it started, and a restart brings the
// branch servers back with their data.
func TestServeLifecycle(t *testing.T) {
	bin := buildBinary(t)
	root := t.TempDir()
	if err := os.Chmod(root, 0o711); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(root, "data")
	p := startServe(t, bin, data)

	st, err := os.Stat(filepath.Join(data, "api-key"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("api-key file: %v mode %v", err, st)
	}
	raw, _ := os.ReadFile(filepath.Join(data, "api-key"))
	key := strings.TrimSpace(string(raw))
	logText, _ := os.ReadFile(p.log.Name())
	if strings.Contains(string(logText), key) {
		t.Fatal("the log contains the API key")
	}

	api := "http://" + p.addr + "/api/v2"
	created := postJSON(t, api+"/projects", key, `{"project":{"name":"life"}}`)
	branch := created["branch"].(map[string]any)["id"].(string)
	uri := created["connection_uris"].([]any)[0].(map[string]any)["connection_uri"].(string)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, uri)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "CREATE TABLE kept (v int); INSERT INTO kept VALUES (42)"); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)

	p.stop(t)
	for _, name := range []string{"metadata", branch} {
		if postmasterRunning(filepath.Join(data, "pg", name, "pgdata")) {
			t.Fatalf("PostgreSQL server %s still runs after SIGTERM", name)
		}
	}

	p = startServe(t, bin, data)
	defer p.stop(t)
	req, _ := http.NewRequest("GET", "http://"+p.addr+"/api/v2/projects/"+
		created["project"].(map[string]any)["id"].(string)+"/branches", nil)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("list branches after restart: %v %v", err, resp)
	}
	resp.Body.Close()
	var v int
	conn2, err := pgx.Connect(ctx, uri)
	if err != nil {
		t.Fatalf("branch server after restart: %v", err)
	}
	defer conn2.Close(ctx)
	if err := conn2.QueryRow(ctx, "SELECT v FROM kept").Scan(&v); err != nil || v != 42 {
		t.Fatalf("data after restart: %v %d", err, v)
	}
}

// TestOfflineCommands checks migrate and api-keys create against a data directory.
func TestOfflineCommands(t *testing.T) {
	bin := buildBinary(t)
	root := t.TempDir()
	if err := os.Chmod(root, 0o711); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(root, "data")
	out, err := exec.Command(bin, "migrate", "--data-dir", data).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "migrations applied") {
		t.Fatalf("migrate: %v\n%s", err, out)
	}
	out, err = exec.Command(bin, "api-keys", "create", "--name", "ci", "--data-dir", data).Output()
	key := strings.TrimSpace(string(out))
	if err != nil || !strings.HasPrefix(key, "napi_") || len(key) != 69 {
		t.Fatalf("api-keys create: %v %q", err, out)
	}
	p := startServe(t, bin, data)
	defer p.stop(t)
	req, _ := http.NewRequest("GET", "http://"+p.addr+"/api/v2/api_keys", nil)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("the offline key does not work: %v %v", err, resp)
	}
	var keys []map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&keys)
	resp.Body.Close()
	if len(keys) != 2 {
		t.Fatalf("want the bootstrap key and the offline key, got %v", keys)
	}
	if code := exec.Command(bin, "bogus").Run(); code == nil {
		t.Fatal("an unknown command must fail")
	}
}
