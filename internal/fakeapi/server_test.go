package fakeapi

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/syncer-audit/syncer/internal/model"
)

func TestAuth(t *testing.T) {
	t.Parallel()
	s := New(Config{APIKey: testKey})
	s.Append(NewGenerator(GenConfig{Seed: 1}).Take(20)...)
	tests := []struct {
		name   string
		auth   string
		status int
	}{
		{"right key", "Bearer " + testKey, http.StatusOK},
		{"scheme in lower case", "bearer " + testKey, http.StatusOK},
		{"no header", "", http.StatusUnauthorized},
		{"wrong key", "Bearer sk_test_other", http.StatusUnauthorized},
		{"key as a prefix", "Bearer " + testKey + "x", http.StatusUnauthorized},
		{"no scheme", testKey, http.StatusUnauthorized},
		{"basic auth", "Basic " + testKey, http.StatusUnauthorized},
		{"empty bearer", "Bearer ", http.StatusUnauthorized},
	}
	seen := map[string]bool{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := call(t, s, http.MethodGet, "/events?events=vault.data.read", tt.auth, nil)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.status, body)
			}
			reqID := resp.Header.Get("X-Request-ID")
			if !strings.HasPrefix(reqID, "req_") || len(reqID) < 10 || seen[reqID] {
				t.Fatalf("X-Request-ID %q: want a fresh req_ id", reqID)
			}
			seen[reqID] = true
			if tt.status == http.StatusUnauthorized {
				var e struct{ Message, Code string }
				if err := json.Unmarshal(body, &e); err != nil || e.Code != "unauthorized" || e.Message == "" {
					t.Fatalf("401 body %s", body)
				}
				if strings.Contains(string(body), testKey) {
					t.Fatalf("401 body repeats the key: %s", body)
				}
			}
		})
	}
}

func TestTypeFilterForms(t *testing.T) {
	t.Parallel()
	evs := NewGenerator(GenConfig{Seed: 2}).Take(400)
	s := New(Config{APIKey: testKey})
	s.Append(evs...)
	read, created, byok, kek := model.VaultDataRead, model.VaultDataCreated, model.VaultBYOKKeyDeleted, model.VaultKEKCreated
	tests := []struct {
		name  string
		query string
		types []string
	}{
		{"one name", "events=" + read, []string{read}},
		{"repeated keys", "events=" + read + "&events=" + created, []string{read, created}},
		{"comma list", "events=" + read + "," + created, []string{read, created}},
		{"comma list with spaces", "events=" + url.QueryEscape(" "+read+" , "+created), []string{read, created}},
		{"brackets", "events[]=" + read + "&events[]=" + created, []string{read, created}},
		{"brackets escaped", "events%5B%5D=" + read, []string{read}},
		{"all forms at once", "events=" + read + "&events[]=" + created + "," + byok, []string{read, created, byok}},
		{"duplicates", "events=" + read + "&events=" + read + "," + read + "&events[]=" + read, []string{read}},
		{"duplicates of rare types", "events=" + byok + "&events=" + byok + "," + kek + "&events[]=" + kek, []string{byok, kek}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := idsOf(evs, tt.types...)
			if len(want) == 0 {
				t.Fatal("the stream has none of these types; the test proves nothing")
			}
			got := pageAll(t, s, tt.query+"&limit=100")
			if !slices.Equal(got, want) {
				t.Fatalf("got %d events, want %d", len(got), len(want))
			}
		})
	}
}

func TestValidation(t *testing.T) {
	t.Parallel()
	s := New(Config{APIKey: testKey})
	s.Append(NewGenerator(GenConfig{Seed: 3}).Take(50)...)
	type fieldErr struct{ Field, Code string }
	tests := []struct {
		name   string
		query  string
		status int
		code   string
		fields []fieldErr
	}{
		{"no filter", "", 422, "invalid_request_parameters", []fieldErr{{"events", "required"}}},
		{"empty filter", "events=", 422, "invalid_request_parameters", []fieldErr{{"events", "required"}}},
		{"only commas", "events=,,&events[]=", 422, "invalid_request_parameters", []fieldErr{{"events", "required"}}},
		{"unknown name", "events=vault.data.read,nope.created", 400, "invalid_events_request", nil},
		{"unknown name alone", "events[]=nope.created", 400, "invalid_events_request", nil},
		{"emulator-only name", "events=directory_user.created", 400, "invalid_events_request", nil},
		{"limit 0", "events=vault.data.read&limit=0", 422, "invalid_request_parameters", []fieldErr{{"limit", "invalid"}}},
		{"limit 101", "events=vault.data.read&limit=101", 422, "invalid_request_parameters", []fieldErr{{"limit", "invalid"}}},
		{"limit negative", "events=vault.data.read&limit=-1", 422, "invalid_request_parameters", []fieldErr{{"limit", "invalid"}}},
		{"limit not a number", "events=vault.data.read&limit=ten", 422, "invalid_request_parameters", []fieldErr{{"limit", "invalid"}}},
		{"limit fraction", "events=vault.data.read&limit=1.5", 422, "invalid_request_parameters", []fieldErr{{"limit", "invalid"}}},
		{"range_start garbage", "events=vault.data.read&range_start=yesterday", 422, "invalid_request_parameters", []fieldErr{{"range_start", "invalid"}}},
		{"range_end garbage", "events=vault.data.read&range_end=2026-13-01T00:00:00Z", 422, "invalid_request_parameters", []fieldErr{{"range_end", "invalid"}}},
		{"range backwards", "events=vault.data.read&range_start=2026-03-13T00:00:00Z&range_end=2026-03-12T00:00:00Z", 422, "invalid_request_parameters", []fieldErr{{"range_end", "invalid"}}},
		{"everything wrong", "limit=500", 422, "invalid_request_parameters", []fieldErr{{"events", "required"}, {"limit", "invalid"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := call(t, s, http.MethodGet, "/events?"+tt.query, "Bearer "+testKey, nil)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.status, body)
			}
			if resp.Header.Get("X-Request-ID") == "" {
				t.Fatal("no X-Request-ID on an error")
			}
			var e struct {
				Message string
				Code    string
				Errors  []fieldErr
			}
			if err := json.Unmarshal(body, &e); err != nil {
				t.Fatalf("error body %s: %v", body, err)
			}
			if e.Code != tt.code || e.Message == "" || !slices.Equal(e.Errors, tt.fields) {
				t.Fatalf("error body %s, want code %s and errors %v", body, tt.code, tt.fields)
			}
			if strings.Contains(string(body), "nope") || strings.Contains(string(body), "directory_user") {
				t.Fatalf("error names the bad type, which clients must not rely on: %s", body)
			}
		})
	}
}

func TestLimit(t *testing.T) {
	t.Parallel()
	evs := NewGenerator(GenConfig{Seed: 4}).Take(300)
	s := New(Config{APIKey: testKey})
	s.Append(evs...)
	all := idsOf(evs)
	tests := []struct {
		query string
		want  int
	}{
		{"", 10},
		{"&limit=", 10},
		{"&limit=1", 1},
		{"&limit=37", 37},
		{"&limit=100", 100},
	}
	for _, tt := range tests {
		t.Run("limit"+tt.query, func(t *testing.T) {
			a := getEvents(t, s, allKnownQuery()+tt.query)
			if got := ids(t, a); !slices.Equal(got, all[:tt.want]) {
				t.Fatalf("got %d events %v..., want the first %d", len(got), got[:min(3, len(got))], tt.want)
			}
			if a.ListMetadata.After == nil || *a.ListMetadata.After != all[tt.want-1] {
				t.Fatalf("list_metadata.after = %v, want %s", a.ListMetadata.After, all[tt.want-1])
			}
		})
	}
}

func TestPaginationCoversStreamOnce(t *testing.T) {
	t.Parallel()
	evs := NewGenerator(GenConfig{Seed: 5, Step: 3 * time.Millisecond}).Take(2000)
	s := New(Config{APIKey: testKey})
	s.Append(evs...)
	tests := []struct {
		name  string
		query string
		want  []string
	}{
		{"vault types, limit 100", eventsQuery(model.VaultTypes()...) + "&limit=100", idsOf(evs, model.VaultTypes()...)},
		{"every known type, limit 100", allKnownQuery() + "&limit=100", idsOf(evs)},
		{"every known type, limit 7", allKnownQuery() + "&limit=7", idsOf(evs)},
		{"a rare type, default limit", "events=" + model.VaultBYOKKeyDeleted, idsOf(evs, model.VaultBYOKKeyDeleted)},
		{"asked with order=desc", eventsQuery(model.VaultTypes()...) + "&limit=100&order=desc", idsOf(evs, model.VaultTypes()...)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := pageAll(t, s, tt.query)
			if !slices.Equal(got, tt.want) {
				t.Fatalf("paged through %d events, want %d in order", len(got), len(tt.want))
			}
		})
	}
	t.Run("the last page is not empty when the stream ends on a page boundary", func(t *testing.T) {
		vault := idsOf(evs, model.VaultTypes()...)
		n := len(vault) - len(vault)%100
		a := getEvents(t, s, eventsQuery(model.VaultTypes()...)+"&limit=100&after="+vault[n-101])
		if a.ListMetadata.After == nil || *a.ListMetadata.After != vault[n-1] {
			t.Fatalf("after = %v, want %s: more events follow", a.ListMetadata.After, vault[n-1])
		}
	})
}

func TestAfter(t *testing.T) {
	t.Parallel()
	evs := NewGenerator(GenConfig{Seed: 6}).Take(50)
	s := New(Config{APIKey: testKey})
	s.Append(evs...)
	all := idsOf(evs)
	tests := []struct {
		name  string
		after string
		want  []string
	}{
		{"a known id", all[9], all[10:20]},
		{"an unknown id between two events", all[9] + "0", all[10:20]},
		{"below every id", "event_", all[:10]},
		{"the last id", all[49], nil},
		{"above every id", "event_ZZZZZZZZZZZZZZZZZZZZZZZZZZ", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := getEvents(t, s, allKnownQuery()+"&after="+url.QueryEscape(tt.after))
			if got := ids(t, a); !slices.Equal(got, tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
			if tt.want == nil {
				if a.Data == nil || len(a.Data) != 0 || a.ListMetadata.After != nil {
					t.Fatalf("caught up: want data [] and after null, got %d events, after %v", len(a.Data), a.ListMetadata.After)
				}
			}
		})
	}
}

func TestOrderIgnored(t *testing.T) {
	t.Parallel()
	s := New(Config{APIKey: testKey})
	s.Append(NewGenerator(GenConfig{Seed: 7}).Take(100)...)
	_, want := call(t, s, http.MethodGet, "/events?"+allKnownQuery()+"&limit=20", "Bearer "+testKey, nil)
	for _, order := range []string{"asc", "desc", "normal", "sideways"} {
		_, got := call(t, s, http.MethodGet, "/events?"+allKnownQuery()+"&limit=20&order="+order, "Bearer "+testKey, nil)
		if string(got) != string(want) {
			t.Errorf("order=%s changed the answer", order)
		}
	}
}

func TestRange(t *testing.T) {
	t.Parallel()
	evs := ticking(10, model.VaultDataRead) // event i at t0 + i s
	s := New(Config{APIKey: testKey})
	s.Append(evs...)
	at := func(sec int) string {
		return url.QueryEscape(t0.Add(time.Duration(sec) * time.Second).Format(time.RFC3339Nano))
	}
	all := idsOf(evs)
	tests := []struct {
		name  string
		query string
		want  []string
	}{
		{"start is inclusive", "range_start=" + at(3), all[3:]},
		{"end is exclusive", "range_end=" + at(5), all[:5]},
		{"both", "range_start=" + at(2) + "&range_end=" + at(4), all[2:4]},
		{"empty range", "range_start=" + at(4) + "&range_end=" + at(4), nil},
		{"with a cursor inside", "range_start=" + at(2) + "&range_end=" + at(8) + "&after=" + all[4], all[5:8]},
		{"with a cursor before", "range_start=" + at(6) + "&after=" + all[1], all[6:]},
		{"start between events", "range_start=" + url.QueryEscape(t0.Add(2500*time.Millisecond).Format(time.RFC3339Nano)), all[3:]},
		{"another zone", "range_start=" + url.QueryEscape(t0.Add(3*time.Second).In(time.FixedZone("", 3600)).Format(time.RFC3339Nano)), all[3:]},
		{"zone-less, with a space", "range_start=" + url.QueryEscape("2026-03-12 17:58:04.120"), all[3:]},
		{"a bare date", "range_end=2026-03-13", all},
		{"past the end", "range_start=2027-01-01T00:00:00Z", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := getEvents(t, s, "events=vault.data.read&limit=100&"+tt.query)
			if got := ids(t, a); !slices.Equal(got, tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
			if a.ListMetadata.After != nil {
				t.Fatalf("after = %s, want null: nothing more in range", *a.ListMetadata.After)
			}
		})
	}
	t.Run("more in range", func(t *testing.T) {
		a := getEvents(t, s, "events=vault.data.read&limit=2&range_start="+at(2)+"&range_end="+at(5))
		if a.ListMetadata.After == nil || *a.ListMetadata.After != all[3] {
			t.Fatalf("after = %v, want %s", a.ListMetadata.After, all[3])
		}
		a = getEvents(t, s, "events=vault.data.read&limit=2&range_start="+at(2)+"&range_end="+at(5)+"&after="+all[3])
		if got := ids(t, a); !slices.Equal(got, all[4:5]) || a.ListMetadata.After != nil {
			t.Fatalf("second page %v, after %v; want [%s] and null", got, a.ListMetadata.After, all[4])
		}
	})
}

func TestOrganizationFilter(t *testing.T) {
	t.Parallel()
	evs := NewGenerator(GenConfig{Seed: 8, VaultShare: 0.5}).Take(1500)
	s := New(Config{APIKey: testKey})
	s.Append(evs...)

	// An event is tied to an organization by data.organization_id,
	// data.key_context.organization_id, or being the organization.
	orgOf := func(ev Event) string {
		var env struct {
			Data struct {
				OrganizationID string `json:"organization_id"`
				KeyContext     struct {
					OrganizationID string `json:"organization_id"`
				} `json:"key_context"`
				Object string `json:"object"`
				ID     string `json:"id"`
			} `json:"data"`
		}
		if err := json.Unmarshal(ev.JSON, &env); err != nil {
			t.Fatal(err)
		}
		switch d := env.Data; {
		case d.OrganizationID != "":
			return d.OrganizationID
		case d.KeyContext.OrganizationID != "":
			return d.KeyContext.OrganizationID
		case d.Object == "organization":
			return d.ID
		}
		return ""
	}
	count := map[string]int{}
	for _, ev := range evs {
		count[orgOf(ev)]++
	}
	org := ""
	for o := range count {
		if o != "" && (org == "" || count[o] > count[org]) {
			org = o
		}
	}
	if org == "" || count[""] == 0 {
		t.Fatal("the stream needs events with and without organizations")
	}
	want := func(types ...string) []string {
		var out []string
		for _, ev := range evs {
			if orgOf(ev) == org && (len(types) == 0 || slices.Contains(types, ev.Type)) {
				out = append(out, ev.ID)
			}
		}
		return out
	}
	tests := []struct {
		name  string
		query string
		want  []string
	}{
		{"vault types", eventsQuery(model.VaultTypes()...) + "&organization_id=" + org, want(model.VaultTypes()...)},
		{"all types", allKnownQuery() + "&organization_id=" + org, want()},
		{"one type", "events=" + model.VaultBYOKKeyVerificationCompleted + "&organization_id=" + org, want(model.VaultBYOKKeyVerificationCompleted)},
		{"user-level events drop out", "events=user.created&organization_id=" + org, nil},
		{"unknown organization", allKnownQuery() + "&organization_id=org_unknown", nil},
	}
	// The same events appended as plain JSON (as POST /_fake/events does)
	// must be tied to the same organizations.
	parsed := New(Config{APIKey: testKey})
	for _, ev := range evs {
		parsed.Append(Event{JSON: bytes.Clone(ev.JSON)})
	}
	for _, tt := range tests {
		for name, srv := range map[string]*Server{"generated": s, "parsed": parsed} {
			t.Run(tt.name+", "+name, func(t *testing.T) {
				got := pageAll(t, srv, tt.query+"&limit=50")
				if !slices.Equal(got, tt.want) {
					t.Fatalf("got %d events, want %d", len(got), len(tt.want))
				}
			})
		}
	}
}

func TestHoldBack(t *testing.T) {
	t.Parallel()
	evs := ticking(10, model.VaultDataRead) // event i at t0 + i s
	clk := &clock{now: t0.Add(7 * time.Second)}
	s := New(Config{APIKey: testKey, HoldBack: 5 * time.Second, Now: clk.Now})
	s.Append(evs...)
	all := idsOf(evs)

	// At t0+7s, events up to t0+2s are old enough.
	if got := pageAll(t, s, "events=vault.data.read&limit=100"); !slices.Equal(got, all[:3]) {
		t.Fatalf("at t0+7s got %v, want the first 3", got)
	}
	a := getEvents(t, s, "events=vault.data.read&limit=2")
	if got := ids(t, a); !slices.Equal(got, all[:2]) || a.ListMetadata.After == nil {
		t.Fatalf("page of 2: %v, after %v; want 2 events and a cursor", got, a.ListMetadata.After)
	}
	a = getEvents(t, s, "events=vault.data.read&limit=2&after="+all[1])
	if got := ids(t, a); !slices.Equal(got, all[2:3]) || a.ListMetadata.After != nil {
		t.Fatalf("next page %v, after %v; want [%s] and null while the rest is held back", got, a.ListMetadata.After, all[2])
	}
	a = getEvents(t, s, "events=vault.data.read&after="+all[2])
	if len(a.Data) != 0 {
		t.Fatalf("held-back events served: %v", ids(t, a))
	}

	clk.Set(t0.Add(time.Minute))
	if got := pageAll(t, s, "events=vault.data.read&limit=100&after="+all[2]); !slices.Equal(got, all[3:]) {
		t.Fatalf("after the hold-back got %v, want the other 7", got)
	}
	if s.Len() != 10 {
		t.Fatalf("Len = %d, want 10: held-back events are held", s.Len())
	}
}

func TestRetention(t *testing.T) {
	t.Parallel()
	evs := ticking(10, model.VaultDataRead)
	clk := &clock{now: t0.Add(12 * time.Second)}
	s := New(Config{APIKey: testKey, Retention: 5 * time.Second, Now: clk.Now})
	s.Append(evs...)
	all := idsOf(evs)
	if got := pageAll(t, s, "events=vault.data.read&limit=100"); !slices.Equal(got, all[7:]) {
		t.Fatalf("got %v, want events from t0+7s on", got)
	}
	if got := ids(t, getEvents(t, s, "events=vault.data.read&after="+all[1])); !slices.Equal(got, all[7:]) {
		t.Fatalf("a forgotten cursor got %v, want the oldest retained events", got)
	}
}

func TestAppend(t *testing.T) {
	t.Parallel()
	base := ticking(3, model.VaultDataRead)
	tests := []struct {
		name string
		ev   Event
	}{
		{"same id", base[2]},
		{"smaller id", base[1]},
		{"created_at goes back", Event{ID: base[2].ID + "0", Type: "user.created", CreatedAt: t0}},
		{"no id", Event{Type: "user.created", CreatedAt: t0.Add(time.Hour)}},
		{"no type", Event{ID: base[2].ID + "0", CreatedAt: t0.Add(time.Hour)}},
		{"no time", Event{ID: base[2].ID + "0", Type: "user.created"}},
		{"JSON not JSON", Event{JSON: []byte(`{"id":`)}},
		{"JSON without created_at", Event{JSON: []byte(`{"id":"event_9","event":"user.created"}`)}},
		{"JSON disagrees with ID", Event{ID: "event_8", JSON: []byte(`{"id":"event_9","event":"user.created","created_at":"2027-01-01T00:00:00.000Z"}`)}},
		{"JSON disagrees with Type", Event{Type: "user.deleted", JSON: []byte(`{"id":"event_9","event":"user.created","created_at":"2027-01-01T00:00:00.000Z"}`)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := New(Config{APIKey: testKey})
			s.Append(base...)
			func() {
				defer func() {
					if recover() == nil {
						t.Fatal("Append did not panic")
					}
				}()
				// A good event first: nothing of a rejected batch is kept.
				s.Append(Event{ID: base[2].ID + "00", Type: "user.created", CreatedAt: t0.Add(time.Hour)}, tt.ev)
			}()
			if s.Len() != 3 {
				t.Fatalf("Len = %d after a rejected Append, want 3", s.Len())
			}
		})
	}

	t.Run("JSON is served verbatim and fills the fields", func(t *testing.T) {
		raw := []byte("{ \"id\": \"event_01KKHK5H507HH5F37SMXQP980Q\",\n  \"event\": \"vault.names.listed\",\n" +
			"  \"created_at\": \"2026-03-12 17:58:01.120\", \"environment_id\": \"environment_1\",\n" +
			"  \"data\": {\"actor_id\": \"user_1\", \"actor_source\": \"admin_portal\", \"actor_name\": \"Zoë\"} }")
		s := New(Config{APIKey: testKey})
		s.Append(Event{JSON: raw})
		a := getEvents(t, s, "events=vault.names.listed")
		if len(a.Data) != 1 || string(a.Data[0]) != string(raw) {
			t.Fatalf("served %s, want the appended bytes", a.Data)
		}
	})
	t.Run("an event without JSON is served as a minimal envelope", func(t *testing.T) {
		s := New(Config{APIKey: testKey})
		s.Append(base[0])
		a := getEvents(t, s, "events=vault.data.read")
		var env envelope
		if len(a.Data) != 1 || json.Unmarshal(a.Data[0], &env) != nil {
			t.Fatalf("served %s", a.Data)
		}
		if env.Object != "event" || env.ID != base[0].ID || env.Event != model.VaultDataRead ||
			env.CreatedAt != "2026-03-12T17:58:01.120Z" || string(env.Data) != "{}" {
			t.Fatalf("served %s", a.Data[0])
		}
	})
}

func TestRoutes(t *testing.T) {
	t.Parallel()
	s := New(Config{APIKey: testKey})
	tests := []struct {
		method, target string
		status         int
	}{
		{http.MethodPost, "/events?events=vault.data.read", http.StatusMethodNotAllowed},
		{http.MethodGet, "/events/", http.StatusNotFound},
		{http.MethodGet, "/organizations", http.StatusNotFound},
		{http.MethodGet, "/_fake/nothing", http.StatusNotFound},
		{http.MethodGet, "/_fake/events", http.StatusMethodNotAllowed},
		{http.MethodPost, "/_fake/stats", http.StatusMethodNotAllowed},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.target, func(t *testing.T) {
			resp, body := call(t, s, tt.method, tt.target, "Bearer "+testKey, nil)
			if resp.StatusCode != tt.status || resp.Header.Get("X-Request-ID") == "" || !json.Valid(body) {
				t.Fatalf("status %d, X-Request-ID %q, body %s; want %d with an id and a JSON body",
					resp.StatusCode, resp.Header.Get("X-Request-ID"), body, tt.status)
			}
		})
	}
}
