package model_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"unicode/utf8"

	"github.com/syncer-audit/syncer/internal/model"
)

// FuzzDecodeAndProject feeds arbitrary envelopes to the decoder and the
// projection. Whatever the input, they must not panic, and what they hand
// to PostgreSQL must be storable: valid UTF-8 with no NUL escapes. Every
// valid Vault event ends as exactly one audit row or one quarantine row.
// Crashers found are kept in testdata/fuzz as regression seeds.
func FuzzDecodeAndProject(f *testing.F) {
	files, _ := filepath.Glob("testdata/events/*.json")
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"id":"e","event":"vault.dek.read","created_at":"2026-01-01T00:00:00Z","data":{"actor_id":"a","key_ids":[1,"x",null]}}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		ev, err := model.DecodeEvent(raw)
		if err != nil {
			return // not JSON at all: the page fails to decode and is retried
		}
		// The in-place reader must see what encoding/json sees.
		var fields map[string]json.RawMessage
		if !ev.Sanitized && json.Unmarshal(raw, &fields) == nil && fields != nil {
			for key, want := range map[string]json.RawMessage{"data": ev.Data, "context": ev.Context} {
				got := fields[key]
				if string(got) == "null" {
					got = nil
				}
				if bytes.Count(raw, []byte(`"`+key+`"`)) == 1 && !bytes.Equal(got, want) {
					t.Fatalf("%s: decoded %q; encoding/json reads %q", key, want, got)
				}
			}
		}
		for name, part := range map[string][]byte{"id": []byte(ev.ID), "type": []byte(ev.Type), "data": ev.Data, "context": ev.Context, "extra": ev.Extra} {
			if !utf8.Valid(part) {
				t.Fatalf("%s is not UTF-8 after decoding: %q", name, part)
			}
			if bytes.IndexByte(part, 0) >= 0 {
				t.Fatalf("%s holds a NUL byte: %q", name, part)
			}
			if _, changed, err := model.Sanitize(part); len(part) > 0 && name != "id" && name != "type" && (err != nil || changed) {
				t.Fatalf("%s is not stable under Sanitize (changed %v, err %v): %q", name, changed, err, part)
			}
		}
		rows := model.Project([]model.Event{ev})
		for _, q := range rows.Quarantine {
			if q.Reason == "" || q.Fingerprint == "" {
				t.Fatalf("quarantine row without reason or fingerprint: %+v", q)
			}
		}
		for _, v := range rows.Vault {
			if v.EventID != ev.ID || !utf8.ValidString(v.Actor.Name+v.KVName+v.KeyID+v.KeyName) {
				t.Fatalf("vault row %+v does not belong to %q or is not UTF-8", v, ev.ID)
			}
		}
		if ev.ID != "" && ev.Problem == "" && model.IsVaultType(ev.Type) && len(rows.Vault)+len(rows.Quarantine) != 1 {
			t.Fatalf("a valid Vault event gave %d audit rows and %d quarantine rows; want exactly one in all", len(rows.Vault), len(rows.Quarantine))
		}
	})
}
