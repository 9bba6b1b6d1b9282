package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/syncer-audit/syncer/internal/model"
	"github.com/syncer-audit/syncer/internal/poller"
	"github.com/syncer-audit/syncer/internal/store"
)

// telemetry turns the hooks of the client, the poller and the store into
// Prometheus metrics on an explicit registry and into sync_runs rows. It is
// the only place that knows about Prometheus.
type telemetry struct {
	reg *prometheus.Registry

	eventsWritten *prometheus.CounterVec
	pagesWritten  prometheus.Counter
	txDuration    prometheus.Histogram
	quarantined   *prometheus.CounterVec
	apiRequests   *prometheus.CounterVec
	apiRetries    prometheus.Counter
	rateLimitWait prometheus.Counter
	webhooks      *prometheus.CounterVec

	mu          sync.Mutex
	lastSuccess time.Time // of a Sync
	lastPage    time.Time // of a page written
	newest      time.Time // newest created_at stored, as far as this process knows
	active      bool      // holds the writer lock

	// Totals since start, for the per-run deltas of sync_runs.
	requests, apiErrors, quarantine atomic.Int64
}

func newTelemetry() *telemetry {
	t := &telemetry{reg: prometheus.NewRegistry()}
	t.eventsWritten = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "syncer_store_events_written_total", Help: "Events archived for the first time, by event type (unknown types as \"other\").",
	}, []string{"event_type"})
	t.pagesWritten = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "syncer_store_pages_written_total", Help: "Pages committed with their cursor.",
	})
	t.txDuration = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "syncer_store_tx_duration_seconds", Help: "Duration of a page's write transaction.",
		Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
	})
	t.quarantined = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "syncer_store_quarantined_total", Help: "Quarantine rows produced, by kind (envelope, projection, conflict).",
	}, []string{"kind"})
	t.apiRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "syncer_api_requests_total", Help: "Events API attempts, by status class (2xx, 4xx, 5xx, error for no answer).",
	}, []string{"status_class"})
	t.apiRetries = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "syncer_api_retries_total", Help: "Events API attempts that were retried.",
	})
	t.rateLimitWait = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "syncer_api_rate_limit_wait_seconds_total", Help: "Time spent waiting after 429 answers.",
	})
	t.webhooks = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "syncer_webhook_requests_total", Help: "Webhook deliveries, by result (accepted, bad_signature, stale, malformed).",
	}, []string{"result"})
	sinceSuccess := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "syncer_poller_seconds_since_last_success", Help: "Seconds since the last sync that completed without error (-1 before the first).",
	}, func() float64 { return t.secondsSince(func() time.Time { return t.lastSuccess }) })
	newestAge := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "syncer_archive_newest_event_age_seconds", Help: "Age of the newest event stored: the lag behind WorkOS (-1 when unknown).",
	}, func() float64 { return t.secondsSince(func() time.Time { return t.newest }) })
	active := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "syncer_poller_active", Help: "1 when this replica holds the writer lock, 0 on a standby.",
	}, func() float64 {
		t.mu.Lock()
		defer t.mu.Unlock()
		if t.active {
			return 1
		}
		return 0
	})
	t.reg.MustRegister(t.eventsWritten, t.pagesWritten, t.txDuration, t.quarantined, t.apiRequests,
		t.apiRetries, t.rateLimitWait, t.webhooks, sinceSuccess, newestAge, active,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// Show the label values before the first event.
	for _, c := range []string{"2xx", "4xx", "5xx", "error"} {
		t.apiRequests.WithLabelValues(c)
	}
	for _, k := range []string{model.QuarantineEnvelope, model.QuarantineProjection, model.QuarantineConflict} {
		t.quarantined.WithLabelValues(k)
	}
	for _, typ := range model.VaultTypes() {
		t.eventsWritten.WithLabelValues(typ)
	}
	return t
}

func (t *telemetry) secondsSince(get func() time.Time) float64 {
	t.mu.Lock()
	at := get()
	t.mu.Unlock()
	if at.IsZero() {
		return -1
	}
	return time.Since(at).Seconds()
}

// observeAttempt is the client's hook.
func (t *telemetry) observeAttempt(a poller.Attempt) {
	class := "error"
	if a.Status > 0 {
		class = fmt.Sprintf("%dxx", a.Status/100)
	}
	t.apiRequests.WithLabelValues(class).Inc()
	t.requests.Add(1)
	if a.Err != nil {
		t.apiErrors.Add(1)
	}
	if a.Wait > 0 {
		t.apiRetries.Inc()
		if a.Status == http.StatusTooManyRequests {
			t.rateLimitWait.Add(a.Wait.Seconds())
		}
	}
}

// observeWrite is the store's hook.
func (t *telemetry) observeWrite(s store.WriteStats) {
	t.mu.Lock()
	t.lastPage = time.Now()
	t.mu.Unlock()
	t.pagesWritten.Inc()
	t.txDuration.Observe(s.Duration.Seconds())
	for typ, n := range s.Fresh {
		if !model.IsKnownType(typ) {
			typ = "other" // bounded labels: types come from the API
		}
		t.eventsWritten.WithLabelValues(typ).Add(float64(n))
	}
	for kind, n := range s.Quarantined {
		t.quarantined.WithLabelValues(kind).Add(float64(n))
		t.quarantine.Add(int64(n))
	}
}

func (t *telemetry) setActive(active bool) {
	t.mu.Lock()
	t.active = active
	t.mu.Unlock()
}

// recorder returns the poller's OnSync hook: it records the run in
// sync_runs (the dashboards' source without Prometheus) and keeps the
// freshness gauges.
func (t *telemetry) recorder(st *store.Store, logger *slog.Logger) func(poller.Result, error) {
	var last struct{ requests, errors, quarantine int64 }
	return func(res poller.Result, err error) {
		now := time.Now()
		t.mu.Lock()
		if err == nil {
			t.lastSuccess = now
		}
		if res.Newest.After(t.newest) {
			t.newest = res.Newest
		}
		t.mu.Unlock()
		req, apiErr, q := t.requests.Load(), t.apiErrors.Load(), t.quarantine.Load()
		run := store.Run{
			StartedAt: now.Add(-res.Duration), FinishedAt: now,
			Events: res.Events, Pages: res.Pages, NewestEventAt: res.Newest,
			APIRequests: int(req - last.requests), APIErrors: int(apiErr - last.errors), Quarantined: int(q - last.quarantine),
		}
		last.requests, last.errors, last.quarantine = req, apiErr, q
		if err != nil {
			run.Error = err.Error()
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := st.RecordRun(ctx, run, 90*24*time.Hour); err != nil {
			logger.Warn("could not record the sync run", "error", err)
		}
	}
}

// seedNewest starts the lag gauge from the database, so that it is right
// before the first page of this process.
func (t *telemetry) seedNewest(ctx context.Context, st *store.Store) {
	if _, at, err := st.Newest(ctx); err == nil {
		t.mu.Lock()
		t.newest = at
		t.mu.Unlock()
	}
}

// serve runs the daemon's HTTP endpoints until ctx ends: /metrics,
// /healthz (the process answers), /readyz (the database answers and, on
// the active replica, a sync succeeded or a page was written within three
// intervals) and the
// webhook trigger, when one is given.
func (t *telemetry) serve(ctx context.Context, ln net.Listener, st *store.Store, interval time.Duration, webhook http.Handler, logger *slog.Logger) error {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(t.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		status, ok := t.readiness(r.Context(), st, interval)
		w.Header().Set("Content-Type", "application/json")
		if !ok {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		json.NewEncoder(w).Encode(status)
	})
	if webhook != nil {
		mux.Handle("POST /webhooks/workos", webhook)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	logger.Info("serving /metrics, /healthz, /readyz", "listen", ln.Addr().String(), "webhooks", webhook != nil)
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return srv.Shutdown(sctx)
	}
}

type readiness struct {
	Database            string  `json:"database"`
	Role                string  `json:"role"`
	SecondsSinceSuccess float64 `json:"seconds_since_last_success"`
	Ready               bool    `json:"ready"`
}

func (t *telemetry) readiness(ctx context.Context, st *store.Store, interval time.Duration) (readiness, bool) {
	r := readiness{Database: "ok", Role: "standby", SecondsSinceSuccess: t.secondsSince(func() time.Time { return t.lastSuccess })}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if err := st.Pool().Ping(ctx); err != nil {
		r.Database = "unreachable"
	}
	t.mu.Lock()
	active := t.active
	lastPage := t.lastPage
	t.mu.Unlock()
	// Fresh: a sync ended well lately, or one is writing pages now (a
	// first run's backfill can take hours before its first Sync ends).
	window := 3 * interval.Seconds()
	fresh := r.SecondsSinceSuccess >= 0 && r.SecondsSinceSuccess <= window ||
		!lastPage.IsZero() && time.Since(lastPage).Seconds() <= window
	if active {
		r.Role = "active"
	}
	r.Ready = r.Database == "ok" && (!active || fresh)
	return r, r.Ready
}
