// Package compute runs real PostgreSQL servers ("clusters") from the local PostgreSQL
// binaries: it creates them with initdb, clones them with pg_basebackup, and starts and
// stops them with pg_ctl. Every server listens only on 127.0.0.1, on a port of its own, and
// authenticates with scram-sha-256.
//
// A Manager owns a root directory with one sub-directory per cluster:
//
//	<root>/<name>/pgdata              the PostgreSQL data directory
//	<root>/<name>/superuser.password  the superuser password (mode 0600)
//	<root>/<name>/port                the port the server last ran on
//	<root>/<name>/postgres.log        the server log
//
// initdb and pg_ctl refuse to run as root, so when the process runs as root the Manager
// runs them as the "postgres" system user and hands the cluster directories to that user.
package compute

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Names of the files a Manager keeps in a cluster directory.
const (
	dataDirName      = "pgdata"
	passwordFileName = "superuser.password"
	portFileName     = "port"
	logFileName      = "postgres.log"
	// confFileName is the configuration file the Manager writes inside the data directory;
	// postgresql.conf includes it at its end so that its settings win.
	confFileName = "neonauth.conf"
)

// superuser is the name of the bootstrap superuser of every cluster.
const superuser = "postgres"

// systemUser is the operating-system account PostgreSQL runs as when the process is root.
const systemUser = "postgres"

// pgctlTimeout is the -t value, in seconds, of every pg_ctl call.
const pgctlTimeout = "60"

// startAttempts bounds how often Start retries with a new port (or after a crashed
// server's shared memory was still in use).
const startAttempts = 5

// baseConfig are the server settings of every cluster: loopback TCP only, no unix sockets,
// and modest memory so that many clusters fit on one small machine.
var baseConfig = map[string]string{
	"listen_addresses":        "127.0.0.1",
	"unix_socket_directories": "",
	"max_connections":         "100",
	"shared_buffers":          "32MB",
	"maintenance_work_mem":    "32MB",
	"work_mem":                "4MB",
	"max_wal_size":            "256MB",
	"min_wal_size":            "32MB",
	"huge_pages":              "off",
	"password_encryption":     "scram-sha-256",
	"logging_collector":       "off",
}

// hbaConfig is the pg_hba.conf of every cluster: scram-sha-256 over loopback TCP for normal
// and replication (pg_basebackup) connections, and nothing else.
const hbaConfig = `# Written by neonauth. TCP on loopback only, scram-sha-256 only.
# TYPE  DATABASE     USER  ADDRESS       METHOD
host    all          all   127.0.0.1/32  scram-sha-256
host    all          all   ::1/128       scram-sha-256
host    replication  all   127.0.0.1/32  scram-sha-256
host    replication  all   ::1/128       scram-sha-256
`

var (
	validName   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$`)
	validGUC    = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.]*$`)
	errPortBusy = errors.New("port already in use")
	errShmBusy  = errors.New("shared memory of a previous server still in use")
)

// Manager runs PostgreSQL clusters under Root, one sub-directory per cluster name.
// Its methods are safe for concurrent use; operations on one cluster name are serialized,
// but a *Cluster value must not be used by two goroutines at once while Start may change
// its Port.
type Manager struct {
	binDir string
	root   string
	log    *slog.Logger
	// cred is the identity the PostgreSQL programs run as; nil means the current user.
	cred *syscall.Credential
	// home is the home directory of cred's user, for the programs' environment.
	home string

	mu      sync.Mutex
	extra   map[string]string
	locks   map[string]*sync.Mutex // one per cluster name
	started map[string]*Cluster    // clusters this Manager has running, by name
	adopted map[string]bool        // of those, the ones that were already running
	ports   map[int]string         // ports handed to clusters of this Manager, to their name
}

// Cluster is one PostgreSQL server managed by a Manager.
type Cluster struct {
	Name     string // directory name under Root
	Dir      string // <root>/<name>; the data directory is <Dir>/pgdata
	Port     int    // TCP port on 127.0.0.1
	User     string // superuser name: "postgres"
	Password string // superuser password (random, generated at Create)
}

// URI returns a connection URI for database as the superuser, over loopback TCP without TLS:
// postgres://postgres:<password>@127.0.0.1:<port>/<database>?sslmode=disable.
func (c *Cluster) URI(database string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.UserPassword(c.User, c.Password),
		Host:     net.JoinHostPort("127.0.0.1", strconv.Itoa(c.Port)),
		Path:     "/" + database,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// dataDir returns the cluster's PostgreSQL data directory.
func (c *Cluster) dataDir() string { return filepath.Join(c.Dir, dataDirName) }

// NewManager returns a Manager that runs the PostgreSQL programs in binDir and keeps its
// clusters under root, which is created when missing. A nil log uses slog.Default().
//
// When the process runs as root, the programs run as the "postgres" system user (an error
// is returned when there is none), and every ancestor directory of root that lacks
// other-execute permission gets it (execute only, not read), so that user can reach root.
func NewManager(binDir, root string, log *slog.Logger) (*Manager, error) {
	if log == nil {
		log = slog.Default()
	}
	bin, err := checkBinDir(binDir)
	if err != nil {
		return nil, fmt.Errorf("new cluster manager: %w: %w", ErrNoBinaries, err)
	}
	if root == "" {
		return nil, errors.New("new cluster manager: empty root directory")
	}
	absRoot, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("new cluster manager: root %q: %w", root, err)
	}
	if err := os.MkdirAll(absRoot, 0o700); err != nil {
		return nil, fmt.Errorf("new cluster manager: create root: %w", err)
	}
	m := &Manager{
		binDir:  bin,
		root:    absRoot,
		log:     log,
		locks:   map[string]*sync.Mutex{},
		started: map[string]*Cluster{},
		adopted: map[string]bool{},
		ports:   map[int]string{},
	}
	if os.Geteuid() == 0 {
		if err := m.setupSystemUser(); err != nil {
			return nil, fmt.Errorf("new cluster manager: %w", err)
		}
	}
	return m, nil
}

// setupSystemUser makes the Manager run PostgreSQL as the postgres system user and lets
// that user traverse every directory down to the root.
func (m *Manager) setupSystemUser() error {
	u, err := user.Lookup(systemUser)
	if err != nil {
		return fmt.Errorf("running as root needs a %q system user to run PostgreSQL as "+
			"(initdb refuses to run as root); install the postgresql package or create "+
			"the user: %w", systemUser, err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return fmt.Errorf("user %q: uid %q: %w", systemUser, u.Uid, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return fmt.Errorf("user %q: gid %q: %w", systemUser, u.Gid, err)
	}
	m.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	m.home = u.HomeDir

	var changed []string
	for dir := m.root; ; dir = filepath.Dir(dir) {
		fi, err := os.Stat(dir)
		if err != nil {
			return fmt.Errorf("check access to %q: %w", dir, err)
		}
		if fi.Mode().Perm()&0o001 == 0 {
			if err := os.Chmod(dir, fi.Mode().Perm()|0o001); err != nil {
				return fmt.Errorf("let user %q traverse %q: %w", systemUser, dir, err)
			}
			changed = append(changed, dir)
		}
		if dir == filepath.Dir(dir) {
			break
		}
	}
	if len(changed) > 0 {
		m.log.Info("added other-execute permission so the postgres user can reach "+
			"the cluster root", "root", m.root, "dirs", changed)
	}
	return nil
}

// SetExtraConfig sets server settings (postgresql.conf names and values) that are written,
// after and over the Manager's defaults, into the configuration of clusters that this
// Manager creates or clones from now on. It is meant for tests, e.g. fsync=off and
// synchronous_commit=off; when it sets fsync=off, initdb and pg_basebackup also skip their
// final sync to disk. It returns no error: names that are not valid setting names are
// logged and ignored.
func (m *Manager) SetExtraConfig(settings map[string]string) {
	extra := map[string]string{}
	for k, v := range settings {
		if !validGUC.MatchString(k) {
			m.log.Warn("ignoring invalid server setting name", "setting", k)
			continue
		}
		extra[k] = v
	}
	m.mu.Lock()
	m.extra = extra
	m.mu.Unlock()
}

// noSync reports whether the extra settings turn fsync off.
func (m *Manager) noSync() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	v, ok := m.extra["fsync"]
	return ok && slices.Contains([]string{"off", "false", "no", "0"}, strings.ToLower(v))
}

// Create initializes a new cluster called name with initdb, with a random superuser
// password, and starts it on a free port. It fails when the directory already exists.
func (m *Manager) Create(ctx context.Context, name string) (_ *Cluster, err error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	unlock := m.lockName(name)
	defer unlock()

	c := m.newCluster(name)
	if err := os.Mkdir(c.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("create cluster %q: %w", name, err)
	}
	defer func() {
		if err != nil {
			m.discard(ctx, c)
		}
	}()
	if err := m.chown(c.Dir); err != nil {
		return nil, fmt.Errorf("create cluster %q: %w", name, err)
	}
	if c.Password, err = randomPassword(); err != nil {
		return nil, fmt.Errorf("create cluster %q: %w", name, err)
	}
	pwFile := filepath.Join(c.Dir, passwordFileName)
	if err := m.writeFile(pwFile, c.Password+"\n"); err != nil {
		return nil, fmt.Errorf("create cluster %q: %w", name, err)
	}
	if err := m.initdb(ctx, c, pwFile); err != nil {
		return nil, fmt.Errorf("create cluster %q: %w", name, err)
	}
	if err := m.writeConfig(c); err != nil {
		return nil, fmt.Errorf("create cluster %q: %w", name, err)
	}
	if err := m.start(ctx, c, 0); err != nil {
		return nil, fmt.Errorf("create cluster %q: %w", name, err)
	}
	m.log.Info("created cluster", "cluster", name, "port", c.Port)
	return c, nil
}

// initdb runs initdb for c, with the C.UTF-8 locale, or without a locale when that fails.
func (m *Manager) initdb(ctx context.Context, c *Cluster, pwFile string) error {
	args := []string{
		"-D", c.dataDir(), "-U", superuser, "--auth=scram-sha-256",
		"--pwfile=" + pwFile, "-E", "UTF8",
	}
	if m.noSync() {
		args = append(args, "--no-sync")
	}
	out, err := m.run(ctx, c.Dir, nil, "initdb", append(args, "--locale=C.UTF-8")...)
	if err == nil {
		return nil
	}
	if !strings.Contains(strings.ToLower(string(out)), "locale") {
		return err
	}
	m.log.Warn("initdb with locale C.UTF-8 failed, retrying without locale",
		"cluster", c.Name, "error", err)
	if rmErr := os.RemoveAll(c.dataDir()); rmErr != nil {
		return fmt.Errorf("%w (and cleaning up: %w)", err, rmErr)
	}
	if _, err2 := m.run(ctx, c.Dir, nil, "initdb", append(args, "--no-locale")...); err2 != nil {
		return fmt.Errorf("%w (and with --no-locale: %w)", err, err2)
	}
	return nil
}

// Clone makes a new cluster called name as a physical copy of the running parent, taken with
// pg_basebackup, and starts it on a port of its own. The clone keeps the parent's superuser
// password.
func (m *Manager) Clone(ctx context.Context, parent *Cluster, name string) (_ *Cluster, err error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	if parent == nil {
		return nil, fmt.Errorf("clone cluster %q: nil parent", name)
	}
	if !m.Running(parent) {
		return nil, fmt.Errorf("clone cluster %q from %q: parent is not running", name, parent.Name)
	}
	unlock := m.lockName(name)
	defer unlock()

	c := m.newCluster(name)
	c.Password = parent.Password
	if err := os.Mkdir(c.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("clone cluster %q: %w", name, err)
	}
	defer func() {
		if err != nil {
			m.discard(ctx, c)
		}
	}()
	if err := m.chown(c.Dir); err != nil {
		return nil, fmt.Errorf("clone cluster %q: %w", name, err)
	}
	if err := m.writeFile(filepath.Join(c.Dir, passwordFileName), c.Password+"\n"); err != nil {
		return nil, fmt.Errorf("clone cluster %q: %w", name, err)
	}
	args := []string{
		"-D", c.dataDir(), "-h", "127.0.0.1", "-p", strconv.Itoa(parent.Port),
		"-U", superuser, "-X", "stream", "-c", "fast", "-w",
	}
	if m.noSync() {
		args = append(args, "--no-sync")
	}
	// The password goes through the environment only: never argv, never the log.
	env := []string{"PGPASSWORD=" + parent.Password, "PGSSLMODE=disable"}
	if _, err := m.run(ctx, c.Dir, env, "pg_basebackup", args...); err != nil {
		return nil, fmt.Errorf("clone cluster %q from %q: %w", name, parent.Name, err)
	}
	if err := m.writeConfig(c); err != nil {
		return nil, fmt.Errorf("clone cluster %q: %w", name, err)
	}
	if err := m.start(ctx, c, 0); err != nil {
		return nil, fmt.Errorf("clone cluster %q: %w", name, err)
	}
	m.log.Info("cloned cluster", "cluster", name, "port", c.Port, "parent", parent.Name)
	return c, nil
}

// Open returns the existing cluster called name, with its saved password and last port.
// It does not start it.
func (m *Manager) Open(name string) (*Cluster, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	c := m.newCluster(name)
	if _, err := os.Stat(filepath.Join(c.dataDir(), "PG_VERSION")); err != nil {
		return nil, fmt.Errorf("open cluster %q: not a cluster directory: %w", name, err)
	}
	pw, err := os.ReadFile(filepath.Join(c.Dir, passwordFileName))
	if err != nil {
		return nil, fmt.Errorf("open cluster %q: read password: %w", name, err)
	}
	c.Password = strings.TrimSpace(string(pw))
	if c.Password == "" {
		return nil, fmt.Errorf("open cluster %q: empty password file", name)
	}
	port, err := os.ReadFile(filepath.Join(c.Dir, portFileName))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		// Never started: Start picks a port.
	case err != nil:
		return nil, fmt.Errorf("open cluster %q: read port: %w", name, err)
	default:
		if c.Port, err = strconv.Atoi(strings.TrimSpace(string(port))); err != nil {
			return nil, fmt.Errorf("open cluster %q: bad port file: %w", name, err)
		}
	}
	return c, nil
}

// Start starts c unless it is already running, and waits until it accepts connections.
// It tries c.Port first; when that port is busy it picks another free one and updates
// c.Port. When the server is already running, Start only sets c.Port to the port it runs on.
func (m *Manager) Start(ctx context.Context, c *Cluster) error {
	unlock := m.lockName(c.Name)
	defer unlock()
	if pid, port, ok := m.postmaster(c); ok {
		if port > 0 && port != c.Port {
			m.releasePort(c)
			c.Port = port
			if err := m.savePort(c); err != nil {
				return fmt.Errorf("start cluster %q: %w", c.Name, err)
			}
		}
		m.track(c)
		m.mu.Lock()
		m.adopted[c.Name] = true
		m.mu.Unlock()
		m.log.Info("cluster already running", "cluster", c.Name, "port", c.Port, "pid", pid)
		return nil
	}
	if err := m.start(ctx, c, c.Port); err != nil {
		return fmt.Errorf("start cluster %q: %w", c.Name, err)
	}
	return nil
}

// start starts the stopped cluster c, preferring port (0 for any), retrying with a new port
// when the chosen one turns out to be busy. The caller holds c's name lock.
func (m *Manager) start(ctx context.Context, c *Cluster, port int) error {
	if err := m.removeStaleLock(c); err != nil {
		return err
	}
	var lastErr error
	for attempt := 0; attempt < startAttempts; attempt++ {
		if attempt > 0 || port <= 0 || !m.portFree(c, port) {
			p, err := m.freePort(c)
			if err != nil {
				return err
			}
			port = p
		}
		err := m.pgctlStart(ctx, c, port)
		if err == nil {
			m.releasePort(c)
			c.Port = port
			m.claimPort(c)
			if err := m.savePort(c); err != nil {
				return err
			}
			if err := waitAccepting(ctx, port); err != nil {
				return err
			}
			m.track(c)
			m.log.Info("started cluster", "cluster", c.Name, "port", port)
			return nil
		}
		lastErr = err
		m.unclaimPort(c, port)
		switch {
		case errors.Is(err, errPortBusy):
			m.log.Info("port taken, retrying on another", "cluster", c.Name, "port", port)
		case errors.Is(err, errShmBusy):
			// Children of a killed postmaster are still exiting; give them a moment.
			m.log.Info("previous server still exiting, retrying", "cluster", c.Name)
			select {
			case <-ctx.Done():
				return fmt.Errorf("%w (%w)", ctx.Err(), err)
			case <-time.After(time.Duration(attempt+1) * 300 * time.Millisecond):
			}
		default:
			return err
		}
	}
	return fmt.Errorf("gave up after %d attempts: %w", startAttempts, lastErr)
}

// pgctlStart runs pg_ctl start for c on port. When it fails, the error carries the new part
// of the server log and wraps errPortBusy or errShmBusy when the log names that cause.
func (m *Manager) pgctlStart(ctx context.Context, c *Cluster, port int) error {
	logFile := filepath.Join(c.Dir, logFileName)
	var offset int64
	if fi, err := os.Stat(logFile); err == nil {
		offset = fi.Size()
	}
	_, err := m.run(ctx, c.Dir, nil, "pg_ctl", "start", "-D", c.dataDir(), "-l", logFile,
		"-w", "-t", pgctlTimeout, "-o", "-p "+strconv.Itoa(port))
	if err == nil {
		return nil
	}
	tail := readFrom(logFile, offset, 4096)
	switch {
	case strings.Contains(tail, "Address already in use"),
		strings.Contains(tail, "could not create any TCP/IP sockets"):
		err = fmt.Errorf("%w: %w", errPortBusy, err)
	case strings.Contains(tail, "pre-existing shared memory block"):
		err = fmt.Errorf("%w: %w", errShmBusy, err)
	}
	if tail != "" {
		return fmt.Errorf("%w; server log:\n%s", err, tail)
	}
	return err
}

// waitAccepting waits until something accepts TCP connections on 127.0.0.1:port.
// pg_ctl -w has already waited for the server to be ready, so this is normally immediate.
func waitAccepting(ctx context.Context, port int) error {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	deadline := time.Now().Add(10 * time.Second)
	var d net.Dialer
	for {
		dctx, cancel := context.WithTimeout(ctx, time.Second)
		conn, err := d.DialContext(dctx, "tcp", addr)
		cancel()
		if err == nil {
			return conn.Close()
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			return fmt.Errorf("server not accepting connections on %s: %w", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop stops c with pg_ctl stop -m fast. Stopping a cluster that is not running is not
// an error.
func (m *Manager) Stop(ctx context.Context, c *Cluster) error {
	unlock := m.lockName(c.Name)
	defer unlock()
	return m.stop(ctx, c)
}

// stop is Stop for a caller holding c's name lock.
func (m *Manager) stop(ctx context.Context, c *Cluster) error {
	defer m.untrack(c)
	if !m.Running(c) {
		return nil
	}
	_, err := m.run(ctx, c.Dir, nil, "pg_ctl", "stop", "-D", c.dataDir(), "-m", "fast",
		"-w", "-t", pgctlTimeout)
	if err != nil && m.Running(c) {
		return fmt.Errorf("stop cluster %q: %w", c.Name, err)
	}
	m.log.Info("stopped cluster", "cluster", c.Name, "port", c.Port)
	return nil
}

// StopAll stops every cluster this Manager has started, created or cloned in this process
// (including clusters that Start found already running), for graceful shutdown. Errors are
// logged.
func (m *Manager) StopAll(ctx context.Context) {
	m.mu.Lock()
	clusters := slices.Collect(maps.Values(m.started))
	m.mu.Unlock()

	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for _, c := range clusters {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			if err := m.Stop(ctx, c); err != nil {
				m.log.Error("stop cluster at shutdown", "cluster", c.Name, "port", c.Port,
					"error", err)
			}
		})
	}
	wg.Wait()
}

// StopOwned stops the clusters this Manager started itself, leaving those it found already
// running (another process's) as they were: for short-lived commands that share a data
// directory with a running service.
func (m *Manager) StopOwned(ctx context.Context) {
	m.mu.Lock()
	var own []*Cluster
	for name, c := range m.started {
		if !m.adopted[name] {
			own = append(own, c)
		}
	}
	m.mu.Unlock()
	for _, c := range own {
		if err := m.Stop(ctx, c); err != nil {
			m.log.Error("stop cluster", "cluster", c.Name, "port", c.Port, "error", err)
		}
	}
}

// Remove stops c and deletes its directory.
func (m *Manager) Remove(ctx context.Context, c *Cluster) error {
	if err := checkName(c.Name); err != nil {
		return err
	}
	if c.Dir != filepath.Join(m.root, c.Name) {
		return fmt.Errorf("remove cluster %q: directory %q is not under %q", c.Name, c.Dir, m.root)
	}
	unlock := m.lockName(c.Name)
	defer unlock()
	if err := m.stop(ctx, c); err != nil {
		return fmt.Errorf("remove cluster %q: %w", c.Name, err)
	}
	if err := os.RemoveAll(c.Dir); err != nil {
		return fmt.Errorf("remove cluster %q: %w", c.Name, err)
	}
	m.releasePort(c)
	m.log.Info("removed cluster", "cluster", c.Name, "port", c.Port)
	return nil
}

// Running reports whether c's postmaster is running.
func (m *Manager) Running(c *Cluster) bool {
	_, _, ok := m.postmaster(c)
	return ok
}

// postmaster reads c's postmaster.pid and reports the postmaster's pid and port, and whether
// that process is alive and really is a postmaster of this data directory (a pid file left
// by a killed server may name an exited, zombie or unrelated process).
func (m *Manager) postmaster(c *Cluster) (pid, port int, ok bool) {
	data, err := os.ReadFile(filepath.Join(c.dataDir(), "postmaster.pid"))
	if err != nil {
		return 0, 0, false
	}
	lines := strings.Split(string(data), "\n")
	pid, err = strconv.Atoi(strings.TrimSpace(lines[0]))
	if err != nil || pid <= 0 {
		return 0, 0, false
	}
	if len(lines) > 3 {
		port, _ = strconv.Atoi(strings.TrimSpace(lines[3]))
	}
	return pid, port, processAlive(pid, c.dataDir())
}

// processAlive reports whether pid is a live, non-zombie process, and where /proc shows it,
// one whose working directory is dataDir (the postmaster changes into its data directory).
func processAlive(pid int, dataDir string) bool {
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	proc := filepath.Join("/proc", strconv.Itoa(pid))
	if stat, err := os.ReadFile(filepath.Join(proc, "stat")); err == nil {
		// The state follows the parenthesized command name: "pid (comm) S ...".
		if i := bytes.LastIndexByte(stat, ')'); i >= 0 && i+2 < len(stat) {
			if s := stat[i+2]; s == 'Z' || s == 'X' {
				return false
			}
		}
	} else if errors.Is(err, fs.ErrNotExist) {
		if _, err := os.Stat("/proc/self"); err == nil {
			return false // /proc works, so the process is gone
		}
		return true // no /proc on this system: trust kill(2)
	}
	cwd, err := os.Readlink(filepath.Join(proc, "cwd"))
	if err != nil {
		return true // not allowed to look: trust kill(2)
	}
	want, err := filepath.EvalSymlinks(dataDir)
	if err != nil {
		return false
	}
	return cwd == want
}

// removeStaleLock deletes c's postmaster.pid when it does not belong to a running
// postmaster, so a pid reused by another process (or a zombie) cannot block the start.
func (m *Manager) removeStaleLock(c *Cluster) error {
	pidFile := filepath.Join(c.dataDir(), "postmaster.pid")
	if _, err := os.Stat(pidFile); err != nil {
		return nil
	}
	if m.Running(c) {
		return fmt.Errorf("cluster %q is already running", c.Name)
	}
	if err := os.Remove(pidFile); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove stale %s: %w", pidFile, err)
	}
	m.log.Info("removed stale postmaster.pid", "cluster", c.Name)
	return nil
}

// writeConfig writes the Manager's pg_hba.conf and server settings into c's data directory
// and makes postgresql.conf include the settings file.
func (m *Manager) writeConfig(c *Cluster) error {
	m.mu.Lock()
	settings := maps.Clone(baseConfig)
	maps.Copy(settings, m.extra)
	m.mu.Unlock()

	var b strings.Builder
	b.WriteString("# Written by neonauth; included at the end of postgresql.conf.\n")
	b.WriteString("# The port is passed on the command line at each start.\n")
	for _, k := range slices.Sorted(maps.Keys(settings)) {
		fmt.Fprintf(&b, "%s = '%s'\n", k, strings.ReplaceAll(settings[k], "'", "''"))
	}
	if err := m.writeFile(filepath.Join(c.dataDir(), confFileName), b.String()); err != nil {
		return err
	}
	if err := m.writeFile(filepath.Join(c.dataDir(), "pg_hba.conf"), hbaConfig); err != nil {
		return err
	}

	mainConf := filepath.Join(c.dataDir(), "postgresql.conf")
	data, err := os.ReadFile(mainConf)
	if err != nil {
		return fmt.Errorf("read postgresql.conf: %w", err)
	}
	include := "include '" + confFileName + "'"
	if slices.Contains(strings.Split(string(data), "\n"), include) {
		return nil
	}
	f, err := os.OpenFile(mainConf, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return fmt.Errorf("open postgresql.conf: %w", err)
	}
	_, err = fmt.Fprintf(f, "\n# Settings managed by neonauth (they override the above).\n%s\n",
		include)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("append to postgresql.conf: %w", err)
	}
	return nil
}

// run runs the PostgreSQL program name from the binary directory, in dir, as the
// PostgreSQL user, with extraEnv added to a cleaned environment. It returns the combined
// output; on failure the error includes it. extraEnv is never logged.
func (m *Manager) run(
	ctx context.Context, dir string, extraEnv []string, name string, args ...string,
) ([]byte, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(m.binDir, name), args...)
	cmd.Dir = dir
	cmd.Env = append(m.environ(), extraEnv...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: m.cred}
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	cmd.WaitDelay = 10 * time.Second
	m.log.Debug("running", "program", name, "args", args)
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(out.String())
		return out.Bytes(), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, msg)
	}
	return out.Bytes(), nil
}

// environ returns the process environment without PostgreSQL client variables and locale
// overrides, with messages in English (their text is matched) and, when running as the
// postgres user, that user's HOME, USER and LOGNAME.
func (m *Manager) environ() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "PG") || k == "LC_ALL" || k == "LC_MESSAGES" || k == "LANGUAGE" {
			continue
		}
		if strings.HasPrefix(k, "NEONAUTH_") || strings.HasPrefix(k, "NEON_API") {
			continue // our own settings, secrets among them, are no business of the servers
		}
		if m.cred != nil && (k == "HOME" || k == "USER" || k == "LOGNAME") {
			continue
		}
		env = append(env, kv)
	}
	env = append(env, "LC_MESSAGES=C")
	if m.cred != nil {
		env = append(env, "HOME="+m.home, "USER="+systemUser, "LOGNAME="+systemUser)
	}
	return env
}

// writeFile writes content to path with mode 0600, owned by the PostgreSQL user.
func (m *Manager) writeFile(path, content string) error {
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		return fmt.Errorf("chmod %s: %w", path, err)
	}
	return m.chown(path)
}

// chown gives path to the PostgreSQL user when the Manager runs programs as another user.
func (m *Manager) chown(path string) error {
	if m.cred == nil {
		return nil
	}
	if err := os.Lchown(path, int(m.cred.Uid), int(m.cred.Gid)); err != nil {
		return fmt.Errorf("chown %s to %s: %w", path, systemUser, err)
	}
	return nil
}

// savePort records c.Port in c's port file.
func (m *Manager) savePort(c *Cluster) error {
	return m.writeFile(filepath.Join(c.Dir, portFileName), strconv.Itoa(c.Port)+"\n")
}

// discard stops and deletes a cluster whose creation failed. The caller holds its name lock.
func (m *Manager) discard(ctx context.Context, c *Cluster) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	if err := m.stop(ctx, c); err != nil {
		m.log.Error("stop half-created cluster", "cluster", c.Name, "error", err)
	}
	if err := os.RemoveAll(c.Dir); err != nil {
		m.log.Error("remove half-created cluster", "cluster", c.Name, "error", err)
	}
	m.releasePort(c)
}

// newCluster returns the Cluster value for name, without a password or port.
func (m *Manager) newCluster(name string) *Cluster {
	return &Cluster{Name: name, Dir: filepath.Join(m.root, name), User: superuser}
}

// checkName rejects cluster names that are not a plain directory name.
func checkName(name string) error {
	if !validName.MatchString(name) {
		return fmt.Errorf("invalid cluster name %q: want 1-100 letters, digits, '.', '_' "+
			"or '-', starting with a letter or digit", name)
	}
	return nil
}

// lockName locks the per-cluster mutex of name and returns its unlock function.
func (m *Manager) lockName(name string) func() {
	m.mu.Lock()
	l, ok := m.locks[name]
	if !ok {
		l = &sync.Mutex{}
		m.locks[name] = l
	}
	m.mu.Unlock()
	l.Lock()
	return l.Unlock
}

// track records c as running under this Manager.
func (m *Manager) track(c *Cluster) {
	m.mu.Lock()
	m.started[c.Name] = c
	m.ports[c.Port] = c.Name
	m.mu.Unlock()
}

// untrack forgets that c is running.
func (m *Manager) untrack(c *Cluster) {
	m.mu.Lock()
	delete(m.started, c.Name)
	delete(m.adopted, c.Name)
	m.mu.Unlock()
}

// claimPort records that c uses c.Port.
func (m *Manager) claimPort(c *Cluster) {
	m.mu.Lock()
	m.ports[c.Port] = c.Name
	m.mu.Unlock()
}

// releasePort forgets c's claim on c.Port.
func (m *Manager) releasePort(c *Cluster) {
	m.mu.Lock()
	if m.ports[c.Port] == c.Name {
		delete(m.ports, c.Port)
	}
	m.mu.Unlock()
}

// unclaimPort forgets c's claim on port unless c runs on it.
func (m *Manager) unclaimPort(c *Cluster, port int) {
	m.mu.Lock()
	if port != c.Port && m.ports[port] == c.Name {
		delete(m.ports, port)
	}
	m.mu.Unlock()
}

// portFree reports whether port on 127.0.0.1 can be listened on and is not handed to
// another cluster of this Manager.
func (m *Manager) portFree(c *Cluster, port int) bool {
	m.mu.Lock()
	owner, claimed := m.ports[port]
	m.mu.Unlock()
	if claimed && owner != c.Name {
		return false
	}
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return false
	}
	_ = l.Close()
	return true
}

// freePort asks the kernel for a free port on 127.0.0.1, skipping ports handed to other
// clusters of this Manager, and claims it for c.
func (m *Manager) freePort(c *Cluster) (int, error) {
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, fmt.Errorf("find a free port: %w", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		_ = l.Close()
		m.mu.Lock()
		if _, claimed := m.ports[port]; !claimed {
			m.ports[port] = c.Name
			m.mu.Unlock()
			return port, nil
		}
		m.mu.Unlock()
	}
	return 0, errors.New("find a free port: every port offered is already in use")
}

// readFrom returns up to limit bytes from the end of the part of path after offset.
func readFrom(path string, offset, limit int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || fi.Size() <= offset {
		return ""
	}
	if fi.Size()-offset > limit {
		offset = fi.Size() - limit
	}
	data, err := io.ReadAll(io.NewSectionReader(f, offset, fi.Size()-offset))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(data))
}

// randomPassword returns 32 random letters and digits from crypto/rand.
func randomPassword() (string, error) {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	const limit = 256 - 256%len(alphabet) // reject bytes above this to avoid bias
	pw := make([]byte, 0, 32)
	buf := make([]byte, 64)
	for len(pw) < 32 {
		if _, err := rand.Read(buf); err != nil {
			return "", fmt.Errorf("generate password: %w", err)
		}
		for _, b := range buf {
			if int(b) < limit && len(pw) < 32 {
				pw = append(pw, alphabet[int(b)%len(alphabet)])
			}
		}
	}
	return string(pw), nil
}
