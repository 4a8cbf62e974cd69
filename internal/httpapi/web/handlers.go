package web

import (
	"fmt"
	"net/http"
	"net/url"

	"github.com/neonauth/neonauth/internal/errs"
	"github.com/neonauth/neonauth/internal/httpapi"
	"github.com/neonauth/neonauth/internal/identity"
	"github.com/neonauth/neonauth/internal/neonauth"
	"github.com/neonauth/neonauth/internal/ratelimit"
)

type confirmData struct {
	Code    string
	CSRF    string
	Info    neonauth.TransferInfo
	Owner   *identity.User
	Email   string
	Problem string
}

// confirmForm shows what a transfer code would move and how to accept it. It changes nothing:
// it does not even count as an attempt on the code.
func (p *Pages) confirmForm(w http.ResponseWriter, r *http.Request) error {
	code := r.URL.Query().Get("code")
	if code == "" {
		return errs.E(errs.Invalid, "This transfer link has no code. Open the whole link "+
			"that you were given.")
	}
	info, err := p.Auth.PeekTransfer(r.Context(), code)
	if err != nil {
		return err
	}
	p.render(w, http.StatusOK, "confirm.html", confirmData{
		Code: code, CSRF: p.csrfToken(w, r), Info: info, Owner: p.owner(r),
	})
	return nil
}

// confirmPost handles the confirm page's forms: confirm as the signed-in owner, sign in or
// create an owner account and confirm, or sign out to use another account.
func (p *Pages) confirmPost(w http.ResponseWriter, r *http.Request) error {
	if err := p.checkPost(r); err != nil {
		return err
	}
	code := r.PostForm.Get("code")
	info, err := p.Auth.PeekTransfer(r.Context(), code)
	if err != nil {
		return err
	}
	form := confirmData{Code: code, CSRF: p.csrfToken(w, r), Info: info,
		Email: r.PostForm.Get("email")}
	var owner *identity.User
	switch action := r.PostForm.Get("action"); action {
	case "confirm":
		if owner = p.owner(r); owner == nil {
			form.Problem = "You are no longer signed in. Sign in again to confirm."
		}
	case "sign-in", "sign-up":
		owner, form.Problem = p.authenticate(w, r, action)
	case "switch-account":
		if err := p.endSession(w, r); err != nil {
			return err
		}
		http.Redirect(w, r, confirmURL(code), http.StatusSeeOther)
		return nil
	default:
		return errs.E(errs.Invalid, "The form was not understood. Reload the page and "+
			"try again.")
	}
	if form.Problem != "" {
		p.render(w, http.StatusBadRequest, "confirm.html", form)
		return nil
	}
	if _, err := p.Auth.ConfirmTransfer(r.Context(), code, owner.ID); err != nil {
		return err
	}
	http.Redirect(w, r, "/projects?transferred="+url.QueryEscape(info.AuthProjectID),
		http.StatusSeeOther)
	return nil
}

// confirmURL is the path of the confirm page of a code.
func confirmURL(code string) string {
	return neonauth.TransferPath + "?code=" + url.QueryEscape(code)
}

// problemTexts replace provider messages that would point the visitor the wrong way.
var problemTexts = map[string]string{
	"USER_EMAIL_ALREADY_EXISTS": "An account with this email already exists. Enter its " +
		"password and choose “Sign in and transfer”.",
	"EMAIL_PASSWORD_MISMATCH": "Wrong email or password.",
}

// authenticate signs an owner in or up from the posted form, ending any earlier session;
// problem is a message for the visitor when that fails.
func (p *Pages) authenticate(w http.ResponseWriter, r *http.Request,
	action string) (*identity.User, string) {
	ctx := r.Context()
	email, password := r.PostForm.Get("email"), r.PostForm.Get("password")
	ok, wait := p.Limits.AllowSignUp(httpapi.ClientAddr(r))
	if action != "sign-up" {
		ok, wait, _ = p.Limits.AllowSignIn(httpapi.ClientAddr(r), identity.InternalProject, email)
	}
	if !ok {
		return nil, fmt.Sprintf("Too many sign-in attempts; try again in %d seconds.",
			ratelimit.RetryAfterSeconds(wait))
	}
	var t identity.Tokens
	var err error
	if action == "sign-up" {
		t, err = p.Identity.SignUp(ctx, identity.InternalProject, email, password)
	} else {
		t, err = p.Identity.SignIn(ctx, identity.InternalProject, email, password)
	}
	if err != nil {
		return nil, p.problem(err)
	}
	u, err := p.Identity.GetUser(ctx, identity.InternalProject, t.UserID)
	if err == nil {
		err = p.revokeSession(r)
	}
	if err != nil {
		return nil, p.problem(err)
	}
	p.setSession(w, t.RefreshToken)
	return &u, ""
}

// problem is what a form says about a failed sign-in or sign-up.
func (p *Pages) problem(err error) string {
	e := errs.As(err)
	if e.Kind == errs.Internal {
		p.Log.Error("owner sign-in failed", "err", err)
		return "Something went wrong on our side; please try again."
	}
	if msg := problemTexts[e.Known]; msg != "" {
		return msg
	}
	return e.Message
}

type signInData struct {
	CSRF    string
	Email   string
	Problem string
}

// signInForm shows the owners' sign-in form, or the project list to a signed-in owner.
func (p *Pages) signInForm(w http.ResponseWriter, r *http.Request) error {
	if p.owner(r) != nil {
		http.Redirect(w, r, "/projects", http.StatusSeeOther)
		return nil
	}
	p.render(w, http.StatusOK, "signin.html", signInData{CSRF: p.csrfToken(w, r)})
	return nil
}

// signInPost signs an owner in and shows their projects.
func (p *Pages) signInPost(w http.ResponseWriter, r *http.Request) error {
	if err := p.checkPost(r); err != nil {
		return err
	}
	if _, problem := p.authenticate(w, r, "sign-in"); problem != "" {
		p.render(w, http.StatusBadRequest, "signin.html", signInData{CSRF: p.csrfToken(w, r),
			Email: r.PostForm.Get("email"), Problem: problem})
		return nil
	}
	http.Redirect(w, r, "/projects", http.StatusSeeOther)
	return nil
}

// signOut ends the owner's session.
func (p *Pages) signOut(w http.ResponseWriter, r *http.Request) error {
	if err := p.checkPost(r); err != nil {
		return err
	}
	if err := p.endSession(w, r); err != nil {
		return err
	}
	http.Redirect(w, r, "/sign-in", http.StatusSeeOther)
	return nil
}

type projectsData struct {
	CSRF     string
	Owner    identity.User
	Projects []neonauth.OwnedProject
	// Transferred is the project that was just transferred, when the owner has it.
	Transferred *neonauth.OwnedProject
}

// projects lists the signed-in owner's auth projects.
func (p *Pages) projects(w http.ResponseWriter, r *http.Request) error {
	owner := p.owner(r)
	if owner == nil {
		http.Redirect(w, r, "/sign-in", http.StatusSeeOther)
		return nil
	}
	list, err := p.Auth.OwnedProjects(r.Context(), owner.ID)
	if err != nil {
		return err
	}
	d := projectsData{CSRF: p.csrfToken(w, r), Owner: *owner, Projects: list}
	for i := range list {
		if list[i].AuthProjectID == r.URL.Query().Get("transferred") {
			d.Transferred = &list[i]
		}
	}
	p.render(w, http.StatusOK, "projects.html", d)
	return nil
}
