package stackv1

import (
	"log/slog"
	"net/http"
	"time"

	"github.com/neonauth/neonauth/internal/httpapi"
)

// signInAllowed applies the sign-in rate limits: first the client address's, then the
// email address's (within the project, trimmed and lowercased as stored). Every attempt
// counts, whatever its outcome, so that passwords cannot be tried at speed.
//
// Over a limit the answer is 429 with Retry-After and a plain-text body: a Stack status
// error, not a known error. Stack has no known error for rate limits, the SDK throws on a
// known-error code it does not know ("update your SDK"), and it waits Retry-After seconds
// and retries only a 429 that carries no x-stack-known-error header. Retry-After is added
// to the exposed headers so that the SDK in a browser can read it across origins.
func (a *API) signInAllowed(w http.ResponseWriter, r *http.Request, projectID,
	email string) error {
	ok, wait, which := a.Limits.AllowSignIn(httpapi.ClientAddr(r), projectID, email)
	switch {
	case ok:
		return nil
	case which == "address":
		return a.tooManySignIns(w, r, wait, which, "Too many sign-in attempts from this address")
	default:
		return a.tooManySignIns(w, r, wait, which,
			"Too many sign-in attempts for this email address")
	}
}

func (a *API) tooManySignIns(w http.ResponseWriter, r *http.Request, wait time.Duration,
	which, msg string) error {
	httpapi.AddLog(r.Context(), slog.String("rate_limit", "sign_in_"+which))
	h := w.Header()
	h.Set("Access-Control-Expose-Headers", h.Get("Access-Control-Expose-Headers")+
		", retry-after")
	return httpapi.TooManyRequests(w, wait, "%s", msg)
}
