package fakeapi

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/syncer-audit/syncer/internal/model"
)

// The benchmarks share one stream of a million events, built once.
var million struct {
	once sync.Once
	s    *Server
	evs  []Event
	org  string
}

func millionServer(b *testing.B) (*Server, []Event, string) {
	b.Helper()
	million.once.Do(func() {
		million.evs = NewGenerator(GenConfig{Seed: 1, Step: 10 * time.Millisecond}).Take(1_000_000)
		million.s = New(Config{APIKey: testKey})
		million.s.Append(million.evs...)
		for _, ev := range million.evs {
			if ev.Type == model.VaultBYOKKeyDeleted {
				million.org = ev.org
				break
			}
		}
	})
	return million.s, million.evs, million.org
}

// BenchmarkPage serves pages of 100 from cursors spread over a million
// events, through the handler (no network).
func BenchmarkPage(b *testing.B) {
	s, evs, org := millionServer(b)
	mid := url.QueryEscape(evs[len(evs)/2].CreatedAt.Format(time.RFC3339Nano))
	cases := []struct{ name, query string }{
		{"vault types", eventsQuery(model.VaultTypes()...)},
		{"every known type", allKnownQuery()},
		{"one rare type", "events=" + model.VaultBYOKKeyDeleted},
		{"vault types of one organization", eventsQuery(model.VaultTypes()...) + "&organization_id=" + org},
		{"vault types from a time", eventsQuery(model.VaultTypes()...) + "&range_start=" + mid},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			var served, bytes int
			i := 0
			for b.Loop() {
				after := evs[(i*7919)%len(evs)].ID
				i++
				req := httptest.NewRequest(http.MethodGet, "/events?"+c.query+"&limit=100&after="+after, nil)
				req.Header.Set("Authorization", "Bearer "+testKey)
				rec := httptest.NewRecorder()
				s.ServeHTTP(rec, req)
				if rec.Code != http.StatusOK {
					b.Fatalf("status %d: %s", rec.Code, rec.Body)
				}
				bytes += rec.Body.Len()
				served++
			}
			b.ReportMetric(float64(bytes)/float64(served), "B/page")
		})
	}
}

// BenchmarkPageHTTP is what a client sees: real HTTP over loopback, with
// requests in parallel.
func BenchmarkPageHTTP(b *testing.B) {
	s, evs, _ := millionServer(b)
	srv := httptest.NewServer(s)
	defer srv.Close()
	query := eventsQuery(model.VaultTypes()...) + "&limit=100"
	var next sync.Mutex
	i := 0
	b.RunParallel(func(pb *testing.PB) {
		client := srv.Client()
		for pb.Next() {
			next.Lock()
			after := evs[(i*7919)%len(evs)].ID
			i++
			next.Unlock()
			req, _ := http.NewRequest(http.MethodGet, srv.URL+"/events?"+query+"&after="+after, nil)
			req.Header.Set("Authorization", "Bearer "+testKey)
			resp, err := client.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Fatalf("status %d", resp.StatusCode)
			}
		}
	})
}

func BenchmarkGenerate(b *testing.B) {
	g := NewGenerator(GenConfig{Seed: 1})
	for b.Loop() {
		g.Next()
	}
}

// BenchmarkAppendMillion appends a million generated events to a fresh
// Server and reports the heap the stream costs.
func BenchmarkAppendMillion(b *testing.B) {
	evs := NewGenerator(GenConfig{Seed: 1}).Take(1_000_000)
	var jsonBytes int
	for _, ev := range evs {
		jsonBytes += len(ev.JSON)
	}
	var heap uint64
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		s := New(Config{APIKey: testKey})
		s.Append(evs...)
		runtime.GC()
		runtime.ReadMemStats(&after)
		heap = after.HeapAlloc - before.HeapAlloc
		runtime.KeepAlive(s)
	}
	b.ReportMetric(float64(heap)/1e6, "MB-index")
	b.ReportMetric(float64(jsonBytes)/1e6, "MB-json")
}
