// Package metrics defines neonauth's Prometheus metrics, in one registry that /metrics
// serves: HTTP requests by route and status, and the sync pipeline's lag, backlog, retries
// and failures per integration.
package metrics

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics holds the collectors. The zero value is not usable; call New.
type Metrics struct {
	Registry *prometheus.Registry

	httpRequests *prometheus.CounterVec
	httpDuration *prometheus.HistogramVec

	SyncLag      *prometheus.HistogramVec
	SyncApplied  *prometheus.CounterVec
	SyncRetries  *prometheus.CounterVec
	SyncFailures *prometheus.CounterVec
	SyncPending  *prometheus.GaugeVec
	SyncOldest   *prometheus.GaugeVec
}

// New creates the collectors and registers them, with the Go runtime and process collectors.
func New() *Metrics {
	m := &Metrics{Registry: prometheus.NewRegistry()}
	m.httpRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "neonauth_http_requests_total",
		Help: "HTTP requests served, by route pattern, method and status code.",
	}, []string{"route", "method", "status"})
	m.httpDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "neonauth_http_request_duration_seconds",
		Help:    "Time to serve an HTTP request, by route pattern and method.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
	}, []string{"route", "method"})
	m.SyncLag = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "neonauth_sync_lag_seconds",
		Help: "Time from a user change's commit to its row being applied in users_sync, " +
			"by auth project.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 5, 30, 120},
	}, []string{"auth_project_id"})
	m.SyncApplied = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "neonauth_sync_events_applied_total",
		Help: "User change events applied to users_sync, by auth project.",
	}, []string{"auth_project_id"})
	m.SyncRetries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "neonauth_sync_retries_total",
		Help: "Batches of events put back for a later retry, by auth project.",
	}, []string{"auth_project_id"})
	m.SyncFailures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "neonauth_sync_failures_total",
		Help: "Failed attempts to apply events, by auth project and reason " +
			"(unreachable, table, other).",
	}, []string{"auth_project_id", "reason"})
	m.SyncPending = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "neonauth_sync_pending_events",
		Help: "Events waiting to be applied, by auth project.",
	}, []string{"auth_project_id"})
	m.SyncOldest = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "neonauth_sync_oldest_pending_seconds",
		Help: "Age of the oldest waiting event, by auth project.",
	}, []string{"auth_project_id"})
	m.Registry.MustRegister(m.httpRequests, m.httpDuration, m.SyncLag, m.SyncApplied,
		m.SyncRetries, m.SyncFailures, m.SyncPending, m.SyncOldest,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry})
}

// ObserveHTTP records one request. route is the mux pattern, never the raw path, so the
// label set stays small.
func (m *Metrics) ObserveHTTP(route, method string, status int, d time.Duration) {
	if m == nil {
		return
	}
	if route == "" {
		route = "unmatched"
	}
	switch method {
	case "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS":
	default:
		method = "OTHER" // any other string would add series without bound
	}
	m.httpRequests.WithLabelValues(route, method, strconv.Itoa(status)).Inc()
	m.httpDuration.WithLabelValues(route, method).Observe(d.Seconds())
}

// Forget drops the per-project series of an auth project that no longer syncs.
func (m *Metrics) Forget(authProjectID string) {
	if m == nil {
		return
	}
	l := prometheus.Labels{"auth_project_id": authProjectID}
	m.SyncLag.DeletePartialMatch(l)
	m.SyncApplied.DeletePartialMatch(l)
	m.SyncRetries.DeletePartialMatch(l)
	m.SyncFailures.DeletePartialMatch(l)
	m.SyncPending.DeletePartialMatch(l)
	m.SyncOldest.DeletePartialMatch(l)
}
