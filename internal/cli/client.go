package cli

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/neonauth/neonauth/internal/client"
	"github.com/neonauth/neonauth/internal/server"
)

// defaultAPIHost is the management API of a server started with the default flags.
const defaultAPIHost = "http://127.0.0.1:8080/api/v2"

// defaultPageSize is the number of projects the API lists when no limit is given.
const defaultPageSize = 10

// clientOpts are the flags of the client commands.
type clientOpts struct {
	apiHost, apiKey, dataDir, output string

	projectID, provider, branchID, database, role string
	name, email, cursor                           string
	limit                                         int
	deleteData                                    bool
}

// clientCmd is one client command of the management API.
type clientCmd struct {
	// args is the usage of its own flags, after the command name.
	args string
	// need names the flags that must not be empty.
	need []string
	// positional means the project id may be given as the single argument.
	positional bool
	// provider means the command takes --auth-provider.
	provider bool
	flags    func(fs *flag.FlagSet, o *clientOpts)
	run      func(ctx context.Context, c *client.Client, o *clientOpts) (view, error)
}

// view is what a command prints: the server's JSON for --output json, tables (first row
// the header) for --output table, and a note for stderr in table mode.
type view struct {
	raw    json.RawMessage
	tables [][][]string
	note   string
}

var clientCmds = map[string]clientCmd{
	"projects list": {args: "[--limit N] [--cursor C]", flags: listFlags, run: listProjects},
	"projects create": {args: "[--name N]", run: createProject,
		flags: func(fs *flag.FlagSet, o *clientOpts) {
			fs.StringVar(&o.name, "name", "", "project name; default: the project id")
		}},
	"projects delete": {args: "--project-id P | P", need: []string{"project-id"},
		positional: true, run: deleteProject},
	"branches list": {args: "--project-id P", need: []string{"project-id"}, run: listBranches},
	"auth create": {args: "--project-id P [--branch-id B] [--database-name D] [--role-name R]",
		need: []string{"project-id"}, provider: true, flags: createFlags, run: createIntegration},
	"auth list": {args: "--project-id P", need: []string{"project-id"}, run: listIntegrations},
	"auth keys": {args: "--project-id P", need: []string{"project-id"}, provider: true,
		run: createKeys},
	"auth user": {args: "--project-id P --email E [--name N]",
		need: []string{"project-id", "email"}, provider: true, flags: userFlags, run: createUser},
	"auth transfer": {args: "--project-id P", need: []string{"project-id"}, provider: true,
		run: transfer},
	"auth delete": {args: "--project-id P [--delete-data]", need: []string{"project-id"},
		provider: true, run: deleteIntegration,
		flags: func(fs *flag.FlagSet, o *clientOpts) {
			fs.BoolVar(&o.deleteData, "delete-data", false,
				"also delete the auth project's users and data")
		}},
	"auth rotate-key": {args: "--project-id P", need: []string{"project-id"}, run: rotateKey},
}

// clientCommand runs a client command: cmd is projects, branches or auth, args starts with
// the subcommand.
func clientCommand(ctx context.Context, cmd string, args []string, stdout,
	stderr io.Writer) error {
	name := cmd
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		name, args = cmd+" "+args[0], args[1:]
	}
	spec, ok := clientCmds[name]
	if !ok && name == cmd && helpAsked(args) {
		groupUsage(stdout, cmd)
		return nil
	}
	if !ok {
		if name != cmd {
			fmt.Fprintf(stderr, "neonauth: unknown command %q\n", name)
		}
		groupUsage(stderr, cmd)
		return ErrUsage
	}
	o, err := spec.parse(name, args, stderr)
	if err != nil || o == nil {
		return err
	}
	c, err := o.client()
	if err != nil {
		return err
	}
	v, err := spec.run(ctx, c, o)
	if err != nil {
		return err
	}
	return o.print(stdout, stderr, v)
}

// groupUsage prints the usage lines of every command of a group.
func groupUsage(w io.Writer, group string) {
	names := make([]string, 0, len(clientCmds))
	for name := range clientCmds {
		if strings.HasPrefix(name, group+" ") {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	fmt.Fprintln(w, "usage:")
	for _, name := range names {
		fmt.Fprintf(w, "  neonauth %s %s\n", name, clientCmds[name].args)
	}
	fmt.Fprintln(w, "flags of every command: [--api-host URL] [--api-key K] [--data-dir D] "+
		"[--output table|json]")
}

func (spec clientCmd) usageLine(name string) string {
	return fmt.Sprintf("usage: neonauth %s %s [--api-host URL] [--api-key K] [--data-dir D] "+
		"[--output table|json]", name, spec.args)
}

// parse parses the flags of a command. It returns nil options and no error when help was
// asked for, and ErrUsage after printing why on a mistake.
func (spec clientCmd) parse(name string, args []string, stderr io.Writer) (*clientOpts, error) {
	o := &clientOpts{}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, spec.usageLine(name))
		fs.PrintDefaults()
	}
	spec.register(fs, o)
	pos, err := parseInterspersed(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		return nil, nil
	}
	if err != nil {
		return nil, ErrUsage
	}
	if err := spec.check(fs, o, pos); err != nil {
		fmt.Fprintf(stderr, "neonauth %s: %v\n%s\n", name, err, spec.usageLine(name))
		return nil, ErrUsage
	}
	return o, nil
}

func (spec clientCmd) register(fs *flag.FlagSet, o *clientOpts) {
	fs.StringVar(&o.apiHost, "api-host", envOr("NEON_API_HOST", defaultAPIHost),
		"base URL of the management API (NEON_API_HOST)")
	fs.StringVar(&o.apiKey, "api-key", "",
		"API key; default: $NEON_API_KEY, else the file api-key in the data directory "+
			"(NEON_API_KEY)")
	fs.StringVar(&o.dataDir, "data-dir", envOr("NEONAUTH_DATA_DIR", server.Defaults().DataDir),
		"data directory whose api-key file is read when no key is given (NEONAUTH_DATA_DIR)")
	fs.StringVar(&o.output, "output", envOr("NEONAUTH_OUTPUT", "table"),
		"output format: table or json (NEONAUTH_OUTPUT)")
	if slices.Contains(spec.need, "project-id") {
		fs.StringVar(&o.projectID, "project-id", "", "project id")
	}
	if spec.provider {
		fs.StringVar(&o.provider, "auth-provider", client.DefaultProvider, "auth provider")
	}
	if spec.flags != nil {
		spec.flags(fs, o)
	}
}

// check applies the rules flag parsing cannot: the output format, the positional project
// id, and the required flags.
func (spec clientCmd) check(fs *flag.FlagSet, o *clientOpts, pos []string) error {
	if o.output != "table" && o.output != "json" {
		return fmt.Errorf("--output: must be table or json, not %q", o.output)
	}
	if len(pos) > 1 || (len(pos) == 1 && !spec.positional) {
		return fmt.Errorf("unexpected argument %q", pos[len(pos)-1])
	}
	if len(pos) == 1 {
		if o.projectID != "" && o.projectID != pos[0] {
			return fmt.Errorf("the argument %q and --project-id %q differ", pos[0], o.projectID)
		}
		o.projectID = pos[0]
	}
	for _, name := range spec.need {
		if fs.Lookup(name).Value.String() == "" {
			return fmt.Errorf("--%s is required", name)
		}
	}
	return nil
}

// parseInterspersed parses flags that may come before or after positional arguments, and
// returns the positional ones. Everything after "--" is positional.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if i := len(args) - len(rest); i > 0 && args[i-1] == "--" {
			return append(pos, rest...), nil
		}
		pos, args = append(pos, rest[0]), rest[1:]
	}
}

// client returns a client of the API with the key from the flag, the environment or the
// data directory.
func (o *clientOpts) client() (*client.Client, error) {
	u, err := url.Parse(o.apiHost)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("--api-host %q: must be an http or https URL", o.apiHost)
	}
	key, err := o.key()
	if err != nil {
		return nil, err
	}
	c := client.New(o.apiHost, key, nil)
	if o.provider != "" {
		c.AuthProvider = o.provider
	}
	return c, nil
}

func (o *clientOpts) key() (string, error) {
	if o.apiKey != "" {
		return o.apiKey, nil
	}
	if k := os.Getenv("NEON_API_KEY"); k != "" {
		return k, nil
	}
	file := server.Config{DataDir: o.dataDir}.KeyFile()
	b, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("no API key: pass --api-key, set NEON_API_KEY, or point "+
			"--data-dir at the server's data directory (%s not found): %w", file, err)
	}
	if err != nil {
		return "", fmt.Errorf("read API key: %w", err)
	}
	key := strings.TrimSpace(string(b))
	if key == "" {
		return "", fmt.Errorf("read API key: %s is empty", file)
	}
	return key, nil
}

// print writes a view in the chosen format.
func (o *clientOpts) print(stdout, stderr io.Writer, v view) error {
	if o.output == "json" {
		var buf bytes.Buffer
		if err := json.Indent(&buf, v.raw, "", "  "); err != nil {
			return fmt.Errorf("indent the response: %w", err)
		}
		buf.WriteByte('\n')
		_, err := stdout.Write(buf.Bytes())
		return err
	}
	for i, t := range v.tables {
		if i > 0 {
			fmt.Fprintln(stdout)
		}
		if err := writeTable(stdout, t); err != nil {
			return err
		}
	}
	if v.note != "" {
		fmt.Fprintln(stderr, v.note)
	}
	return nil
}

// writeTable writes rows as aligned columns; an empty cell shows as "-".
func writeTable(w io.Writer, rows [][]string) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, row := range rows {
		cells := make([]string, len(row))
		for i, c := range row {
			cells[i] = cmp.Or(c, "-")
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write table: %w", err)
	}
	return nil
}

func listFlags(fs *flag.FlagSet, o *clientOpts) {
	fs.IntVar(&o.limit, "limit", 0, "at most this many projects; default: the server's")
	fs.StringVar(&o.cursor, "cursor", "", "cursor of the page to list, from a previous list")
}

func createFlags(fs *flag.FlagSet, o *clientOpts) {
	fs.StringVar(&o.branchID, "branch-id", "", "branch; default: the project's default branch")
	fs.StringVar(&o.database, "database-name", "neondb", "database of neon_auth.users_sync")
	fs.StringVar(&o.role, "role-name", "neondb_owner", "role that owns neon_auth")
}

func userFlags(fs *flag.FlagSet, o *clientOpts) {
	fs.StringVar(&o.email, "email", "", "email address of the user")
	fs.StringVar(&o.name, "name", "", "display name of the user")
}

func projectTable(ps ...client.Project) [][]string {
	rows := [][]string{{"ID", "NAME", "REGION", "CREATED"}}
	for _, p := range ps {
		rows = append(rows, []string{p.ID, p.Name, p.RegionID, p.CreatedAt})
	}
	return rows
}

func listProjects(ctx context.Context, c *client.Client, o *clientOpts) (view, error) {
	l, err := c.ListProjects(ctx, o.limit, o.cursor)
	if err != nil {
		return view{}, err
	}
	v := view{raw: l.Raw, tables: [][][]string{projectTable(l.Projects...)}}
	// The API always answers with a cursor; only a full page may have a next one.
	limit := cmp.Or(o.limit, defaultPageSize)
	if l.Pagination != nil && l.Pagination.Cursor != "" && len(l.Projects) >= limit {
		v.note = "more projects may follow: --cursor " + l.Pagination.Cursor
	}
	return v, nil
}

func createProject(ctx context.Context, c *client.Client, o *clientOpts) (view, error) {
	p, err := c.CreateProject(ctx, o.name)
	if err != nil {
		return view{}, err
	}
	uris := [][]string{{"BRANCH", "DATABASE", "ROLE", "CONNECTION_URI"}}
	for _, u := range p.ConnectionURIs {
		cp := u.ConnectionParameters
		uris = append(uris, []string{p.Branch.ID, cp.Database, cp.Role, u.ConnectionURI})
	}
	return view{raw: p.Raw, tables: [][][]string{projectTable(p.Project), uris}}, nil
}

func deleteProject(ctx context.Context, c *client.Client, o *clientOpts) (view, error) {
	p, err := c.DeleteProject(ctx, o.projectID)
	if err != nil {
		return view{}, err
	}
	return view{raw: p.Raw, tables: [][][]string{projectTable(p.Project)}}, nil
}

func listBranches(ctx context.Context, c *client.Client, o *clientOpts) (view, error) {
	l, err := c.ListBranches(ctx, o.projectID)
	if err != nil {
		return view{}, err
	}
	rows := [][]string{{"ID", "NAME", "DEFAULT", "STATE", "CREATED"}}
	for _, b := range l.Branches {
		rows = append(rows, []string{b.ID, b.Name, strconv.FormatBool(b.Default),
			b.CurrentState, b.CreatedAt})
	}
	return view{raw: l.Raw, tables: [][][]string{rows}}, nil
}

func keysView(k *client.AuthKeys) view {
	rows := [][]string{{"KEY", "VALUE"},
		{"auth_provider", k.AuthProvider},
		{"auth_provider_project_id", k.AuthProviderProjectID},
		{"pub_client_key", k.PubClientKey},
		{"secret_server_key", k.SecretServerKey},
		{"jwks_url", k.JWKSURL},
		{"schema_name", k.SchemaName},
		{"table_name", k.TableName},
	}
	if k.BaseURL != "" {
		rows = append(rows, []string{"base_url", k.BaseURL})
	}
	return view{raw: k.Raw, tables: [][][]string{rows}}
}

func createIntegration(ctx context.Context, c *client.Client, o *clientOpts) (view, error) {
	branch := o.branchID
	if branch == "" {
		l, err := c.ListBranches(ctx, o.projectID)
		if err != nil {
			return view{}, fmt.Errorf("find the default branch: %w", err)
		}
		b, ok := l.Default()
		if !ok {
			return view{}, fmt.Errorf("project %s has no default branch: pass --branch-id",
				o.projectID)
		}
		branch = b.ID
	}
	k, err := c.CreateIntegration(ctx, o.projectID, branch, o.database, o.role)
	if err != nil {
		return view{}, err
	}
	return keysView(k), nil
}

func createKeys(ctx context.Context, c *client.Client, o *clientOpts) (view, error) {
	k, err := c.CreateKeys(ctx, o.projectID)
	if err != nil {
		return view{}, err
	}
	return keysView(k), nil
}

func listIntegrations(ctx context.Context, c *client.Client, o *clientOpts) (view, error) {
	l, err := c.ListIntegrations(ctx, o.projectID)
	if err != nil {
		return view{}, err
	}
	rows := [][]string{{"PROVIDER", "AUTH_PROJECT", "BRANCH", "DATABASE", "OWNED_BY",
		"TRANSFER", "CREATED"}}
	for _, in := range l.Data {
		status := ""
		if in.TransferStatus != nil {
			status = *in.TransferStatus
		}
		rows = append(rows, []string{in.AuthProvider, in.AuthProviderProjectID, in.BranchID,
			in.DBName, in.OwnedBy, status, in.CreatedAt})
	}
	return view{raw: l.Raw, tables: [][][]string{rows}}, nil
}

func createUser(ctx context.Context, c *client.Client, o *clientOpts) (view, error) {
	u, err := c.CreateUser(ctx, o.projectID, o.email, o.name)
	if err != nil {
		return view{}, err
	}
	return view{raw: u.Raw, tables: [][][]string{{{"ID"}, {u.ID}}}}, nil
}

func transfer(ctx context.Context, c *client.Client, o *clientOpts) (view, error) {
	t, err := c.Transfer(ctx, o.projectID)
	if err != nil {
		return view{}, err
	}
	return view{raw: t.Raw, tables: [][][]string{{{"URL"}, {t.URL}}}}, nil
}

func deleteIntegration(ctx context.Context, c *client.Client, o *clientOpts) (view, error) {
	raw, err := c.DeleteIntegration(ctx, o.projectID, o.provider, o.deleteData)
	if err != nil {
		return view{}, err
	}
	data := "kept"
	if o.deleteData {
		data = "deleted"
	}
	rows := [][]string{{"PROJECT", "PROVIDER", "DATA"}, {o.projectID, o.provider, data}}
	return view{raw: raw, tables: [][][]string{rows}}, nil
}

func rotateKey(ctx context.Context, c *client.Client, o *clientOpts) (view, error) {
	k, err := c.RotateSigningKey(ctx, o.projectID)
	if err != nil {
		return view{}, err
	}
	rows := [][]string{{"KID", "AUTH_PROJECT"}, {k.KID, k.AuthProviderProjectID}}
	return view{raw: k.Raw, tables: [][][]string{rows}}, nil
}
