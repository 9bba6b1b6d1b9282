package poller

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/syncer-audit/syncer/internal/model"
)

func ev(id, at string) model.Event {
	e := model.Event{ID: id}
	if at != "" {
		e.CreatedAt, _ = model.ParseTime(at)
	}
	return e
}

func TestCheckOrder(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cursor  string
		events  []model.Event
		next    string
		wantErr string
	}{
		{"in order", "", []model.Event{ev("event_1", "2026-01-01T00:00:00Z"), ev("event_2", "2026-01-01T00:00:01Z")}, "event_2", ""},
		{"same time", "event_0", []model.Event{ev("event_1", "2026-01-01T00:00:00Z"), ev("event_2", "2026-01-01T00:00:00Z")}, "event_2", ""},
		{"repeat of the last page", "event_5", []model.Event{ev("event_4", "2026-01-01T00:00:00Z"), ev("event_5", "2026-01-01T00:00:01Z")}, "event_5", ""},
		{"same id twice", "", []model.Event{ev("event_1", "2026-01-01T00:00:00Z"), ev("event_1", "2026-01-01T00:00:00Z")}, "event_1", ""},
		{"id without time", "", []model.Event{ev("event_1", "2026-01-01T00:00:00Z"), ev("event_2", "")}, "event_2", ""},
		{"event without id", "event_0", []model.Event{ev("", "2026-01-01T00:00:00Z")}, "event_0", ""},
		{"ids go backwards", "", []model.Event{ev("event_2", "2026-01-01T00:00:00Z"), ev("event_1", "2026-01-01T00:00:01Z")}, "", `event 1 id "event_1" comes after "event_2"`},
		{"times go backwards", "", []model.Event{ev("event_1", "2026-01-01T00:00:01Z"), ev("event_2", "2026-01-01T00:00:00Z")}, "", "created_at 2026-01-01T00:00:00Z is before"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			next, _, err := checkOrder(tc.cursor, tc.events)
			if tc.wantErr != "" {
				var oe *OrderError
				if !errors.As(err, &oe) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v; want an OrderError containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || next != tc.next {
				t.Errorf("checkOrder = %q, %v; want %q", next, err, tc.next)
			}
		})
	}
}

// rejecting is an Events API that rejects a filter naming any of bad, the
// way the live API does: 400 invalid_events_request, without saying which.
type rejecting struct {
	mu       sync.Mutex
	bad      []string
	requests int
}

func (a *rejecting) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	a.requests++
	a.mu.Unlock()
	for _, e := range r.URL.Query()["events"] {
		if slices.Contains(a.bad, e) {
			answer(400, `{"message":"Invalid events request","code":"invalid_events_request"}`)(w, r)
			return
		}
	}
	answer(200, `{"object":"list","data":[],"list_metadata":{"after":null}}`)(w, r)
}

// pages records what the poller hands over. It stands for the poller's
// own Sink interface; the real store is exercised end to end in
// cmd/syncer's tests.
type pages struct {
	cursor string
	got    []model.Page
}

func (p *pages) Cursor(context.Context, string) (string, error) { return p.cursor, nil }
func (p *pages) WritePage(_ context.Context, pg model.Page) error {
	if pg.Prev != p.cursor {
		return fmt.Errorf("prev %q, stored %q", pg.Prev, p.cursor)
	}
	p.got = append(p.got, pg)
	p.cursor = pg.Next
	return nil
}

func newTestPoller(t *testing.T, h http.Handler, cfg Config) (*Poller, *pages) {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	c, _ := newTestClient(t, srv, 2)
	sink := &pages{}
	if cfg.Since.IsZero() {
		cfg.Since = time.Now().Add(-time.Hour)
	}
	p, err := New(cfg, c, sink)
	if err != nil {
		t.Fatal(err)
	}
	return p, sink
}

func TestRejectedTypesAreNamed(t *testing.T) {
	types := model.KnownTypes()
	api := &rejecting{bad: []string{types[3], types[77]}}
	p, _ := newTestPoller(t, api, Config{Events: types})
	_, err := p.Sync(context.Background())
	if !errors.Is(err, ErrRejectedTypes) {
		t.Fatalf("err = %v; want ErrRejectedTypes", err)
	}
	for _, bad := range api.bad {
		if !strings.Contains(err.Error(), bad) {
			t.Errorf("error %q does not name %s", err, bad)
		}
	}
	if strings.Contains(err.Error(), types[4]) {
		t.Errorf("error %q names an accepted type", err)
	}
	// 1 sync request, then bisection: far fewer than one probe per name.
	if api.requests > 30 {
		t.Errorf("%d requests to find 2 bad names among %d; want bisection", api.requests, len(types))
	}
}

func TestRejectedDefaultTypesAreDropped(t *testing.T) {
	api := &rejecting{bad: []string{model.VaultKEKDeleted}}
	p, _ := newTestPoller(t, api, Config{Events: model.VaultTypes(), DefaultEvents: true})
	if _, err := p.Sync(context.Background()); err != nil {
		t.Fatalf("Sync with a default filter the API partly rejects: %v", err)
	}
	if slices.Contains(p.cfg.Events, model.VaultKEKDeleted) || len(p.cfg.Events) != len(model.VaultTypes())-1 {
		t.Errorf("filter after the sync = %v; want the Vault types less vault.kek.deleted", p.cfg.Events)
	}
}

func TestOrderErrorLeavesTheCursor(t *testing.T) {
	body := `{"data":[
		{"id":"event_02","event":"vault.data.read","created_at":"2026-01-01T00:00:00Z","data":{}},
		{"id":"event_01","event":"vault.data.read","created_at":"2026-01-01T00:00:01Z","data":{}}],
		"list_metadata":{"after":null}}`
	p, sink := newTestPoller(t, answer(200, body), Config{Events: model.VaultTypes()})
	sink.cursor = "event_00"
	_, err := p.Sync(context.Background())
	var oe *OrderError
	if !errors.As(err, &oe) || !strings.Contains(err.Error(), "req_200") {
		t.Fatalf("err = %v; want an OrderError with the request id", err)
	}
	if sink.cursor != "event_00" || len(sink.got) != 0 {
		t.Errorf("cursor %q after %d pages; want event_00 and nothing written", sink.cursor, len(sink.got))
	}
}

func TestConfigIsChecked(t *testing.T) {
	now := time.Now()
	for _, cfg := range []Config{
		{Since: now},
		{Events: []string{"a,b"}, Since: now},
		{Events: []string{"vault.data.read"}},
		{Events: []string{"vault.data.read"}, Since: now, PageSize: 101},
	} {
		if _, err := New(cfg, nil, nil); err == nil {
			t.Errorf("New(%+v) succeeded; want an error", cfg)
		}
	}
}
