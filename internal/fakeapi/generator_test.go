package fakeapi

import (
	"bytes"
	"encoding/json"
	"maps"
	"math"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/syncer-audit/syncer/internal/model"
)

func TestGeneratorDeterminism(t *testing.T) {
	t.Parallel()
	a := NewGenerator(GenConfig{Seed: 42}).Take(2000)
	b := NewGenerator(GenConfig{Seed: 42}).Take(2000)
	for i := range a {
		if a[i].ID != b[i].ID || a[i].Type != b[i].Type || !a[i].CreatedAt.Equal(b[i].CreatedAt) || !bytes.Equal(a[i].JSON, b[i].JSON) {
			t.Fatalf("event %d differs between two runs of seed 42:\n%s\n%s", i, a[i].JSON, b[i].JSON)
		}
	}
	c := NewGenerator(GenConfig{Seed: 43}).Take(2000)
	same := 0
	for i := range a {
		if bytes.Equal(a[i].JSON, c[i].JSON) {
			same++
		}
	}
	if same > 0 {
		t.Fatalf("seeds 42 and 43 share %d events", same)
	}
	// Next and Take are the same stream.
	g := NewGenerator(GenConfig{Seed: 42})
	g.Take(10)
	if ev := g.Next(); !bytes.Equal(ev.JSON, a[10].JSON) {
		t.Fatalf("Next after Take(10) = %s, want event 10", ev.JSON)
	}
}

var createdAtRE = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`)
var ulidRE = regexp.MustCompile(`^event_[0-9A-HJKMNP-TV-Z]{26}$`)

func TestGeneratorEnvelopes(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 5, 1, 9, 30, 0, 123_456_789, time.UTC)
	tests := []struct {
		name string
		cfg  GenConfig
	}{
		{"defaults", GenConfig{Seed: 1}},
		{"bursts within a millisecond", GenConfig{Seed: 2, Start: start, Step: 200 * time.Microsecond}},
		{"sparse", GenConfig{Seed: 3, Start: start, Step: time.Hour}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			evs := NewGenerator(tt.cfg).Take(3000)
			wantStart := tt.cfg.Start.Truncate(time.Millisecond)
			if tt.cfg.Start.IsZero() {
				wantStart = time.Date(2026, 3, 12, 17, 58, 1, 120_000_000, time.UTC)
			}
			if !evs[0].CreatedAt.Equal(wantStart) {
				t.Fatalf("first created_at %s, want %s", evs[0].CreatedAt, wantStart)
			}
			sameMS := 0
			for i, ev := range evs {
				var env envelope
				if err := json.Unmarshal(ev.JSON, &env); err != nil {
					t.Fatalf("event %d: %v: %s", i, err, ev.JSON)
				}
				if env.Object != "event" || env.ID != ev.ID || env.Event != ev.Type || !ulidRE.MatchString(ev.ID) {
					t.Fatalf("event %d: envelope %s disagrees with %s %s", i, ev.JSON, ev.ID, ev.Type)
				}
				if !createdAtRE.MatchString(env.CreatedAt) || env.CreatedAt != ev.CreatedAt.Format("2006-01-02T15:04:05.000Z") {
					t.Fatalf("event %d: created_at %q, CreatedAt %s", i, env.CreatedAt, ev.CreatedAt)
				}
				if ms, _ := ulidTime(ev.ID[len("event_"):]); int64(ms) != ev.CreatedAt.UnixMilli() {
					t.Fatalf("event %d: id time %d, created_at %d", i, ms, ev.CreatedAt.UnixMilli())
				}
				if !model.IsKnownType(ev.Type) {
					t.Fatalf("event %d: type %s cannot be asked for", i, ev.Type)
				}
				if i > 0 {
					prev := evs[i-1]
					if ev.ID <= prev.ID || ev.CreatedAt.Before(prev.CreatedAt) {
						t.Fatalf("event %d (%s, %s) is not after %s, %s", i, ev.ID, env.CreatedAt, prev.ID, prev.CreatedAt)
					}
					if ev.CreatedAt.Equal(prev.CreatedAt) {
						sameMS++
					}
				}
			}
			if tt.cfg.Step != 0 && tt.cfg.Step < time.Millisecond && sameMS < 100 {
				t.Fatalf("only %d events share a millisecond; the monotonic ids are not exercised", sameMS)
			}
		})
	}
}

func TestGeneratorStep(t *testing.T) {
	t.Parallel()
	for _, step := range []time.Duration{0, 50 * time.Millisecond, 10 * time.Minute} {
		evs := NewGenerator(GenConfig{Seed: 5, Step: step}).Take(10001)
		want := step
		if want == 0 {
			want = time.Second
		}
		mean := evs[10000].CreatedAt.Sub(evs[0].CreatedAt) / 10000
		if math.Abs(float64(mean-want)) > 0.05*float64(want) {
			t.Errorf("Step %s: mean gap %s, want about %s", step, mean, want)
		}
	}
}

func TestGeneratorVaultShare(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ share, want float64 }{{0, 0.8}, {0.3, 0.3}, {1, 1}} {
		evs := NewGenerator(GenConfig{Seed: 6, VaultShare: tt.share}).Take(10000)
		got := float64(VaultCount(evs)) / float64(len(evs))
		if math.Abs(got-tt.want) > 0.02 {
			t.Errorf("VaultShare %v: share %.3f, want about %.2f", tt.share, got, tt.want)
		}
	}
}

func TestGeneratorCoversVaultTypes(t *testing.T) {
	t.Parallel()
	vault := model.VaultTypes()
	if len(vault) != 12 {
		t.Fatalf("model has %d Vault types; this test expects the 12 of the API notes", len(vault))
	}
	for seed := range int64(20) {
		evs := NewGenerator(GenConfig{Seed: seed}).Take(2000)
		// Every window of 200 events holds every Vault type.
		count := map[string]int{}
		for i, ev := range evs {
			count[ev.Type]++
			if i >= 200 {
				count[evs[i-200].Type]--
			}
			if i >= 199 {
				for _, typ := range vault {
					if count[typ] == 0 {
						t.Fatalf("seed %d: events %d..%d have no %s", seed, i-199, i, typ)
					}
				}
			}
		}
	}
}

// TestGeneratorPayloads checks each Vault payload against the API notes'
// table: exactly these fields, of these kinds.
func TestGeneratorPayloads(t *testing.T) {
	t.Parallel()
	actor := []string{"actor_id", "actor_name", "actor_source"}
	fields := map[string][]string{
		model.VaultDataCreated:                  append(slices.Clone(actor), "key_context", "key_id", "kv_name"),
		model.VaultDataUpdated:                  append(slices.Clone(actor), "key_context", "key_id", "kv_name"),
		model.VaultDataRead:                     append(slices.Clone(actor), "key_id", "kv_name"),
		model.VaultDataDeleted:                  append(slices.Clone(actor), "kv_name"),
		model.VaultMetadataRead:                 append(slices.Clone(actor), "kv_name"),
		model.VaultNamesListed:                  actor,
		model.VaultKEKCreated:                   append(slices.Clone(actor), "key_id", "key_name"),
		model.VaultKEKDeleted:                   append(slices.Clone(actor), "key_id", "key_name"),
		model.VaultDEKRead:                      append(slices.Clone(actor), "key_context", "key_ids"),
		model.VaultDEKDecrypted:                 append(slices.Clone(actor), "key_id"),
		model.VaultBYOKKeyVerificationCompleted: {"key_provider", "organization_id", "verified"},
		model.VaultBYOKKeyDeleted:               {"key_provider", "organization_id"},
	}
	evs := NewGenerator(GenConfig{Seed: 7}).Take(5000)
	seen := map[string]map[string]bool{} // field -> distinct values
	note := func(k, v string) {
		if seen[k] == nil {
			seen[k] = map[string]bool{}
		}
		seen[k][v] = true
	}
	contexts := map[string]int{}
	for _, ev := range evs {
		var env envelope
		if err := json.Unmarshal(ev.JSON, &env); err != nil {
			t.Fatal(err)
		}
		switch c := strings.TrimSpace(string(env.Context)); {
		case c == "":
			contexts["absent"]++
		case c == "{}":
			contexts["empty"]++
		case strings.Contains(c, `"actor":{"id":`):
			contexts["with actor"]++
		default:
			contexts["client only"]++
		}
		want, isVault := fields[ev.Type]
		if !isVault {
			continue
		}
		if _, err := model.DecodeVault(ev.Type, env.Data); err != nil {
			t.Fatalf("model cannot decode %s: %v", ev.JSON, err)
		}
		var data map[string]any
		if err := json.Unmarshal(env.Data, &data); err != nil {
			t.Fatal(err)
		}
		if got := slices.Sorted(maps.Keys(data)); !slices.Equal(got, want) {
			t.Fatalf("%s has fields %v, want %v", ev.Type, got, want)
		}
		for k, v := range data {
			switch k {
			case "verified":
				if _, ok := v.(bool); !ok {
					t.Fatalf("%s: verified is %T", ev.Type, v)
				}
			case "key_context":
				kc, ok := v.(map[string]any)
				if org, _ := kc["organization_id"].(string); !ok || len(kc) != 1 || !strings.HasPrefix(org, "org_") {
					t.Fatalf("%s: key_context %v", ev.Type, v)
				}
			case "key_ids":
				list, _ := v.([]any)
				if len(list) < 1 || len(list) > 5 {
					t.Fatalf("%s: key_ids %v", ev.Type, v)
				}
				for _, id := range list {
					if s, _ := id.(string); !strings.HasPrefix(s, "dek_") {
						t.Fatalf("%s: key_ids %v", ev.Type, v)
					}
				}
				note("key_ids length", strings.Repeat("x", len(list)))
			default:
				s, ok := v.(string)
				if !ok || s == "" {
					t.Fatalf("%s: %s is %v", ev.Type, k, v)
				}
				note(k, s)
			}
		}
	}
	if got := slices.Sorted(maps.Keys(seen["actor_source"])); !slices.Equal(got, []string{"api", "dashboard"}) {
		t.Errorf("actor sources %v", got)
	}
	if got := slices.Sorted(maps.Keys(seen["key_provider"])); !slices.Equal(got, []string{"AWS_KMS", "AZURE_KEY_VAULT", "GCP_KMS"}) {
		t.Errorf("key providers %v", got)
	}
	for k, want := range map[string][2]int{"actor_id": {6, 10}, "kv_name": {15, 25}, "organization_id": {2, 6}, "key_ids length": {5, 5}} {
		if n := len(seen[k]); n < want[0] || n > want[1] {
			t.Errorf("%d distinct %s, want %d..%d: recurring, not all alike", n, k, want[0], want[1])
		}
	}
	for _, kind := range []string{"absent", "empty", "with actor", "client only"} {
		if contexts[kind] == 0 {
			t.Errorf("no event with context %s", kind)
		}
	}
	if contexts["client only"]+contexts["with actor"] < len(evs)*8/10 {
		t.Errorf("contexts %v: want most events to carry one", contexts)
	}
}

func TestGeneratorConfigPanics(t *testing.T) {
	t.Parallel()
	for _, cfg := range []GenConfig{{Step: -1}, {VaultShare: -0.1}, {VaultShare: 1.5}, {Start: time.Date(1969, 1, 1, 0, 0, 0, 0, time.UTC)}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("NewGenerator(%+v) did not panic", cfg)
				}
			}()
			NewGenerator(cfg)
		}()
	}
}

func TestParseEvent(t *testing.T) {
	t.Parallel()
	tests := []struct {
		created string
		want    time.Time
	}{
		{"2026-03-12T17:58:01.120Z", time.Date(2026, 3, 12, 17, 58, 1, 120e6, time.UTC)},
		{"2023-04-28 20:05:31.093", time.Date(2023, 4, 28, 20, 5, 31, 93e6, time.UTC)},
		{"2023-04-28T20:05:31.093456Z", time.Date(2023, 4, 28, 20, 5, 31, 93456e3, time.UTC)},
		{"2023-04-28T22:05:31+02:00", time.Date(2023, 4, 28, 20, 5, 31, 0, time.UTC)},
	}
	for _, tt := range tests {
		ev, err := ParseEvent([]byte(`{"id":"event_1","event":"user.created","created_at":"` + tt.created + `"}`))
		if err != nil || !ev.CreatedAt.Equal(tt.want) || ev.CreatedAt.Location() != time.UTC {
			t.Errorf("%s: got %v, %v; want %v", tt.created, ev.CreatedAt, err, tt.want)
		}
	}
	for _, bad := range []string{`[]`, `{"id":1,"event":"a","created_at":"2023-04-28"}`, `{"id":"e","event":"","created_at":"2023-04-28"}`, `{"id":"e","event":"a"}`} {
		if _, err := ParseEvent([]byte(bad)); err == nil {
			t.Errorf("ParseEvent(%s) succeeded", bad)
		}
	}
}

func TestVaultCount(t *testing.T) {
	t.Parallel()
	evs := []Event{{Type: model.VaultDataRead}, {Type: "user.created"}, {Type: model.VaultBYOKKeyDeleted}, {Type: "vault.future.thing"}}
	if n := VaultCount(evs); n != 2 {
		t.Fatalf("VaultCount = %d, want 2", n)
	}
}
