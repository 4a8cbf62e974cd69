// Package ratelimit keeps token buckets by key (an account, an account and route, an email,
// a client address) and says how long a refused caller should wait.
package ratelimit

import (
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Keyed is a set of token buckets with the same rate and burst, one per key. Buckets unused
// for a while are dropped, so memory stays bounded by the active keys.
type Keyed struct {
	limit rate.Limit
	burst int
	now   func() time.Time

	mu      sync.Mutex
	buckets map[string]*bucket
	sweep   time.Time
}

type bucket struct {
	lim  *rate.Limiter
	seen time.Time
}

// New returns buckets that refill at perSecond tokens a second and hold burst tokens.
func New(perSecond float64, burst int) *Keyed {
	return &Keyed{limit: rate.Limit(perSecond), burst: burst, now: time.Now,
		buckets: map[string]*bucket{}}
}

// PerMinute returns buckets of n requests a minute, all of which may come at once.
func PerMinute(n int) *Keyed { return New(float64(n)/60, n) }

// SetClock replaces the clock, for tests.
func (k *Keyed) SetClock(now func() time.Time) { k.now = now }

// Allow takes a token from key's bucket. When there is none it returns false and how long
// until one is there.
func (k *Keyed) Allow(key string) (bool, time.Duration) {
	if k == nil || k.limit <= 0 {
		return true, 0
	}
	now := k.now()
	k.mu.Lock()
	defer k.mu.Unlock()
	k.cleanup(now)
	b := k.buckets[key]
	if b == nil {
		b = &bucket{lim: rate.NewLimiter(k.limit, k.burst)}
		k.buckets[key] = b
	}
	b.seen = now
	if b.lim.AllowN(now, 1) {
		return true, 0
	}
	r := b.lim.ReserveN(now, 1)
	wait := r.DelayFrom(now)
	r.CancelAt(now)
	return false, wait
}

// RetryAfterSeconds rounds a wait up to whole seconds, at least 1, for a Retry-After header.
func RetryAfterSeconds(d time.Duration) int {
	return max(1, int(math.Ceil(d.Seconds())))
}

// cleanup drops buckets that have been full for a while; it runs at most once a minute.
func (k *Keyed) cleanup(now time.Time) {
	if now.Sub(k.sweep) < time.Minute {
		return
	}
	k.sweep = now
	idle := time.Duration(float64(k.burst)/float64(k.limit)*float64(time.Second)) + time.Minute
	for key, b := range k.buckets {
		if now.Sub(b.seen) > idle {
			delete(k.buckets, key)
		}
	}
}
