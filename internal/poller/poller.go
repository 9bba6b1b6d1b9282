package poller

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/syncer-audit/syncer/internal/model"
)

// Sink stores pages. The store implements it; WritePage must write the
// events and the stream's new state atomically, refusing the page if the
// stored cursor is no longer page.Prev.
type Sink interface {
	Streams(ctx context.Context) ([]model.Stream, error)
	WritePage(ctx context.Context, page model.Page) error
}

// Config configures a Poller.
type Config struct {
	// Stream names the main cursor. Default "events".
	Stream string
	// Events is the type filter sent to the API. Required.
	Events []string
	// BuiltinEvents says Events is a list the binary chose (the Vault
	// default, or "all"), not one the user typed: names the API rejects
	// are then dropped with a warning instead of stopping the sync.
	BuiltinEvents bool
	// Since is where the first run starts (range_start) when the stream
	// has no cursor yet, and where types added to the filter are
	// backfilled from. Required.
	Since time.Time
	// Retention is how long the API keeps events. A cursor or a Since
	// older than that is a gap: recorded, warned about, and skipped to
	// the oldest events the API still has. Default 30 days.
	Retention time.Duration
	// PageSize is the limit sent. Default and maximum 100.
	PageSize int
	// BackfillWorkers is how many bounded streams (the windows of a first
	// run, backfills of added types) are drained at once. 1 drains them
	// one by one, and a first run reads with a single cursor. Default 1.
	BackfillWorkers int
	// WriteTimeout bounds the write of one page. A page being written
	// when the context is cancelled is still committed within it.
	// Default 2m.
	WriteTimeout time.Duration
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// OnPage, if set, sees every page written: for progress reports. It is
	// called from several goroutines at once while windows are drained.
	OnPage func(PageInfo)
	// OnSync, if set, sees the end of every Sync: for run records and
	// metrics.
	OnSync func(Result, error)
	Logger *slog.Logger
}

// PageInfo describes a page just written.
type PageInfo struct {
	Stream    string
	Events    int
	Newest    time.Time // newest created_at in the page
	RangeFrom time.Time // where the stream started, or the cursor's time at the start of this drain
	RangeEnd  time.Time // where a bounded stream ends; zero for the main one
}

// Poller follows the Events API with a cursor and hands pages to a Sink.
type Poller struct {
	cfg    Config
	client *Client
	sink   Sink
}

// New checks cfg and returns a Poller.
func New(cfg Config, client *Client, sink Sink) (*Poller, error) {
	if cfg.Stream == "" {
		cfg.Stream = "events"
	}
	if len(cfg.Events) == 0 {
		return nil, errors.New("poller config: Events is empty: at least one event type is needed")
	}
	for _, e := range cfg.Events {
		if e == "" || strings.ContainsAny(e, ", \t\n") {
			return nil, fmt.Errorf("poller config: Events: %q is not an event type name", e)
		}
	}
	if cfg.Since.IsZero() {
		return nil, errors.New("poller config: Since is zero: the first run needs a start time")
	}
	switch {
	case cfg.PageSize == 0:
		cfg.PageSize = 100
	case cfg.PageSize < 1 || cfg.PageSize > 100:
		return nil, fmt.Errorf("poller config: PageSize %d is outside 1..100", cfg.PageSize)
	}
	if cfg.Retention <= 0 {
		cfg.Retention = 30 * 24 * time.Hour
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 2 * time.Minute
	}
	if cfg.BackfillWorkers <= 0 {
		cfg.BackfillWorkers = 1
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	cfg.Events = slices.Clone(cfg.Events)
	return &Poller{cfg: cfg, client: client, sink: sink}, nil
}

// Result sums up one Sync.
type Result struct {
	Pages    int
	Events   int    // events received (repeats included)
	Cursor   string // the main stream's cursor after the sync
	Newest   time.Time
	Gaps     []model.Gap
	Duration time.Duration
}

// ErrRejectedTypes is wrapped by the error Sync returns when the API
// rejects names in a type filter the user chose.
var ErrRejectedTypes = errors.New("the API rejects event types in the filter")

// OrderError is a page that would move the cursor wrongly: events going
// backwards, or a full page that does not move it at all. Storing it could
// leave a hole or loop for ever, so the sync stops with the cursor
// untouched.
type OrderError struct {
	After  string
	Detail string
}

func (e *OrderError) Error() string {
	return fmt.Sprintf("page after %q is out of order: %s; cursor left at %q", e.After, e.Detail, e.After)
}

// Sync brings every stream up to date: first the backfills of types added
// to the filter, then the main stream, each page by page until the API has
// nothing newer, each page written with its cursor move in one
// transaction. Cancelling ctx stops it between pages; a page being written
// is committed first, and Sync then returns the context's error.
func (p *Poller) Sync(ctx context.Context) (Result, error) {
	start := p.cfg.Now()
	res := &tally{}
	streams, err := p.sink.Streams(ctx)
	if err == nil {
		var main model.Stream
		main, err = p.planFilterChange(ctx, streams, &streams)
		if err == nil {
			streams, err = p.planWindows(ctx, main, streams, res)
		}
		if err == nil {
			err = p.drainBounded(ctx, streams, res)
		}
		if err == nil {
			main, err = p.handOver(ctx, main)
		}
		if err == nil {
			res.cursor, err = p.drain(ctx, main, res)
		}
	}
	out := res.result()
	out.Duration = p.cfg.Now().Sub(start)
	if p.cfg.OnSync != nil {
		p.cfg.OnSync(out, err)
	}
	return out, err
}

// tally sums up a Sync whose streams may be drained concurrently.
type tally struct {
	mu     sync.Mutex
	r      Result
	cursor string
}

func (t *tally) page(events int, newest time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.r.Pages++
	t.r.Events += events
	if newest.After(t.r.Newest) {
		t.r.Newest = newest
	}
}

func (t *tally) gaps(g []model.Gap) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.r.Gaps = append(t.r.Gaps, g...)
}

func (t *tally) result() Result {
	t.mu.Lock()
	defer t.mu.Unlock()
	r := t.r
	r.Cursor = t.cursor
	return r
}

// drainBounded drains the unfinished bounded streams (backfill windows,
// backfills of added types) with up to BackfillWorkers at once; the shared
// client keeps the whole within the request budget.
func (p *Poller) drainBounded(ctx context.Context, streams []model.Stream, res *tally) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	work := make(chan model.Stream)
	errs := make(chan error, len(streams)+1)
	var wg sync.WaitGroup
	for range p.cfg.BackfillWorkers {
		wg.Go(func() {
			for st := range work {
				if _, err := p.drain(ctx, st, res); err != nil {
					errs <- err
					cancel()
				}
			}
		})
	}
feed:
	for _, st := range streams {
		if !st.Bounded() || st.Done {
			continue
		}
		select {
		case work <- st:
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	close(errs)
	var all []error
	for err := range errs {
		if !errors.Is(err, context.Canceled) { // the others, stopped by the first failure
			all = append(all, err)
		}
	}
	if len(all) == 0 {
		return ctx.Err()
	}
	return errors.Join(all...)
}

// planWindows splits a first run's period into windows drained
// concurrently: with 100 ms round trips one cursor reads at most 1,000
// events a second, and a backfill of weeks of events would take hours.
// Each window is a bounded stream with its own stored cursor, so a crash
// resumes every one of them. Windows overlap by a millisecond: the API's
// range bounds are not documented as inclusive or exclusive, and an event
// read twice is stored once.
func (p *Poller) planWindows(ctx context.Context, main model.Stream, streams []model.Stream, res *tally) ([]model.Stream, error) {
	if main.AfterID != "" || p.cfg.BackfillWorkers < 2 || slices.ContainsFunc(streams, isWindow) {
		return streams, nil
	}
	clamped := main
	gaps := p.retentionGaps(&clamped) // clamps RangeStart to the retention edge
	// The windows stop a minute short of now: the API promises to hold
	// fresh events back from cursor reads, and the main cursor, reading
	// after the windows' newest id, takes the last minute that way.
	end := p.cfg.Now().Add(-time.Minute)
	span := end.Sub(clamped.RangeStart)
	if span < time.Hour {
		return streams, nil
	}
	main.RangeStart = clamped.RangeStart
	// One request first: a bad key or a rejected filter then fails once,
	// not once per window, and an empty period needs no windows.
	for {
		probe, err := p.client.List(ctx, ListParams{Events: main.EventTypes, Limit: 1, RangeStart: main.RangeStart})
		var se *StatusError
		if errors.As(err, &se) && se.InvalidEvents() {
			if err := p.dropRejected(ctx, &main, se); err != nil {
				return streams, err
			}
			continue
		}
		if err != nil {
			return streams, fmt.Errorf("fetch the first events: %w", err)
		}
		if len(probe.Events) == 0 {
			return streams, nil
		}
		break
	}
	n := min(p.cfg.BackfillWorkers*4, int(span/time.Minute))
	step := span / time.Duration(n)
	plan := fmt.Sprintf("window-%d", end.UnixMilli())
	p.cfg.Logger.Info("first run: backfilling in windows", "windows", n, "workers", p.cfg.BackfillWorkers,
		"from", main.RangeStart, "to", end)
	// The main stream is stored first, without a cursor, so that a filter
	// changed before the hand-over is seen and its added types backfilled.
	if err := p.write(ctx, model.Page{Stream: main}); err != nil {
		return streams, fmt.Errorf("plan backfill windows: %w", err)
	}
	res.gaps(gaps)
	for i := range n {
		w := model.Stream{
			Name:       fmt.Sprintf("%s-%03d", plan, i),
			EventTypes: main.EventTypes,
			RangeStart: main.RangeStart.Add(time.Duration(i) * step),
			RangeEnd:   main.RangeStart.Add(time.Duration(i+1)*step + time.Millisecond),
		}
		if i == n-1 {
			w.RangeEnd = end.Add(time.Millisecond)
		}
		page := model.Page{Stream: w}
		if i == 0 {
			page.Gaps = gaps
		}
		if err := p.write(ctx, page); err != nil {
			return streams, fmt.Errorf("plan backfill windows: %w", err)
		}
		streams = append(streams, w)
	}
	return streams, nil
}

func isWindow(s model.Stream) bool { return strings.HasPrefix(s.Name, "window-") }

// handOver gives the main stream, on its first run, the cursor the
// backfill windows reached: the newest event id any of them stored, so
// that the main stream goes on from there with nothing missed or read
// twice. Until every window is done, the main stream does not start.
func (p *Poller) handOver(ctx context.Context, main model.Stream) (model.Stream, error) {
	if main.AfterID != "" {
		return main, nil
	}
	streams, err := p.sink.Streams(ctx)
	if err != nil {
		return main, err
	}
	var windows []model.Stream
	for _, s := range streams {
		if isWindow(s) {
			windows = append(windows, s)
		}
	}
	if len(windows) == 0 {
		return main, nil
	}
	last := model.Stream{}
	for _, w := range windows {
		if !w.Done {
			return main, fmt.Errorf("backfill window %s is not done", w.Name)
		}
		if w.AfterID > last.AfterID {
			last = w
		}
		if w.RangeEnd.After(main.RangeStart) {
			main.RangeStart = w.RangeEnd.Add(-time.Minute) // if no window saw an event
		}
	}
	if last.AfterID == "" {
		return main, nil
	}
	main.AfterID, main.AfterTime = last.AfterID, last.AfterTime
	if err := p.write(ctx, model.Page{Stream: main}); err != nil {
		return main, fmt.Errorf("hand the backfill over to the main cursor: %w", err)
	}
	p.cfg.Logger.Info("backfill windows done; the main cursor takes over", "cursor", main.AfterID)
	return main, nil
}

// planFilterChange compares the configured filter with the one the main
// stream followed. Types added to it are backfilled from Since up to the
// cursor by a new bounded stream, so that they are not silently skipped
// for the period already passed; both changes are stored before any page
// is fetched. It returns the main stream as it will be followed.
func (p *Poller) planFilterChange(ctx context.Context, streams []model.Stream, all *[]model.Stream) (model.Stream, error) {
	main := model.Stream{Name: p.cfg.Stream, EventTypes: p.cfg.Events, RangeStart: p.cfg.Since}
	i := slices.IndexFunc(streams, func(s model.Stream) bool { return s.Name == p.cfg.Stream })
	if i < 0 {
		return main, nil
	}
	stored := streams[i]
	main.AfterID, main.AfterTime = stored.AfterID, stored.AfterTime
	if len(without(p.cfg.Events, stored.EventTypes)) > 0 {
		kept, err := p.checkFilter(ctx, p.cfg.Events)
		if err != nil {
			return main, err
		}
		p.cfg.Events, main.EventTypes = kept, kept
	}
	added := without(p.cfg.Events, stored.EventTypes)
	removed := without(stored.EventTypes, p.cfg.Events)
	if len(removed) > 0 {
		p.cfg.Logger.Warn("event types removed from the filter are no longer fetched", "removed", abbreviate(removed))
	}
	// What the old filter already covers, or will: up to the cursor, or,
	// before the first hand-over, up to the end of the windows planned
	// with the old filter.
	end := stored.AfterTime
	if stored.AfterID == "" {
		end = time.Time{}
		for _, s := range streams {
			if isWindow(s) && s.RangeEnd.After(end) {
				end = s.RangeEnd
			}
		}
	} else if end.IsZero() {
		end = p.cfg.Now()
	}
	if len(added) == 0 || end.IsZero() {
		if len(removed) > 0 {
			return main, p.write(ctx, model.Page{Stream: main, Prev: stored.AfterID})
		}
		return main, nil
	}
	backfill := model.Stream{
		Name:       backfillName(stored.AfterID, added),
		EventTypes: added,
		RangeStart: p.cfg.Since,
		RangeEnd:   end.Add(time.Millisecond), // inclusive of the cursor's own millisecond
	}
	p.cfg.Logger.Warn("event types added to the filter; backfilling them for the period already synced",
		"added", abbreviate(added), "from", backfill.RangeStart, "to", backfill.RangeEnd, "stream", backfill.Name)
	if !slices.ContainsFunc(streams, func(s model.Stream) bool { return s.Name == backfill.Name }) {
		if err := p.write(ctx, model.Page{Stream: backfill}); err != nil {
			return main, fmt.Errorf("start backfill of added types: %w", err)
		}
		*all = append(*all, backfill)
	}
	if err := p.write(ctx, model.Page{Stream: main, Prev: stored.AfterID}); err != nil {
		return main, fmt.Errorf("store the new filter: %w", err)
	}
	return main, nil
}

// backfillName is the same for the same cursor and types, so that a crash
// between storing the backfill and the new filter does not start a second
// backfill.
func backfillName(after string, types []string) string {
	h := sha256.Sum256([]byte(after + "|" + strings.Join(types, ",")))
	return "backfill-" + hex.EncodeToString(h[:6])
}

// abbreviate lists a few names and counts the rest: a filter can hold a
// hundred types.
func abbreviate(types []string) string {
	if len(types) <= 5 {
		return strings.Join(types, ",")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(types[:5], ","), len(types)-5)
}

// without returns the elements of a that are not in b.
func without(a, b []string) []string {
	var out []string
	for _, x := range a {
		if !slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}

// drain pages one stream until the API has nothing newer (or, for a
// backfill, nothing before its end) and returns the stream's cursor. The
// next page is fetched while the current one is written: the cursor after
// a page is known before it is stored, so a round trip to the API and a
// transaction overlap.
func (p *Poller) drain(ctx context.Context, st model.Stream, res *tally) (string, error) {
	gaps := p.retentionGaps(&st)
	res.gaps(gaps)
	if st.Done { // its range is all behind the retention edge: nothing to read
		return st.AfterID, p.write(ctx, model.Page{Stream: st, Prev: st.AfterID, Gaps: gaps})
	}
	limit := p.cfg.PageSize
	from := st.AfterTime
	if st.AfterID == "" {
		from = st.RangeStart
	}
	params := func() ListParams {
		lp := ListParams{Events: st.EventTypes, Limit: limit, After: st.AfterID, RangeEnd: st.RangeEnd}
		if st.AfterID == "" {
			lp.RangeStart = st.RangeStart
		}
		return lp
	}
	fctx, cancelFetch := context.WithCancel(ctx)
	defer cancelFetch()
	var prefetched <-chan fetched
	for {
		var f fetched
		if prefetched != nil {
			f = <-prefetched
			prefetched = nil
		} else {
			f = p.fetch(fctx, params())
		}
		resp, err := f.resp, f.err
		var se *StatusError
		if errors.As(err, &se) && se.InvalidEvents() {
			if err := p.dropRejected(ctx, &st, se); err != nil {
				return st.AfterID, err
			}
			if st.Done { // a backfill left with no type the API takes
				return st.AfterID, p.write(ctx, model.Page{Stream: st, Prev: st.AfterID})
			}
			continue
		}
		var tooLarge *TooLargeError
		if errors.As(err, &tooLarge) && limit > 1 {
			limit = max(1, limit/2)
			p.cfg.Logger.Warn("page too large; asking for fewer events", "limit", limit, "request_id", tooLarge.RequestID)
			continue
		}
		if err != nil {
			if ctx.Err() != nil {
				return st.AfterID, ctx.Err()
			}
			return st.AfterID, fmt.Errorf("fetch %s after %q: %w", st.Name, st.AfterID, err)
		}
		prev := st.AfterID
		next, newest, err := checkOrder(prev, resp.Events)
		caughtUp := len(resp.Events) == 0 || (len(resp.Events) < limit && resp.After == "")
		if err == nil && next == prev && !caughtUp {
			// Asking again would get the same page, for ever.
			err = &OrderError{After: prev, Detail: "the API says more follows, but the page does not move the cursor (it ignores after?)"}
		}
		if err != nil {
			return prev, fmt.Errorf("%w (request id %s)", err, resp.RequestID)
		}
		if next != prev {
			st.AfterID, st.AfterTime = next, newest
		}
		st.Done = st.Bounded() && caughtUp
		if !caughtUp && ctx.Err() == nil {
			prefetched = p.prefetch(fctx, params())
		}
		if len(resp.Events) > 0 || len(gaps) > 0 || st.Done {
			wstart := time.Now()
			if err := p.write(ctx, model.Page{Stream: st, Prev: prev, Events: resp.Events, Gaps: gaps}); err != nil {
				return prev, err
			}
			gaps = nil
			if len(resp.Events) > 0 {
				res.page(len(resp.Events), newest)
				p.cfg.Logger.Info("page written", "stream", st.Name, "events", len(resp.Events),
					"cursor", st.AfterID, "newest", newest, "attempts", resp.Attempts,
					"write_ms", time.Since(wstart).Milliseconds(), "request_id", resp.RequestID)
				if p.cfg.OnPage != nil {
					p.cfg.OnPage(PageInfo{Stream: st.Name, Events: len(resp.Events), Newest: newest, RangeFrom: from, RangeEnd: st.RangeEnd})
				}
			}
		}
		if ctx.Err() != nil {
			return st.AfterID, ctx.Err()
		}
		if caughtUp {
			if st.Done {
				p.cfg.Logger.Debug("bounded stream done", "stream", st.Name, "types", strings.Join(st.EventTypes, ","))
			}
			return st.AfterID, nil
		}
	}
}

type fetched struct {
	resp Response
	err  error
}

func (p *Poller) fetch(ctx context.Context, lp ListParams) fetched {
	resp, err := p.client.List(ctx, lp)
	return fetched{resp, err}
}

// prefetch fetches in the background; the channel holds the answer until
// it is read, so the goroutine never blocks.
func (p *Poller) prefetch(ctx context.Context, lp ListParams) <-chan fetched {
	out := make(chan fetched, 1)
	go func() { out <- p.fetch(ctx, lp) }()
	return out
}

// write stores a page; it outlives a cancelled ctx, so that a page half
// sent when a signal arrives is finished, not thrown away.
func (p *Poller) write(ctx context.Context, page model.Page) error {
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.cfg.WriteTimeout)
	defer cancel()
	return p.sink.WritePage(wctx, page)
}

// retentionGaps notes where a stream reaches behind the API's retention
// window: the events there may be gone, which must be said, not hidden. A
// stream with no cursor starts at the window's edge instead.
func (p *Poller) retentionGaps(st *model.Stream) []model.Gap {
	edge := p.cfg.Now().Add(-p.cfg.Retention)
	var g model.Gap
	switch {
	case st.AfterID == "" && !st.RangeStart.IsZero() && st.RangeStart.Before(edge.Add(time.Minute)):
		// Start a minute inside the window (clocks differ, requests take
		// time). A start within the hour before the edge, such as the
		// default --since of 30 days, is no gap worth reporting: those
		// events are being dropped as we speak.
		from := st.RangeStart
		st.RangeStart = edge.Add(time.Minute)
		g = model.Gap{From: from, To: edge, Reason: "the start (--since) is older than the API's retention window"}
		if st.Bounded() && !st.RangeStart.Before(st.RangeEnd) {
			// A backfill resumed after its whole range left the window.
			st.Done = true
			g = model.Gap{From: from, To: st.RangeEnd, Reason: "a backfill range left the API's retention window before it was read"}
		} else if !from.Before(edge.Add(-time.Hour)) {
			return nil
		}
	case st.AfterID != "" && !st.AfterTime.IsZero() && st.AfterTime.Before(edge):
		g = model.Gap{From: st.AfterTime, To: edge, Reason: "the cursor is older than the API's retention window"}
		if st.Bounded() && !st.RangeEnd.After(edge) {
			st.Done = true
			g.To = st.RangeEnd
		}
	default:
		return nil
	}
	if !g.To.After(g.From) {
		return nil
	}
	p.cfg.Logger.Error("events may be lost: part of the period to sync is older than the API keeps events",
		"stream", st.Name, "gap_from", g.From, "gap_to", g.To, "retention", p.cfg.Retention.String())
	return []model.Gap{g}
}

// checkOrder verifies that ids and times do not go backwards within the
// page, and returns the next cursor: the last id in the page, or the
// current cursor if the page only repeats what is behind it.
func checkOrder(cursor string, events []model.Event) (next string, newest time.Time, err error) {
	next = cursor
	var prevID string
	var prevTime time.Time
	for i, ev := range events {
		if ev.ID != "" {
			if prevID != "" && ev.ID < prevID {
				return "", time.Time{}, &OrderError{After: cursor, Detail: fmt.Sprintf("event %d id %q comes after %q", i, ev.ID, prevID)}
			}
			prevID = ev.ID
			if ev.ID > next {
				next = ev.ID
			}
		}
		if !ev.CreatedAt.IsZero() {
			if ev.CreatedAt.Before(prevTime) {
				return "", time.Time{}, &OrderError{After: cursor, Detail: fmt.Sprintf("event %d (%s) created_at %s is before %s", i, ev.ID, ev.CreatedAt.Format(time.RFC3339Nano), prevTime.Format(time.RFC3339Nano))}
			}
			prevTime = ev.CreatedAt
			newest = ev.CreatedAt
		}
	}
	return next, newest, nil
}

// dropRejected handles a 400 invalid_events_request: it finds which names
// the API rejects (the answer does not say), and either drops them, when
// the filter is built in, or fails naming them.
func (p *Poller) dropRejected(ctx context.Context, st *model.Stream, cause *StatusError) error {
	rejected, err := p.rejectedTypes(ctx, st.EventTypes)
	if err != nil {
		return fmt.Errorf("find which event types the API rejects: %w (after: %v)", err, cause)
	}
	if len(rejected) == 0 {
		return fmt.Errorf("the API rejected the type filter but accepts each of its names alone: %w", cause)
	}
	kept := without(st.EventTypes, rejected)
	switch {
	case st.Bounded():
		// A backfill follows a filter that was once accepted, or chosen by
		// the binary: drop what the API no longer takes and go on.
		if len(kept) == 0 {
			st.Done = true
		}
	case !p.cfg.BuiltinEvents:
		return fmt.Errorf("%w: %s; remove them from --events / SYNCER_EVENTS (%v)",
			ErrRejectedTypes, strings.Join(rejected, ", "), cause)
	case len(kept) == 0:
		return fmt.Errorf("%w: every type of the built-in filter: %s (%v)", ErrRejectedTypes, strings.Join(rejected, ", "), cause)
	}
	p.cfg.Logger.Warn("the API rejects event types; syncing without them",
		"stream", st.Name, "rejected", strings.Join(rejected, ","), "request_id", cause.RequestID)
	st.EventTypes = kept
	if st.Name == p.cfg.Stream {
		p.cfg.Events = kept
	}
	return nil
}

// checkFilter asks the API once whether it accepts types, before a
// changed filter is stored: a typo must fail the run that made it, not
// every run after it. Rejected names are dropped from a built-in filter
// and fail a user's.
func (p *Poller) checkFilter(ctx context.Context, types []string) ([]string, error) {
	_, err := p.client.List(ctx, ListParams{Events: types, Limit: 1, RangeStart: p.cfg.Now().Add(-time.Hour)})
	var se *StatusError
	if !errors.As(err, &se) || !se.InvalidEvents() {
		if err != nil {
			return types, fmt.Errorf("check the type filter: %w", err)
		}
		return types, nil
	}
	st := model.Stream{Name: p.cfg.Stream, EventTypes: types}
	if err := p.dropRejected(ctx, &st, se); err != nil {
		return types, err
	}
	return st.EventTypes, nil
}

// rejectedTypes bisects the filter with one-event requests until each
// rejected name stands alone: about 2·r·log2(n) requests for r bad names
// among n.
func (p *Poller) rejectedTypes(ctx context.Context, types []string) ([]string, error) {
	_, err := p.client.List(ctx, ListParams{Events: types, Limit: 1, RangeStart: p.cfg.Now().Add(-time.Hour)})
	var se *StatusError
	switch {
	case err == nil:
		return nil, nil
	case !errors.As(err, &se) || !se.InvalidEvents():
		return nil, err
	case len(types) == 1:
		return types, nil
	}
	half := len(types) / 2
	left, err := p.rejectedTypes(ctx, types[:half])
	if err != nil {
		return nil, err
	}
	right, err := p.rejectedTypes(ctx, types[half:])
	if err != nil {
		return nil, err
	}
	return append(left, right...), nil
}

// Run syncs, then again every interval, or at once when wake receives,
// until ctx is cancelled; it then returns nil. Errors that another try may
// fix (the database or the API down) are retried with backoff, sooner than
// the interval; answers that no retry fixes (a bad key, a rejected type
// filter) end the loop with the error.
func (p *Poller) Run(ctx context.Context, interval time.Duration, wake <-chan struct{}) error {
	failures := 0
	followUps := 0 // quick re-polls left after a wake
	for {
		res, err := p.Sync(ctx)
		wait := interval
		if followUps > 0 {
			// The API holds a new event back from reads for a few
			// seconds: a webhook may announce it before a poll can
			// see it. Look again soon, a few times.
			followUps--
			wait = min(interval, 2*time.Second)
		}
		switch {
		case ctx.Err() != nil:
			if err != nil && !errors.Is(err, context.Canceled) {
				p.cfg.Logger.Error("sync stopped by signal with an error", "error", err)
			}
			return nil
		case errors.Is(err, ErrRejectedTypes), isPermanent(err):
			return err
		case err != nil:
			failures++
			wait = min(interval, time.Second<<min(failures-1, 10))
			p.cfg.Logger.Error("sync failed; will retry", "error", err, "retry_in", wait.String(), "failures", failures)
		default:
			failures = 0
			if res.Pages > 0 {
				p.cfg.Logger.Info("caught up", "pages", res.Pages, "events", res.Events, "cursor", res.Cursor, "took", res.Duration.Round(time.Millisecond).String())
			}
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-wake:
			followUps = 3
			// However many deliveries (or replays of one) arrive, poll at
			// most once a second for them.
			if sleep(ctx, time.Second) != nil {
				t.Stop()
				return nil
			}
		case <-t.C:
		}
		t.Stop()
	}
}

// isPermanent reports an API answer that retrying cannot change.
func isPermanent(err error) bool {
	var se *StatusError
	return errors.As(err, &se) && !se.Retryable()
}
