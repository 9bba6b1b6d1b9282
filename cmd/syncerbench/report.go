package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
)

// The targets the syncer is held to.
const (
	targetOfCeiling  = 0.60  // events/s, syncer / ceiling
	targetOverNaive  = 10.0  // events/s, syncer / naive
	targetRSSMB      = 100.0 // peak RSS of the syncer, MB
	targetOfBound    = 0.90  // latency mode, of 100 events per round trip
	targetOfWorkers  = 0.80  // backfill mode, of workers x the sequential rate
	requestBudgetMin = 6000  // API requests per minute
)

// report is one run's figures: printed as a table and appended as one
// JSON line. Sizes are in MB of 10^6 bytes.
type report struct {
	Time      string           `json:"time"`
	Revision  string           `json:"git_revision,omitempty"`
	N         int              `json:"n"`
	Cores     int              `json:"cores"`
	LoadAvg   string           `json:"load_avg,omitempty"` // of the machine as the run began
	Postgres  string           `json:"postgres"`
	JSONBytes int64            `json:"json_bytes"`
	Syncer    *syncerFigures   `json:"syncer,omitempty"`
	Ceiling   *ceilingFigures  `json:"ceiling,omitempty"`
	Naive     *naiveFigures    `json:"naive,omitempty"`
	Latency   *latencyFigures  `json:"latency,omitempty"`
	Backfill  *backfillFigures `json:"backfill,omitempty"`
	Checks    []check          `json:"checks"`
	Notes     []string         `json:"notes,omitempty"`
}

type syncerFigures struct {
	Args        string  `json:"args"`
	WallS       float64 `json:"wall_s"`
	EventsPerS  float64 `json:"events_per_s"`
	JSONMBPerS  float64 `json:"json_mb_per_s"`
	CPUS        float64 `json:"cpu_s"`
	CPUSPer100k float64 `json:"cpu_s_per_100k_events"`
	PeakRSSMB   float64 `json:"peak_rss_mb"`
}

func newSyncerFigures(args []string, run childRun, n int, jsonBytes int64) *syncerFigures {
	wall := run.Wall.Seconds()
	return &syncerFigures{
		Args:        strings.Join(args, " "),
		WallS:       wall,
		EventsPerS:  float64(n) / wall,
		JSONMBPerS:  mb(jsonBytes) / wall,
		CPUS:        run.CPU.Seconds(),
		CPUSPer100k: run.CPU.Seconds() / float64(n) * 100_000,
		PeakRSSMB:   mb(run.PeakRSSKiB * 1024),
	}
}

type ceilingFigures struct {
	DecodeProjectS     float64 `json:"decode_project_s"`
	CopyS              float64 `json:"copy_s"`
	TotalS             float64 `json:"total_s"`
	CopyOnlyEventsPerS float64 `json:"copy_only_events_per_s"`
	EventsPerS         float64 `json:"events_per_s"` // decode+project+COPY: the ceiling
}

func newCeilingFigures(c ceilingResult, n int) *ceilingFigures {
	total := c.Decode + c.Copy
	return &ceilingFigures{
		DecodeProjectS:     c.Decode.Seconds(),
		CopyS:              c.Copy.Seconds(),
		TotalS:             total.Seconds(),
		CopyOnlyEventsPerS: float64(n) / c.Copy.Seconds(),
		EventsPerS:         float64(n) / total.Seconds(),
	}
}

type naiveFigures struct {
	N          int     `json:"n"`
	WallS      float64 `json:"wall_s"`
	EventsPerS float64 `json:"events_per_s"`
}

type latencyFigures struct {
	N               int     `json:"n"`
	Args            string  `json:"args"`
	WallS           float64 `json:"wall_s"`
	EventsPerS      float64 `json:"events_per_s"`
	BoundEventsPerS float64 `json:"bound_events_per_s"`
	Ratio           float64 `json:"ratio"`
}

type backfillFigures struct {
	N                int     `json:"n"`
	Workers          int     `json:"workers"`
	Args             string  `json:"args"`
	WallS            float64 `json:"wall_s"`
	EventsPerS       float64 `json:"events_per_s"`
	TargetEventsPerS float64 `json:"target_events_per_s"`
	Ratio            float64 `json:"ratio"`
	PeakRSSMB        float64 `json:"peak_rss_mb"`
	Requests         int     `json:"requests"`
	BusiestSecond    int     `json:"busiest_second_requests"`
	BusiestMinute    int     `json:"busiest_minute_requests"`
	AvgPerMinute     float64 `json:"avg_requests_per_minute"`
}

type check struct {
	Name   string `json:"name"`
	Value  string `json:"value"`
	Target string `json:"target"`
	Pass   bool   `json:"pass"`
}

func (r *report) checks() []check {
	var cs []check
	if s, c := r.Syncer, r.Ceiling; s != nil && c != nil {
		ratio := s.EventsPerS / c.EventsPerS
		cs = append(cs, check{"syncer / ceiling (events/s)", pct(ratio), fmt.Sprintf(">= %s", pct(targetOfCeiling)), ratio >= targetOfCeiling})
	}
	if s, nv := r.Syncer, r.Naive; s != nil && nv != nil {
		ratio := s.EventsPerS / nv.EventsPerS
		cs = append(cs, check{"syncer / naive (events/s)", fmt.Sprintf("%.1fx", ratio), fmt.Sprintf(">= %.0fx", targetOverNaive), ratio >= targetOverNaive})
	}
	if s := r.Syncer; s != nil {
		cs = append(cs, check{"syncer peak RSS", fmt.Sprintf("%.1f MB", s.PeakRSSMB), fmt.Sprintf("< %.0f MB", targetRSSMB), s.PeakRSSMB < targetRSSMB})
	}
	if l := r.Latency; l != nil {
		cs = append(cs, check{"latency mode / 1000 events/s bound", pct(l.Ratio), fmt.Sprintf(">= %s", pct(targetOfBound)), l.Ratio >= targetOfBound})
	}
	if b := r.Backfill; b != nil {
		cs = append(cs,
			check{fmt.Sprintf("backfill / %dx sequential", b.Workers), pct(b.Ratio), fmt.Sprintf(">= %s", pct(targetOfWorkers)), b.Ratio >= targetOfWorkers},
			check{"backfill requests, busiest 60 s", fmt.Sprint(b.BusiestMinute), fmt.Sprintf("<= %d", requestBudgetMin), b.BusiestMinute <= requestBudgetMin},
			check{"backfill requests/min, average rate", fmt.Sprintf("%.0f", b.AvgPerMinute), fmt.Sprintf("<= %d", requestBudgetMin), b.AvgPerMinute <= requestBudgetMin})
	}
	return cs
}

func (r *report) print(w io.Writer) {
	fmt.Fprintf(w, "\nsyncerbench  %s  rev %s  %d cores, load average %s at start\n", r.Time, r.Revision, r.Cores, r.LoadAvg)
	fmt.Fprintf(w, "postgres: throwaway cluster with durable default settings (devpg Fast=false): %s\n", r.Postgres)
	fmt.Fprintf(w, "stream: %d events, %.1f MB of JSON, spread over 25 days; fake API on 127.0.0.1 in this process\n\n", r.N, mb(r.JSONBytes))

	row := func(name string, n int, wall, rate float64, note string) {
		fmt.Fprintf(w, "%-30s %9d %9.2f %10.0f  %s\n", name, n, wall, rate, note)
	}
	fmt.Fprintf(w, "%-30s %9s %9s %10s  %s\n", "contender", "events", "wall s", "events/s", "")
	if s := r.Syncer; s != nil {
		row("syncer", r.N, s.WallS, s.EventsPerS, fmt.Sprintf("JSON %.1f MB/s, CPU %.2f s (%.2f s per 100k events), peak RSS %.1f MB",
			s.JSONMBPerS, s.CPUS, s.CPUSPer100k, s.PeakRSSMB))
	}
	if c := r.Ceiling; c != nil {
		row("ceiling: decode+project+COPY", r.N, c.TotalS, c.EventsPerS, fmt.Sprintf("decode+project %.2f s, COPY %.2f s", c.DecodeProjectS, c.CopyS))
		row("ceiling: COPY only", r.N, c.CopyS, c.CopyOnlyEventsPerS, "")
	}
	if nv := r.Naive; nv != nil {
		row("naive: INSERT per event", nv.N, nv.WallS, nv.EventsPerS, "")
	}
	if l := r.Latency; l != nil {
		row("latency mode, 100 ms/page", l.N, l.WallS, l.EventsPerS, fmt.Sprintf("bound %.0f events/s; %s", l.BoundEventsPerS, l.Args))
	}
	if b := r.Backfill; b != nil {
		row(fmt.Sprintf("backfill x%d, 100 ms/page", b.Workers), b.N, b.WallS, b.EventsPerS, fmt.Sprintf("target %.0f events/s; peak RSS %.1f MB; %s",
			b.TargetEventsPerS, b.PeakRSSMB, b.Args))
		fmt.Fprintf(w, "%-30s %d requests: busiest second %d, busiest 60 s %d, average %.0f/min\n", "", b.Requests, b.BusiestSecond, b.BusiestMinute, b.AvgPerMinute)
	}

	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "check\tvalue\ttarget\tresult")
	for _, c := range r.Checks {
		result := "FAIL"
		if c.Pass {
			result = "PASS"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", c.Name, c.Value, c.Target, result)
	}
	tw.Flush()

	notes := []string{
		"the ceiling is decode+project+COPY (the syncer must decode and project too); COPY only is for reference",
		"every database is migrated before its timed run; the syncer's wall time is its whole process, start to exit",
		"the naive baseline runs on fewer events: its cost is per event (one commit each), so its rate compares across sizes",
		"the syncer's CPU (rusage of the child) and peak RSS (its VmHWM, sampled every 10 ms) are its own, not PostgreSQL's nor the fake API's; all share the cores",
	}
	if nv := r.Naive; nv != nil {
		notes = append(notes, fmt.Sprintf("the naive loop spends %.3f ms per event, about one commit (WAL fsync) on this disk: a slower fsync makes it slower", nv.WallS/float64(nv.N)*1000))
	}
	fmt.Fprintln(w, "\nnotes:")
	for _, n := range append(notes, r.Notes...) {
		fmt.Fprintln(w, "  -", n)
	}
}

// appendTo appends the report as one JSON line to path.
func (r *report) appendTo(path string) error {
	line, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("write results: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("write results: %w", err)
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("write results: %w", err)
	}
	if _, err := f.Write(append(line, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("write results: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write results: %w", err)
	}
	return nil
}

func mb(bytes int64) float64 { return float64(bytes) / 1e6 }

func pct(f float64) string { return fmt.Sprintf("%.0f%%", f*100) }
