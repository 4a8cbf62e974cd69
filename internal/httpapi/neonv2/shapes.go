package neonv2

import (
	"net"
	"strconv"
	"time"

	"github.com/neonauth/neonauth/internal/console"
	"github.com/neonauth/neonauth/internal/identity"
	"github.com/neonauth/neonauth/internal/neonauth"
)

// The JSON shapes of Neon's API. Figures that do not apply to a self-hosted server
// (consumption, limits) are reported as zero; see docs/api.md.

// hostPort is a host with its port: every branch server listens on its own port, and Neon's
// clients build connection strings from host alone (Neon always uses 5432).
func hostPort(host string, port int) string {
	return net.JoinHostPort(host, strconv.Itoa(port))
}

func ts(t time.Time) string { return t.UTC().Format(time.RFC3339) }

type projectJSON struct {
	ID                          string         `json:"id"`
	PlatformID                  string         `json:"platform_id"`
	RegionID                    string         `json:"region_id"`
	Name                        string         `json:"name"`
	Provisioner                 string         `json:"provisioner"`
	DefaultEndpointSettings     map[string]any `json:"default_endpoint_settings"`
	Settings                    map[string]any `json:"settings"`
	PGVersion                   int            `json:"pg_version"`
	ProxyHost                   string         `json:"proxy_host"`
	BranchLogicalSizeLimit      int64          `json:"branch_logical_size_limit"`
	BranchLogicalSizeLimitBytes int64          `json:"branch_logical_size_limit_bytes"`
	StorePasswords              bool           `json:"store_passwords"`
	ActiveTime                  int64          `json:"active_time"`
	CPUUsedSec                  int64          `json:"cpu_used_sec"`
	CreationSource              string         `json:"creation_source"`
	HistoryRetentionSeconds     int            `json:"history_retention_seconds"`
	CreatedAt                   string         `json:"created_at"`
	UpdatedAt                   string         `json:"updated_at"`
	OwnerID                     string         `json:"owner_id"`
	ConsumptionPeriodStart      string         `json:"consumption_period_start"`
	ConsumptionPeriodEnd        string         `json:"consumption_period_end"`
	ActiveTimeSeconds           int64          `json:"active_time_seconds"`
	ComputeTimeSeconds          int64          `json:"compute_time_seconds"`
	WrittenDataBytes            int64          `json:"written_data_bytes"`
	DataTransferBytes           int64          `json:"data_transfer_bytes"`
	DataStorageBytesHour        int64          `json:"data_storage_bytes_hour"`
	SyntheticStorageSize        int64          `json:"synthetic_storage_size"`
	DefaultBranchID             string         `json:"default_branch_id,omitempty"`
}

func project(p console.Project) projectJSON {
	start := time.Date(p.CreatedAt.Year(), p.CreatedAt.Month(), 1, 0, 0, 0, 0, time.UTC)
	return projectJSON{
		ID: p.ID, PlatformID: "neonauth", RegionID: p.RegionID, Name: p.Name,
		Provisioner: "k8s-neonvm", DefaultEndpointSettings: map[string]any{},
		Settings: map[string]any{}, PGVersion: p.PGVersion, ProxyHost: "127.0.0.1",
		StorePasswords: p.StorePasswords, CreationSource: "neonauth",
		HistoryRetentionSeconds: p.HistoryRetentionSeconds, CreatedAt: ts(p.CreatedAt),
		UpdatedAt: ts(p.UpdatedAt), OwnerID: p.AccountID.String(),
		ConsumptionPeriodStart: ts(start), ConsumptionPeriodEnd: ts(start.AddDate(0, 1, 0)),
		DefaultBranchID: p.DefaultBranchID,
	}
}

type branchJSON struct {
	ID                 string  `json:"id"`
	ProjectID          string  `json:"project_id"`
	ParentID           *string `json:"parent_id,omitempty"`
	Name               string  `json:"name"`
	CurrentState       string  `json:"current_state"`
	StateChangedAt     string  `json:"state_changed_at"`
	CreationSource     string  `json:"creation_source"`
	Default            bool    `json:"default"`
	Primary            bool    `json:"primary"`
	Protected          bool    `json:"protected"`
	CPUUsedSec         int64   `json:"cpu_used_sec"`
	ActiveTimeSeconds  int64   `json:"active_time_seconds"`
	ComputeTimeSeconds int64   `json:"compute_time_seconds"`
	WrittenDataBytes   int64   `json:"written_data_bytes"`
	DataTransferBytes  int64   `json:"data_transfer_bytes"`
	LogicalSize        int64   `json:"logical_size"`
	CreatedAt          string  `json:"created_at"`
	UpdatedAt          string  `json:"updated_at"`
	// ComputeKind is an extension: "managed" or "attached".
	ComputeKind string `json:"neonauth_compute"`
}

func branch(b console.Branch) branchJSON {
	out := branchJSON{
		ID: b.ID, ProjectID: b.ProjectID, Name: b.Name, CurrentState: b.CurrentState,
		StateChangedAt: ts(b.UpdatedAt), CreationSource: "neonauth", Default: b.Default,
		Primary: b.Default, CreatedAt: ts(b.CreatedAt), UpdatedAt: ts(b.UpdatedAt),
		ComputeKind: b.ComputeKind,
	}
	if b.ParentID != "" {
		out.ParentID = &b.ParentID
	}
	return out
}

type endpointJSON struct {
	Host                  string         `json:"host"`
	Port                  int            `json:"port"`
	ID                    string         `json:"id"`
	ProjectID             string         `json:"project_id"`
	BranchID              string         `json:"branch_id"`
	RegionID              string         `json:"region_id"`
	AutoscalingLimitMinCU float64        `json:"autoscaling_limit_min_cu"`
	AutoscalingLimitMaxCU float64        `json:"autoscaling_limit_max_cu"`
	Type                  string         `json:"type"`
	CurrentState          string         `json:"current_state"`
	PoolerEnabled         bool           `json:"pooler_enabled"`
	PoolerMode            string         `json:"pooler_mode"`
	Disabled              bool           `json:"disabled"`
	PasswordlessAccess    bool           `json:"passwordless_access"`
	CreationSource        string         `json:"creation_source"`
	CreatedAt             string         `json:"created_at"`
	UpdatedAt             string         `json:"updated_at"`
	Settings              map[string]any `json:"settings"`
	ProxyHost             string         `json:"proxy_host"`
	SuspendTimeoutSeconds int            `json:"suspend_timeout_seconds"`
	Provisioner           string         `json:"provisioner"`
}

func endpoint(b console.Branch, region string) endpointJSON {
	return endpointJSON{
		Host: hostPort(b.Target.Host, b.Target.Port), Port: b.Target.Port, ID: b.EndpointID,
		ProjectID: b.ProjectID,
		BranchID:  b.ID, RegionID: region, AutoscalingLimitMinCU: 0.25,
		AutoscalingLimitMaxCU: 0.25, Type: "read_write", CurrentState: "active",
		PoolerMode: "transaction", CreationSource: "neonauth", CreatedAt: ts(b.CreatedAt),
		UpdatedAt: ts(b.UpdatedAt), Settings: map[string]any{}, ProxyHost: b.Target.Host,
		Provisioner: "k8s-neonvm",
	}
}

type databaseJSON struct {
	ID        int64  `json:"id"`
	BranchID  string `json:"branch_id"`
	Name      string `json:"name"`
	OwnerName string `json:"owner_name"`
	CreatedAt string `json:"created_at"`
	UpdatedAt string `json:"updated_at"`
}

func database(d console.Database) databaseJSON {
	return databaseJSON{ID: d.ID, BranchID: d.BranchID, Name: d.Name, OwnerName: d.OwnerName,
		CreatedAt: ts(d.CreatedAt), UpdatedAt: ts(d.UpdatedAt)}
}

func databases(ds []console.Database) []databaseJSON {
	out := make([]databaseJSON, 0, len(ds))
	for _, d := range ds {
		out = append(out, database(d))
	}
	return out
}

type roleJSON struct {
	BranchID  string `json:"branch_id"`
	Name      string `json:"name"`
	Password  string `json:"password,omitempty"`
	Protected bool   `json:"protected"`
	CreatedAt string `json:"created_at"`
	UpdatedAt string `json:"updated_at"`
}

func role(r console.Role) roleJSON {
	return roleJSON{BranchID: r.BranchID, Name: r.Name, Password: r.Password,
		Protected: r.Protected, CreatedAt: ts(r.CreatedAt), UpdatedAt: ts(r.UpdatedAt)}
}

func roles(rs []console.Role) []roleJSON {
	out := make([]roleJSON, 0, len(rs))
	for _, r := range rs {
		out = append(out, role(r))
	}
	return out
}

type operationJSON struct {
	ID              string  `json:"id"`
	ProjectID       string  `json:"project_id"`
	BranchID        string  `json:"branch_id,omitempty"`
	EndpointID      string  `json:"endpoint_id,omitempty"`
	Action          string  `json:"action"`
	Status          string  `json:"status"`
	Error           *string `json:"error,omitempty"`
	FailuresCount   int     `json:"failures_count"`
	CreatedAt       string  `json:"created_at"`
	UpdatedAt       string  `json:"updated_at"`
	TotalDurationMS int     `json:"total_duration_ms"`
}

func operation(o console.Operation) operationJSON {
	out := operationJSON{ID: o.ID.String(), ProjectID: o.ProjectID, BranchID: o.BranchID,
		EndpointID: o.EndpointID, Action: o.Action, Status: o.Status,
		CreatedAt: ts(o.CreatedAt), UpdatedAt: ts(o.UpdatedAt), TotalDurationMS: o.TotalDurationMS}
	if o.Error != "" {
		out.Error = &o.Error
	}
	return out
}

func operations(os []console.Operation) []operationJSON {
	out := make([]operationJSON, 0, len(os))
	for _, o := range os {
		out = append(out, operation(o))
	}
	return out
}

type connParamsJSON struct {
	Database   string `json:"database"`
	Password   string `json:"password"`
	Role       string `json:"role"`
	Host       string `json:"host"`
	Port       int    `json:"port"`
	PoolerHost string `json:"pooler_host"`
}

type connURIJSON struct {
	ConnectionURI        string         `json:"connection_uri"`
	ConnectionParameters connParamsJSON `json:"connection_parameters"`
}

func connURI(c console.ConnectionURI) connURIJSON {
	return connURIJSON{ConnectionURI: c.URI, ConnectionParameters: connParamsJSON{
		Database: c.Database, Password: c.Password, Role: c.Role,
		Host: c.Host, Port: c.Port, PoolerHost: c.Host,
	}}
}

type authKeysJSON struct {
	AuthProvider          string `json:"auth_provider"`
	AuthProviderProjectID string `json:"auth_provider_project_id"`
	PubClientKey          string `json:"pub_client_key"`
	SecretServerKey       string `json:"secret_server_key"`
	JWKSURL               string `json:"jwks_url"`
	SchemaName            string `json:"schema_name"`
	TableName             string `json:"table_name"`
	BaseURL               string `json:"base_url"`
}

func authKeys(c *neonauth.Created, id *identity.Service) authKeysJSON {
	return authKeysJSON{
		AuthProvider: c.Integration.AuthProvider, AuthProviderProjectID: c.Integration.AuthProjectID,
		PubClientKey: c.Keys.PublishableClientKey, SecretServerKey: c.Keys.SecretServerKey,
		JWKSURL: id.JWKSURL(c.Integration.AuthProjectID), SchemaName: neonauth.SchemaName,
		TableName: neonauth.TableName, BaseURL: id.PublicURL,
	}
}

type integrationJSON struct {
	AuthProvider          string  `json:"auth_provider"`
	AuthProviderProjectID string  `json:"auth_provider_project_id"`
	BranchID              string  `json:"branch_id"`
	DBName                string  `json:"db_name"`
	CreatedAt             string  `json:"created_at"`
	OwnedBy               string  `json:"owned_by"`
	TransferStatus        *string `json:"transfer_status,omitempty"`
	JWKSURL               string  `json:"jwks_url"`
	BaseURL               string  `json:"base_url"`
	Name                  string  `json:"name,omitempty"`
}

func integration(in neonauth.Integration, id *identity.Service) integrationJSON {
	return integrationJSON{
		AuthProvider: in.AuthProvider, AuthProviderProjectID: in.AuthProjectID,
		BranchID: in.BranchID, DBName: in.DBName, CreatedAt: ts(in.CreatedAt),
		OwnedBy: in.OwnedBy, TransferStatus: in.TransferStatus,
		JWKSURL: id.JWKSURL(in.AuthProjectID), BaseURL: id.PublicURL, Name: in.Name,
	}
}
