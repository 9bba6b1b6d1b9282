package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/syncer-audit/syncer/internal/model"
)

// naiveEvent and naivePage are what a hand-written client decodes a page
// into: the envelope's fields, data and context kept as raw JSON.
type naiveEvent struct {
	ID        string          `json:"id"`
	Event     string          `json:"event"`
	CreatedAt time.Time       `json:"created_at"`
	Data      json.RawMessage `json:"data"`
	Context   json.RawMessage `json:"context"`
}

type naivePage struct {
	Data         []naiveEvent `json:"data"`
	ListMetadata struct {
		After *string `json:"after"`
	} `json:"list_metadata"`
}

// runNaive is the loop a user writes by hand around an SDK: fetch a page,
// insert its events one autocommitted INSERT at a time, repeat until the
// API is drained or limit events are stored. It returns how many events it
// stored and how long that took, fetches included.
func runNaive(ctx context.Context, baseURL, apiKey, dbURL string, since time.Time, limit int) (int, time.Duration, error) {
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return 0, 0, fmt.Errorf("naive: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	client := &http.Client{Timeout: 30 * time.Second}

	q := url.Values{"limit": {"100"}, "order": {"asc"}, "range_start": {since.UTC().Format(time.RFC3339)}}
	q["events"] = model.KnownTypes()
	stored := 0
	start := time.Now()
	for page := 0; page <= limit/100+1 && stored < limit; page++ {
		p, err := fetchNaive(ctx, client, baseURL+"/events?"+q.Encode(), apiKey)
		if err != nil {
			return stored, 0, err
		}
		for _, ev := range p.Data {
			if stored == limit {
				break
			}
			_, err := conn.Exec(ctx, `INSERT INTO workos_events (id, event_type, created_at, data, context)
				VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING`,
				ev.ID, ev.Event, ev.CreatedAt, jsonArg(ev.Data), jsonArg(ev.Context))
			if err != nil {
				return stored, 0, fmt.Errorf("naive: insert %s: %w", ev.ID, err)
			}
			stored++
		}
		if len(p.Data) == 0 || p.ListMetadata.After == nil {
			break
		}
		q.Set("after", p.Data[len(p.Data)-1].ID)
	}
	return stored, time.Since(start), nil
}

func fetchNaive(ctx context.Context, client *http.Client, u, apiKey string) (naivePage, error) {
	var p naivePage
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return p, fmt.Errorf("naive: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+apiKey)
	resp, err := client.Do(req)
	if err != nil {
		return p, fmt.Errorf("naive: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
		return p, fmt.Errorf("naive: GET /events: %s: %s", resp.Status, body)
	}
	if err := json.NewDecoder(resp.Body).Decode(&p); err != nil {
		return p, fmt.Errorf("naive: decode page: %w", err)
	}
	return p, nil
}
