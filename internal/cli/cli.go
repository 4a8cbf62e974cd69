// Package cli implements the neonauth command line: the server (serve, migrate), offline
// administration of the data directory (api-keys, accounts, master-key), and a client
// of the management API (projects, branches, auth).
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/neonauth/neonauth/internal/server"
)

// ErrUsage marks a command-line mistake; main exits with status 2 for it.
var ErrUsage = errors.New("usage error")

// Run runs the command in args (without the program name).
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		usage(stderr)
		return ErrUsage
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "serve":
		return serve(ctx, rest, stderr)
	case "migrate":
		return migrate(ctx, rest, stdout, stderr)
	case "api-keys":
		return apiKeys(ctx, rest, stdout, stderr)
	case "accounts":
		return accounts(ctx, rest, stdout, stderr)
	case "master-key":
		return masterKey(ctx, rest, stdout, stderr)
	case "auth":
		if len(rest) > 0 && rest[0] == "resync" {
			return resync(ctx, rest[1:], stdout, stderr)
		}
		return clientCommand(ctx, cmd, rest, stdout, stderr)
	case "projects", "branches":
		return clientCommand(ctx, cmd, rest, stdout, stderr)
	case "help", "-h", "--help":
		usage(stdout)
		return nil
	default:
		fmt.Fprintf(stderr, "neonauth: unknown command %q\n", cmd)
		usage(stderr)
		return ErrUsage
	}
}

func usage(w io.Writer) {
	fmt.Fprint(w, `neonauth: Neon Auth you can run yourself.

Server:
  neonauth serve [flags]              run the service (see neonauth serve -h)
  neonauth migrate [flags]            apply the metadata database migrations and exit

Offline administration of a data directory:
  neonauth api-keys create --name N   create an API key for the first account
  neonauth accounts create --name N   create another account and print its first API key
  neonauth auth resync --project-id P rebuild the project's neon_auth.users_sync
  neonauth master-key rotate          seal every stored secret with a new master key

Client of the management API (--api-host, --api-key, --output table|json):
  neonauth projects list|create|delete
  neonauth branches list --project-id P
  neonauth auth create|list|keys|user|transfer|delete|rotate-key
`)
}

// envOr returns the environment variable's value, or def.
func envOr(name, def string) string {
	if v, ok := os.LookupEnv(name); ok && v != "" {
		return v
	}
	return def
}

func envInt(name string, def int) int {
	if v := os.Getenv(name); v != "" {
		if n, err := strconv.Atoi(v); err == nil {
			return n
		}
	}
	return def
}

func envDuration(name string, def time.Duration) time.Duration {
	if v := os.Getenv(name); v != "" {
		if d, err := time.ParseDuration(v); err == nil {
			return d
		}
	}
	return def
}

// storeFlags are the flags every command that opens the data directory takes.
func storeFlags(fs *flag.FlagSet, cfg *server.Config) {
	fs.StringVar(&cfg.DataDir, "data-dir", envOr("NEONAUTH_DATA_DIR", cfg.DataDir),
		"data directory: API key file, managed PostgreSQL clusters (NEONAUTH_DATA_DIR)")
	fs.StringVar(&cfg.DatabaseURL, "database-url", envOr("NEONAUTH_DATABASE_URL", ""),
		"metadata database URL; default: a cluster managed in the data directory "+
			"(NEONAUTH_DATABASE_URL)")
	fs.StringVar(&cfg.PGBin, "pg-bin", envOr("NEONAUTH_PG_BIN", ""),
		"directory of the PostgreSQL server binaries; default: PATH, then "+
			"/usr/lib/postgresql/*/bin (NEONAUTH_PG_BIN)")
	fs.StringVar(&cfg.MasterKeyFile, "master-key-file", envOr("NEONAUTH_MASTER_KEY_FILE", ""),
		"file of the master keys that seal stored secrets, one a line, current first; "+
			"default: <data-dir>/master-key, created on first start; not read when "+
			"NEONAUTH_MASTER_KEY (comma-separated keys, current first) is set "+
			"(NEONAUTH_MASTER_KEY_FILE)")
	cfg.MasterKey = takeMasterKeyEnv()
}

// takeMasterKeyEnv returns NEONAUTH_MASTER_KEY and removes it from the environment, so that
// the processes the service starts (the PostgreSQL servers) do not inherit the master keys.
func takeMasterKeyEnv() string {
	v := os.Getenv("NEONAUTH_MASTER_KEY")
	if v != "" {
		_ = os.Unsetenv("NEONAUTH_MASTER_KEY")
	}
	return v
}

func serveFlags(fs *flag.FlagSet, cfg *server.Config) {
	storeFlags(fs, cfg)
	fs.StringVar(&cfg.Listen, "listen", envOr("NEONAUTH_LISTEN", cfg.Listen),
		"address to listen on (NEONAUTH_LISTEN)")
	fs.StringVar(&cfg.PublicURL, "public-url", envOr("NEONAUTH_PUBLIC_URL", ""),
		"base URL in jwks_url, token issuers and transfer links; default: http://<listen> "+
			"(NEONAUTH_PUBLIC_URL)")
	fs.IntVar(&cfg.BcryptCost, "bcrypt-cost", envInt("NEONAUTH_BCRYPT_COST", cfg.BcryptCost),
		"bcrypt cost of new password hashes (NEONAUTH_BCRYPT_COST)")
	fs.DurationVar(&cfg.AccessTTL, "access-token-ttl",
		envDuration("NEONAUTH_ACCESS_TOKEN_TTL", cfg.AccessTTL),
		"access-token lifetime (NEONAUTH_ACCESS_TOKEN_TTL)")
	fs.DurationVar(&cfg.RefreshTTL, "refresh-token-ttl",
		envDuration("NEONAUTH_REFRESH_TOKEN_TTL", cfg.RefreshTTL),
		"refresh-token lifetime (NEONAUTH_REFRESH_TOKEN_TTL)")
	fs.DurationVar(&cfg.RotationOverlap, "rotation-overlap",
		envDuration("NEONAUTH_ROTATION_OVERLAP", cfg.RotationOverlap),
		"how long a replaced signing key stays published; at least twice the access-token "+
			"lifetime is used (NEONAUTH_ROTATION_OVERLAP)")
	fs.DurationVar(&cfg.TransferTTL, "transfer-ttl",
		envDuration("NEONAUTH_TRANSFER_TTL", cfg.TransferTTL),
		"lifetime of ownership transfer codes (NEONAUTH_TRANSFER_TTL)")
	fs.IntVar(&cfg.DBMaxConns, "db-max-conns", envInt("NEONAUTH_DB_MAX_CONNS", cfg.DBMaxConns),
		"metadata database pool size (NEONAUTH_DB_MAX_CONNS)")
	fs.BoolVar(&cfg.Fast, "unsafe-fast-storage", envOr("NEONAUTH_UNSAFE_FAST_STORAGE", "") == "1",
		"turn off fsync in managed clusters: for tests only; a crash can lose data "+
			"(NEONAUTH_UNSAFE_FAST_STORAGE=1)")
	limitFlags(fs, cfg) // limits.go
}

func newLogger(w io.Writer) *slog.Logger {
	level := slog.LevelInfo
	if strings.EqualFold(os.Getenv("NEONAUTH_LOG_LEVEL"), "debug") {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return ErrUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "unexpected argument %q\n", fs.Arg(0))
		return ErrUsage
	}
	return nil
}

func serve(ctx context.Context, args []string, stderr io.Writer) error {
	cfg := server.Defaults()
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	serveFlags(fs, &cfg)
	if err := parse(fs, args); err != nil || helpAsked(args) {
		return err
	}
	return server.Run(ctx, cfg, newLogger(stderr))
}

func helpAsked(args []string) bool {
	for _, a := range args {
		if a == "-h" || a == "-help" || a == "--help" {
			return true
		}
	}
	return false
}

func migrate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg := server.Defaults()
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	storeFlags(fs, &cfg)
	if err := parse(fs, args); err != nil || helpAsked(args) {
		return err
	}
	cfg.Offline = true
	env, err := server.Open(ctx, cfg, newLogger(stderr))
	if err != nil {
		return err
	}
	env.Close()
	fmt.Fprintln(stdout, "migrations applied")
	return nil
}

func apiKeys(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "create" {
		fmt.Fprintln(stderr, "usage: neonauth api-keys create --name N [--data-dir D]")
		return ErrUsage
	}
	cfg := server.Defaults()
	fs := flag.NewFlagSet("api-keys create", flag.ContinueOnError)
	fs.SetOutput(stderr)
	storeFlags(fs, &cfg)
	name := fs.String("name", "", "name of the key")
	if err := parse(fs, args[1:]); err != nil || helpAsked(args) {
		return err
	}
	cfg.Offline = true
	env, err := server.Open(ctx, cfg, newLogger(io.Discard))
	if err != nil {
		return err
	}
	defer env.Close()
	if _, err := env.Console.Bootstrap(ctx, cfg.KeyFile()); err != nil {
		return err
	}
	_, key, err := env.Console.CreateAPIKeyOffline(ctx, *name)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, key)
	return nil
}

func accounts(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "create" {
		fmt.Fprintln(stderr, "usage: neonauth accounts create --name N [--data-dir D]")
		return ErrUsage
	}
	cfg := server.Defaults()
	fs := flag.NewFlagSet("accounts create", flag.ContinueOnError)
	fs.SetOutput(stderr)
	storeFlags(fs, &cfg)
	name := fs.String("name", "", "name of the account")
	if err := parse(fs, args[1:]); err != nil || helpAsked(args) {
		return err
	}
	cfg.Offline = true
	env, err := server.Open(ctx, cfg, newLogger(io.Discard))
	if err != nil {
		return err
	}
	defer env.Close()
	if _, err := env.Console.Bootstrap(ctx, cfg.KeyFile()); err != nil {
		return err
	}
	_, key, err := env.Console.CreateAccount(ctx, *name)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, key)
	return nil
}

func masterKey(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "rotate" {
		fmt.Fprintln(stderr, "usage: neonauth master-key rotate [--data-dir D] "+
			"[--master-key-file F]")
		return ErrUsage
	}
	cfg := server.Defaults()
	fs := flag.NewFlagSet("master-key rotate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	storeFlags(fs, &cfg)
	if err := parse(fs, args[1:]); err != nil || helpAsked(args) {
		return err
	}
	rot, err := server.RotateMasterKey(ctx, cfg, newLogger(io.Discard))
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "master key rotated: %d stored secrets sealed with the new key; "+
		"%s holds only the new key\n", rot.Resealed, rot.File)
	return nil
}
