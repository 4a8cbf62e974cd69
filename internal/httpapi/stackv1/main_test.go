package stackv1_test

import (
	"flag"
	"os"
	"testing"
)

// defaultParallel is how many tests run at once unless -test.parallel is given. Each test
// starts its own service with its PostgreSQL servers and spends most of its time waiting
// for them, so more tests than cores keep the two cores of CI busy.
const defaultParallel = "4"

// TestMain raises the default test parallelism (see defaultParallel) and runs the tests.
func TestMain(m *testing.M) {
	flag.Parse()
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "test.parallel" })
	if !set {
		if err := flag.Set("test.parallel", defaultParallel); err != nil {
			panic("set test.parallel: " + err.Error())
		}
	}
	os.Exit(m.Run())
}
