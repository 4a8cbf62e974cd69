// Package bench holds the benchmarks that measure neonauth on this machine. Each one starts
// a real service with real PostgreSQL servers on loopback and reports its figures next to a
// bound measured in the same run, so that ratios, not absolute numbers, are compared. Run
// them with `make bench`; docs/benchmarks.md records the results.
package bench
