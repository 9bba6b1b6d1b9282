package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/syncer-audit/syncer/internal/pgtest"
)

// pagesAPI serves a fixed list of raw envelopes as the Events API does:
// oldest first, `after` by position of that id, list_metadata.after null
// on the last page. Unlike the fake, it serves anything, however broken.
type pagesAPI []string

func (p pagesAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit, _ := strconv.Atoi(q.Get("limit"))
	start := 0
	if after := q.Get("after"); after != "" {
		for i, raw := range p {
			if strings.Contains(raw, `"id":"`+after+`"`) {
				start = i + 1
			}
		}
	}
	end := min(len(p), start+limit)
	w.Header().Set("X-Request-ID", "req_hostile")
	fmt.Fprintf(w, `{"object":"list","data":[%s],"list_metadata":{"after":null}}`, strings.Join(p[start:end], ","))
}

func event(n int, typ, data string) string {
	return fmt.Sprintf(`{"object":"event","id":"event_%04d","event":%q,"created_at":"2026-11-20T10:00:%02d.000Z","data":%s}`, n, typ, n%60, data)
}

// random is n letters that do not compress, as a hostile field would be
// (PostgreSQL compresses repeated letters into an index row that fits).
func random(n int) string {
	const letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	b := make([]byte, n)
	x := uint32(2463534242)
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = letters[x%uint32(len(letters))]
	}
	return string(b)
}

const actor = `"actor_id":"user_1","actor_source":"api","actor_name":"API Key"`

// TestHostileInput runs each hostile input, between two ordinary events, as
// a stream of its own through a real sync. Each must end with the whole
// stream archived, the bad part flagged or quarantined with its reason,
// and nothing else lost.
func TestHostileInput(t *testing.T) {
	t.Parallel()
	bigKeys := make([]string, 10000)
	for i := range bigKeys {
		bigKeys[i] = fmt.Sprintf(`"dek_%05d"`, i)
	}
	for _, tc := range []struct {
		name     string
		events   []string // between event_0001 and event_0099, both ordinary
		archived int      // events in workos_events, the two ordinary ones included
		checks   map[string]int
	}{
		{"NUL in every kind of string", []string{
			event(2, "vault.data.created", `{"actor_id":"user_1","actor_source":"api","actor_name":"Ev\u0000e","kv_name":"k\u0000v","key_id":"key\u00001","key_context":{"org\u0000":"v\u0000"}}`)}, 3,
			map[string]int{
				`SELECT count(*) FROM workos_events WHERE sanitized AND original IS NOT NULL`:            1,
				`SELECT count(*) FROM vault_events WHERE actor_name = 'Ev' || chr(65533) || 'e'`:         1,
				`SELECT count(*) FROM vault_event_keys WHERE key_id = 'key' || chr(65533) || '1'`:        1,
				`SELECT count(*) FROM vault_events WHERE key_context ? ('org' || chr(65533))`:            1,
				`SELECT count(*) FROM vault_actors WHERE actor_id = 'user_1' AND actor_name = 'API Key'`: 1,
			}},
		{"invalid UTF-8", []string{
			event(2, "vault.data.read", "{\"actor_id\":\"user_1\",\"actor_name\":\"\xff\xfe\",\"kv_name\":\"a\xc3\",\"key_id\":\"k\"}")}, 3,
			map[string]int{
				`SELECT count(*) FROM workos_events WHERE sanitized AND position('\xfffe'::bytea in original) > 0`: 1,
				`SELECT count(*) FROM vault_events WHERE kv_name = 'a' || chr(65533)`:                              1,
			}},
		{"a 1 MB payload", []string{
			event(2, "vault.data.read", `{`+actor+`,"kv_name":"big","key_id":"k","blob":"`+strings.Repeat("x", 1<<20)+`"}`)}, 3,
			map[string]int{`SELECT count(*) FROM workos_events WHERE length(data->>'blob') = 1048576`: 1}},
		{"key_ids with 10,000 elements", []string{
			event(2, "vault.dek.read", `{`+actor+`,"key_ids":[`+strings.Join(bigKeys, ",")+`]}`)}, 3,
			map[string]int{`SELECT count(*) FROM vault_event_keys WHERE event_id = 'event_0002'`: 10000}},
		{"missing required fields", []string{
			event(2, "vault.data.read", `{"kv_name":"a","key_id":"k"}`),
			event(3, "vault.dek.decrypted", `{"actor_id":"user_1"}`),
			event(4, "vault.byok_key.deleted", `{}`)}, 5,
			map[string]int{
				`SELECT count(*) FROM event_quarantine WHERE kind = 'projection' AND reason LIKE 'missing data.%'`: 3,
				`SELECT count(*) FROM vault_events`: 2,
			}},
		{"wrong JSON types", []string{
			event(2, "vault.dek.read", `{`+actor+`,"key_ids":"dek_1"}`),
			event(3, "vault.data.read", `{"actor_id":"user_1","actor_name":42,"kv_name":"a","key_id":"k"}`),
			event(4, "vault.data.created", `{`+actor+`,"kv_name":"a","key_id":"k","key_context":{"n":1,"b":true,"o":{"x":null}}}`)}, 5,
			map[string]int{
				`SELECT count(*) FROM event_quarantine WHERE reason = 'data.key_ids: want array, got string'`:     1,
				`SELECT count(*) FROM event_quarantine WHERE reason = 'data.actor_name: want string, got number'`: 1,
				// key_context values that are not strings are tolerated
				`SELECT count(*) FROM vault_events WHERE event_id = 'event_0004' AND key_context->>'n' = '1'`: 1,
			}},
		{"unknown types and fields", []string{
			event(2, "vault.data.teleported", `{`+actor+`}`),
			event(3, "directory_user.created", `{"id":"x"}`),
			strings.Replace(event(4, "vault.data.read", `{`+actor+`,"kv_name":"a","key_id":"k","new_field":{"deep":[1]}}`), `"data"`, `"context":{"new_context_key":1,"actor":{"id":"u"}},"environment_id":"env_1","data"`, 1)}, 5,
			map[string]int{
				`SELECT count(*) FROM workos_events WHERE event_type IN ('vault.data.teleported', 'directory_user.created')`:                                    2,
				`SELECT count(*) FROM workos_events WHERE data->'new_field' IS NOT NULL AND context ? 'new_context_key' AND extra->>'environment_id' = 'env_1'`: 1,
				`SELECT count(*) FROM vault_events`:     3,
				`SELECT count(*) FROM event_quarantine`: 0,
			}},
		{"three timestamp forms", []string{
			strings.Replace(event(2, "vault.data.read", `{`+actor+`,"kv_name":"a","key_id":"k"}`), `2026-11-20T10:00:02.000Z`, `2026-11-20T11:00:02.5+01:00`, 1),
			strings.Replace(event(3, "vault.data.read", `{`+actor+`,"kv_name":"a","key_id":"k"}`), `2026-11-20T10:00:03.000Z`, `2026-11-20 10:00:03.093`, 1),
			strings.Replace(event(4, "vault.data.read", `{`+actor+`,"kv_name":"a","key_id":"k"}`), `2026-11-20T10:00:04.000Z`, `2026-11-20T10:00:04.123456Z`, 1)}, 5,
			map[string]int{
				`SELECT count(*) FROM vault_events WHERE occurred_at IN ('2026-11-20 10:00:02.5Z', '2026-11-20 10:00:03.093Z', '2026-11-20 10:00:04.123456Z')`: 3,
			}},
		{"an id seen again with other content", []string{
			event(2, "vault.data.read", `{`+actor+`,"kv_name":"first","key_id":"k"}`),
			event(2, "vault.data.read", `{`+actor+`,"kv_name":"second","key_id":"k"}`)}, 3,
			map[string]int{
				`SELECT count(*) FROM vault_events WHERE kv_name = 'first'`:                                                             1,
				`SELECT count(*) FROM vault_events WHERE kv_name = 'second'`:                                                            0,
				`SELECT count(*) FROM event_quarantine WHERE kind = 'conflict' AND position('second' in convert_from(raw, 'UTF8')) > 0`: 1,
			}},
		{"a number PostgreSQL cannot hold", []string{
			event(2, "vault.data.read", `{`+actor+`,"kv_name":"a","key_id":"k","n":1e999999}`)}, 3,
			map[string]int{
				`SELECT count(*) FROM workos_events WHERE id = 'event_0002' AND data IS NULL AND sanitized`:       1,
				`SELECT count(*) FROM event_quarantine WHERE event_id = 'event_0002' AND reason LIKE '%numeric%'`: 1,
			}},
		{"envelopes without an id or not objects", []string{
			`{"event":"vault.data.read","created_at":"2026-11-20T10:00:02Z","data":{}}`,
			`"just a string"`,
			`[1,2,3]`}, 2,
			map[string]int{`SELECT count(*) FROM event_quarantine WHERE event_id IS NULL AND kind = 'envelope'`: 3}},
		{"identifiers too long to index", []string{
			event(2, "vault.data.read", `{`+actor+`,"kv_name":"`+random(4000)+`","key_id":"k"}`),
			event(3, "vault.data.read", `{`+actor+`,"kv_name":"`+random(1<<20)+`","key_id":"k"}`),
			event(4, "vault.data.read", `{"actor_id":"`+random(10000)+`","kv_name":"a","key_id":"k"}`),
			event(5, "vault.dek.read", `{`+actor+`,"key_ids":["dek_1","`+random(10000)+`"]}`),
			event(6, "custom."+random(10000), `{}`)}, 7,
			map[string]int{
				`SELECT count(*) FROM event_quarantine WHERE kind = 'projection' AND reason ~ '^data\.[a-z_\[\]]+ is [0-9]+ bytes long, over 1024$'`: 4,
				`SELECT count(*) FROM event_quarantine WHERE kind = 'envelope' AND reason LIKE 'event type is 10007 bytes long%'`:                    1,
				`SELECT count(*) FROM workos_events WHERE event_type IS NULL AND id = 'event_0006'`:                                                  1,
			}},
		{"ids and times that cannot be stored as given", []string{
			`{"id":"event_0002\u0000x","event":"vault.data.read","created_at":"2026-11-20T10:00:02Z","data":{}}`,
			strings.Replace(event(3, "vault.data.read", `{`+actor+`,"kv_name":"a","key_id":"k"}`), `2026-11-20T10:00:03.000Z`, `0001-01-01T00:00:00Z`, 1)}, 3,
			map[string]int{
				`SELECT count(*) FROM event_quarantine WHERE event_id IS NULL AND reason = 'id holds characters PostgreSQL cannot store'`: 1,
				`SELECT count(*) FROM event_quarantine WHERE event_id = 'event_0003' AND reason LIKE 'created_at: %out of range%'`:        1,
				`SELECT count(*) FROM vault_events WHERE event_id = 'event_0003'`:                                                         0,
			}},
		{"keys differing only in case", []string{
			event(2, "vault.data.read", `{`+actor+`,"kv_name":"real","key_id":"k","KV_NAME":"spoof","Actor_Id":"user_spoof"}`)}, 3,
			map[string]int{`SELECT count(*) FROM vault_events WHERE kv_name = 'real' AND actor_id = 'user_1'`: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			stream := append([]string{event(1, "vault.data.read", `{`+actor+`,"kv_name":"before","key_id":"k"}`)}, tc.events...)
			stream = append(stream, event(99, "vault.data.read", `{`+actor+`,"kv_name":"after","key_id":"k"}`))
			srv := httptest.NewServer(pagesAPI(stream))
			defer srv.Close()
			db := pgtest.URL(t)
			w := &world{t: t, db: db, env: map[string]string{
				"DATABASE_URL": db, "WORKOS_API_KEY": fakeKey, "WORKOS_BASE_URL": srv.URL, "SYNCER_LOG_FORMAT": "json", "SYNCER_SINCE": "3650d"}}
			if _, logs, err := w.syncer("sync", "--events", "all"); err != nil {
				t.Fatalf("sync: %v\n%s", err, logs)
			}
			if got := w.count(`SELECT count(*) FROM workos_events`); got != tc.archived {
				t.Errorf("archived %d events; want %d", got, tc.archived)
			}
			if got := w.count(`SELECT count(*) FROM vault_events WHERE kv_name IN ('before', 'after')`); got != 2 {
				t.Errorf("the ordinary events around the hostile one: %d projected; want 2", got)
			}
			for sql, want := range tc.checks {
				if got := w.count(sql); got != want {
					t.Errorf("%s = %d; want %d", sql, got, want)
				}
			}
			// A second sync changes nothing.
			before := w.count(`SELECT count(*) FROM workos_events`) + w.count(`SELECT count(*) FROM event_quarantine`)
			if _, _, err := w.syncer("sync", "--events", "all"); err != nil {
				t.Fatal(err)
			}
			if after := w.count(`SELECT count(*) FROM workos_events`) + w.count(`SELECT count(*) FROM event_quarantine`); after != before {
				t.Errorf("a second sync changed the archive or quarantine: %d -> %d rows", before, after)
			}
		})
	}
}
