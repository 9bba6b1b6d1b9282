package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/syncer-audit/syncer/internal/fakeapi"
)

// repeater wraps the fake so that each page after event X starts with X
// again: the same event served in two pages.
type repeater struct {
	api  http.Handler
	mu   sync.Mutex
	seen map[string]json.RawMessage
	n    int
}

func (r *repeater) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	rec := httptest.NewRecorder()
	r.api.ServeHTTP(rec, req)
	var page map[string]json.RawMessage
	var data []json.RawMessage
	if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &page) != nil || json.Unmarshal(page["data"], &data) != nil {
		http.Error(w, "repeater: the fake did not answer a page", http.StatusInternalServerError)
		return
	}
	r.mu.Lock()
	if prev, ok := r.seen[req.URL.Query().Get("after")]; ok && len(data) > 0 {
		data = append([]json.RawMessage{prev}, data...)
		r.n++
	}
	for _, d := range data {
		var ev struct{ ID string }
		json.Unmarshal(d, &ev)
		r.seen[ev.ID] = d
	}
	r.mu.Unlock()
	page["data"], _ = json.Marshal(data)
	body, _ := json.Marshal(page)
	w.Header().Set("Content-Type", "application/json")
	w.Write(body)
}

// TestEveryFaultTheFakeCanMakeIsSurvived injects each failure the fake API
// can produce into one drain, and checks that the final database is exact.
// A page whose ids go backwards is refused with the cursor untouched; the
// next run completes.
func TestEveryFaultTheFakeCanMakeIsSurvived(t *testing.T) {
	t.Parallel()
	w := newWorld(t, 2500)
	want := expect(t, w.evs)
	retryDate := time.Now().Add(2 * time.Second).UTC().Format(http.TimeFormat)
	faults := []fakeapi.Fault{
		{Status: 429, RetryAfter: "1"},
		{}, // one good page between faults
		{Status: 429, RetryAfter: retryDate},
		{Status: 500}, {Status: 502}, {Status: 503}, {Status: 504},
		{},
		{Reset: true},
		{Truncate: true},
		{Delay: 3 * time.Second}, // beyond --request-timeout
		{},
		{Status: 503, Repeat: 3},
	}
	w.api.Inject(faults...)
	_, logs, err := w.syncer("sync", "--events", "all", "--request-timeout", "1s")
	if err != nil {
		t.Fatalf("sync through the faults: %v\n%s", err, logs)
	}
	if got := strings.Count(logs, "retrying events request"); got != 12 {
		t.Errorf("%d retries logged; want one per injected failure (12)", got)
	}
	checkExact(t, w.db, want)

	// The same event in two pages: stored once.
	rep := &repeater{api: w.api, seen: map[string]json.RawMessage{}}
	srv := httptest.NewServer(rep)
	defer srv.Close()
	w.env["WORKOS_BASE_URL"] = srv.URL
	more := w.gen.Take(450)
	w.api.Append(more...)
	w.evs = append(w.evs, more...)
	if _, logs, err := w.syncer("sync", "--events", "all"); err != nil {
		t.Fatalf("sync with repeated events: %v\n%s", err, logs)
	}
	if rep.n < 4 {
		t.Errorf("%d pages repeated an event; want every page after the first", rep.n)
	}
	checkExact(t, w.db, expect(t, w.evs))

	// A page going backwards: refused loudly, cursor untouched; the next
	// run, with the API behaving, completes.
	w.env["WORKOS_BASE_URL"] = w.fakeURL
	more = w.gen.Take(300)
	w.api.Append(more...)
	w.evs = append(w.evs, more...)
	cursorBefore := w.cursor()
	w.api.Inject(fakeapi.Fault{Reorder: true})
	_, _, err = w.syncer("sync", "--events", "all")
	if err == nil || !strings.Contains(err.Error(), "out of order") || !strings.Contains(err.Error(), "request id req_") {
		t.Fatalf("sync of a page going backwards: %v; want an out-of-order error with the request id", err)
	}
	if got := w.cursor(); got != cursorBefore {
		t.Errorf("the cursor moved from %s to %s on a refused page", cursorBefore, got)
	}
	if _, logs, err := w.syncer("sync", "--events", "all"); err != nil {
		t.Fatalf("sync after the refused page: %v\n%s", err, logs)
	}
	checkExact(t, w.db, expect(t, w.evs))
	t.Logf("faults injected: 14 failing answers, %d pages repeating an event, 1 page out of order; final database exact", rep.n)
}

func (w *world) cursor() string {
	w.t.Helper()
	var c string
	conn := w.conn()
	defer conn.Close(context.Background())
	if err := conn.QueryRow(context.Background(), `SELECT coalesce(max(after_id), '') FROM sync_cursors WHERE stream = 'events'`).Scan(&c); err != nil {
		w.t.Fatal(err)
	}
	return c
}
