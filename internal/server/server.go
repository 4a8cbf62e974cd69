// Package server wires neonauth together: the metadata database (a managed cluster in the
// data directory or --database-url), the computes, the domain services, the sync worker and
// the HTTP server, and shuts them down in order.
package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
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
	"github.com/neonauth/neonauth/internal/sealbox"
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
	// MasterKey is the value of NEONAUTH_MASTER_KEY: the master keys that seal the stored
	// secrets, comma-separated, current first, each 32 bytes as hex or base64. When empty
	// the keys come from MasterKeyFile. It has no flag, which would show it in the process
	// list. Open clears it from Env.Config once the keys are loaded.
	MasterKey string
	// MasterKeyFile holds the master keys when MasterKey is empty, one a line, current
	// first; default <data-dir>/master-key, generated (mode 0600) on first start.
	MasterKeyFile string
	// Offline marks a short-lived command (migrate, api-keys, resync) that shares the data
	// directory with a service that may be running.
	Offline bool
	// Fast turns off fsync in the managed clusters: for tests only, never production.
	Fast bool
	// Limits are the rate limits (internal/httpapi/limits.go); ReadHeaderTimeout is how long
	// a client may take to send a request's headers.
	Limits            httpapi.Limits
	ReadHeaderTimeout time.Duration
}

// Defaults returns the embedded defaults.
func Defaults() Config {
	return Config{
		Listen: "127.0.0.1:8080", DataDir: ".neonauth", DBMaxConns: 16, BcryptCost: 10,
		AccessTTL: 10 * time.Minute, RefreshTTL: 365 * 24 * time.Hour,
		RotationOverlap: time.Hour, ClockSkew: 30 * time.Second, TransferTTL: time.Hour,
		RegionID: "local",
		Limits:   httpapi.DefaultLimits(), ReadHeaderTimeout: 10 * time.Second,
	}
}

// KeyFile is where the first admin API key is written.
func (c Config) KeyFile() string { return filepath.Join(c.DataDir, "api-key") }

// MasterKeyPath is the file of the master keys: MasterKeyFile, or master-key in the data
// directory.
func (c Config) MasterKeyPath() string {
	if c.MasterKeyFile != "" {
		return c.MasterKeyFile
	}
	return filepath.Join(c.DataDir, "master-key")
}

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
	// Box seals and opens the stored secrets under the master keys.
	Box *sealbox.Box

	// keysConn holds the master-keys lock (see keysLock) until Close.
	keysConn *pgx.Conn
	// syncPool is the sync worker's own pool of metadata connections.
	syncPool *pgxpool.Pool
}

// Open starts (or connects to) the metadata database, migrates it, loads the master keys,
// builds the services and seals the stored secrets that are not sealed with the current
// master key. Close must be called.
func Open(ctx context.Context, cfg Config, log *slog.Logger) (*Env, error) {
	env, err := openStore(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	if err := env.lockKeys(ctx, false); err != nil {
		env.Close()
		return nil, err
	}
	if err := env.checkKeySource(ctx, cfg.MasterKey); err != nil {
		env.Close()
		return nil, err
	}
	keys, err := sealbox.LoadKeys(cfg.MasterKey, env.Config.MasterKeyPath())
	env.Config.MasterKey = ""
	if err != nil {
		env.Close()
		return nil, fmt.Errorf("load master keys: %w", err)
	}
	box, err := sealbox.New(keys...)
	if err != nil {
		env.Close()
		return nil, fmt.Errorf("load master keys: %w", err)
	}
	env.build()
	env.setBox(box)
	if _, err := env.sealSecrets(ctx); err != nil {
		env.Close()
		return nil, err
	}
	return env, nil
}

// openStore starts (or connects to) the metadata database and migrates it.
func openStore(ctx context.Context, cfg Config, log *slog.Logger) (*Env, error) {
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
	// The sync worker has a pool of its own, so that a burst of requests cannot starve it.
	if env.syncPool, err = store.Open(ctx, url, 4); err != nil {
		env.Close()
		return nil, err
	}
	if env.Pool, err = store.Open(ctx, url, int32(cfg.DBMaxConns)); err != nil {
		env.Close()
		return nil, err
	}
	if err := store.Migrate(ctx, env.Pool, log); err != nil {
		env.Close()
		return nil, err
	}
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
	e.Worker = &usersync.Worker{DB: e.syncPool, Log: e.Log, Metrics: e.Metrics}
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

// checkKeySource refuses to make a new master key file when the metadata database already
// holds sealed secrets: the keys that sealed them are elsewhere (NEONAUTH_MASTER_KEY not
// set for this command, a key file not copied with the data), and a new key opens none.
func (e *Env) checkKeySource(ctx context.Context, envKeys string) error {
	if strings.TrimSpace(envKeys) != "" {
		return nil
	}
	path := e.Config.MasterKeyPath()
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		return nil
	}
	var sealed bool
	err := e.Pool.QueryRow(ctx, `SELECT
		EXISTS (SELECT 1 FROM signing_keys WHERE private_sealed IS NOT NULL) OR
		EXISTS (SELECT 1 FROM roles WHERE password_sealed IS NOT NULL) OR
		EXISTS (SELECT 1 FROM branches WHERE admin_password_sealed IS NOT NULL)`).Scan(&sealed)
	if err != nil {
		return fmt.Errorf("look for sealed secrets: %w", err)
	}
	if sealed {
		return fmt.Errorf("no master key: the metadata database holds secrets sealed with a "+
			"master key, but NEONAUTH_MASTER_KEY is not set and %s does not exist", path)
	}
	return nil
}

// setBox gives the services the box that seals their secrets.
func (e *Env) setBox(b *sealbox.Box) {
	e.Box, e.Console.Box, e.Identity.Box = b, b, b
}

// sealSecrets seals, with the current master key, every stored secret that is still in
// plaintext (a data directory made before secrets were sealed) or sealed with an older
// key. It writes nothing when there is nothing to do, and returns how many it sealed.
func (e *Env) sealSecrets(ctx context.Context) (int, error) {
	pw, err := e.Console.SealSecrets(ctx)
	if err == nil {
		var sk int
		sk, err = e.Identity.SealSigningKeys(ctx)
		if sk+pw > 0 {
			e.Log.Info("sealed stored secrets with the current master key", "passwords", pw,
				"signing_keys", sk)
		}
		pw += sk
	}
	if err != nil {
		return pw, fmt.Errorf("seal stored secrets (a master key that sealed them may be "+
			"missing from NEONAUTH_MASTER_KEY or the master key file): %w", err)
	}
	return pw, nil
}

// staleSecrets counts the stored secrets not sealed with the current master key.
func (e *Env) staleSecrets(ctx context.Context) (int, error) {
	pw, err := e.Console.StaleSecrets(ctx)
	if err != nil {
		return 0, err
	}
	sk, err := e.Identity.StaleSigningKeys(ctx)
	return pw + sk, err
}

// keysLock is the advisory lock key that keeps a master-key rotation apart from the services
// and commands using the metadata database: each of them holds it shared, from before it
// reads the master keys until Close, and a rotation holds it exclusively.
const keysLock = 7_411_000_002

// ErrKeysInUse is returned by RotateMasterKey while a service or another command uses the
// metadata database.
var ErrKeysInUse = errors.New("a neonauth service or command is using this metadata " +
	"database; stop it before rotating the master key")

// lockKeys takes the master-keys lock on a connection of its own, kept until Close: shared
// (waiting for a rotation to finish) or, without waiting, exclusive.
func (e *Env) lockKeys(ctx context.Context, exclusive bool) error {
	c, err := e.Pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("lock master keys: %w", err)
	}
	conn := c.Hijack()
	if exclusive {
		var ok bool
		err = conn.QueryRow(ctx, "SELECT pg_try_advisory_lock($1)", keysLock).Scan(&ok)
		if err == nil && !ok {
			err = ErrKeysInUse
		}
	} else {
		_, err = conn.Exec(ctx, "SELECT pg_advisory_lock_shared($1)", keysLock)
	}
	if err != nil {
		_ = conn.Close(context.WithoutCancel(ctx))
		if errors.Is(err, ErrKeysInUse) {
			return err
		}
		return fmt.Errorf("lock master keys: %w", err)
	}
	e.keysConn = conn
	return nil
}

// Close stops everything Open started. The service also stops the servers it found running
// (left behind by a killed predecessor); an offline command leaves those to the service.
func (e *Env) Close() {
	if e.keysConn != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = e.keysConn.Close(ctx)
		cancel()
		e.keysConn = nil
	}
	if e.Pool != nil {
		e.Pool.Close()
	}
	if e.syncPool != nil {
		e.syncPool.Close()
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
		ReadHeaderTimeout: e.Config.ReadHeaderTimeout, ReadTimeout: 60 * time.Second,
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
	limits := httpapi.NewLimiters(e.Config.Limits)
	(&neonv2.API{Console: e.Console, Auth: e.Auth, Identity: e.Identity, Sync: e.Worker,
		Log: e.Log, Limits: limits}).Register(mux)
	(&stackv1.API{Identity: e.Identity, Auth: e.Auth, Log: e.Log, Limits: limits}).Register(mux)
	(&web.Pages{Auth: e.Auth, Identity: e.Identity, Log: e.Log, PublicURL: e.Config.PublicURL,
		Limits: limits}).Register(mux)
	return mux
}

// Rotation reports a master-key rotation.
type Rotation struct {
	// File is the master key file, which now holds only the new key.
	File string
	// Resealed is how many stored secrets were sealed with the new key.
	Resealed int
}

// RotateMasterKey replaces the master key of the file: it adds a new random key as the
// current one (keeping the old keys after it), seals every stored secret with it, and once
// none uses an old key rewrites the file with the new key alone. It refuses to run when the
// keys come from NEONAUTH_MASTER_KEY, and while a service or another command uses the
// metadata database (ErrKeysInUse), which would go on with the old keys only. If it stops
// half way the file keeps every key, and running it again finishes the job.
func RotateMasterKey(ctx context.Context, cfg Config, log *slog.Logger) (Rotation, error) {
	if strings.TrimSpace(cfg.MasterKey) != "" {
		return Rotation{}, errors.New("the master keys come from NEONAUTH_MASTER_KEY: " +
			"rotate them there (put a new key first, start once, then drop the old key; " +
			"see docs/security.md)")
	}
	cfg.Offline = true
	env, err := openStore(ctx, cfg, log)
	if err != nil {
		return Rotation{}, err
	}
	defer env.Close()
	if err := env.lockKeys(ctx, true); err != nil {
		return Rotation{}, err
	}
	path := env.Config.MasterKeyPath()
	rot := Rotation{File: path}
	if _, err := os.Stat(path); err != nil {
		return rot, fmt.Errorf("master key file: %w (start the service once to create it)",
			err)
	}
	old, err := sealbox.LoadKeys("", path)
	if err != nil {
		return rot, fmt.Errorf("load master keys: %w", err)
	}
	box, err := sealbox.New(old...)
	if err != nil {
		return rot, fmt.Errorf("load master keys: %w", err)
	}
	env.build()
	env.setBox(box)
	// Every secret must open with the keys of the file before the file changes.
	if _, err := env.sealSecrets(ctx); err != nil {
		return rot, err
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return rot, fmt.Errorf("generate master key: %w", err)
	}
	all := append([][]byte{key}, old...)
	if box, err = sealbox.New(all...); err != nil {
		return rot, err
	}
	if err := writeMasterKeys(path, all); err != nil {
		return rot, err
	}
	env.setBox(box)
	if rot.Resealed, err = env.sealSecrets(ctx); err != nil {
		return rot, err
	}
	stale, err := env.staleSecrets(ctx)
	if err != nil {
		return rot, fmt.Errorf("check stored secrets: %w", err)
	}
	if stale > 0 {
		return rot, fmt.Errorf("%d stored secrets still use an old master key; %s keeps "+
			"every key: run the rotation again", stale, path)
	}
	if err := writeMasterKeys(path, all[:1]); err != nil {
		return rot, err
	}
	log.Info("rotated the master key", "file", path, "resealed", rot.Resealed)
	return rot, nil
}

// writeMasterKeys replaces the master key file with keys (current first, hex), mode 0600:
// a new file is written and synced, then renamed over the old one.
func writeMasterKeys(path string, keys [][]byte) error {
	var b strings.Builder
	b.WriteString("# neonauth master keys: the first seals, every one opens. Keep it secret.\n")
	for _, k := range keys {
		b.WriteString(hex.EncodeToString(k) + "\n")
	}
	tmp := path + ".new"
	_ = os.Remove(tmp)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("write master key file: %w", err)
	}
	_, err = f.WriteString(b.String())
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("write master key file: %w", err)
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}
