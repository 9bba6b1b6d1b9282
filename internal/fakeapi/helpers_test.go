package fakeapi

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/syncer-audit/syncer/internal/model"
)

const testKey = "sk_test_fake"

// listAnswer is a decoded GET /events answer.
type listAnswer struct {
	Object       string            `json:"object"`
	Data         []json.RawMessage `json:"data"`
	ListMetadata struct {
		Before *string `json:"before"`
		After  *string `json:"after"`
	} `json:"list_metadata"`
}

type envelope struct {
	Object    string          `json:"object"`
	ID        string          `json:"id"`
	Event     string          `json:"event"`
	CreatedAt string          `json:"created_at"`
	Data      json.RawMessage `json:"data"`
	Context   json.RawMessage `json:"context"`
}

// call runs one request through the handler, without a network.
func call(t *testing.T, h http.Handler, method, target, auth string, body io.Reader) (*http.Response, []byte) {
	t.Helper()
	req := httptest.NewRequest(method, target, body)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	resp := rec.Result()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// getEvents asks GET /events?query with the right key and wants a 200 list.
func getEvents(t *testing.T, h http.Handler, query string) listAnswer {
	t.Helper()
	resp, body := call(t, h, http.MethodGet, "/events?"+query, "Bearer "+testKey, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /events?%s: status %d: %s", query, resp.StatusCode, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type = %q", ct)
	}
	var a listAnswer
	if err := json.Unmarshal(body, &a); err != nil {
		t.Fatalf("GET /events?%s: %v: %s", query, err, body)
	}
	if a.Object != "list" || a.ListMetadata.Before != nil {
		t.Fatalf("GET /events?%s: object %q, before %v", query, a.Object, a.ListMetadata.Before)
	}
	return a
}

// ids returns the ids of a page's events, decoding each.
func ids(t *testing.T, a listAnswer) []string {
	t.Helper()
	var out []string
	for _, raw := range a.Data {
		var env envelope
		if err := json.Unmarshal(raw, &env); err != nil {
			t.Fatalf("event %s: %v", raw, err)
		}
		out = append(out, env.ID)
	}
	return out
}

// pageAll follows the cursor the way a client should: from the last event
// returned, until list_metadata.after is null. It checks that every full
// page's after is its last id.
func pageAll(t *testing.T, h http.Handler, query string) []string {
	t.Helper()
	var all []string
	after := ""
	for range 100_000 {
		q := query
		if after != "" {
			q += "&after=" + url.QueryEscape(after)
		}
		a := getEvents(t, h, q)
		got := ids(t, a)
		all = append(all, got...)
		if a.ListMetadata.After == nil {
			return all
		}
		if len(got) == 0 || *a.ListMetadata.After != got[len(got)-1] {
			t.Fatalf("list_metadata.after = %s, last id on page %v", *a.ListMetadata.After, got)
		}
		after = *a.ListMetadata.After
	}
	t.Fatal("pagination did not end")
	return nil
}

// idsOf returns the ids of the events whose type is in types, in order.
func idsOf(evs []Event, types ...string) []string {
	var out []string
	for _, ev := range evs {
		if len(types) == 0 || slices.Contains(types, ev.Type) {
			out = append(out, ev.ID)
		}
	}
	return out
}

func eventsQuery(types ...string) string {
	v := url.Values{"events": types}
	return v.Encode()
}

var t0 = time.Date(2026, 3, 12, 17, 58, 1, 120_000_000, time.UTC)

// ticking returns n events of typ, one a second from t0, with ULID ids
// dated at their created_at.
func ticking(n int, typ string) []Event {
	evs := make([]Event, n)
	for i := range evs {
		at := t0.Add(time.Duration(i) * time.Second)
		evs[i] = Event{
			ID:        string(appendULID([]byte("event_"), uint64(at.UnixMilli()), 0, uint64(i))),
			Type:      typ,
			CreatedAt: at,
		}
	}
	return evs
}

// clock is a settable Config.Now.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// allKnownQuery asks for every type, as a comma list.
func allKnownQuery() string {
	return "events=" + strings.Join(model.KnownTypes(), ",")
}
