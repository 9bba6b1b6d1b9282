package poller

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/syncer-audit/syncer/internal/model"
)

// Sink stores pages. The store implements it; WritePage must write the
// events and move the cursor from page.Prev to page.Next atomically.
type Sink interface {
	Cursor(ctx context.Context, stream string) (string, error)
	WritePage(ctx context.Context, page model.Page) error
}

// Config configures a Poller.
type Config struct {
	// Stream names the cursor. Default "events".
	Stream string
	// Events is the type filter sent to the API. Required.
	Events []string
	// DefaultEvents says Events is the built-in default rather than the
	// user's choice: names the API rejects are then dropped with a
	// warning instead of stopping the sync.
	DefaultEvents bool
	// Since is where the first run starts (range_start) when the stream
	// has no cursor yet. Required.
	Since time.Time
	// PageSize is the limit sent. Default and maximum 100.
	PageSize int
	// WriteTimeout bounds the write of one page. A page being written
	// when the context is cancelled is still committed within it.
	// Default 2m.
	WriteTimeout time.Duration
	Logger       *slog.Logger
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
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 2 * time.Minute
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
	Cursor   string // the cursor after the sync
	Newest   time.Time
	Duration time.Duration
}

// ErrRejectedTypes is wrapped by the error Sync returns when the API
// rejects names in a type filter the user chose.
var ErrRejectedTypes = errors.New("the API rejects event types in the filter")

// OrderError is a page whose events go backwards: storing it and moving
// the cursor past it could leave a hole, so the sync stops with the cursor
// untouched.
type OrderError struct {
	After  string
	Detail string
}

func (e *OrderError) Error() string {
	return fmt.Sprintf("page after %q is out of order: %s; cursor left at %q", e.After, e.Detail, e.After)
}

// Sync pages from the stored cursor until the API has nothing newer,
// writing each page with its cursor move in one transaction. Cancelling ctx
// stops it between pages; a page being written is committed first, and
// Sync then returns the context's error.
func (p *Poller) Sync(ctx context.Context) (Result, error) {
	start := time.Now()
	res := Result{}
	cursor, err := p.sink.Cursor(ctx, p.cfg.Stream)
	if err != nil {
		return res, err
	}
	res.Cursor = cursor
	for {
		params := ListParams{Events: p.cfg.Events, Limit: p.cfg.PageSize, After: cursor}
		if cursor == "" {
			params.RangeStart = p.cfg.Since
		}
		resp, err := p.client.List(ctx, params)
		var se *StatusError
		if errors.As(err, &se) && se.InvalidEvents() {
			if err := p.dropRejected(ctx, se); err != nil {
				return res, err
			}
			continue
		}
		if err != nil {
			return res, fmt.Errorf("fetch events after %q: %w", cursor, err)
		}
		if len(resp.Events) == 0 {
			break
		}
		next, newest, err := checkOrder(cursor, resp.Events)
		if err != nil {
			return res, fmt.Errorf("%w (request id %s)", err, resp.RequestID)
		}
		page := model.Page{Stream: p.cfg.Stream, Prev: cursor, Next: next, EventTypes: p.cfg.Events, Events: resp.Events}
		// The write outlives a cancelled ctx: a page half-sent when a
		// signal arrives is finished, not thrown away.
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.cfg.WriteTimeout)
		wstart := time.Now()
		err = p.sink.WritePage(wctx, page)
		cancel()
		if err != nil {
			return res, err
		}
		res.Pages++
		res.Events += len(resp.Events)
		res.Cursor = next
		if newest.After(res.Newest) {
			res.Newest = newest
		}
		p.cfg.Logger.Info("page written", "stream", p.cfg.Stream, "events", len(resp.Events),
			"cursor", next, "newest", newest, "attempts", resp.Attempts,
			"write_ms", time.Since(wstart).Milliseconds(), "request_id", resp.RequestID)
		cursor = next
		if ctx.Err() != nil {
			return res, ctx.Err()
		}
		if len(resp.Events) < p.cfg.PageSize && resp.After == "" {
			break
		}
	}
	res.Duration = time.Since(start)
	return res, nil
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
// the filter is the built-in default, or fails naming them.
func (p *Poller) dropRejected(ctx context.Context, cause *StatusError) error {
	rejected, err := p.rejectedTypes(ctx, p.cfg.Events)
	if err != nil {
		return fmt.Errorf("find which event types the API rejects: %w (after: %v)", err, cause)
	}
	if len(rejected) == 0 {
		return fmt.Errorf("the API rejected the type filter but accepts each of its names alone: %w", cause)
	}
	if !p.cfg.DefaultEvents {
		return fmt.Errorf("%w: %s; remove them from --events / SYNCER_EVENTS (%v)",
			ErrRejectedTypes, strings.Join(rejected, ", "), cause)
	}
	kept := slices.DeleteFunc(slices.Clone(p.cfg.Events), func(e string) bool { return slices.Contains(rejected, e) })
	if len(kept) == 0 {
		return fmt.Errorf("%w: every type of the default filter: %s (%v)", ErrRejectedTypes, strings.Join(rejected, ", "), cause)
	}
	p.cfg.Logger.Warn("the API rejects event types of the default filter; syncing without them",
		"rejected", strings.Join(rejected, ","), "request_id", cause.RequestID)
	p.cfg.Events = kept
	return nil
}

// rejectedTypes bisects the filter with one-event requests until each
// rejected name stands alone: about 2·r·log2(n) requests for r bad names
// among n.
func (p *Poller) rejectedTypes(ctx context.Context, types []string) ([]string, error) {
	_, err := p.client.List(ctx, ListParams{Events: types, Limit: 1, RangeStart: p.cfg.Since})
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
// fix are logged and retried at the next interval; answers that no retry
// fixes (a bad key, a rejected type filter) end the loop with the error.
func (p *Poller) Run(ctx context.Context, interval time.Duration, wake <-chan struct{}) error {
	for {
		res, err := p.Sync(ctx)
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, ErrRejectedTypes), isPermanent(err):
			return err
		case err != nil:
			p.cfg.Logger.Error("sync failed; will retry", "error", err, "retry_in", interval)
		case res.Pages > 0:
			p.cfg.Logger.Info("caught up", "pages", res.Pages, "events", res.Events, "cursor", res.Cursor, "took", res.Duration.Round(time.Millisecond))
		}
		t := time.NewTimer(interval)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-wake:
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
