package identity

import (
	"encoding/json"
	"net/mail"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/neonauth/neonauth/internal/errs"
)

// User is a user of an auth project.
type User struct {
	ID                      uuid.UUID
	ProjectID               string
	PrimaryEmail            *string
	PrimaryEmailVerified    bool
	PrimaryEmailAuthEnabled bool
	DisplayName             *string
	ProfileImageURL         *string
	PasswordHash            *string
	ClientMetadata          json.RawMessage
	ClientReadOnlyMetadata  json.RawMessage
	ServerMetadata          json.RawMessage
	SignedUpAt              time.Time
	LastActiveAt            time.Time
	UpdatedAt               *time.Time
	Version                 int64
	DeletedAt               *time.Time
}

// emailShape is Stack Auth's sign-up address rule: dot-separated parts before the @, and a
// domain that ends in a dot and at least two characters.
var emailShape = regexp.MustCompile(`^[^.]+(\.[^.]+)*@.*\.[^.][^.]+$`)

// MaxEmail is the longest address accepted, in characters.
const MaxEmail = 256

// MaxDisplayName is the longest display name accepted, in characters (Stack's limit).
const MaxDisplayName = 256

// NormaliseEmail trims and lowercases an address and checks that it is one: at most 256
// characters, a plain addr-spec, and Stack's shape rule. field names the input in errors.
func NormaliseEmail(field, email string) (string, error) {
	e := strings.ToLower(strings.TrimSpace(email))
	switch {
	case e == "":
		return "", errs.E(errs.Invalid, "%s: is required", field)
	case utf8.RuneCountInString(e) > MaxEmail:
		return "", errs.E(errs.Invalid, "%s: must be at most %d characters", field, MaxEmail)
	case strings.ContainsAny(e, " \t\r\n<>\"(),;:\\[]\x00"):
		return "", errs.E(errs.Invalid, "%s: must be a valid email address", field)
	}
	a, err := mail.ParseAddress(e)
	if err != nil || a.Address != e || strings.Count(e, "@") != 1 || !emailShape.MatchString(e) {
		return "", errs.E(errs.Invalid, "%s: must be a valid email address", field)
	}
	return e, nil
}

// CheckDisplayName validates a display name: it is kept exactly as given (no trimming, no
// truncation) and must hold between 1 and max characters, counted as code points, no NUL.
func CheckDisplayName(field, name string, max int) error {
	n := utf8.RuneCountInString(name)
	switch {
	case !utf8.ValidString(name):
		return errs.E(errs.Invalid, "%s: must be valid UTF-8", field)
	case strings.ContainsRune(name, 0):
		return errs.E(errs.Invalid, "%s: must not contain NUL characters", field)
	case n == 0:
		return errs.E(errs.Invalid, "%s: must be at least 1 character", field)
	case n > max:
		return errs.E(errs.Invalid, "%s: must be at most %d characters", field, max)
	}
	return nil
}

// checkText refuses text that PostgreSQL cannot store: invalid UTF-8 and NUL characters.
func checkText(field, s string) error {
	if !utf8.ValidString(s) || strings.ContainsRune(s, 0) {
		return errs.E(errs.Invalid, "%s: must be valid UTF-8 text without NUL characters", field)
	}
	return nil
}

// checkJSON refuses a metadata value that is not JSON, or that holds a string or key with a
// NUL character (jsonb cannot store \u0000).
func checkJSON(field string, m json.RawMessage) error {
	if len(m) == 0 {
		return nil
	}
	var v any
	if err := json.Unmarshal(m, &v); err != nil {
		return errs.E(errs.Invalid, "%s: must be JSON", field)
	}
	return walkJSON(field, v)
}

func walkJSON(field string, v any) error {
	switch x := v.(type) {
	case string:
		return checkText(field, x)
	case map[string]any:
		for k, e := range x {
			if err := checkText(field, k); err != nil {
				return err
			}
			if err := walkJSON(field, e); err != nil {
				return err
			}
		}
	case []any:
		for _, e := range x {
			if err := walkJSON(field, e); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkProfile validates the free-form fields a user carries besides its name and email.
func checkProfile(url *string, client, clientRO, server json.RawMessage) error {
	if url != nil {
		if err := checkText("profile_image_url", *url); err != nil {
			return err
		}
	}
	for _, f := range []struct {
		name string
		m    json.RawMessage
	}{{"client_metadata", client}, {"client_read_only_metadata", clientRO},
		{"server_metadata", server}} {
		if err := checkJSON(f.name, f.m); err != nil {
			return err
		}
	}
	return nil
}

// ServerUser is the Stack Auth server user JSON, as the server API returns it and as it is
// synced into neon_auth.users_sync.raw_json.
type ServerUser struct {
	ID                              string          `json:"id"`
	PrimaryEmail                    *string         `json:"primary_email"`
	PrimaryEmailVerified            bool            `json:"primary_email_verified"`
	PrimaryEmailAuthEnabled         bool            `json:"primary_email_auth_enabled"`
	DisplayName                     *string         `json:"display_name"`
	ProfileImageURL                 *string         `json:"profile_image_url"`
	SignedUpAtMillis                int64           `json:"signed_up_at_millis"`
	LastActiveAtMillis              int64           `json:"last_active_at_millis"`
	HasPassword                     bool            `json:"has_password"`
	AuthWithEmail                   bool            `json:"auth_with_email"`
	OTPAuthEnabled                  bool            `json:"otp_auth_enabled"`
	PasskeyAuthEnabled              bool            `json:"passkey_auth_enabled"`
	RequiresTOTPMFA                 bool            `json:"requires_totp_mfa"`
	OAuthProviders                  []any           `json:"oauth_providers"`
	ClientMetadata                  json.RawMessage `json:"client_metadata"`
	ClientReadOnlyMetadata          json.RawMessage `json:"client_read_only_metadata"`
	ServerMetadata                  json.RawMessage `json:"server_metadata"`
	SelectedTeamID                  *string         `json:"selected_team_id"`
	SelectedTeam                    any             `json:"selected_team"`
	IsAnonymous                     bool            `json:"is_anonymous"`
	IsRestricted                    bool            `json:"is_restricted"`
	RestrictedReason                any             `json:"restricted_reason"`
	RestrictedByAdmin               bool            `json:"restricted_by_admin"`
	RestrictedByAdminReason         *string         `json:"restricted_by_admin_reason"`
	RestrictedByAdminPrivateDetails *string         `json:"restricted_by_admin_private_details"`
	CountryCode                     *string         `json:"country_code"`
	RiskScores                      RiskScores      `json:"risk_scores"`
}

// RiskScores are Stack's sign-up risk scores; this provider computes none and reports 0.
type RiskScores struct {
	SignUp struct {
		Bot            int `json:"bot"`
		FreeTrialAbuse int `json:"free_trial_abuse"`
	} `json:"sign_up"`
}

// ClientUser is the Stack Auth client user JSON, for /users/me with client access.
type ClientUser struct {
	ID                      string          `json:"id"`
	PrimaryEmail            *string         `json:"primary_email"`
	PrimaryEmailVerified    bool            `json:"primary_email_verified"`
	DisplayName             *string         `json:"display_name"`
	ProfileImageURL         *string         `json:"profile_image_url"`
	ClientMetadata          json.RawMessage `json:"client_metadata"`
	ClientReadOnlyMetadata  json.RawMessage `json:"client_read_only_metadata"`
	SignedUpAtMillis        int64           `json:"signed_up_at_millis"`
	HasPassword             bool            `json:"has_password"`
	AuthWithEmail           bool            `json:"auth_with_email"`
	OAuthProviders          []any           `json:"oauth_providers"`
	SelectedTeamID          *string         `json:"selected_team_id"`
	SelectedTeam            any             `json:"selected_team"`
	RequiresTOTPMFA         bool            `json:"requires_totp_mfa"`
	OTPAuthEnabled          bool            `json:"otp_auth_enabled"`
	PasskeyAuthEnabled      bool            `json:"passkey_auth_enabled"`
	IsAnonymous             bool            `json:"is_anonymous"`
	IsRestricted            bool            `json:"is_restricted"`
	RestrictedReason        any             `json:"restricted_reason"`
	RestrictedByAdmin       bool            `json:"restricted_by_admin"`
	RestrictedByAdminReason *string         `json:"restricted_by_admin_reason"`
}

func nullJSON(m json.RawMessage) json.RawMessage {
	if len(m) == 0 {
		return json.RawMessage("null")
	}
	return m
}

// Server returns the user's server JSON.
func (u User) Server() ServerUser {
	return ServerUser{
		ID:                      u.ID.String(),
		PrimaryEmail:            u.PrimaryEmail,
		PrimaryEmailVerified:    u.PrimaryEmailVerified,
		PrimaryEmailAuthEnabled: u.PrimaryEmailAuthEnabled,
		DisplayName:             u.DisplayName,
		ProfileImageURL:         u.ProfileImageURL,
		SignedUpAtMillis:        u.SignedUpAt.UnixMilli(),
		LastActiveAtMillis:      u.LastActiveAt.UnixMilli(),
		HasPassword:             u.PasswordHash != nil,
		AuthWithEmail:           u.PrimaryEmailAuthEnabled,
		OAuthProviders:          []any{},
		ClientMetadata:          nullJSON(u.ClientMetadata),
		ClientReadOnlyMetadata:  nullJSON(u.ClientReadOnlyMetadata),
		ServerMetadata:          nullJSON(u.ServerMetadata),
	}
}

// Client returns the user's client JSON.
func (u User) Client() ClientUser {
	s := u.Server()
	return ClientUser{
		ID: s.ID, PrimaryEmail: s.PrimaryEmail, PrimaryEmailVerified: s.PrimaryEmailVerified,
		DisplayName: s.DisplayName, ProfileImageURL: s.ProfileImageURL,
		ClientMetadata: s.ClientMetadata, ClientReadOnlyMetadata: s.ClientReadOnlyMetadata,
		SignedUpAtMillis: s.SignedUpAtMillis, HasPassword: s.HasPassword,
		AuthWithEmail: s.AuthWithEmail, OAuthProviders: s.OAuthProviders,
	}
}
