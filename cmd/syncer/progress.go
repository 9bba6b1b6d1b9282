package main

import (
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/syncer-audit/syncer/internal/poller"
)

// progress reports a long sync (a backfill): events per second, how far it
// has come in event time and an estimate of what is left. On a terminal
// it redraws one line; otherwise it logs a line every interval.
type progress struct {
	mu      sync.Mutex // pages come from several windows at once
	w       io.Writer  // a terminal, or nil for log lines
	logger  *slog.Logger
	every   time.Duration
	now     func() time.Time
	start   time.Time
	last    time.Time
	events  int
	drawn   bool
	streams map[string]poller.PageInfo // the latest page of each stream
}

func newProgress(stderr io.Writer, logger *slog.Logger) *progress {
	p := &progress{logger: logger, every: 10 * time.Second, now: time.Now, streams: map[string]poller.PageInfo{}}
	if isTerminal(stderr) {
		p.w, p.every = stderr, 200*time.Millisecond
	}
	p.start = p.now()
	p.last = p.start
	return p
}

// page is the poller's OnPage hook.
func (p *progress) page(info poller.PageInfo) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.events += info.Events
	p.streams[info.Stream] = info
	now := p.now()
	if now.Sub(p.last) < p.every {
		return
	}
	p.last = now
	elapsed := now.Sub(p.start)
	rate := float64(p.events) / max(elapsed.Seconds(), 0.001)
	done, left := fractionDone(p.streams, now, elapsed)
	if p.w != nil {
		line := fmt.Sprintf("\r%s  %d events  %.0f/s  event time %s", info.Stream, p.events, rate, info.Newest.UTC().Format("2006-01-02 15:04"))
		if done > 0 {
			line += fmt.Sprintf(" (%.0f%%)  ~%s left", done*100, left.Round(time.Second))
		}
		fmt.Fprintf(p.w, "%s\033[K", line)
		p.drawn = true
		return
	}
	p.logger.Info("progress", "stream", info.Stream, "events", p.events, "events_per_s", int(rate),
		"event_time", info.Newest, "done_pct", int(done*100), "eta", left.Round(time.Second).String())
}

// fractionDone is how much of the streams' periods (from each one's start
// to its end, or now) their newest events cover, and the time left at the
// pace so far. Windows drained at once each cover a part.
func fractionDone(streams map[string]poller.PageInfo, now time.Time, elapsed time.Duration) (float64, time.Duration) {
	var covered, total time.Duration
	for _, info := range streams {
		end := info.RangeEnd
		if end.IsZero() || end.After(now) {
			end = now
		}
		if info.RangeFrom.IsZero() || !end.After(info.RangeFrom) {
			continue
		}
		total += end.Sub(info.RangeFrom)
		reached := info.Newest
		if reached.After(end) {
			reached = end
		}
		if reached.After(info.RangeFrom) {
			covered += reached.Sub(info.RangeFrom)
		}
	}
	if total <= 0 || covered <= 0 {
		return 0, 0
	}
	done := float64(covered) / float64(total)
	return done, time.Duration(float64(elapsed) * (1 - done) / done)
}

// end finishes the terminal line.
func (p *progress) end() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.drawn {
		fmt.Fprintln(p.w)
	}
}
