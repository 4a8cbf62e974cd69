package neonauth_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/neonauth/neonauth/internal/neonauth"
	"github.com/neonauth/neonauth/internal/testserver"
)

// clock lets a test move the transfer clock of a running service. It is installed before
// the first request, so the service only ever reads it through an atomic.
type clock struct{ offset atomic.Int64 }

func installClock(t *testing.T, s *testserver.Server) *clock {
	c := &clock{}
	s.Env.Auth.Now = func() time.Time { return time.Now().Add(time.Duration(c.offset.Load())) }
	t.Cleanup(func() { s.Env.Auth.Now = nil })
	return c
}

func (c *clock) advance(d time.Duration) { c.offset.Add(int64(d)) }

// internalHeaders are client access to the internal project, as the dashboard sends them.
func internalHeaders(accessToken string) []string {
	h := []string{"x-stack-project-id", "internal", "x-stack-access-type", "client",
		"Content-Type", "application/json"}
	if accessToken != "" {
		h = append(h, "x-stack-access-token", accessToken)
	}
	return h
}

// signUpOwner creates a user of the internal project and returns its access token.
func signUpOwner(t *testing.T, s *testserver.Server, email string) string {
	t.Helper()
	r := s.Do(t, "POST", "/api/v1/auth/password/sign-up",
		map[string]string{"email": email, "password": "correct horse battery"},
		internalHeaders("")...)
	if r.Status != http.StatusOK {
		t.Fatalf("sign up %s: %d %s", email, r.Status, r.Body)
	}
	tok, _ := r.JSON(t)["access_token"].(string)
	if tok == "" {
		t.Fatalf("sign up %s: no access token: %s", email, r.Body)
	}
	return tok
}

// requestTransfer asks the management API for a transfer URL and returns its code.
func requestTransfer(t *testing.T, s *testserver.Server, projectID string) string {
	t.Helper()
	r := s.Neon(t, "POST", "/projects/auth/transfer_ownership",
		map[string]string{"project_id": projectID, "auth_provider": "stack"})
	if r.Status != http.StatusOK {
		t.Fatalf("transfer_ownership %s: %d %s", projectID, r.Status, r.Body)
	}
	raw, _ := r.JSON(t)["url"].(string)
	shape := regexp.MustCompile(`^` + regexp.QuoteMeta(s.URL+neonauth.TransferPath) +
		`\?code=([a-z0-9]{45})$`)
	m := shape.FindStringSubmatch(raw)
	if m == nil {
		t.Fatalf("transfer url %q does not have the form %s", raw, shape)
	}
	return m[1]
}

const (
	checkPath   = "/api/v1/integrations/neon/projects/transfer/confirm/check"
	confirmPath = "/api/v1/integrations/neon/projects/transfer/confirm"
)

func codeCall(t *testing.T, s *testserver.Server, path, code, token string) testserver.Response {
	t.Helper()
	return s.Do(t, "POST", path, map[string]string{"code": code}, internalHeaders(token)...)
}

// wantKnown checks a Stack known error: status, code in the body and in the header.
func wantKnown(t *testing.T, step string, r testserver.Response, status int, code string) {
	t.Helper()
	if r.Status != status {
		t.Fatalf("%s: status %d, want %d: %s", step, r.Status, status, r.Body)
	}
	if got, _ := r.JSON(t)["code"].(string); got != code {
		t.Errorf("%s: code %q, want %q: %s", step, got, code, r.Body)
	}
	if got := r.Header.Get("x-stack-known-error"); got != code {
		t.Errorf("%s: x-stack-known-error %q, want %q", step, got, code)
	}
}

// wantPlain400 checks Stack's plain-text refusal of a project that is not Neon-managed.
func wantPlain400(t *testing.T, step string, r testserver.Response) {
	t.Helper()
	if r.Status != http.StatusBadRequest {
		t.Fatalf("%s: status %d, want 400: %s", step, r.Status, r.Body)
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("%s: content type %q, want text/plain: %s", step, ct, r.Body)
	}
	if !strings.Contains(string(r.Body), "transferred") {
		t.Errorf("%s: body %q does not say the project was transferred", step, r.Body)
	}
}

func wantValid(t *testing.T, step string, r testserver.Response) {
	t.Helper()
	if r.Status != http.StatusOK {
		t.Fatalf("%s: status %d, want 200: %s", step, r.Status, r.Body)
	}
	if v, _ := r.JSON(t)["is_code_valid"].(bool); !v {
		t.Fatalf("%s: body %s, want is_code_valid true", step, r.Body)
	}
}

type integrationState struct {
	OwnedBy        string  `json:"owned_by"`
	TransferStatus *string `json:"transfer_status"`
}

// integration returns the stack integration of a project as the management API lists it.
func integration(t *testing.T, s *testserver.Server, projectID string) integrationState {
	t.Helper()
	r := s.Neon(t, "GET", "/projects/"+projectID+"/auth/integrations", nil)
	if r.Status != http.StatusOK {
		t.Fatalf("list integrations: %d %s", r.Status, r.Body)
	}
	var out struct {
		Data []integrationState `json:"data"`
	}
	if err := json.Unmarshal(r.Body, &out); err != nil || len(out.Data) != 1 {
		t.Fatalf("list integrations: %v: %s", err, r.Body)
	}
	return out.Data[0]
}

func status(st integrationState) string {
	if st.TransferStatus == nil {
		return "<absent>"
	}
	return *st.TransferStatus
}

// TestB29TransferCodeSingleUse follows case B29: a transfer code works once and only within
// its hour, and a project leaves Neon management only once.
func TestB29TransferCodeSingleUse(t *testing.T) {
	s := testserver.Start(t)
	clk := installClock(t, s)
	alpha := s.CreateProject(t, "np-alpha")
	ia := s.CreateIntegration(t, alpha)
	beta := s.CreateProject(t, "np-beta")
	s.CreateIntegration(t, beta)
	u1 := signUpOwner(t, s, "user@example.com")

	c := requestTransfer(t, s, alpha.ID)      // step 1
	cPrime := requestTransfer(t, s, alpha.ID) // step 2
	if c == cPrime {
		t.Fatalf("two transfer requests gave the same code")
	}
	wantValid(t, "step 3: check C", codeCall(t, s, checkPath, c, ""))
	wantValid(t, "check C in upper case", codeCall(t, s, checkPath, strings.ToUpper(c), ""))

	r := codeCall(t, s, confirmPath, c, "")
	wantKnown(t, "confirm without a user", r, http.StatusUnauthorized,
		"USER_AUTHENTICATION_REQUIRED")

	r = codeCall(t, s, confirmPath, strings.ToUpper(c), u1) // step 4, in another letter case
	if r.Status != http.StatusOK {
		t.Fatalf("step 4: confirm C: %d %s", r.Status, r.Body)
	}
	if got, _ := r.JSON(t)["project_id"].(string); got != ia.AuthProjectID {
		t.Errorf("step 4: project_id %q, want %q", got, ia.AuthProjectID)
	}
	wantKnown(t, "step 5: confirm C again", codeCall(t, s, confirmPath, c, u1),
		http.StatusConflict, "VERIFICATION_CODE_ALREADY_USED")
	wantKnown(t, "check the used C", codeCall(t, s, checkPath, c, ""),
		http.StatusConflict, "VERIFICATION_CODE_ALREADY_USED")
	wantPlain400(t, "step 6: confirm C′", codeCall(t, s, confirmPath, cPrime, u1))

	r = s.Neon(t, "POST", "/projects/auth/transfer_ownership",
		map[string]string{"project_id": alpha.ID, "auth_provider": "stack"})
	if r.Status != http.StatusBadRequest {
		t.Errorf("step 7: transfer again: %d, want 400: %s", r.Status, r.Body)
	}

	c2 := requestTransfer(t, s, beta.ID) // step 8
	clk.advance(61 * time.Minute)
	wantKnown(t, "step 8: confirm the expired C2", codeCall(t, s, confirmPath, c2, u1),
		http.StatusBadRequest, "VERIFICATION_CODE_EXPIRED")
	wantKnown(t, "check the expired C2", codeCall(t, s, checkPath, c2, ""),
		http.StatusBadRequest, "VERIFICATION_CODE_EXPIRED")
	clk.advance(-61 * time.Minute)

	random := strings.Repeat("a", 45) // step 9
	wantKnown(t, "step 9: confirm a random code", codeCall(t, s, confirmPath, random, u1),
		http.StatusNotFound, "VERIFICATION_CODE_NOT_FOUND")
	wantKnown(t, "check a random code", codeCall(t, s, checkPath, random, ""),
		http.StatusNotFound, "VERIFICATION_CODE_NOT_FOUND")

	if st := integration(t, s, alpha.ID); st.OwnedBy != "user" || status(st) != "finished" {
		t.Errorf("np-alpha after the transfer: owned_by %q, transfer_status %s; want user, "+
			"finished", st.OwnedBy, status(st))
	}
	if st := integration(t, s, beta.ID); st.OwnedBy != "neon" || status(st) == "finished" {
		t.Errorf("np-beta after an expired code: owned_by %q, transfer_status %s; want neon, "+
			"not finished", st.OwnedBy, status(st))
	}
	checkUserSyncs(t, s, alpha)
}

// checkUserSyncs creates a user through the management API and waits for it to appear in
// the project's neon_auth.users_sync.
func checkUserSyncs(t *testing.T, s *testserver.Server, p testserver.Project) {
	t.Helper()
	r := s.Neon(t, "POST", "/projects/auth/user", map[string]string{"project_id": p.ID,
		"auth_provider": "stack", "email": "after-transfer@example.com", "name": "After"})
	if r.Status != http.StatusCreated {
		t.Fatalf("create user after the transfer: %d %s", r.Status, r.Body)
	}
	id, _ := r.JSON(t)["id"].(string)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, p.ConnectionURI)
	if err != nil {
		t.Fatalf("connect to the project database: %v", err)
	}
	defer conn.Close(ctx)
	for {
		var email string
		err := conn.QueryRow(ctx, "SELECT email FROM neon_auth.users_sync WHERE id = $1",
			id).Scan(&email)
		if err == nil {
			if email != "after-transfer@example.com" {
				t.Errorf("users_sync email %q, want after-transfer@example.com", email)
			}
			return
		}
		if err != pgx.ErrNoRows {
			t.Fatalf("read users_sync: %v", err)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("user %s did not reach users_sync after the transfer", id)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// TestTransferCodes runs more instances of B29 on one service.
func TestTransferCodes(t *testing.T) {
	s := testserver.Start(t)
	t.Run("MaxAttempts", func(t *testing.T) { testMaxAttempts(t, s) })
	t.Run("ConfirmRace", func(t *testing.T) { testConfirmRace(t, s) })
}

// testMaxAttempts checks that a code allows 20 attempts, counted across checks and letter
// cases, and that the 21st is refused even for a confirmation.
func testMaxAttempts(t *testing.T, s *testserver.Server) {
	p := s.CreateProject(t, "np-attempts")
	s.CreateIntegration(t, p)
	u1 := signUpOwner(t, s, "attempts@example.com")
	c := requestTransfer(t, s, p.ID)
	for i := 1; i <= 20; i++ {
		code := c
		if i%2 == 0 {
			code = strings.ToUpper(c)
		}
		wantValid(t, fmt.Sprintf("check %d", i), codeCall(t, s, checkPath, code, ""))
	}
	wantKnown(t, "check 21", codeCall(t, s, checkPath, c, ""),
		http.StatusBadRequest, "VERIFICATION_CODE_MAX_ATTEMPTS_REACHED")
	wantKnown(t, "confirm after 21 checks", codeCall(t, s, confirmPath, c, u1),
		http.StatusBadRequest, "VERIFICATION_CODE_MAX_ATTEMPTS_REACHED")
	if st := integration(t, s, p.ID); st.OwnedBy != "neon" {
		t.Errorf("owned_by %q after a refused confirmation, want neon", st.OwnedBy)
	}
	// A fresh code for the same project still works: the limit is per code.
	c2 := requestTransfer(t, s, p.ID)
	if r := codeCall(t, s, confirmPath, c2, u1); r.Status != http.StatusOK {
		t.Fatalf("confirm a fresh code: %d %s", r.Status, r.Body)
	}
}

// testConfirmRace confirms several outstanding codes of one project at once, some of them
// twice, as different owners: exactly one confirmation may win.
func testConfirmRace(t *testing.T, s *testserver.Server) {
	p := s.CreateProject(t, "np-race")
	s.CreateIntegration(t, p)
	var codes []string
	for range 5 {
		codes = append(codes, requestTransfer(t, s, p.ID))
	}
	type attempt struct{ code, token string }
	var tries []attempt
	for i := range 8 {
		tok := signUpOwner(t, s, fmt.Sprintf("racer%d@example.com", i))
		tries = append(tries, attempt{codes[i%len(codes)], tok})
	}
	statuses := make([]int, len(tries))
	var wg sync.WaitGroup
	for i, a := range tries {
		wg.Go(func() { statuses[i] = postCode(t, s.URL+confirmPath, a.code, a.token) })
	}
	wg.Wait()
	won := 0
	for i, st := range statuses {
		switch st {
		case http.StatusOK:
			won++
		case http.StatusBadRequest, http.StatusConflict:
		default:
			t.Errorf("confirmation %d: status %d, want 200, 400 or 409", i, st)
		}
	}
	if won != 1 {
		t.Errorf("%d confirmations succeeded, want exactly 1 (statuses %v)", won, statuses)
	}
	if st := integration(t, s, p.ID); st.OwnedBy != "user" || status(st) != "finished" {
		t.Errorf("owned_by %q, transfer_status %s; want user, finished", st.OwnedBy, status(st))
	}
}

// postCode confirms a code from any goroutine; it reports problems with t.Errorf only.
func postCode(t *testing.T, endpoint, code, token string) int {
	body := strings.NewReader(fmt.Sprintf(`{"code":%q}`, code))
	req, err := http.NewRequest("POST", endpoint, body)
	if err != nil {
		t.Errorf("new request: %v", err)
		return 0
	}
	h := internalHeaders(token)
	for i := 0; i+1 < len(h); i += 2 {
		req.Header.Set(h[i], h[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Errorf("confirm: %v", err)
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}
