package usersync_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/neonauth/neonauth/internal/console"
	"github.com/neonauth/neonauth/internal/usersync"
)

// history makes users: each created, some renamed twice, some deleted. It returns how many
// events each user got.
func history(p *project, prefix string, users, renamed, deleted int) map[string]int {
	counts := map[string]int{}
	var ids []uuid.UUID
	for i := range users {
		id := p.create(fmt.Sprintf("%s-%d@example.com", prefix, i), ptr(fmt.Sprintf("User %d", i)))
		ids = append(ids, id)
		counts[id.String()]++
	}
	for i := range renamed {
		for r := range 2 {
			p.rename(ids[i], fmt.Sprintf("User %d, name %d", i, r+2))
			counts[ids[i].String()]++
		}
	}
	for i := range deleted {
		p.remove(ids[users-1-i])
		counts[ids[users-1-i].String()]++
	}
	return counts
}

// checkApplied checks that every user's effective writes follow its history, one per event.
func checkApplied(t *testing.T, p *project, counts map[string]int, kind string) {
	t.Helper()
	log := applyLog(t, p.o.ctx, p.Branch, kind)
	for id, n := range counts {
		if len(log[id]) != n {
			t.Errorf("user %s: %d %q writes, want %d: %v", id, len(log[id]), kind, n, log[id])
		}
		if err := inOrder(log[id]); err != nil {
			t.Errorf("user %s: %v", id, err)
		}
	}
}

// cancelAfterTarget is a worker's Targets that stops the worker (cancels its context) right
// after it found where to apply, as a shutdown in the middle of a round would.
type cancelAfterTarget struct {
	usersync.Targets
	cancel context.CancelFunc
}

func (c cancelAfterTarget) SyncTarget(ctx context.Context,
	authProjectID string) (console.Branch, string, bool, error) {
	br, db, ok, err := c.Targets.SyncTarget(ctx, authProjectID)
	c.cancel()
	return br, db, ok, err
}

// crashDDL makes the outbox refuse to delete applied events, as when a worker dies after the
// branch transaction committed and before the outbox transaction did.
const crashDDL = `CREATE FUNCTION public.crash() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'simulated crash after the branch commit'; END $$;
CREATE TRIGGER crash BEFORE DELETE ON sync_events
	FOR EACH STATEMENT EXECUTE FUNCTION public.crash()`

// TestWorkerStopsMidStreamLosesNothing commits a backlog, lets a worker apply one batch, kill
// it after its next batch reached the branch but before the outbox knew, stops a second
// worker in the middle of a round, and then starts a fresh worker: every change arrives once
// in effect, in order, and the table matches the users.
func TestWorkerStopsMidStreamLosesNothing(t *testing.T) {
	t.Parallel()
	o := openOffline(t)
	p := o.newProject("restart")
	installApplyLog(t, o.ctx, p.Branch)
	counts := history(p, "restart", 60, 40, 10)
	total := p.pending()
	if total != 150 {
		t.Fatalf("%d events committed, want 150", total)
	}

	first := o.worker(20)
	forget(t, first, p)
	if n, err := first.Round(o.ctx); n != 20 || err != nil {
		t.Fatalf("first round applied %d events (%v), want 20", n, err)
	}
	o.exec(crashDDL)
	if n, _ := first.Round(o.ctx); n != 0 || p.pending() != total-20 {
		t.Fatalf("crashed round: applied %d, %d pending; want 0 and %d", n, p.pending(),
			total-20)
	}
	o.exec("DROP TRIGGER crash ON sync_events")

	ctx, cancel := context.WithCancel(o.ctx)
	stopped := o.worker(20)
	stopped.Targets = cancelAfterTarget{Targets: o.env.Auth, cancel: cancel}
	forget(t, stopped, p)
	if _, err := stopped.Round(ctx); err == nil || p.pending() != total-20 {
		t.Fatalf("stopped round: err %v, %d pending; want an error and %d", err, p.pending(),
			total-20)
	}

	fresh := o.worker(20)
	forget(t, fresh, p)
	p.drain(fresh, 30*time.Second)
	p.mustConverge()
	checkApplied(t, p, counts, "set")
	tries := countEntries(applyLog(t, o.ctx, p.Branch, "try"))
	if tries != total+20 {
		t.Errorf("worker offered %d writes, want %d (every event, and the crashed batch again)",
			tries, total+20)
	}
}

// TestTwoWorkersApplyEachEventOnce runs two workers in loops on the same metadata database
// while users change: each event is applied exactly once, each user's changes in order.
func TestTwoWorkersApplyEachEventOnce(t *testing.T) {
	t.Parallel()
	o := openOffline(t)
	p := o.newProject("two")
	installApplyLog(t, o.ctx, p.Branch)

	stop := make(chan struct{})
	var applied [2]atomic.Int64
	var wg sync.WaitGroup
	for i := range 2 {
		w := o.worker(7)
		forget(t, w, p)
		wg.Go(func() { loopRounds(t, o.ctx, w, stop, &applied[i]) })
	}
	counts := map[string]int{}
	var mu sync.Mutex
	var producers sync.WaitGroup
	for g := range 2 {
		producers.Go(func() {
			c := history(p, fmt.Sprintf("two-%d", g), 40, 30, 5)
			mu.Lock()
			defer mu.Unlock()
			for id, n := range c {
				counts[id] = n
			}
		})
	}
	producers.Wait()
	waitFor(t, 30*time.Second, "drain outbox", func() error {
		if n := p.pending(); n > 0 {
			return fmt.Errorf("%d events left", n)
		}
		return nil
	})
	close(stop)
	wg.Wait()

	events := 0
	for _, n := range counts {
		events += n
	}
	a, b := applied[0].Load(), applied[1].Load()
	t.Logf("%d events: worker 1 applied %d, worker 2 %d", events, a, b)
	if a+b != int64(events) {
		t.Errorf("workers applied %d events in all, want %d", a+b, events)
	}
	p.mustConverge()
	checkApplied(t, p, counts, "try")
	checkApplied(t, p, counts, "set")
}

// loopRounds runs w's rounds until stop is closed, adding what it applied to applied.
func loopRounds(t *testing.T, ctx context.Context, w *usersync.Worker, stop <-chan struct{},
	applied *atomic.Int64) {
	for {
		select {
		case <-stop:
			return
		default:
		}
		n, err := w.Round(ctx)
		if err != nil {
			t.Errorf("round: %v", err)
			return
		}
		applied.Add(int64(n))
		if n == 0 {
			time.Sleep(time.Millisecond)
		}
	}
}

// TestHeldRowLockDelaysOthersOnlyUntilTimeout holds a lock on a users_sync row, as a person
// editing the table by hand in an open transaction does: the round gives up on that database
// after the worker's Timeout, the other project's users still arrive, and the blocked change
// is applied once the lock is gone.
func TestHeldRowLockDelaysOthersOnlyUntilTimeout(t *testing.T) {
	t.Parallel()
	o := openOffline(t)
	a, b := o.newProject("locked"), o.newProject("free")
	w := o.worker(0)
	w.Timeout = time.Second
	forget(t, w, a, b)
	ua := a.create("locked@example.com", ptr("Before"))
	a.drain(w, 10*time.Second)

	tx, err := a.Branch.Begin(o.ctx)
	if err != nil {
		t.Fatalf("begin: %v", err)
	}
	defer tx.Rollback(o.ctx)
	if _, err := tx.Exec(o.ctx, "SELECT 1 FROM neon_auth.users_sync WHERE id = $1 FOR UPDATE",
		ua.String()); err != nil {
		t.Fatalf("lock row: %v", err)
	}
	a.rename(ua, "After")
	b.create("free@example.com", nil)
	took := timedRound(t, o.ctx, w, tx.Rollback)
	if took > 5*time.Second {
		t.Errorf("round took %v with a row lock held; want about the 1 s timeout", took)
	}
	b.mustConverge()
	var attempts int
	var lastErr *string
	err = o.env.Pool.QueryRow(o.ctx, `SELECT attempts, last_error FROM sync_events
		WHERE auth_project_id = $1`, a.AuthProjectID).Scan(&attempts, &lastErr)
	if err != nil || attempts != 1 || lastErr == nil {
		t.Errorf("blocked event: attempts %d, last_error %s (%v); want a recorded retry",
			attempts, str(lastErr), err)
	}

	if err := tx.Rollback(o.ctx); err != nil {
		t.Fatalf("release lock: %v", err)
	}
	a.drain(w, 10*time.Second)
	a.mustConverge()
}

// timedRound runs one round and returns how long it took. When it has not returned after
// 20 s, it calls unblock, so that the test fails instead of hanging.
func timedRound(t *testing.T, ctx context.Context, w *usersync.Worker,
	unblock func(context.Context) error) time.Duration {
	t.Helper()
	start := time.Now()
	done := make(chan error, 1)
	go func() {
		_, err := w.Round(ctx)
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("round: %v", err)
		}
	case <-time.After(20 * time.Second):
		_ = unblock(ctx)
		<-done
	}
	return time.Since(start)
}
