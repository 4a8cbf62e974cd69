package usersync

import (
	"testing"
	"time"
)

// TestBackoff checks the retry delay: it doubles from 250 ms with each attempt, stops
// growing at MaxBackoff, and is jittered within [d/2, d] of the nominal delay d.
func TestBackoff(t *testing.T) {
	w := &Worker{MaxBackoff: 4 * time.Second}
	w.init()
	nominal := []time.Duration{250 * time.Millisecond, 250 * time.Millisecond,
		500 * time.Millisecond, time.Second, 2 * time.Second, 4 * time.Second,
		4 * time.Second, 4 * time.Second}
	for attempt, d := range nominal {
		lo, hi, distinct := sample(w, attempt, 500)
		if lo < d/2 || hi > d {
			t.Errorf("attempt %d: delays in [%v, %v], want within [%v, %v]", attempt, lo, hi,
				d/2, d)
		}
		if distinct < 100 {
			t.Errorf("attempt %d: %d distinct delays in 500, want jitter", attempt, distinct)
		}
		if hi-lo < d/4 {
			t.Errorf("attempt %d: delays span [%v, %v], want most of [%v, %v]", attempt, lo, hi,
				d/2, d)
		}
	}
	if lo, hi, _ := sample(w, 1_000_000, 100); lo < 2*time.Second || hi > 4*time.Second {
		t.Errorf("attempt 1000000: delays in [%v, %v], want the cap's [2s, 4s]", lo, hi)
	}
}

// TestBackoffSmallCap checks a MaxBackoff below the first delay: it caps that one too.
func TestBackoffSmallCap(t *testing.T) {
	w := &Worker{MaxBackoff: 100 * time.Millisecond}
	w.init()
	for _, attempt := range []int{1, 2, 10} {
		if lo, hi, _ := sample(w, attempt, 200); lo < 50*time.Millisecond ||
			hi > 100*time.Millisecond {
			t.Errorf("attempt %d: delays in [%v, %v], want within [50ms, 100ms]", attempt, lo, hi)
		}
	}
}

// TestBackoffDefault checks that a zero MaxBackoff means 30 s.
func TestBackoffDefault(t *testing.T) {
	w := &Worker{}
	w.init()
	if lo, hi, _ := sample(w, 100, 200); lo < 15*time.Second || hi > 30*time.Second {
		t.Errorf("default cap: delays in [%v, %v], want within [15s, 30s]", lo, hi)
	}
}

// sample draws n delays for an attempt and returns the smallest, the largest and how many
// distinct values there were.
func sample(w *Worker, attempt, n int) (lo, hi time.Duration, distinct int) {
	seen := map[time.Duration]bool{}
	lo = time.Duration(1<<63 - 1)
	for range n {
		d := w.backoff(attempt)
		lo, hi = min(lo, d), max(hi, d)
		seen[d] = true
	}
	return lo, hi, len(seen)
}
