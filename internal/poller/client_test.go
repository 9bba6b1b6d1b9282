package poller

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

const testKey = "sk_test_secret_do_not_print"

// script answers successive requests with the given handlers, the last one
// repeating, and records the requests.
type script struct {
	mu       sync.Mutex
	steps    []http.HandlerFunc
	requests []*http.Request
}

func (s *script) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	i := len(s.requests)
	s.requests = append(s.requests, r)
	step := s.steps[min(i, len(s.steps)-1)]
	s.mu.Unlock()
	step(w, r)
}

func (s *script) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.requests)
}

func answer(status int, body string, headers ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i+1 < len(headers); i += 2 {
			w.Header().Set(headers[i], headers[i+1])
		}
		w.Header().Set("X-Request-ID", fmt.Sprintf("req_%d", status))
		w.WriteHeader(status)
		fmt.Fprint(w, body)
	}
}

const okPage = `{"object":"list","data":[{"object":"event","id":"event_01","event":"vault.data.read","created_at":"2026-03-12T17:58:01.120Z","data":{}}],"list_metadata":{"after":null}}`

// newTestClient returns a client for srv whose sleeps are recorded, not
// slept.
func newTestClient(t *testing.T, srv *httptest.Server, attempts int) (*Client, *[]time.Duration) {
	t.Helper()
	var slept []time.Duration
	c, err := NewClient(ClientConfig{
		BaseURL: srv.URL, APIKey: testKey, MaxAttempts: attempts,
		MinBackoff: 100 * time.Millisecond, MaxBackoff: 2 * time.Second,
		Sleep: func(ctx context.Context, d time.Duration) error { slept = append(slept, d); return ctx.Err() },
	})
	if err != nil {
		t.Fatal(err)
	}
	return c, &slept
}

func TestListSendsTheDocumentedQuery(t *testing.T) {
	s := &script{steps: []http.HandlerFunc{answer(200, okPage)}}
	srv := httptest.NewServer(s)
	defer srv.Close()
	c, _ := newTestClient(t, srv, 1)
	since := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	if _, err := c.List(context.Background(), ListParams{Events: []string{"vault.data.read", "vault.dek.read"}, Limit: 100, RangeStart: since}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.List(context.Background(), ListParams{Events: []string{"vault.data.read"}, Limit: 100, After: "event_01", RangeStart: since}); err != nil {
		t.Fatal(err)
	}
	first, second := s.requests[0], s.requests[1]
	q := first.URL.Query()
	if got := q["events"]; len(got) != 2 || got[0] != "vault.data.read" || got[1] != "vault.dek.read" {
		t.Errorf("events = %v; want repeated keys", got)
	}
	if q.Get("limit") != "100" || q.Get("order") != "asc" || q.Get("range_start") != "2026-01-02T03:04:05Z" || q.Has("after") {
		t.Errorf("first query = %s", first.URL.RawQuery)
	}
	if first.URL.Path != "/events" || first.Header.Get("Authorization") != "Bearer "+testKey {
		t.Errorf("path %s, auth header %q", first.URL.Path, first.Header.Get("Authorization"))
	}
	if q2 := second.URL.Query(); q2.Get("after") != "event_01" || q2.Has("range_start") {
		t.Errorf("second query = %s; want after and no range_start", second.URL.RawQuery)
	}
}

func TestListRetriesWhatRetryingFixes(t *testing.T) {
	date := time.Now().Add(3 * time.Second).UTC().Format(http.TimeFormat)
	for _, tc := range []struct {
		name    string
		first   http.HandlerFunc
		minWait time.Duration
	}{
		{"429 retry-after seconds", answer(429, `{"message":"Too many requests"}`, "Retry-After", "7"), 7 * time.Second},
		{"429 retry-after date", answer(429, `{}`, "Retry-After", date), time.Second},
		{"429 without retry-after", answer(429, ``), 100 * time.Millisecond},
		{"408", answer(408, ``), 100 * time.Millisecond},
		{"500", answer(500, `{"message":"oops"}`), 100 * time.Millisecond},
		{"502 html", answer(502, `<html>bad gateway</html>`), 100 * time.Millisecond},
		{"503", answer(503, ``), 100 * time.Millisecond},
		{"504", answer(504, ``), 100 * time.Millisecond},
		{"truncated body", answer(200, okPage[:len(okPage)/2]), 100 * time.Millisecond},
		{"not json", answer(200, `hello`), 100 * time.Millisecond},
		{"connection reset", func(w http.ResponseWriter, r *http.Request) { panic(http.ErrAbortHandler) }, 100 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &script{steps: []http.HandlerFunc{tc.first, answer(200, okPage)}}
			srv := httptest.NewServer(s)
			defer srv.Close()
			c, slept := newTestClient(t, srv, 3)
			resp, err := c.List(context.Background(), ListParams{Events: []string{"vault.data.read"}, Limit: 100})
			if err != nil {
				t.Fatalf("List: %v", err)
			}
			if resp.Attempts != 2 || len(resp.Events) != 1 || s.count() != 2 {
				t.Errorf("attempts %d, events %d, requests %d; want 2, 1, 2", resp.Attempts, len(resp.Events), s.count())
			}
			if len(*slept) != 1 || (*slept)[0] < tc.minWait {
				t.Errorf("waited %v; want one wait of at least %v", *slept, tc.minWait)
			}
		})
	}
}

func TestRetryAfterIsCapped(t *testing.T) {
	s := &script{steps: []http.HandlerFunc{answer(429, ``, "Retry-After", "9000"), answer(200, okPage)}}
	srv := httptest.NewServer(s)
	defer srv.Close()
	c, slept := newTestClient(t, srv, 2)
	if _, err := c.List(context.Background(), ListParams{Events: []string{"vault.data.read"}, Limit: 1}); err != nil {
		t.Fatal(err)
	}
	if len(*slept) != 1 || (*slept)[0] != 5*time.Minute {
		t.Errorf("waited %v for Retry-After: 9000; want the 5m cap", *slept)
	}
}

func TestBackoffIsJitteredFromTheFirstRetry(t *testing.T) {
	s := &script{steps: []http.HandlerFunc{answer(200, okPage)}}
	srv := httptest.NewServer(s)
	defer srv.Close()
	c, _ := newTestClient(t, srv, 1)
	seen := map[time.Duration]bool{}
	for range 50 {
		d := c.backoff(1)
		if d < 100*time.Millisecond || d > 200*time.Millisecond {
			t.Fatalf("first backoff %v outside [100ms, 200ms]", d)
		}
		seen[d] = true
	}
	if len(seen) < 10 {
		t.Errorf("50 first backoffs took %d distinct values; want jitter", len(seen))
	}
	for attempt := 1; attempt < 40; attempt++ {
		if d := c.backoff(attempt); d > 2*time.Second {
			t.Fatalf("backoff(%d) = %v over MaxBackoff", attempt, d)
		}
	}
}

func TestListTimesOutSlowAnswersAndRetries(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	slow := func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}
	s := &script{steps: []http.HandlerFunc{slow, answer(200, okPage)}}
	srv := httptest.NewServer(s)
	defer srv.Close()
	c, _ := newTestClient(t, srv, 2)
	c.cfg.RequestTimeout = 50 * time.Millisecond
	if _, err := c.List(context.Background(), ListParams{Events: []string{"vault.data.read"}, Limit: 1}); err != nil {
		t.Fatalf("List: %v", err)
	}
	if s.count() != 2 {
		t.Errorf("requests = %d; want the slow one abandoned and a second one", s.count())
	}
}

func TestListGivesUpAfterMaxAttempts(t *testing.T) {
	s := &script{steps: []http.HandlerFunc{answer(503, `{"message":"down","code":"unavailable"}`)}}
	srv := httptest.NewServer(s)
	defer srv.Close()
	c, slept := newTestClient(t, srv, 4)
	_, err := c.List(context.Background(), ListParams{Events: []string{"vault.data.read"}, Limit: 1})
	if err == nil || !strings.Contains(err.Error(), "giving up after 4 attempts") || !strings.Contains(err.Error(), "req_503") {
		t.Fatalf("err = %v; want giving up after 4 attempts with the request id", err)
	}
	if s.count() != 4 || len(*slept) != 3 {
		t.Errorf("requests %d, waits %d; want 4 and 3", s.count(), len(*slept))
	}
	for i, d := range *slept {
		if d < 100*time.Millisecond || d > 2*time.Second {
			t.Errorf("wait %d = %v; want within [MinBackoff, MaxBackoff]", i, d)
		}
	}
}

func TestListDoesNotRetryAnswersThatCannotChange(t *testing.T) {
	for _, tc := range []struct {
		status int
		body   string
		want   []string
	}{
		{401, `{"message":"Unauthorized","code":"unauthorized"}`, []string{"401", `"unauthorized"`, `"Unauthorized"`, "req_401"}},
		{403, `{"message":"Forbidden"}`, []string{"403", "Forbidden", "req_403"}},
		{404, `not json`, []string{"404", "req_404"}},
		{400, `{"message":"Invalid events request","code":"invalid_events_request"}`, []string{"400", "invalid_events_request", "req_400"}},
		{422, `{"message":"Validation failed","code":"invalid_request_parameters","errors":[{"field":"events","code":"required"}]}`, []string{"422", "[events: required]", "req_422"}},
	} {
		t.Run(fmt.Sprint(tc.status), func(t *testing.T) {
			s := &script{steps: []http.HandlerFunc{answer(tc.status, tc.body)}}
			srv := httptest.NewServer(s)
			defer srv.Close()
			c, slept := newTestClient(t, srv, 5)
			_, err := c.List(context.Background(), ListParams{Events: []string{"vault.data.read"}, Limit: 1})
			var se *StatusError
			if !errors.As(err, &se) || se.Status != tc.status || se.Retryable() {
				t.Fatalf("err = %v; want a non-retryable *StatusError %d", err, tc.status)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if strings.Contains(err.Error(), testKey) {
				t.Errorf("error %q contains the API key", err)
			}
			if s.count() != 1 || len(*slept) != 0 {
				t.Errorf("requests %d, waits %d; want 1 and 0", s.count(), len(*slept))
			}
		})
	}
}

func TestListRefusesAbsurdlyLargeAnswers(t *testing.T) {
	s := &script{steps: []http.HandlerFunc{answer(200, `{"data":[],"pad":"`+strings.Repeat("x", 4096)+`"}`)}}
	srv := httptest.NewServer(s)
	defer srv.Close()
	c, _ := newTestClient(t, srv, 3)
	c.cfg.MaxResponseBytes = 1024
	_, err := c.List(context.Background(), ListParams{Events: []string{"vault.data.read"}, Limit: 1})
	if err == nil || !strings.Contains(err.Error(), "over 1024 bytes") || s.count() != 1 {
		t.Errorf("err = %v after %d requests; want a size error at once", err, s.count())
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Duration{
		"":                              0,
		"3":                             3 * time.Second,
		" 1.5 ":                         1500 * time.Millisecond,
		"-1":                            0,
		"90000":                         24 * time.Hour,
		"soon":                          0,
		"Thu, 03 Dec 2026 12:00:10 GMT": 10 * time.Second,
		"Thu, 03 Dec 2026 11:00:00 GMT": 0,
	} {
		if got := parseRetryAfter(in, now); got != want {
			t.Errorf("parseRetryAfter(%q) = %v; want %v", in, got, want)
		}
	}
}

func TestClientConfigIsChecked(t *testing.T) {
	for _, cfg := range []ClientConfig{
		{APIKey: ""},
		{APIKey: "k", BaseURL: "ftp://x"},
		{APIKey: "k", BaseURL: "not a url"},
	} {
		if _, err := NewClient(cfg); err == nil {
			t.Errorf("NewClient(%+v) succeeded; want an error", cfg)
		}
	}
}

func TestTheRequestBudgetHolds(t *testing.T) {
	s := &script{steps: []http.HandlerFunc{answer(200, okPage)}}
	srv := httptest.NewServer(s)
	defer srv.Close()
	c, err := NewClient(ClientConfig{BaseURL: srv.URL, APIKey: testKey, RateLimit: 600}) // 10 a second
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	var wg sync.WaitGroup
	for range 4 { // concurrent callers share the budget
		wg.Go(func() {
			for range 5 {
				if _, err := c.List(context.Background(), ListParams{Events: []string{"vault.data.read"}, Limit: 1}); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	// 20 requests at 10 a second with a burst of 10: at least 1s.
	if d := time.Since(start); d < 900*time.Millisecond {
		t.Errorf("20 requests took %s under a budget of 600 a minute; want at least 0.9s", d)
	}
}
