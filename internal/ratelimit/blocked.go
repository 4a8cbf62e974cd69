package ratelimit

import "time"

// Blocked reports whether key's bucket is empty, without taking a token, and how long until
// it holds one again. A key that has never been seen is not blocked. It lets a caller refuse
// an attempt before doing the work that a refused attempt would have counted against (for
// example, checking a credential whose failures are limited).
func (k *Keyed) Blocked(key string) (bool, time.Duration) {
	if k == nil || k.limit <= 0 {
		return false, 0
	}
	now := k.now()
	k.mu.Lock()
	defer k.mu.Unlock()
	b := k.buckets[key]
	if b == nil {
		return false, 0
	}
	tokens := b.lim.TokensAt(now)
	if tokens >= 1 {
		return false, 0
	}
	return true, time.Duration((1 - tokens) / float64(k.limit) * float64(time.Second))
}
