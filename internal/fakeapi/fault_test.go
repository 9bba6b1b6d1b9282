package fakeapi

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/syncer-audit/syncer/internal/model"
)

func TestFaults(t *testing.T) {
	t.Parallel()
	evs := NewGenerator(GenConfig{Seed: 9}).Take(100)
	query := allKnownQuery() + "&limit=5"
	pageOf5 := func(t *testing.T) []byte {
		t.Helper()
		s2 := New(Config{APIKey: testKey})
		s2.Append(evs...)
		_, body := call(t, s2, http.MethodGet, "/events?"+query, "Bearer "+testKey, nil)
		return body
	}
	type answer struct {
		status     int
		retryAfter string
		ctype      string
		body       func(t *testing.T, body, page []byte)
	}
	jsonError := func(code string) func(t *testing.T, body, page []byte) {
		return func(t *testing.T, body, page []byte) {
			var e struct{ Message, Code string }
			if err := json.Unmarshal(body, &e); err != nil || e.Code != code || e.Message == "" {
				t.Fatalf("body %s, want a WorkOS error with code %s", body, code)
			}
		}
	}
	normal := answer{200, "", "application/json", func(t *testing.T, body, page []byte) {
		if string(body) != string(page) {
			t.Fatalf("body %s, want the normal page", body)
		}
	}}
	tests := []struct {
		name   string
		faults []Fault
		auth   string
		want   []answer
	}{
		{
			name:   "429 with Retry-After, then the page",
			faults: []Fault{{Status: 429, RetryAfter: "2"}},
			want:   []answer{{429, "2", "application/json", jsonError("rate_limit_exceeded")}, normal},
		},
		{
			name:   "Retry-After as an HTTP date",
			faults: []Fault{{Status: 429, RetryAfter: "Wed, 21 Oct 2026 07:28:00 GMT"}},
			want:   []answer{{429, "Wed, 21 Oct 2026 07:28:00 GMT", "application/json", jsonError("rate_limit_exceeded")}, normal},
		},
		{
			name:   "503 repeated",
			faults: []Fault{{Status: 503, Repeat: 2}},
			want:   []answer{{503, "", "application/json", jsonError("service_unavailable")}, {503, "", "application/json", jsonError("service_unavailable")}, normal},
		},
		{
			name:   "faults apply in order",
			faults: []Fault{{Status: 500}, {}, {Status: 429}},
			want:   []answer{{500, "", "application/json", jsonError("server_error")}, normal, {429, "", "application/json", jsonError("rate_limit_exceeded")}, normal},
		},
		{
			name:   "502 from a proxy is HTML",
			faults: []Fault{{Status: 502}},
			want: []answer{{502, "", "text/html; charset=utf-8", func(t *testing.T, body, page []byte) {
				if !strings.Contains(string(body), "502 Bad Gateway") || json.Valid(body) {
					t.Fatalf("body %s, want an HTML error page", body)
				}
			}}, normal},
		},
		{
			name:   "custom body",
			faults: []Fault{{Status: 400, Body: `{"message":"Organization not found","code":"entity_not_found"}`}},
			want:   []answer{{400, "", "application/json", jsonError("entity_not_found")}, normal},
		},
		{
			name:   "a status fault comes before the key check",
			faults: []Fault{{Status: 429}},
			auth:   "Bearer wrong",
			want:   []answer{{429, "", "application/json", jsonError("rate_limit_exceeded")}, {401, "", "application/json", jsonError("unauthorized")}},
		},
		{
			name:   "truncate",
			faults: []Fault{{Truncate: true}},
			want: []answer{{200, "", "application/json", func(t *testing.T, body, page []byte) {
				if json.Valid(body) || len(body) != len(page)/2 || !strings.HasPrefix(string(page), string(body)) {
					t.Fatalf("got %d bytes, want the first half of the %d-byte page", len(body), len(page))
				}
			}}, normal},
		},
		{
			name:   "reorder",
			faults: []Fault{{Reorder: true}},
			want: []answer{{200, "", "application/json", func(t *testing.T, body, page []byte) {
				var got, want listAnswer
				_ = json.Unmarshal(body, &got)
				_ = json.Unmarshal(page, &want)
				g, w := ids(t, got), ids(t, want)
				if len(g) != 5 || g[0] != w[1] || g[1] != w[0] || g[0] <= g[1] {
					t.Fatalf("ids %v, want the page's first two swapped", g)
				}
				if *got.ListMetadata.After != w[4] {
					t.Fatalf("after %s, want %s: the cursor stays right", *got.ListMetadata.After, w[4])
				}
			}}, normal},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := New(Config{APIKey: testKey})
			s.Append(evs...)
			page := pageOf5(t)
			s.Inject(tt.faults...)
			auth := tt.auth
			if auth == "" {
				auth = "Bearer " + testKey
			}
			for i, want := range tt.want {
				resp, body := call(t, s, http.MethodGet, "/events?"+query, auth, nil)
				if resp.StatusCode != want.status || resp.Header.Get("Retry-After") != want.retryAfter ||
					resp.Header.Get("Content-Type") != want.ctype || resp.Header.Get("X-Request-ID") == "" {
					t.Fatalf("request %d: status %d, Retry-After %q, Content-Type %q, X-Request-ID %q; want %d, %q, %q and an id",
						i, resp.StatusCode, resp.Header.Get("Retry-After"), resp.Header.Get("Content-Type"),
						resp.Header.Get("X-Request-ID"), want.status, want.retryAfter, want.ctype)
				}
				want.body(t, body, page)
			}
			if st := s.Stats(); st.FaultsPending != 0 || st.Requests != len(tt.want) {
				t.Fatalf("stats %+v: want every fault used, %d requests", st, len(tt.want))
			}
		})
	}
}

// TestReset needs a real connection to drop.
func TestReset(t *testing.T) {
	t.Parallel()
	s := New(Config{APIKey: testKey})
	s.Append(NewGenerator(GenConfig{Seed: 10}).Take(100)...)
	srv := httptest.NewServer(s)
	defer srv.Close()
	get := func() (*http.Response, []byte, error) {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/events?"+allKnownQuery()+"&limit=50", nil)
		req.Header.Set("Authorization", "Bearer "+testKey)
		resp, err := srv.Client().Do(req)
		if err != nil {
			return nil, nil, err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		return resp, body, err
	}

	s.Inject(Fault{Reset: true})
	resp, body, err := get()
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("got %v, %d bytes, err %v; want an unexpected EOF", resp, len(body), err)
	}
	if resp.Header.Get("X-Request-ID") == "" {
		t.Fatal("no X-Request-ID before the reset")
	}
	resp, body, err = get()
	if err != nil || resp.StatusCode != http.StatusOK || !json.Valid(body) {
		t.Fatalf("after the reset: %v, %v", resp, err)
	}
	st := s.Stats()
	if st.Resets != 1 || st.ByStatus[200] != 1 || st.Pages != 1 || st.EventsServed != 50 {
		t.Fatalf("stats %+v: want 1 reset and 1 page of 50", st)
	}
}

// TestDelayAndLatency runs in a synctest bubble: the waits are real
// timers on a fake clock, so the test takes no time.
func TestDelayAndLatency(t *testing.T) {
	t.Parallel()
	evs := NewGenerator(GenConfig{Seed: 11}).Take(30)
	tests := []struct {
		name     string
		latency  time.Duration
		fault    Fault
		timeout  time.Duration // client gives up after this; 0 = never
		status   int           // 0 = no answer
		took     time.Duration
		canceled int
	}{
		{"latency", 2 * time.Second, Fault{}, 0, 200, 2 * time.Second, 0},
		{"delay then the page", 0, Fault{Delay: 3 * time.Second}, 0, 200, 3 * time.Second, 0},
		{"delay adds to latency", time.Second, Fault{Delay: 3 * time.Second, Status: 504}, 0, 504, 4 * time.Second, 0},
		{"client times out during the delay", 0, Fault{Delay: time.Hour}, 10 * time.Second, 0, 10 * time.Second, 1},
		{"client times out during latency", time.Minute, Fault{}, 5 * time.Second, 0, 5 * time.Second, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s := New(Config{APIKey: testKey, Latency: tt.latency})
				s.Append(evs...)
				s.Inject(tt.fault)
				ctx := t.Context()
				if tt.timeout > 0 {
					var cancel context.CancelFunc
					ctx, cancel = context.WithTimeout(ctx, tt.timeout)
					defer cancel()
				}
				req := httptest.NewRequestWithContext(ctx, http.MethodGet, "/events?events="+model.VaultDataRead, nil)
				req.Header.Set("Authorization", "Bearer "+testKey)
				rec := httptest.NewRecorder()
				start := time.Now()
				s.ServeHTTP(rec, req)
				if took := time.Since(start); took != tt.took {
					t.Fatalf("answered after %s, want %s", took, tt.took)
				}
				if tt.status != 0 && rec.Code != tt.status {
					t.Fatalf("status %d, want %d", rec.Code, tt.status)
				}
				if tt.status == 0 && rec.Body.Len() != 0 {
					t.Fatalf("wrote %q to a client that left", rec.Body)
				}
				if st := s.Stats(); st.Canceled != tt.canceled {
					t.Fatalf("Canceled = %d, want %d", st.Canceled, tt.canceled)
				}
			})
		})
	}
}

func TestInjectRejectsNonsense(t *testing.T) {
	t.Parallel()
	for _, f := range []Fault{{Status: 42}, {Status: 600}, {Delay: -time.Second}, {Repeat: -1}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Inject(%+v) did not panic", f)
				}
			}()
			New(Config{APIKey: testKey}).Inject(f)
		}()
	}
}
