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

	"github.com/syncer-audit/syncer/internal/fakeapi"
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
	mu      sync.Mutex
	cursor  string // of the main stream, "events"
	streams map[string]model.Stream
	got     []model.Page
	failAt  int // if > 0, the failAt-th write fails, as a crash would
	writes  int
}

func (p *pages) Streams(context.Context) ([]model.Stream, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []model.Stream
	for _, st := range p.streams {
		out = append(out, st)
	}
	if _, ok := p.streams["events"]; !ok && p.cursor != "" {
		out = append(out, model.Stream{Name: "events", AfterID: p.cursor, EventTypes: model.VaultTypes()})
	}
	return out, nil
}

func (p *pages) WritePage(_ context.Context, pg model.Page) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.writes++
	if p.writes == p.failAt {
		return errors.New("injected write failure")
	}
	stored := p.streams[pg.Stream.Name].AfterID
	if pg.Stream.Name == "events" {
		stored = p.cursor
	}
	if pg.Prev != stored {
		return fmt.Errorf("prev %q, stored %q", pg.Prev, stored)
	}
	p.got = append(p.got, pg)
	if p.streams == nil {
		p.streams = map[string]model.Stream{}
	}
	p.streams[pg.Stream.Name] = pg.Stream
	if pg.Stream.Name == "events" {
		p.cursor = pg.Stream.AfterID
	}
	return nil
}

func (p *pages) events() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, pg := range p.got {
		n += len(pg.Events)
	}
	return n
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
	p, _ := newTestPoller(t, api, Config{Events: model.VaultTypes(), BuiltinEvents: true})
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

// fakeAt is the project's fake Events API serving n generated events from
// start, one every step, with its clock at now and the given retention.
func fakeAt(t *testing.T, now, start time.Time, step time.Duration, n int, retention time.Duration) (*fakeapi.Server, []fakeapi.Event) {
	t.Helper()
	gen := fakeapi.NewGenerator(fakeapi.GenConfig{Seed: 3, Start: start, Step: step})
	api := fakeapi.New(fakeapi.Config{APIKey: testKey, Retention: retention, Now: func() time.Time { return now }})
	evs := gen.Take(n)
	api.Append(evs...)
	return api, evs
}

func TestSinceBeforeTheRetentionWindowIsAGap(t *testing.T) {
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	api, evs := fakeAt(t, now, now.Add(-40*24*time.Hour), time.Hour, 40*24-1, 30*24*time.Hour)
	p, sink := newTestPoller(t, api, Config{Events: model.KnownTypes(), BuiltinEvents: true, Since: now.Add(-45 * 24 * time.Hour),
		Now: func() time.Time { return now }})
	res, err := p.Sync(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	edge := now.Add(-30 * 24 * time.Hour)
	want := 0
	for _, e := range evs {
		if !e.CreatedAt.Before(edge.Add(time.Minute)) {
			want++
		}
	}
	if sink.events() != want || want == 0 {
		t.Errorf("received %d events; want the %d the API still holds after the window's edge", sink.events(), want)
	}
	if len(res.Gaps) != 1 || len(sink.got) == 0 || len(sink.got[0].Gaps) != 1 {
		t.Fatalf("gaps: result %v, first page %v; want one gap, written with the first page", res.Gaps, sink.got[0].Gaps)
	}
	g := sink.got[0].Gaps[0]
	if !g.From.Equal(now.Add(-45*24*time.Hour)) || !g.To.Equal(edge) || !strings.Contains(g.Reason, "retention") {
		t.Errorf("gap = %+v; want from --since to the window's edge", g)
	}
}

func TestACursorBehindTheRetentionWindowIsAGap(t *testing.T) {
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	api, evs := fakeAt(t, now, now.Add(-40*24*time.Hour), time.Hour, 40*24-1, 30*24*time.Hour)
	p, sink := newTestPoller(t, api, Config{Events: model.KnownTypes(), BuiltinEvents: true, Now: func() time.Time { return now }})
	old := evs[10] // 40 days ago: the API has dropped what came after it, up to 30 days ago
	sink.streams = map[string]model.Stream{"events": {Name: "events", AfterID: old.ID, AfterTime: old.CreatedAt, EventTypes: model.KnownTypes()}}
	sink.cursor = old.ID
	if _, err := p.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(sink.got) == 0 || len(sink.got[0].Gaps) != 1 {
		t.Fatalf("pages %d; want a gap recorded with the first", len(sink.got))
	}
	if g := sink.got[0].Gaps[0]; !g.From.Equal(old.CreatedAt) || !g.To.Equal(now.Add(-30*24*time.Hour)) {
		t.Errorf("gap = %+v; want from the cursor's time to the window's edge", g)
	}
	// Nothing after the first page repeats the gap.
	for _, pg := range sink.got[1:] {
		if len(pg.Gaps) != 0 {
			t.Fatal("the gap was recorded twice")
		}
	}
}

func TestAFullPageThatDoesNotMoveTheCursorStops(t *testing.T) {
	var page strings.Builder
	page.WriteString(`{"data":[`)
	for i := range 100 {
		if i > 0 {
			page.WriteString(",")
		}
		fmt.Fprintf(&page, `{"id":"event_%03d","event":"vault.data.read","created_at":"2026-01-01T00:00:00Z","data":{}}`, i)
	}
	page.WriteString(`],"list_metadata":{"after":"event_099"}}`)
	s := &script{steps: []http.HandlerFunc{answer(200, page.String())}} // ignores after
	p, sink := newTestPoller(t, s, Config{Events: model.VaultTypes()})
	_, err := p.Sync(context.Background())
	var oe *OrderError
	if !errors.As(err, &oe) || !strings.Contains(err.Error(), "does not move the cursor") {
		t.Fatalf("err = %v; want an OrderError", err)
	}
	if s.count() != 2 || sink.events() != 100 {
		t.Errorf("%d requests, %d events written; want 2 requests (the second repeats the first) and 100 events", s.count(), sink.events())
	}
}

func TestATooLargePageIsAskedForInSmallerParts(t *testing.T) {
	now := time.Now()
	api, evs := fakeAt(t, now, now.Add(-time.Hour), time.Second, 300, 0)
	var limits []string
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		limits = append(limits, r.URL.Query().Get("limit"))
		if r.URL.Query().Get("limit") == "100" {
			answer(200, `{"data":[],"pad":"`+strings.Repeat("x", 64<<10)+`"}`)(w, r)
			return
		}
		api.ServeHTTP(w, r)
	})
	p, sink := newTestPoller(t, h, Config{Events: model.KnownTypes(), BuiltinEvents: true, Since: now.Add(-2 * time.Hour)})
	p.client.cfg.MaxResponseBytes = 60 << 10
	if _, err := p.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	if sink.events() != len(evs) || limits[0] != "100" || limits[1] != "50" {
		t.Errorf("received %d of %d events with limits %v; want all, asked for 100 then 50", sink.events(), len(evs), limits[:2])
	}
}

func TestRunEndsOnAnswersNoRetryFixes(t *testing.T) {
	s := &script{steps: []http.HandlerFunc{answer(401, `{"message":"Unauthorized","code":"unauthorized"}`)}}
	p, _ := newTestPoller(t, s, Config{Events: model.VaultTypes()})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := p.Run(ctx, time.Hour, nil)
	var se *StatusError
	if !errors.As(err, &se) || se.Status != 401 || ctx.Err() != nil {
		t.Errorf("Run = %v; want it to end at once with the 401", err)
	}
}

// edgeStream builds events around every boundary of the windows a first
// run plans over [start, start+32h] with 8 workers (32 windows of an
// hour): several events sharing the boundary's millisecond, and one a
// millisecond either side.
func edgeStream(t *testing.T, start time.Time) []fakeapi.Event {
	t.Helper()
	var evs []fakeapi.Event
	n := 0
	add := func(at time.Time) {
		n++
		gen := fakeapi.NewGenerator(fakeapi.GenConfig{Seed: int64(n), Start: at})
		ev := gen.Next()
		// ids must increase with time: re-issue the id from a counter
		// whose order matches (same millisecond, increasing suffix).
		ev.ID = fmt.Sprintf("event_%013d%06d", at.UnixMilli(), n)
		ev.JSON = []byte(strings.Replace(string(ev.JSON), `"id":"`, `"id":"`+ev.ID+`","old_id":"`, 1))
		evs = append(evs, ev)
	}
	for i := 0; i <= 32; i++ {
		edge := start.Add(time.Duration(i) * time.Hour)
		if i > 0 {
			add(edge.Add(-time.Millisecond))
		}
		for range 4 {
			add(edge)
		}
		add(edge.Add(time.Millisecond))
		add(edge.Add(17 * time.Minute))
	}
	return evs
}

func TestBackfillWindowsHandOverWithNothingMissed(t *testing.T) {
	// The windows end a minute before now: [start, start+32h] in 32
	// windows of an hour.
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	start := now.Add(-32*time.Hour - time.Minute)
	evs := edgeStream(t, start)
	api := fakeapi.New(fakeapi.Config{APIKey: testKey, Now: func() time.Time { return now }})
	api.Append(evs[:len(evs)-2]...) // the last two arrive after the first run
	sink := &pages{failAt: 32 + 10} // the first run plans 32 windows, then crashes mid-way
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	c, _ := newTestClient(t, srv, 2)
	p, err := New(Config{Events: model.KnownTypes(), BuiltinEvents: true, Since: start, BackfillWorkers: 8, Now: func() time.Time { return now }}, c, sink)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Sync(context.Background()); err == nil || !strings.Contains(err.Error(), "injected write failure") {
		t.Fatalf("first run: %v; want the injected failure", err)
	}
	windows := 0
	for name := range sink.streams {
		if strings.HasPrefix(name, "window-") {
			windows++
		}
	}
	if windows != 32 {
		t.Fatalf("%d windows stored; want 32, one an hour", windows)
	}
	if main, ok := sink.streams["events"]; !ok || main.AfterID != "" {
		t.Fatalf("main stream %+v: want it stored, with its filter and no cursor until the windows are done", main)
	}
	// The next run resumes every window, then hands over.
	if _, err := p.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	api.Append(evs[len(evs)-2:]...)
	if _, err := p.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	written := map[string]int{}
	byMain := map[string]bool{}
	for _, pg := range sink.got {
		for _, ev := range pg.Events {
			written[ev.ID]++
			if pg.Stream.Name == "events" {
				byMain[ev.ID] = true
			}
		}
	}
	for _, ev := range evs {
		if written[ev.ID] == 0 {
			t.Errorf("event %s at %s was never written", ev.ID, ev.CreatedAt.Format(time.RFC3339Nano))
		}
	}
	if len(byMain) != 2 || !byMain[evs[len(evs)-1].ID] || !byMain[evs[len(evs)-2].ID] {
		t.Errorf("the main stream wrote %d events after the hand-over; want just the 2 that came later", len(byMain))
	}
	if got := sink.streams["events"].AfterID; got != evs[len(evs)-1].ID {
		t.Errorf("main cursor %s; want the last event %s", got, evs[len(evs)-1].ID)
	}
}

func TestAFilterWidenedBeforeTheHandOverIsBackfilled(t *testing.T) {
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	api, evs := fakeAt(t, now, now.Add(-5*24*time.Hour), 10*time.Minute, 700, 0)
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	c, _ := newTestClient(t, srv, 2)
	sink := &pages{failAt: 20} // the first run plans its windows, then crashes
	clock := func() time.Time { return now }
	first, _ := New(Config{Events: model.VaultTypes(), BuiltinEvents: true, Since: now.Add(-6 * 24 * time.Hour), BackfillWorkers: 8, Now: clock}, c, sink)
	if _, err := first.Sync(context.Background()); err == nil {
		t.Fatal("the first run should have crashed")
	}
	second, _ := New(Config{Events: model.KnownTypes(), BuiltinEvents: true, Since: now.Add(-6 * 24 * time.Hour), BackfillWorkers: 8, Now: clock}, c, sink)
	if _, err := second.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	written := map[string]bool{}
	for _, pg := range sink.got {
		for _, ev := range pg.Events {
			written[ev.ID] = true
		}
	}
	lost := 0
	for _, ev := range evs {
		if !written[ev.ID] {
			lost++
		}
	}
	if lost > 0 {
		t.Errorf("%d of %d events never written after the filter was widened mid-backfill", lost, len(evs))
	}
}

func TestABackfillResumedAfterItsRangeLeftTheWindow(t *testing.T) {
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	api, _ := fakeAt(t, now, now.Add(-29*24*time.Hour), 30*time.Minute, 28*48, 30*24*time.Hour)
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	c, _ := newTestClient(t, srv, 2)
	sink := &pages{failAt: 34} // plans 32 windows (and the main stream), then crashes
	clock := now
	p, _ := New(Config{Events: model.KnownTypes(), BuiltinEvents: true, Since: now.Add(-29 * 24 * time.Hour), BackfillWorkers: 8,
		Now: func() time.Time { return clock }}, c, sink)
	if _, err := p.Sync(context.Background()); err == nil {
		t.Fatal("the first run should have crashed")
	}
	clock = now.Add(10 * 24 * time.Hour) // resumed ten days later: a third of the windows is behind the edge
	res, err := p.Sync(context.Background())
	if err != nil {
		t.Fatalf("resumed backfill: %v", err)
	}
	if len(res.Gaps) == 0 {
		t.Error("windows that left the retention window were not reported as gaps")
	}
	for name, st := range sink.streams {
		if strings.HasPrefix(name, "window-") && !st.Done {
			t.Errorf("window %s is not done", name)
		}
	}
}

func TestAWindowedFirstRunReportsItsGap(t *testing.T) {
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	api, _ := fakeAt(t, now, now.Add(-40*24*time.Hour), time.Hour, 40*24-1, 30*24*time.Hour)
	p, sink := newTestPoller(t, api, Config{Events: model.KnownTypes(), BuiltinEvents: true, Since: now.Add(-45 * 24 * time.Hour),
		BackfillWorkers: 8, Now: func() time.Time { return now }})
	res, err := p.Sync(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Gaps) != 1 {
		t.Errorf("Result.Gaps = %v; want the --since gap once", res.Gaps)
	}
	stored := 0
	for _, pg := range sink.got {
		stored += len(pg.Gaps)
	}
	if stored != 1 {
		t.Errorf("%d gaps stored; want 1", stored)
	}
}
