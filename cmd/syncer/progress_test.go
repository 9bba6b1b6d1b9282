package main

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/syncer-audit/syncer/internal/poller"
)

func TestFractionDoneAcrossWindows(t *testing.T) {
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	streams := map[string]poller.PageInfo{
		// two windows of 10 days each: one half done, one done
		"window-a": {RangeFrom: now.Add(-20 * day), RangeEnd: now.Add(-10 * day), Newest: now.Add(-15 * day)},
		"window-b": {RangeFrom: now.Add(-10 * day), RangeEnd: now, Newest: now},
	}
	done, left := fractionDone(streams, now, 30*time.Second)
	if done != 0.75 || left != 10*time.Second {
		t.Errorf("fractionDone = %v, %v; want 0.75 and 10s left at the pace so far", done, left)
	}
	if done, left := fractionDone(map[string]poller.PageInfo{"events": {Newest: now}}, now, time.Second); done != 0 || left != 0 {
		t.Errorf("a stream without a start: %v, %v; want no estimate", done, left)
	}
}

func TestProgressLogsPeriodicallyWhenNotOnATerminal(t *testing.T) {
	var logs bytes.Buffer
	p := newProgress(&bytes.Buffer{}, slog.New(slog.NewTextHandler(&logs, nil)))
	clock := p.start
	p.now = func() time.Time { return clock }
	from := clock.Add(-10 * 24 * time.Hour)
	for i := range 30 { // a page a second for 30 s
		clock = clock.Add(time.Second)
		p.page(poller.PageInfo{Stream: "events", Events: 100, RangeFrom: from, Newest: from.Add(time.Duration(i+1) * 8 * time.Hour)})
	}
	if n := strings.Count(logs.String(), "msg=progress"); n != 3 {
		t.Errorf("%d progress lines over 30 s; want one every 10 s:\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), "events=3000") || !strings.Contains(logs.String(), "events_per_s=100") {
		t.Errorf("last line lacks the totals:\n%s", logs.String())
	}
}
