package ratelimit

import (
	"testing"
	"time"
)

func TestKeyed(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	k := New(40, 40)
	k.SetClock(func() time.Time { return now })
	for i := range 40 {
		if ok, _ := k.Allow("a"); !ok {
			t.Fatalf("request %d of the burst refused", i+1)
		}
	}
	ok, wait := k.Allow("a")
	if ok || wait <= 0 || wait > 100*time.Millisecond {
		t.Fatalf("41st request: ok=%v wait=%v", ok, wait)
	}
	if ok, _ := k.Allow("b"); !ok {
		t.Fatal("another key has its own bucket")
	}
	now = now.Add(time.Second)
	if ok, _ := k.Allow("a"); !ok {
		t.Fatal("the bucket refills")
	}
}

func TestPerMinute(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	k := PerMinute(700)
	k.SetClock(func() time.Time { return now })
	for range 700 {
		if ok, _ := k.Allow("acct"); !ok {
			t.Fatal("within the minute's budget")
		}
	}
	ok, wait := k.Allow("acct")
	if ok || RetryAfterSeconds(wait) != 1 {
		t.Fatalf("over the budget: ok=%v wait=%v", ok, wait)
	}
	if RetryAfterSeconds(1500*time.Millisecond) != 2 || RetryAfterSeconds(0) != 1 {
		t.Fatal("RetryAfterSeconds rounds up to at least 1")
	}
}

func TestCleanup(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	k := New(10, 10)
	k.SetClock(func() time.Time { return now })
	k.Allow("old")
	now = now.Add(10 * time.Minute)
	k.Allow("new")
	if _, ok := k.buckets["old"]; ok {
		t.Fatal("idle bucket kept")
	}
	var nilK *Keyed
	if ok, _ := nilK.Allow("x"); !ok {
		t.Fatal("a nil limiter allows everything")
	}
}
