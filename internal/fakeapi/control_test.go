package fakeapi

import (
	"encoding/json"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/syncer-audit/syncer/internal/model"
)

func TestControlEvents(t *testing.T) {
	t.Parallel()
	post := func(t *testing.T, s *Server, target, body string) (int, string) {
		t.Helper()
		resp, b := call(t, s, http.MethodPost, target, "", strings.NewReader(body))
		if resp.Header.Get("X-Request-ID") == "" || !json.Valid(b) {
			t.Fatalf("answer %s without X-Request-ID or not JSON", b)
		}
		return resp.StatusCode, string(b)
	}

	t.Run("generated", func(t *testing.T) {
		t.Parallel()
		s := New(Config{APIKey: testKey, Generator: NewGenerator(GenConfig{Seed: 12})})
		for range 2 {
			if status, body := post(t, s, "/_fake/events?n=150", ""); status != http.StatusOK || !strings.Contains(body, `"appended":150`) {
				t.Fatalf("status %d: %s", status, body)
			}
		}
		want := idsOf(NewGenerator(GenConfig{Seed: 12}).Take(300))
		if got := pageAll(t, s, allKnownQuery()+"&limit=100"); !slices.Equal(got, want) {
			t.Fatalf("served %d events, want the generator's 300", len(got))
		}
		for _, n := range []string{"0", "-5", "many", "10000001"} {
			if status, body := post(t, s, "/_fake/events?n="+n, ""); status != http.StatusBadRequest {
				t.Errorf("n=%s: status %d: %s", n, status, body)
			}
		}
	})
	t.Run("generated without a generator", func(t *testing.T) {
		t.Parallel()
		s := New(Config{APIKey: testKey})
		if status, body := post(t, s, "/_fake/events?n=5", ""); status != http.StatusBadRequest || !strings.Contains(body, "Generator") {
			t.Fatalf("status %d: %s", status, body)
		}
	})
	t.Run("posted envelopes", func(t *testing.T) {
		t.Parallel()
		s := New(Config{APIKey: testKey})
		evs := NewGenerator(GenConfig{Seed: 13}).Take(3)
		body := "[" + string(evs[0].JSON) + ",\n " + string(evs[1].JSON) + "]"
		status, answer := post(t, s, "/_fake/events", body)
		if status != http.StatusOK || !strings.Contains(answer, `"len":2`) || !strings.Contains(answer, evs[1].ID) {
			t.Fatalf("status %d: %s", status, answer)
		}
		a := getEvents(t, s, allKnownQuery())
		if len(a.Data) != 2 || string(a.Data[0]) != string(evs[0].JSON) || string(a.Data[1]) != string(evs[1].JSON) {
			t.Fatalf("served %s, want the posted envelopes verbatim", a.Data)
		}

		tests := []struct {
			name, body string
			status     int
		}{
			{"an old id", "[" + string(evs[0].JSON) + "]", http.StatusConflict},
			{"ids backwards within the batch", "[" + string(evs[2].JSON) + "," + string(evs[1].JSON) + "]", http.StatusConflict},
			{"no id", `[{"event":"user.created","created_at":"2030-01-01T00:00:00Z"}]`, http.StatusBadRequest},
			{"no event", `[{"id":"event_Z","created_at":"2030-01-01T00:00:00Z"}]`, http.StatusBadRequest},
			{"bad created_at", `[{"id":"event_Z","event":"user.created","created_at":"soon"}]`, http.StatusBadRequest},
			{"not an array", `{"id":"event_Z"}`, http.StatusBadRequest},
			{"not JSON", `[{`, http.StatusBadRequest},
		}
		for _, tt := range tests {
			if status, answer := post(t, s, "/_fake/events", tt.body); status != tt.status {
				t.Errorf("%s: status %d, want %d: %s", tt.name, status, tt.status, answer)
			}
		}
		if s.Len() != 2 {
			t.Fatalf("Len = %d after rejected posts, want 2", s.Len())
		}
	})
}

func TestControlFaultsAndStats(t *testing.T) {
	t.Parallel()
	s := New(Config{APIKey: testKey})
	s.Append(NewGenerator(GenConfig{Seed: 14}).Take(40)...)

	resp, body := call(t, s, http.MethodPost, "/_fake/faults", "",
		strings.NewReader(`[{"status":429,"retry_after":"1","repeat":2},{"truncate":true},{"status":503,"body":"upstream gone","delay_ms":0}]`))
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"pending":4`) {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	for _, bad := range []string{`[{"status":42}]`, `[{"stauts":429}]`, `[{"delay_ms":-1}]`, `[{"repeat":-2}]`, `{}`} {
		if resp, body := call(t, s, http.MethodPost, "/_fake/faults", "", strings.NewReader(bad)); resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s: status %d: %s", bad, resp.StatusCode, body)
		}
	}
	// Control routes do not use up faults.
	if resp, _ := call(t, s, http.MethodGet, "/_fake/stats", "", nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("stats: status %d", resp.StatusCode)
	}

	query := "/events?events=" + model.VaultDataRead + "&order=asc&limit=100"
	var statuses []int
	for range 5 {
		resp, body := call(t, s, http.MethodGet, query, "Bearer "+testKey, nil)
		statuses = append(statuses, resp.StatusCode)
		switch len(statuses) {
		case 1, 2:
			if resp.Header.Get("Retry-After") != "1" {
				t.Fatalf("request %d: no Retry-After", len(statuses))
			}
		case 3:
			if json.Valid(body) {
				t.Fatalf("request 3: body %s, want it truncated", body)
			}
		case 4:
			if string(body) != "upstream gone" || resp.Header.Get("Content-Type") != "text/plain; charset=utf-8" {
				t.Fatalf("request 4: body %q, Content-Type %q", body, resp.Header.Get("Content-Type"))
			}
		}
	}
	if want := []int{429, 429, 200, 503, 200}; !slices.Equal(statuses, want) {
		t.Fatalf("statuses %v, want %v", statuses, want)
	}
	call(t, s, http.MethodGet, "/events?events="+model.VaultDataRead, "Bearer wrong", nil)

	resp, body = call(t, s, http.MethodGet, "/_fake/stats", "", nil)
	var st Stats
	if err := json.Unmarshal(body, &st); err != nil || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("stats %s: %v", body, err)
	}
	served := strings.Count(string(getEventsBody(t, s, query)), `"event":"`+model.VaultDataRead)
	if served == 0 {
		t.Fatal("the page holds no events; the test proves nothing")
	}
	want := Stats{
		Requests: 6, ByStatus: map[int]int{200: 2, 401: 1, 429: 2, 503: 1},
		Pages: 1, EventsServed: served, FaultsApplied: 4, Events: 40,
		LastQuery: "events=" + model.VaultDataRead,
	}
	if st.Requests != want.Requests || !maps.Equal(st.ByStatus, want.ByStatus) || st.Pages != want.Pages ||
		st.EventsServed != want.EventsServed || st.FaultsApplied != want.FaultsApplied ||
		st.FaultsPending != 0 || st.Events != want.Events || st.LastQuery != want.LastQuery {
		t.Fatalf("stats\n got %+v\nwant %+v", st, want)
	}
}

// getEventsBody fetches a page's raw bytes through a second server holding
// the same events, so the stats under test are not disturbed.
func getEventsBody(t *testing.T, s *Server, target string) []byte {
	t.Helper()
	s.mu.RLock()
	evs := make([]Event, len(s.events))
	for i, e := range s.events {
		evs[i] = Event{JSON: e.json}
	}
	s.mu.RUnlock()
	other := New(Config{APIKey: testKey})
	other.Append(evs...)
	_, body := call(t, other, http.MethodGet, target, "Bearer "+testKey, nil)
	return body
}
