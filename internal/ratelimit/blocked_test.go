package ratelimit

import (
	"testing"
	"time"
)

func TestBlocked(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	k := PerMinute(3)
	k.SetClock(func() time.Time { return now })
	if blocked, _ := k.Blocked("a"); blocked {
		t.Fatal("an unseen key is blocked")
	}
	for i := range 3 {
		if blocked, _ := k.Blocked("a"); blocked {
			t.Fatalf("blocked after %d of 3 tokens", i)
		}
		k.Allow("a")
	}
	blocked, wait := k.Blocked("a")
	if !blocked || wait <= 19*time.Second || wait > 20*time.Second {
		t.Fatalf("after the budget: blocked=%v wait=%v, want about 20s", blocked, wait)
	}
	if blocked, _ := k.Blocked("a"); !blocked {
		t.Fatal("Blocked took no token, so the key stays blocked")
	}
	if blocked, _ := k.Blocked("b"); blocked {
		t.Fatal("another key is blocked")
	}
	now = now.Add(20 * time.Second)
	if blocked, _ := k.Blocked("a"); blocked {
		t.Fatal("still blocked once a token has come back")
	}
	var nilK *Keyed
	if blocked, _ := nilK.Blocked("a"); blocked {
		t.Fatal("a nil limiter blocks")
	}
}
