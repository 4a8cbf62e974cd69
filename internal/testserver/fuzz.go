package testserver

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
)

// fuzzEnvPrefix starts the name of the environment variable through which a fuzz target's
// service is passed to the fuzzing workers.
const fuzzEnvPrefix = "NEONAUTH_FUZZ_SERVICE_"

// ForFuzz gives a fuzz target a running service: it returns the values setup reported about
// it, plus "url" (the base URL) and "api_key" (the first account's admin key).
//
// Under `go test`, and in the process that coordinates `go test -fuzz`, ForFuzz starts the
// service (stopped when the target ends) and runs setup. The fuzzing workers are child
// processes of the coordinator, which kills those that do not exit promptly; a worker that
// started PostgreSQL servers of its own could leave them running. So the coordinator passes
// its service to its workers in the environment, and a worker only reads it there.
func ForFuzz(f *testing.F, setup func(s *Server) map[string]string,
	opts ...Option) map[string]string {
	f.Helper()
	name := fuzzEnvPrefix + strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			return r
		}
		return '_'
	}, f.Name())
	if v := os.Getenv(name); v != "" {
		var vals map[string]string
		if err := json.Unmarshal([]byte(v), &vals); err != nil || vals["url"] == "" {
			f.Fatalf("%s: %v", name, err)
		}
		return vals
	}
	s := Start(stderrLog{f}, opts...)
	vals := map[string]string{}
	if setup != nil {
		vals = setup(s)
	}
	vals["url"], vals["api_key"] = s.URL, s.APIKey
	js, err := json.Marshal(vals)
	if err != nil {
		f.Fatalf("encode fuzz service: %v", err)
	}
	f.Setenv(name, string(js))
	return vals
}

// stderrLog sends the service's log to standard error instead of the fuzz target's log,
// which must not be written while the fuzz function runs (as the service does when it
// logs a failed request).
type stderrLog struct{ testing.TB }

func (l stderrLog) Log(args ...any) { fmt.Fprintln(os.Stderr, args...) }

func (l stderrLog) Logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
}
