package main

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/syncer-audit/syncer/internal/fakeapi"
	"github.com/syncer-audit/syncer/internal/model"
)

// projectChunk is how many events model.Project sees at a time, as the
// syncer projects a page (or a few) at a time rather than the whole stream.
const projectChunk = 1000

// ceilingResult is the bare-COPY load of the same rows: the fastest the
// same tables can be filled on this machine, without HTTP, cursor or
// per-page transactions.
type ceilingResult struct {
	Decode time.Duration // model.DecodeEvent and model.Project over the stream
	Copy   time.Duration // the four COPYs and their commit
}

// loadCeiling decodes and projects evs as the syncer does, then loads the
// rows with one COPY per table, in foreign-key order, in one transaction.
// The stream must be clean (the generator's is): the ceiling has no
// quarantine path, and would be wrong rather than slow without one.
func loadCeiling(ctx context.Context, url string, evs []fakeapi.Event) (ceilingResult, error) {
	var res ceilingResult
	start := time.Now()
	events := make([]model.Event, len(evs))
	var rows model.Rows
	actors := map[string]int{} // actor id -> index in rows.Actors
	for lo := 0; lo < len(evs); lo += projectChunk {
		hi := min(lo+projectChunk, len(evs))
		for i := lo; i < hi; i++ {
			ev, err := model.DecodeEvent(evs[i].JSON)
			if err != nil {
				return res, fmt.Errorf("ceiling: %w", err)
			}
			if ev.Problem != "" || ev.Sanitized {
				return res, fmt.Errorf("ceiling: event %s is not clean (%s): the ceiling loader has no quarantine", evs[i].ID, ev.Problem)
			}
			events[i] = ev
		}
		chunk := model.Project(events[lo:hi])
		if len(chunk.Quarantine) > 0 {
			return res, fmt.Errorf("ceiling: event %s does not project: %s", chunk.Quarantine[0].EventID, chunk.Quarantine[0].Reason)
		}
		rows.Vault = append(rows.Vault, chunk.Vault...)
		rows.Keys = append(rows.Keys, chunk.Keys...)
		rows.Actors = mergeActors(rows.Actors, actors, chunk.Actors)
	}
	res.Decode = time.Since(start)

	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return res, fmt.Errorf("ceiling: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	start = time.Now()
	err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error { return copyRows(ctx, tx, events, rows) })
	res.Copy = time.Since(start)
	if err != nil {
		return res, fmt.Errorf("ceiling: %w", err)
	}
	return res, nil
}

// mergeActors folds one chunk's actors into all, the way vault_actors'
// upsert does across pages: the earliest first sighting, the latest last
// one, and the name and source of the latest event.
func mergeActors(all []model.ActorSeen, index map[string]int, chunk []model.ActorSeen) []model.ActorSeen {
	for _, a := range chunk {
		i, seen := index[a.ID]
		if !seen {
			index[a.ID] = len(all)
			all = append(all, a)
			continue
		}
		m := &all[i]
		if a.FirstSeen.Before(m.FirstSeen) {
			m.FirstSeen = a.FirstSeen
		}
		if !a.LastSeen.Before(m.LastSeen) {
			m.LastSeen, m.Actor = a.LastSeen, a.Actor
		}
	}
	return all
}

func copyRows(ctx context.Context, tx pgx.Tx, events []model.Event, rows model.Rows) error {
	tables := []struct {
		name string
		cols []string
		n    int
		row  func(i int) ([]any, error)
	}{
		{"workos_events", []string{"id", "event_type", "created_at", "data", "context", "extra"}, len(events), func(i int) ([]any, error) {
			ev := events[i]
			return []any{ev.ID, ev.Type, ev.CreatedAt, jsonArg(ev.Data), jsonArg(ev.Context), jsonArg(ev.Extra)}, nil
		}},
		{"vault_actors", []string{"actor_id", "actor_source", "actor_name", "first_seen_at", "last_seen_at"}, len(rows.Actors), func(i int) ([]any, error) {
			a := rows.Actors[i]
			return []any{a.ID, textArg(a.Source), textArg(a.Name), a.FirstSeen, a.LastSeen}, nil
		}},
		{"vault_events", []string{"event_id", "event_type", "occurred_at", "actor_id", "actor_source", "actor_name",
			"kv_name", "key_id", "key_name", "key_context", "organization_id", "key_provider", "verified"}, len(rows.Vault), func(i int) ([]any, error) {
			r := rows.Vault[i]
			var verified any
			if r.Verified != nil {
				verified = *r.Verified
			}
			return []any{r.EventID, r.EventType, r.OccurredAt, textArg(r.Actor.ID), textArg(r.Source), textArg(r.Name),
				textArg(r.KVName), textArg(r.KeyID), textArg(r.KeyName), jsonArg(r.KeyContext),
				textArg(r.OrganizationID), textArg(r.KeyProvider), verified}, nil
		}},
		{"vault_event_keys", []string{"event_id", "key_id"}, len(rows.Keys), func(i int) ([]any, error) {
			return []any{rows.Keys[i].EventID, rows.Keys[i].KeyID}, nil
		}},
	}
	for _, t := range tables {
		n, err := tx.CopyFrom(ctx, pgx.Identifier{t.name}, t.cols, pgx.CopyFromSlice(t.n, t.row))
		if err != nil {
			return fmt.Errorf("copy %s: %w", t.name, err)
		}
		if int(n) != t.n {
			return fmt.Errorf("copy %s: %d rows copied, want %d", t.name, n, t.n)
		}
	}
	return nil
}

// jsonArg passes JSON text to a jsonb column, and absent JSON as NULL (a
// nil []byte inside an interface would be encoded as empty JSON).
func jsonArg(b []byte) any {
	if b == nil {
		return nil
	}
	return []byte(b)
}

// textArg stores the empty string as NULL, as the syncer does with nullif.
func textArg(s string) any {
	if s == "" {
		return nil
	}
	return s
}
