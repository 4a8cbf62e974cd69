package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/neonauth/neonauth/internal/server"
)

// resync rebuilds an integration's users_sync, working on the data directory (or
// --database-url) directly, so it runs with or without the service. On a terminal it draws a
// progress bar; otherwise it prints plain progress lines.
func resync(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg := server.Defaults()
	fs := flag.NewFlagSet("auth resync", flag.ContinueOnError)
	fs.SetOutput(stderr)
	storeFlags(fs, &cfg)
	project := fs.String("project-id", "", "the Neon project whose integration to resync")
	provider := fs.String("auth-provider", "stack", "the integration's auth provider")
	if err := parse(fs, args); err != nil || helpAsked(args) {
		return err
	}
	if *project == "" {
		fmt.Fprintln(stderr, "usage: neonauth auth resync --project-id P [--data-dir D]")
		return ErrUsage
	}
	cfg.Offline = true
	env, err := server.Open(ctx, cfg, newLogger(io.Discard))
	if err != nil {
		return err
	}
	defer env.Close()
	in, err := env.Auth.IntegrationOf(ctx, *project, *provider)
	if err != nil {
		return err
	}
	bar := newProgress(stdout, isTerminal(stdout))
	res, err := env.Worker.Resync(ctx, in.AuthProjectID, bar.update)
	bar.finish()
	if err != nil {
		return fmt.Errorf("resync: %w", err)
	}
	fmt.Fprintf(stdout, "resynced %d users into %s.neon_auth.users_sync: %d rows written, "+
		"%d removed, in %s\n", res.Users, in.DBName, res.Changed, res.Removed,
		res.Duration.Round(time.Millisecond))
	return nil
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// progress draws a bar on a terminal, or prints a line at each tenth otherwise.
type progress struct {
	w        io.Writer
	terminal bool
	last     int64
	drawn    bool
}

func newProgress(w io.Writer, terminal bool) *progress {
	return &progress{w: w, terminal: terminal, last: -1}
}

const barWidth = 30

func (p *progress) update(done, total int64) {
	if total <= 0 {
		return
	}
	tenth := done * 10 / total
	if !p.terminal {
		if tenth != p.last {
			p.last = tenth
			fmt.Fprintf(p.w, "resync: %d/%d users (%d%%)\n", done, total, done*100/total)
		}
		return
	}
	filled := int(done * barWidth / total)
	fmt.Fprintf(p.w, "\r[%s%s] %3d%% %d/%d users", strings.Repeat("#", filled),
		strings.Repeat(".", barWidth-filled), done*100/total, done, total)
	p.drawn = true
}

func (p *progress) finish() {
	if p.drawn {
		fmt.Fprintln(p.w)
	}
}
