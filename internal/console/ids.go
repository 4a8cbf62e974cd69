package console

import (
	"crypto/rand"
	"math/big"
	"strings"
)

var adjectives = []string{
	"autumn", "bold", "calm", "cold", "damp", "dry", "fancy", "gentle", "hidden", "icy",
	"jolly", "late", "lively", "misty", "noisy", "old", "proud", "quiet", "rapid", "shiny",
	"silent", "small", "snowy", "steep", "tiny", "twilight", "wandering", "wild", "young",
}

var nouns = []string{
	"bird", "brook", "cloud", "dawn", "dew", "field", "fire", "forest", "frost", "glade",
	"grass", "hill", "lake", "leaf", "meadow", "moon", "night", "pine", "poetry", "rain",
	"river", "sea", "shadow", "sky", "smoke", "snow", "star", "sun", "term", "wind",
}

func pick(list []string) string {
	n, err := rand.Int(rand.Reader, big.NewInt(int64(len(list))))
	if err != nil {
		panic("console: crypto/rand failed: " + err.Error())
	}
	return list[n.Int64()]
}

func randomChars(alphabet string, n int) string {
	var b strings.Builder
	for range n {
		i, err := rand.Int(rand.Reader, big.NewInt(int64(len(alphabet))))
		if err != nil {
			panic("console: crypto/rand failed: " + err.Error())
		}
		b.WriteByte(alphabet[i.Int64()])
	}
	return b.String()
}

// newProjectID returns an id of Neon's project form, e.g. "cold-poetry-09157238".
func newProjectID() string {
	return pick(adjectives) + "-" + pick(nouns) + "-" + randomChars("0123456789", 8)
}

// newBranchID returns an id of Neon's branch form, e.g. "br-small-term-a5b6c7d8". neonctl takes
// a value as a branch id only when it is "br-" and three dash-separated groups.
func newBranchID() string {
	return "br-" + pick(adjectives) + "-" + pick(nouns) + "-" +
		randomChars("abcdefghijklmnopqrstuvwxyz0123456789", 8)
}

// newEndpointID returns an id of Neon's endpoint form, e.g. "ep-little-smoke-a5b6c7d8".
func newEndpointID() string {
	return "ep-" + pick(adjectives) + "-" + pick(nouns) + "-" +
		randomChars("abcdefghijklmnopqrstuvwxyz0123456789", 8)
}
