package neonv2_test

import (
	"testing"
	"time"

	"github.com/neonauth/neonauth/internal/testserver"
)

func TestProbe(t *testing.T) {
	t0 := time.Now()
	s := testserver.Start(t)
	t.Logf("start %v", time.Since(t0))
	t0 = time.Now()
	p := s.CreateProject(t, "x")
	t.Logf("project %v", time.Since(t0))
	t0 = time.Now()
	in := s.CreateIntegration(t, p)
	t.Logf("integration %v %+v", time.Since(t0), in)
	r := s.Neon(t, "GET", "/projects/", nil)
	t.Logf("%d %v %s", r.Status, r.Header, r.Body)
}
