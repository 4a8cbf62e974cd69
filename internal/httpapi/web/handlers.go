package web

import (
	"net/http"

	"github.com/neonauth/neonauth/internal/errs"
	"github.com/neonauth/neonauth/internal/identity"
	"github.com/neonauth/neonauth/internal/neonauth"
)

type confirmData struct {
	Code    string
	CSRF    string
	Info    neonauth.TransferInfo
	Owner   *identity.User
	Email   string
	Problem string
}

// confirmForm shows what a transfer code would move and how to accept it. It changes nothing.
func (p *Pages) confirmForm(w http.ResponseWriter, r *http.Request) error {
	code := r.URL.Query().Get("code")
	info, err := p.Auth.PeekTransfer(r.Context(), code)
	if err != nil {
		return err
	}
	p.render(w, http.StatusOK, "confirm.html", confirmData{
		Code: code, CSRF: p.csrfToken(w, r), Info: info, Owner: p.owner(r),
	})
	return nil
}

// confirmPost signs the visitor in (or creates the owner account) and confirms the transfer.
func (p *Pages) confirmPost(w http.ResponseWriter, r *http.Request) error {
	if err := p.checkPost(r); err != nil {
		return err
	}
	code := r.PostForm.Get("code")
	info, err := p.Auth.PeekTransfer(r.Context(), code)
	if err != nil {
		return err
	}
	owner := p.owner(r)
	switch action := r.PostForm.Get("action"); action {
	case "confirm":
		if owner == nil {
			return errs.E(errs.Invalid, "sign in before confirming the transfer")
		}
	case "sign-in", "sign-up":
		u, problem := p.authenticate(w, r, action)
		if problem != "" {
			p.render(w, http.StatusBadRequest, "confirm.html", confirmData{
				Code: code, CSRF: p.csrfToken(w, r), Info: info,
				Email: r.PostForm.Get("email"), Problem: problem,
			})
			return nil
		}
		owner = u
	default:
		return errs.E(errs.Invalid, "unknown action")
	}
	if _, err := p.Auth.ConfirmTransfer(r.Context(), code, owner.ID); err != nil {
		return err
	}
	http.Redirect(w, r, "/projects?transferred="+info.AuthProjectID, http.StatusSeeOther)
	return nil
}

// authenticate signs an owner in or up from the posted form; problem is a message for the
// visitor when that fails.
func (p *Pages) authenticate(w http.ResponseWriter, r *http.Request, action string) (*identity.User, string) {
	ctx := r.Context()
	email, password := r.PostForm.Get("email"), r.PostForm.Get("password")
	var t identity.Tokens
	var err error
	if action == "sign-up" {
		t, err = p.Identity.SignUp(ctx, identity.InternalProject, email, password)
	} else {
		t, err = p.Identity.SignIn(ctx, identity.InternalProject, email, password)
	}
	if err != nil {
		e := errs.As(err)
		if e.Kind == errs.Internal {
			p.Log.Error("owner sign-in failed", "err", err)
			return nil, "Something went wrong; please try again."
		}
		return nil, e.Message
	}
	u, err := p.Identity.GetUser(ctx, identity.InternalProject, t.UserID)
	if err != nil {
		return nil, "Something went wrong; please try again."
	}
	p.setSession(w, t.RefreshToken)
	return &u, ""
}

type signInData struct {
	CSRF    string
	Email   string
	Problem string
}

func (p *Pages) signInForm(w http.ResponseWriter, r *http.Request) error {
	if p.owner(r) != nil {
		http.Redirect(w, r, "/projects", http.StatusSeeOther)
		return nil
	}
	p.render(w, http.StatusOK, "signin.html", signInData{CSRF: p.csrfToken(w, r)})
	return nil
}

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

func (p *Pages) signOut(w http.ResponseWriter, r *http.Request) error {
	if err := p.checkPost(r); err != nil {
		return err
	}
	if c, err := r.Cookie(sessionCookie); err == nil {
		if err := p.Identity.SignOutToken(r.Context(), identity.InternalProject, c.Value); err != nil {
			return err
		}
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, Secure: p.secure(), SameSite: http.SameSiteLaxMode})
	http.Redirect(w, r, "/sign-in", http.StatusSeeOther)
	return nil
}

type projectsData struct {
	CSRF        string
	Owner       identity.User
	Projects    []neonauth.OwnedProject
	Transferred string
}

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
	p.render(w, http.StatusOK, "projects.html", projectsData{CSRF: p.csrfToken(w, r),
		Owner: *owner, Projects: list, Transferred: r.URL.Query().Get("transferred")})
	return nil
}
