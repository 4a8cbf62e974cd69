// Package errs defines the one error type that crosses from the domain packages to the HTTP
// adapters. A domain error carries a stable kind and a message that is safe to show a client;
// the cause, if any, stays inside for the log.
package errs

import (
	"errors"
	"fmt"
)

// Kind classifies an error. Each adapter maps kinds to its own wire form.
type Kind int

// The kinds of error the domain reports.
const (
	Internal Kind = iota
	Invalid
	NotFound
	Conflict
	Unauthenticated
	Forbidden
	UnsupportedMediaType
	TooLarge
	PreconditionFailed
	TooManyRequests
	Unavailable
)

var kindNames = map[Kind]string{
	Internal:             "INTERNAL_ERROR",
	Invalid:              "BAD_REQUEST",
	NotFound:             "NOT_FOUND",
	Conflict:             "CONFLICT",
	Unauthenticated:      "UNAUTHORIZED",
	Forbidden:            "FORBIDDEN",
	UnsupportedMediaType: "UNSUPPORTED_MEDIA_TYPE",
	TooLarge:             "REQUEST_TOO_LARGE",
	PreconditionFailed:   "PRECONDITION_FAILED",
	TooManyRequests:      "TOO_MANY_REQUESTS",
	Unavailable:          "SERVICE_UNAVAILABLE",
}

// String returns the stable code of the kind, as used in Neon's error body.
func (k Kind) String() string {
	if s, ok := kindNames[k]; ok {
		return s
	}
	return "INTERNAL_ERROR"
}

// Error is a domain error. Message is public; Cause is for the log only.
type Error struct {
	Kind    Kind
	Message string
	// Known is the Stack Auth known-error code, when the error has one.
	Known string
	// Details are the Stack Auth known-error details, when the error has them.
	Details map[string]any
	// Plain asks the Stack adapter to answer with a plain-text status error instead of a
	// known error, as Stack does for a few Neon-facing errors.
	Plain bool
	Cause error
}

// Error returns the public message and, when present, the cause.
func (e *Error) Error() string {
	if e.Cause != nil {
		return e.Message + ": " + e.Cause.Error()
	}
	return e.Message
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Cause }

// E builds an error of a kind with a formatted public message.
func E(kind Kind, format string, args ...any) *Error {
	return &Error{Kind: kind, Message: fmt.Sprintf(format, args...)}
}

// Wrap builds an internal error around a cause, with a public message that hides it.
func Wrap(cause error, format string, args ...any) error {
	if cause == nil {
		return nil
	}
	var de *Error
	if errors.As(cause, &de) {
		return cause
	}
	return &Error{Kind: Internal, Message: fmt.Sprintf(format, args...), Cause: cause}
}

// KnownError builds a Stack Auth known error.
func KnownError(kind Kind, code, message string, details map[string]any) *Error {
	return &Error{Kind: kind, Known: code, Message: message, Details: details}
}

// KindOf returns the kind of err, Internal when it is not a domain error.
func KindOf(err error) Kind {
	var de *Error
	if errors.As(err, &de) {
		return de.Kind
	}
	return Internal
}

// As returns the domain error inside err, or an internal one wrapping err.
func As(err error) *Error {
	var de *Error
	if errors.As(err, &de) {
		return de
	}
	return &Error{Kind: Internal, Message: "internal error", Cause: err}
}

// Is reports whether err is a domain error of the kind.
func Is(err error, kind Kind) bool {
	var de *Error
	return errors.As(err, &de) && de.Kind == kind
}

// PlainError builds an error that the Stack adapter sends as plain text.
func PlainError(kind Kind, message string) *Error {
	return &Error{Kind: kind, Message: message, Plain: true}
}
