// Package server wires neonauth together: the metadata database (a managed cluster in the
// data directory or --database-url), the computes, the domain services, the sync worker and
// the HTTP server, and shuts them down in order.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/neonauth/neonauth/internal/compute"
	"github.com/neonauth/neonauth/internal/console"
	"github.com/neonauth/neonauth/internal/httpapi"
	"github.com/neonauth/neonauth/internal/httpapi/neonv2"
	"github.com/neonauth/neonauth/internal/httpapi/stackv1"
	"github.com/neonauth/neonauth/internal/httpapi/web"
	"github.com/neonauth/neonauth/internal/identity"
	"github.com/neonauth/neonauth/internal/metrics"
	"github.com/neonauth/neonauth/internal/neonauth"
	"github.com/neonauth/neonauth/internal/store"
	"github.com/neonauth/neonauth/internal/usersync"
)

// Config is the service's configuration; every field has a flag and a NEONAUTH_* variable.
type Config struct {
	Listen      string
	DataDir     string
	DatabaseURL string
	PublicURL   string
	PGBin       string
	// DBMaxConns is the metadata pool size.
	DBMaxConns      int
	BcryptCost      int
	AccessTTL       time.Duration
	RefreshTTL      time.Duration
	RotationOverlap time.Duration
	ClockSkew       time.Duration
	TransferTTL     time.Duration
	RegionID        string
	// Offline marks a short-lived command (migrate, api-keys, resync) that shares the data
	// directory with a service that may be running.
	Offline bool
	// Fast turns off fsync in the managed clusters: for tests only, never production.
	Fast bool
}

// Defaults returns the embedded defaults.
func Defaults() Config {
	return Config{
		Listen: "127.0.0.1:8080", DataDir: ".neonauth", DBMaxConns: 16, BcryptCost: 10,
		AccessTTL: 10 * time.Minute, RefreshTTL: 365 * 24 * time.Hour,
		RotationOverlap: time.Hour, ClockSkew: 30 * time.Second, TransferTTL: time.Hour,
		RegionID: "local",
	}
}

// KeyFile is where the first admin API key is written.
func (c Config) KeyFile() string { return filepath.Join(c.DataDir, "api-key") }

// AddressFile is where the address the service listens on is written once it is ready.
func (c Config) AddressFile() string { return filepath.Join(c.DataDir, "listen-address") }

// Env holds the opened stores and services, for the server and for offline commands.
type Env struct {
	Config   Config
	Log      *slog.Logger
	Computes *compute.Manager
	Pool     *pgxpool.Pool
	Console  *console.Service
	Identity *identity.Service
	Auth     *neonauth.Service
	Worker   *usersync.Worker
	Metrics  *metrics.Metrics
}

// Open starts (or connects to) the metadata database, migrates it and builds the services.
// Close must be called.
func Open(ctx context.Context, cfg Config, log *slog.Logger) (*Env, error) {
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	abs, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("resolve data directory: %w", err)
	}
	cfg.DataDir = abs
	env := &Env{Config: cfg, Log: log}
	bin, binErr := compute.FindBinaries(cfg.PGBin)
	if binErr == nil {
		env.Computes, err = compute.NewManager(bin, filepath.Join(cfg.DataDir, "pg"), log)
		if err != nil {
			return nil, err
		}
		if cfg.Fast {
			env.Computes.SetExtraConfig(map[string]string{"fsync": "off",
				"synchronous_commit": "off", "full_page_writes": "off"})
		}
	} else if cfg.DatabaseURL == "" {
		return nil, binErr
	} else {
		log.Warn("no PostgreSQL binaries: projects can only attach existing databases",
			"err", binErr)
	}
	url := cfg.DatabaseURL
	if url == "" {
		if url, err = env.metadataCluster(ctx); err != nil {
			env.Close()
			return nil, err
		}
	}
	if env.Pool, err = store.Open(ctx, url, int32(cfg.DBMaxConns)); err != nil {
		env.Close()
		return nil, err
	}
	if err := store.Migrate(ctx, env.Pool, log); err != nil {
		env.Close()
		return nil, err
	}
	env.build()
	return env, nil
}

// metadataCluster starts the managed cluster that holds the metadata database.
func (e *Env) metadataCluster(ctx context.Context) (string, error) {
	const name = "metadata"
	cl, err := e.Computes.Open(name)
	if errors.Is(err, os.ErrNotExist) {
		cl, err = e.Computes.Create(ctx, name)
		if err != nil {
			return "", fmt.Errorf("create metadata cluster: %w", err)
		}
		return cl.URI("postgres"), nil
	}
	if err != nil {
		return "", fmt.Errorf("open metadata cluster: %w", err)
	}
	if err := e.Computes.Start(ctx, cl); err != nil {
		return "", fmt.Errorf("start metadata cluster: %w", err)
	}
	return cl.URI("postgres"), nil
}

func (e *Env) build() {
	cfg := e.Config
	e.Metrics = metrics.New()
	e.Worker = &usersync.Worker{DB: e.Pool, Log: e.Log, Metrics: e.Metrics}
	e.Console = &console.Service{DB: e.Pool, Computes: e.Computes, Log: e.Log,
		RegionID: cfg.RegionID, PGVersion: 15}
	e.Identity = &identity.Service{DB: e.Pool, Log: e.Log, PublicURL: cfg.PublicURL,
		BcryptCost: cfg.BcryptCost, AccessTTL: cfg.AccessTTL, RefreshTTL: cfg.RefreshTTL,
		RotationOverlap: cfg.RotationOverlap, ClockSkew: cfg.ClockSkew, Changed: e.Worker.Kick}
	e.Auth = &neonauth.Service{DB: e.Pool, Console: e.Console, Identity: e.Identity, Log: e.Log,
		PublicURL: cfg.PublicURL, TransferTTL: cfg.TransferTTL, Forget: e.Worker.Forget}
	e.Worker.Targets = e.Auth
	e.Console.BeforeProjectDelete = e.Auth.RemoveProject
}

// Close stops everything Open started. The service also stops the servers it found running
// (left behind by a killed predecessor); an offline command leaves those to the service.
func (e *Env) Close() {
	if e.Pool != nil {
		e.Pool.Close()
	}
	if e.Computes != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if e.Config.Offline {
			e.Computes.StopOwned(ctx)
		} else {
			e.Computes.StopAll(ctx)
		}
	}
}

// Run listens, opens everything and serves until ctx is cancelled, then shuts down
// gracefully, stopping the PostgreSQL servers it started.
func Run(ctx context.Context, cfg Config, log *slog.Logger) error {
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}
	defer ln.Close()
	if cfg.PublicURL == "" {
		cfg.PublicURL = "http://" + ln.Addr().String()
	}
	cfg.PublicURL = strings.TrimRight(cfg.PublicURL, "/")
	env, err := Open(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer env.Close()
	return env.Serve(ctx, ln)
}

// Serve prepares the services, starts the sync worker and serves HTTP on ln until ctx is
// cancelled.
func (e *Env) Serve(ctx context.Context, ln net.Listener) error {
	if err := e.start(ctx); err != nil {
		return err
	}
	ready := make(chan struct{})
	srv := &http.Server{
		Handler:           httpapi.Observe(e.Log, e.Metrics, e.Handler(ready)),
		ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 60 * time.Second,
		WriteTimeout: 120 * time.Second, IdleTimeout: 120 * time.Second,
		ErrorLog: slog.NewLogLogger(e.Log.Handler(), slog.LevelWarn),
	}
	workerCtx, stopWorker := context.WithCancel(context.WithoutCancel(ctx))
	workerDone := make(chan struct{})
	go func() { defer close(workerDone); e.Worker.Run(workerCtx) }()

	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	close(ready)
	addr := ln.Addr().String()
	if err := os.WriteFile(e.Config.AddressFile(), []byte(addr+"\n"), 0o600); err != nil {
		e.Log.Warn("write listen address file", "err", err)
	}
	e.Log.Info("neonauth ready", "listen", addr, "public_url", e.Config.PublicURL,
		"data_dir", e.Config.DataDir)

	var err error
	select {
	case err = <-serveErr:
	case <-ctx.Done():
	}
	e.Log.Info("shutting down")
	shutCtx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_ = srv.Shutdown(shutCtx)
	stopWorker()
	<-workerDone
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// start prepares the services: the first account, the owners' project and the branch
// servers of earlier runs.
func (e *Env) start(ctx context.Context) error {
	created, err := e.Console.Bootstrap(ctx, e.Config.KeyFile())
	if err != nil {
		return err
	}
	if created {
		e.Log.Info("created the first account and its admin API key",
			"key_file", e.Config.KeyFile())
	}
	if err := e.Identity.EnsureInternalProject(ctx); err != nil {
		return err
	}
	return e.Console.StartComputes(ctx)
}

// Handler returns the HTTP routes. /healthz answers 200 once ready is closed.
func (e *Env) Handler(ready <-chan struct{}) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", e.Metrics.Handler())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-ready:
		default:
			http.Error(w, "starting", http.StatusServiceUnavailable)
			return
		}
		if err := e.Pool.Ping(r.Context()); err != nil {
			http.Error(w, "metadata database unreachable", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	(&neonv2.API{Console: e.Console, Auth: e.Auth, Identity: e.Identity, Sync: e.Worker,
		Log: e.Log}).Register(mux)
	(&stackv1.API{Identity: e.Identity, Auth: e.Auth, Log: e.Log}).Register(mux)
	(&web.Pages{Auth: e.Auth, Identity: e.Identity, Log: e.Log, PublicURL: e.Config.PublicURL}).
		Register(mux)
	return mux
}
