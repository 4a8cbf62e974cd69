package server_test

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/neonauth/neonauth/internal/server"
	"github.com/neonauth/neonauth/internal/testserver"
)

// TestSlowHeadersCutOff checks that a client that never finishes its headers (a slow loris,
// sending a header line now and then to look alive) is disconnected once ReadHeaderTimeout
// has passed, while a prompt request on another connection is served.
func TestSlowHeadersCutOff(t *testing.T) {
	const timeout = 500 * time.Millisecond
	s := testserver.Start(t, func(c *server.Config) { c.ReadHeaderTimeout = timeout })
	addr := strings.TrimPrefix(s.URL, "http://")

	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer conn.Close()
	start := time.Now()
	if _, err := io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: "+addr+"\r\n"); err != nil {
		t.Fatalf("write request line: %v", err)
	}
	closed := make(chan error, 1)
	go func() {
		_, err := conn.Read(make([]byte, 1))
		closed <- err
	}()
	// Keep trickling header lines well past the timeout; the deadline is for the whole
	// header block, so they must not keep the connection open.
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	limit := time.After(8 * timeout)
	for i := 0; ; i++ {
		select {
		case err := <-closed:
			took := time.Since(start)
			if !errors.Is(err, io.EOF) && !isReset(err) {
				t.Fatalf("connection ended with %v, want it closed by the server", err)
			}
			if took < timeout {
				t.Fatalf("cut off after %v, before the %v timeout", took, timeout)
			}
			checkPrompt(t, s)
			return
		case <-tick.C:
			// Writes may start failing once the server has closed the connection.
			_, _ = io.WriteString(conn, "X-Slow: "+strings.Repeat("a", i%10)+"\r\n")
		case <-limit:
			t.Fatalf("a client still sending headers after %v was not disconnected",
				time.Since(start))
		}
	}
}

func isReset(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && strings.Contains(op.Err.Error(), "reset")
}

// checkPrompt sends a complete request on a fresh connection and wants it answered.
func checkPrompt(t *testing.T, s *testserver.Server) {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(s.URL, "http://"))
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: x\r\n"+
		"Connection: close\r\n\r\n"); err != nil {
		t.Fatalf("write: %v", err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("prompt request: status %d", resp.StatusCode)
	}
}
