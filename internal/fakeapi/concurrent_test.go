package fakeapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/syncer-audit/syncer/internal/model"
)

// TestConcurrentAppendWhilePaging has readers follow the cursor while a
// writer appends: each reader must see the whole stream once, in order.
// Run it with -race.
func TestConcurrentAppendWhilePaging(t *testing.T) {
	t.Parallel()
	evs := NewGenerator(GenConfig{Seed: 15, Step: 5 * time.Millisecond}).Take(6000)
	s := New(Config{APIKey: testKey})
	var done atomic.Bool

	query := func(types []string) string {
		return url.Values{"events": types, "limit": {"100"}}.Encode()
	}
	// page runs one request without testing.T, so goroutines may use it.
	page := func(q, after string) ([]string, error) {
		req := httptest.NewRequest(http.MethodGet, "/events?"+q+"&after="+url.QueryEscape(after), nil)
		req.Header.Set("Authorization", "Bearer "+testKey)
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			return nil, fmt.Errorf("status %d: %s", rec.Code, rec.Body)
		}
		var a struct {
			Data []struct {
				ID string `json:"id"`
			} `json:"data"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &a); err != nil {
			return nil, err
		}
		out := make([]string, len(a.Data))
		for i, d := range a.Data {
			out[i] = d.ID
		}
		return out, nil
	}
	follow := func(types []string, want int) ([]string, error) {
		var got []string
		after := ""
		for len(got) < want {
			finished := done.Load() // read before the request: then an empty page means the end
			ids, err := page(query(types), after)
			if err != nil {
				return got, err
			}
			if len(ids) == 0 && finished {
				return got, fmt.Errorf("caught up after %d of %d events with the writer finished", len(got), want)
			}
			if len(ids) > 0 {
				got = append(got, ids...)
				after = ids[len(ids)-1]
			}
		}
		return got, nil
	}

	readers := []struct {
		name  string
		types []string
	}{
		{"all types", model.KnownTypes()},
		{"vault types", model.VaultTypes()},
		{"one type", []string{model.VaultDataRead}},
		{"all types again", model.KnownTypes()},
	}
	var wg sync.WaitGroup
	results := make([][]string, len(readers))
	errs := make([]error, len(readers))
	for i, r := range readers {
		want := len(idsOf(evs, r.types...))
		wg.Go(func() { results[i], errs[i] = follow(r.types, want) })
	}
	wg.Go(func() {
		defer done.Store(true)
		for batch := range slices.Chunk(evs, 37) {
			s.Append(batch...)
		}
	})
	wg.Wait()
	for i, r := range readers {
		if errs[i] != nil {
			t.Errorf("%s: %v", r.name, errs[i])
			continue
		}
		if want := idsOf(evs, r.types...); !slices.Equal(results[i], want) {
			t.Errorf("%s: read %d events, want %d once each in order", r.name, len(results[i]), len(want))
		}
	}
}

// TestGenerateConcurrently grows the stream from several goroutines and the
// control route at once, as the fakeapi command does on a timer: nothing
// may fail, and the result is the generator's stream in order.
func TestGenerateConcurrently(t *testing.T) {
	t.Parallel()
	s := New(Config{APIKey: testKey, Generator: NewGenerator(GenConfig{Seed: 16})})
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			for range 50 {
				s.Generate(3)
			}
		})
	}
	errs := make(chan error, 1)
	wg.Go(func() {
		for range 50 {
			req := httptest.NewRequest(http.MethodPost, "/_fake/events?n=4", nil)
			rec := httptest.NewRecorder()
			s.ServeHTTP(rec, req)
			if rec.Code != http.StatusOK {
				errs <- fmt.Errorf("POST /_fake/events?n=4: %d %s", rec.Code, rec.Body)
				return
			}
		}
	})
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
	want := idsOf(NewGenerator(GenConfig{Seed: 16}).Take(3*50*3 + 50*4))
	if got := pageAll(t, s, allKnownQuery()+"&limit=100"); !slices.Equal(got, want) {
		t.Fatalf("served %d events, want the generator's %d in order", len(got), len(want))
	}

	defer func() {
		if recover() == nil {
			t.Fatal("Generate without a Generator did not panic")
		}
	}()
	New(Config{APIKey: testKey}).Generate(1)
}
