// Package console is the management domain: accounts, API keys, projects, branches,
// databases, roles and operations. Each branch is a real PostgreSQL server, run by the
// compute package or attached from an existing one. It knows nothing of HTTP.
package console

import (
	"net"
	"net/url"
	"strconv"
	"time"

	"github.com/google/uuid"
)

// Principal is who a request acts for: an account, through one of its API keys.
type Principal struct {
	AccountID uuid.UUID
	KeyID     int64
	// ProjectID limits the key to one project when not empty.
	ProjectID string
}

// Account owns API keys and projects.
type Account struct {
	ID        uuid.UUID
	Name      string
	Email     string
	CreatedAt time.Time
}

// APIKey is a management API key; the key itself is never stored.
type APIKey struct {
	ID               int64
	AccountID        uuid.UUID
	Name             string
	ProjectID        string
	CreatedAt        time.Time
	LastUsedAt       *time.Time
	LastUsedFromAddr string
	RevokedAt        *time.Time
}

// Project is a Neon project: a set of branches, one of them the default.
type Project struct {
	ID                      string
	AccountID               uuid.UUID
	Name                    string
	RegionID                string
	PGVersion               int
	StorePasswords          bool
	HistoryRetentionSeconds int
	CreatedAt               time.Time
	UpdatedAt               time.Time
	DefaultBranchID         string
}

// Compute kinds of a branch.
const (
	ComputeManaged  = "managed"
	ComputeAttached = "attached"
)

// Branch is one PostgreSQL server of a project, reached through its endpoint.
type Branch struct {
	ID           string
	ProjectID    string
	Name         string
	ParentID     string
	Default      bool
	EndpointID   string
	ComputeKind  string
	ClusterName  string
	CurrentState string
	CreatedAt    time.Time
	UpdatedAt    time.Time
	Target       Target
}

// Target says how the service itself connects to a branch's server, as an administrator.
type Target struct {
	Host     string
	Port     int
	User     string
	Password string
	// AdminDatabase is the database to connect to when no other is named.
	AdminDatabase string
	// Options are extra connection parameters (for example sslmode) as a query string.
	Options string
	// Superuser says the user is the superuser of a server this service runs.
	Superuser bool
}

// URI returns the administrator connection URI for a database of the target.
func (t Target) URI(database string) string {
	if database == "" {
		database = t.AdminDatabase
	}
	return connURI(t.Host, t.Port, t.User, t.Password, database, t.Options)
}

func connURI(host string, port int, user, password, database, options string) string {
	u := url.URL{
		Scheme: "postgresql",
		User:   url.UserPassword(user, password),
		Host:   net.JoinHostPort(host, strconv.Itoa(port)),
		Path:   "/" + database,
	}
	if options == "" {
		options = "sslmode=disable"
	}
	u.RawQuery = options
	return u.String()
}

// Database is a database of a branch.
type Database struct {
	ID        int64
	BranchID  string
	Name      string
	OwnerName string
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Role is a login role of a branch. Password is set only where it is revealed.
type Role struct {
	BranchID  string
	Name      string
	Password  string
	Protected bool
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Operation records one step of work the API did for a project.
type Operation struct {
	ID              uuid.UUID
	ProjectID       string
	BranchID        string
	EndpointID      string
	Action          string
	Status          string
	Error           string
	TotalDurationMS int
	CreatedAt       time.Time
	UpdatedAt       time.Time
}

// ConnectionURI is a ready-to-use connection string with its parts.
type ConnectionURI struct {
	URI      string
	Host     string
	Port     int
	Database string
	Role     string
	Password string
}

// CreatedProject is everything that creating a project made.
type CreatedProject struct {
	Project        Project
	Branch         Branch
	Databases      []Database
	Roles          []Role
	Operations     []Operation
	ConnectionURIs []ConnectionURI
}

// CreatedBranch is everything that creating a branch made.
type CreatedBranch struct {
	Branch     Branch
	Operations []Operation
}
