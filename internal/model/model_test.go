package model_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/syncer-audit/syncer/internal/model"
)

var update = flag.Bool("update", false, "rewrite the golden files from the current output")

// decoded is what a golden file holds for one envelope: the decoded event
// and what the projection makes of it.
type decoded struct {
	ID        string          `json:"id"`
	Type      string          `json:"type"`
	CreatedAt string          `json:"created_at"`
	Data      json.RawMessage `json:"data"`
	Context   json.RawMessage `json:"context"`
	Extra     json.RawMessage `json:"extra"`
	Sanitized bool            `json:"sanitized"`
	Problem   string          `json:"problem"`
	Rows      model.Rows      `json:"rows"`
}

// TestDecodeAndProject decodes every envelope under testdata/events and
// compares the event and its audit rows with the golden file beside it.
// Run with -update to rewrite the golden files, then read the diff.
func TestDecodeAndProject(t *testing.T) {
	inputs, err := filepath.Glob("testdata/events/*.json")
	if err != nil || len(inputs) == 0 {
		t.Fatalf("no inputs: %v", err)
	}
	for _, in := range inputs {
		name := strings.TrimSuffix(filepath.Base(in), ".json")
		t.Run(name, func(t *testing.T) {
			raw, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			raw = bytes.TrimRight(raw, "\n")
			ev, err := model.DecodeEvent(raw)
			if err != nil {
				t.Fatalf("DecodeEvent: %v", err)
			}
			got := decoded{ID: ev.ID, Type: ev.Type, Data: ev.Data, Context: ev.Context, Extra: ev.Extra,
				Sanitized: ev.Sanitized, Problem: ev.Problem, Rows: model.Project([]model.Event{ev})}
			if !ev.CreatedAt.IsZero() {
				got.CreatedAt = ev.CreatedAt.Format(time.RFC3339Nano)
			}
			for i := range got.Rows.Quarantine {
				got.Rows.Quarantine[i].Raw = nil // the input file itself
			}
			out, err := json.MarshalIndent(got, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			golden := strings.TrimSuffix(in, ".json") + ".golden"
			if *update {
				if err := os.WriteFile(golden, append(out, '\n'), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./internal/model -run TestDecodeAndProject -update)", err)
			}
			if string(bytes.TrimRight(want, "\n")) != string(out) {
				t.Errorf("%s differs from the golden file:\n got: %s\nwant: %s", name, out, want)
			}
		})
	}
}

// TestEveryVaultTypeHasAGoldenProjection keeps the golden corpus complete:
// a Vault type without a fixture would go untested.
func TestEveryVaultTypeHasAGoldenProjection(t *testing.T) {
	for _, typ := range model.VaultTypes() {
		raw, err := os.ReadFile(filepath.Join("testdata/events", typ+".json"))
		if err != nil {
			t.Errorf("no fixture for %s: %v", typ, err)
			continue
		}
		ev, err := model.DecodeEvent(raw)
		if err != nil {
			t.Fatal(err)
		}
		rows := model.Project([]model.Event{ev})
		if len(rows.Vault) != 1 || len(rows.Quarantine) != 0 {
			t.Errorf("%s: want one vault row and no quarantine, got %+v", typ, rows)
		}
	}
}

func TestParseTime(t *testing.T) {
	want := time.Date(2026, 3, 12, 17, 58, 1, 120_000_000, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Time
	}{
		{"2026-03-12T17:58:01.120Z", want},
		{"2026-03-12T17:58:01.12Z", want},
		{"2026-03-12T18:58:01.120+01:00", want},
		{"2026-03-12T17:58:01.120000000Z", want},
		{"2026-03-12 17:58:01.120", want},
		{"2026-03-12T17:58:01.120", want},
		{"2026-03-12 17:58:01.120+00", want},
		{"2026-03-12T17:58:01Z", want.Truncate(time.Second)},
		{"2026-03-12 17:58:01", want.Truncate(time.Second)},
		{"2026-03-12T17:58:01.123456789Z", time.Date(2026, 3, 12, 17, 58, 1, 123456789, time.UTC)},
	} {
		got, err := model.ParseTime(tc.in)
		if err != nil || !got.Equal(tc.want) || got.Location() != time.UTC {
			t.Errorf("ParseTime(%q) = %v, %v; want %v UTC", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "yesterday", "2026-03-12", "2026-13-12T00:00:00Z", "1678643881"} {
		if _, err := model.ParseTime(bad); err == nil {
			t.Errorf("ParseTime(%q) succeeded; want an error", bad)
		}
	}
}

func TestSanitize(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
		changed        bool
	}{
		{"clean", `{"a":"b"}`, `{"a":"b"}`, false},
		{"emoji pair is fine", `{"a":"\ud83d\ude00"}`, `{"a":"\ud83d\ude00"}`, false},
		{"escaped backslash before u0000", `{"a":"\\u0000"}`, `{"a":"\\u0000"}`, false},
		{"nul in value", `{"a":"x\u0000y"}`, `{"a":"x` + "\uFFFD" + `y"}`, true},
		{"nul in key", `{"k\u0000":1}`, `{"k` + "\uFFFD" + `":1}`, true},
		{"lone high surrogate", `{"a":"\ud800x"}`, `{"a":"` + "\uFFFD" + `x"}`, true},
		{"lone low surrogate", `["\udc00"]`, `["` + "\uFFFD" + `"]`, true},
		{"invalid utf-8", "{\"a\":\"\xff\"}", `{"a":"` + "\uFFFD" + `"}`, true},
		{"big numbers kept exactly", `{"n":12345678901234567890,"a":"\u0000"}`, `{"a":"` + "\uFFFD" + `","n":12345678901234567890}`, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, changed, err := model.Sanitize([]byte(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want || changed != tc.changed {
				t.Errorf("Sanitize(%q) = %q, %v; want %q, %v", tc.in, got, changed, tc.want, tc.changed)
			}
			if !utf8.Valid(got) {
				t.Errorf("result is not UTF-8")
			}
		})
	}
	if _, _, err := model.Sanitize([]byte("{\"a\":\"\xff")); err == nil {
		t.Error("Sanitize of truncated JSON succeeded; want an error")
	}
}

func TestDecodeList(t *testing.T) {
	body := `{"object":"list","data":[
		{"object":"event","id":"event_1","event":"user.created","created_at":"2026-01-01T00:00:00Z","data":{}},
		{"object":"event","event":"user.created","created_at":"2026-01-01T00:00:00Z","data":{}}
	],"list_metadata":{"before":null,"after":"event_1"}}`
	list, err := model.DecodeList([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Events) != 2 || list.After != "event_1" || list.Events[0].ID != "event_1" || list.Events[1].Problem != "id is missing" {
		t.Errorf("DecodeList = %+v", list)
	}
	for name, body := range map[string]string{
		"null after":    `{"data":[],"list_metadata":{"after":null}}`,
		"missing after": `{"data":[]}`,
	} {
		list, err := model.DecodeList([]byte(body))
		if err != nil || list.After != "" || len(list.Events) != 0 {
			t.Errorf("%s: DecodeList = %+v, %v; want an empty list with no after", name, list, err)
		}
	}
	for name, body := range map[string]string{
		"truncated":    `{"data":[{"id":"event_1"`,
		"no data":      `{"object":"list"}`,
		"data not arr": `{"data":{}}`,
		"html":         `<html>502</html>`,
	} {
		if _, err := model.DecodeList([]byte(body)); err == nil {
			t.Errorf("%s: DecodeList succeeded; want an error", name)
		}
	}
}

func TestProjectActorsTakeTheLatestName(t *testing.T) {
	mk := func(id, at, name, source string) model.Event {
		ev, err := model.DecodeEvent([]byte(`{"id":"` + id + `","event":"vault.names.listed","created_at":"` + at +
			`","data":{"actor_id":"user_1","actor_source":"` + source + `","actor_name":"` + name + `"}}`))
		if err != nil {
			t.Fatal(err)
		}
		return ev
	}
	rows := model.Project([]model.Event{
		mk("event_2", "2026-01-02T00:00:00Z", "Renamed", "dashboard"),
		mk("event_1", "2026-01-01T00:00:00Z", "Old", "api"),
		mk("event_3", "2026-01-03T00:00:00Z", "Newest", "dashboard"),
	})
	if len(rows.Actors) != 1 {
		t.Fatalf("actors = %+v; want one", rows.Actors)
	}
	a := rows.Actors[0]
	if a.Name != "Newest" || a.Source != "dashboard" || a.FirstSeen.Day() != 1 || a.LastSeen.Day() != 3 {
		t.Errorf("actor = %+v; want Newest/dashboard seen from the 1st to the 3rd", a)
	}
	if len(rows.Vault) != 3 || rows.Vault[1].Name != "Old" {
		t.Errorf("each vault row keeps the name recorded in its own event: %+v", rows.Vault)
	}
}

func TestQuarantineFingerprintIsStable(t *testing.T) {
	ev := model.Event{ID: "event_1", Raw: []byte(`{"id":"event_1"}`)}
	a := model.NewQuarantined(ev, model.QuarantineProjection, "missing data.actor_id")
	b := model.NewQuarantined(ev, model.QuarantineProjection, "missing data.actor_id")
	c := model.NewQuarantined(ev, model.QuarantineConflict, "missing data.actor_id")
	if a.Fingerprint != b.Fingerprint || a.Fingerprint == c.Fingerprint {
		t.Errorf("fingerprints: same input %q vs %q, other kind %q", a.Fingerprint, b.Fingerprint, c.Fingerprint)
	}
}

func TestKnownTypes(t *testing.T) {
	known := model.KnownTypes()
	if !slices.IsSorted(known) || len(slices.Compact(slices.Clone(known))) != len(known) {
		t.Fatal("knownTypes must be sorted and without repeats")
	}
	for _, v := range model.VaultTypes() {
		if !model.IsKnownType(v) {
			t.Errorf("Vault type %s missing from KnownTypes", v)
		}
	}
	if model.IsKnownType("vault.data.exploded") || len(known) < 100 {
		t.Errorf("KnownTypes has %d names; IsKnownType accepts a made-up name", len(known))
	}
}

// BenchmarkDecodeList decodes and projects a page of 100 typical events,
// the work the syncer does per page besides the database.
func BenchmarkDecodeList(b *testing.B) {
	files, _ := filepath.Glob("testdata/events/vault.*.json")
	var evs [][]byte
	for len(evs) < 100 {
		for _, f := range files {
			raw, _ := os.ReadFile(f)
			evs = append(evs, bytes.TrimRight(raw, "\n"))
		}
	}
	page := []byte(`{"object":"list","data":[` + string(bytes.Join(evs[:100], []byte(","))) + `],"list_metadata":{"after":null}}`)
	b.SetBytes(int64(len(page)))
	b.ReportAllocs()
	for b.Loop() {
		list, err := model.DecodeList(page)
		if err != nil || len(list.Events) != 100 {
			b.Fatal(err)
		}
		model.Project(list.Events)
	}
}
