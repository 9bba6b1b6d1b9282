package fakeapi

import (
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/syncer-audit/syncer/internal/model"
)

// Config sets up a Server. Only APIKey is required.
type Config struct {
	// APIKey is the only Bearer token accepted; anything else gets 401.
	APIKey string
	// HoldBack keeps an event unserved until Now() - HoldBack has reached
	// its created_at, as the live API holds new events back from cursor
	// reads. Zero (the default) serves every appended event at once,
	// whatever its created_at, so tests need no clock.
	HoldBack time.Duration
	// Retention, when positive, stops serving events whose created_at is
	// older than Now() - Retention, as the live API forgets events after
	// its retention window (30 or 90 days). A cursor that points into the
	// forgotten part still works by position and lands on the oldest
	// retained event: the gap is for the client to notice.
	Retention time.Duration
	// Latency is added before answering each /events request, and is cut
	// short when the client gives up.
	Latency time.Duration
	// Now is the clock for HoldBack and Retention (default time.Now).
	Now func() time.Time
	// Logger gets one debug line per request (default: discards).
	Logger *slog.Logger
	// Generator feeds Server.Generate and POST /_fake/events?n=N, so the
	// stream can grow while the fake runs. Taking events from it directly
	// as well is safe, but they must be appended before any later ones.
	Generator *Generator
}

// Server is the fake Events API. It is an http.Handler serving GET /events
// and the /_fake/ control routes; mount it on an httptest.Server.
// All methods are safe for concurrent use.
type Server struct {
	apiKey    []byte
	holdBack  time.Duration
	retention time.Duration
	latency   time.Duration
	now       func() time.Time
	log       *slog.Logger

	genMu sync.Mutex
	gen   *Generator

	// mu guards the stream. Events are only ever appended, so a reader
	// takes slice headers under the read lock and scans them unlocked:
	// appends write beyond the lengths it saw.
	mu      sync.RWMutex
	events  []stored
	typeIDs map[string]int32
	byType  [][]int32 // per type id: indexes into events, increasing
	orgIDs  map[string]int32
	byOrg   [][]int32 // per org id (0 = none, unused): indexes into events

	ctlMu  sync.Mutex
	faults []queuedFault
	stats  Stats
}

// stored is an event as held in memory: 56 bytes besides its JSON, so a
// million events cost little more than their text.
type stored struct {
	id      string
	json    []byte
	created int64 // Unix nanoseconds
	typ     int32 // index into Server.byType
}

// Stats says what the fake has answered, for tests that assert how a client
// behaved (how many retries, which statuses it saw, what it asked for).
type Stats struct {
	// Requests counts GET /events requests, including faulted and
	// rejected ones.
	Requests int `json:"requests"`
	// ByStatus counts the answers the client received in full, by HTTP
	// status. Truncated pages count as the 200 they claim to be.
	ByStatus map[int]int `json:"by_status"`
	// Pages counts complete 200 answers; EventsServed the events in them.
	Pages        int `json:"pages"`
	EventsServed int `json:"events_served"`
	// FaultsApplied counts requests a Fault changed; FaultsPending the
	// requests still to be faulted.
	FaultsApplied int `json:"faults_applied"`
	FaultsPending int `json:"faults_pending"`
	// Resets counts connections killed mid-body by a Reset fault; Canceled
	// counts requests the client abandoned during Latency or a Delay.
	// Neither is in ByStatus.
	Resets   int `json:"resets"`
	Canceled int `json:"canceled"`
	// Events is the length of the stream, served or not.
	Events int `json:"events"`
	// LastQuery is the raw query string of the latest /events request,
	// to check what a client sends (order=asc, limit=100, the type filter).
	LastQuery string `json:"last_query"`
}

// errOrder is wrapped by the error of an append that would put an event
// before or at an existing one: the stream is kept sorted by id, and
// created_at must not go backwards.
var errOrder = errors.New("events out of order")

// New returns a Server for cfg. It panics when APIKey is empty or a
// duration is negative: a fake set up wrongly is a bug in the test.
func New(cfg Config) *Server {
	switch {
	case cfg.APIKey == "":
		panic("fakeapi: Config.APIKey is required")
	case cfg.HoldBack < 0:
		panic("fakeapi: Config.HoldBack is negative")
	case cfg.Retention < 0:
		panic("fakeapi: Config.Retention is negative")
	case cfg.Latency < 0:
		panic("fakeapi: Config.Latency is negative")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Server{
		apiKey:    []byte(cfg.APIKey),
		holdBack:  cfg.HoldBack,
		retention: cfg.Retention,
		latency:   cfg.Latency,
		now:       cfg.Now,
		log:       cfg.Logger,
		gen:       cfg.Generator,
		typeIDs:   map[string]int32{},
		orgIDs:    map[string]int32{"": 0},
		byOrg:     [][]int32{nil},
		stats:     Stats{ByStatus: map[int]int{}},
	}
}

// Append adds events to the end of the stream. Each event needs an ID, a
// Type and a CreatedAt, or JSON holding them (then the empty fields are
// filled from it, and fields given must agree with it); an event with no
// JSON is served as a minimal envelope with empty data and created_at cut
// to the millisecond. Ids must strictly
// increase and created_at must not go backwards, within evs and after the
// events already held.
//
// Append panics when these rules are broken, before adding anything: the
// caller is a test whose stream is wrong. POST /_fake/events checks the
// same rules and answers 400 or 409 instead.
func (s *Server) Append(evs ...Event) {
	if err := s.append(evs); err != nil {
		panic("fakeapi: " + err.Error())
	}
}

// Generate appends the next n events of Config.Generator and returns them.
// Taking and appending happen under one lock, shared with POST
// /_fake/events?n=N, so a process may grow the stream on a timer while the
// control route is used; Append(gen.Next()) from two places could
// interleave and fail. It panics like Append, and when there is no
// Generator.
func (s *Server) Generate(n int) []Event {
	evs, err := s.generate(n)
	if err != nil {
		panic("fakeapi: " + err.Error())
	}
	return evs
}

func (s *Server) generate(n int) ([]Event, error) {
	s.genMu.Lock()
	defer s.genMu.Unlock()
	if s.gen == nil {
		return nil, errors.New("no generator: start the fake with Config.Generator set")
	}
	evs := s.gen.Take(n)
	return evs, s.append(evs)
}

// Len returns the number of events held, served or not.
func (s *Server) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.events)
}

// Stats returns a snapshot of what the fake has answered.
func (s *Server) Stats() Stats {
	s.ctlMu.Lock()
	st := s.stats
	st.ByStatus = maps.Clone(s.stats.ByStatus)
	for _, q := range s.faults {
		st.FaultsPending += q.left
	}
	s.ctlMu.Unlock()
	st.Events = s.Len()
	return st
}

func (s *Server) append(evs []Event) error {
	if len(evs) == 0 {
		return nil
	}
	prepared := make([]Event, len(evs))
	for i, ev := range evs {
		p, err := prepare(ev)
		if err != nil {
			return fmt.Errorf("append event %d: %w", i, err)
		}
		if i > 0 {
			if err := inOrder(prepared[i-1], p); err != nil {
				return fmt.Errorf("append event %d: %w", i, err)
			}
		}
		prepared[i] = p
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if n := len(s.events); n > 0 {
		last := s.events[n-1]
		prev := Event{ID: last.id, CreatedAt: time.Unix(0, last.created)}
		if err := inOrder(prev, prepared[0]); err != nil {
			return fmt.Errorf("append event 0: %w", err)
		}
	}
	for _, ev := range prepared {
		i := int32(len(s.events))
		t, ok := s.typeIDs[ev.Type]
		if !ok {
			t = int32(len(s.byType))
			s.typeIDs[ev.Type] = t
			s.byType = append(s.byType, nil)
		}
		s.byType[t] = append(s.byType[t], i)
		o, ok := s.orgIDs[ev.org]
		if !ok {
			o = int32(len(s.byOrg))
			s.orgIDs[ev.org] = o
			s.byOrg = append(s.byOrg, nil)
		}
		if o != 0 {
			s.byOrg[o] = append(s.byOrg[o], i)
		}
		s.events = append(s.events, stored{id: ev.ID, json: ev.JSON, created: ev.CreatedAt.UnixNano(), typ: t})
	}
	return nil
}

func inOrder(prev, next Event) error {
	if next.ID <= prev.ID {
		return fmt.Errorf("id %s is not after %s: %w", next.ID, prev.ID, errOrder)
	}
	if next.CreatedAt.Before(prev.CreatedAt) {
		return fmt.Errorf("event %s: created_at %s is before %s's: %w",
			next.ID, next.CreatedAt.Format(time.RFC3339Nano), prev.ID, errOrder)
	}
	return nil
}

// prepare checks an event and fills what Append needs from its JSON.
func prepare(ev Event) (Event, error) {
	if len(ev.JSON) > 0 && ev.made == &ev.JSON[0] && ev.madeLen == len(ev.JSON) {
		return ev, nil // written by Generator, unchanged
	}
	if len(ev.JSON) == 0 {
		if ev.ID == "" || ev.Type == "" || ev.CreatedAt.IsZero() {
			return Event{}, errors.New("an event without JSON needs ID, Type and CreatedAt")
		}
		b := append([]byte(`{"object":"event","id":`), appendString(nil, ev.ID)...)
		b = append(append(b, `,"event":`...), appendString(nil, ev.Type)...)
		b = append(b, `,"data":{},"created_at":`...)
		b = append(appendString(b, ev.CreatedAt.UTC().Format(createdAtLayout)), '}')
		ev.JSON = b
		ev.CreatedAt = ev.CreatedAt.Truncate(time.Millisecond)
		return ev, nil
	}
	p, err := ParseEvent(ev.JSON)
	if err != nil {
		return Event{}, err
	}
	switch {
	case ev.ID != "" && ev.ID != p.ID:
		return Event{}, fmt.Errorf("ID %s differs from the JSON's id %s", ev.ID, p.ID)
	case ev.Type != "" && ev.Type != p.Type:
		return Event{}, fmt.Errorf("event %s: Type %s differs from the JSON's event %s", p.ID, ev.Type, p.Type)
	case !ev.CreatedAt.IsZero() && !ev.CreatedAt.Equal(p.CreatedAt):
		return Event{}, fmt.Errorf("event %s: CreatedAt differs from the JSON's created_at", p.ID)
	}
	return p, nil
}

// ServeHTTP answers GET /events and the /_fake/ control routes. Every
// answer carries an X-Request-ID, errors included, as the live API's do.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	reqID := "req_" + rand.Text()
	w.Header().Set("X-Request-ID", reqID)
	switch {
	case r.URL.Path == "/events":
		s.serveEvents(w, r, reqID)
	case strings.HasPrefix(r.URL.Path, "/_fake/"):
		s.serveControl(w, r)
	default:
		writeBody(w, http.StatusNotFound, "application/json", apiError("Not Found", "not_found"))
	}
}

func (s *Server) serveEvents(w http.ResponseWriter, r *http.Request, reqID string) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		writeBody(w, http.StatusMethodNotAllowed, "application/json", apiError("Method Not Allowed", "method_not_allowed"))
		return
	}
	f, faulted := s.takeFault(r.URL.RawQuery)
	log := s.log.With("request_id", reqID, "fault", faulted)

	if err := sleep(r.Context(), s.latency+f.Delay); err != nil {
		s.record(func(st *Stats) { st.Canceled++ })
		log.Debug("events request abandoned by client", "err", err)
		return
	}

	var (
		status  int
		ctype   = "application/json"
		body    []byte
		nEvents int
	)
	if f.Status != 0 {
		status, ctype, body = f.response()
	} else {
		status, body, nEvents = s.answer(r, f.Reorder)
	}
	if f.RetryAfter != "" {
		w.Header().Set("Retry-After", f.RetryAfter)
	}

	switch {
	case f.Reset:
		s.record(func(st *Stats) { st.Resets++ })
		log.Debug("events request reset", "status", status)
		w.Header().Set("Content-Type", ctype)
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(status)
		_, _ = w.Write(body[:len(body)/2])
		_ = http.NewResponseController(w).Flush()
		panic(http.ErrAbortHandler)
	case f.Truncate:
		body = body[:len(body)/2]
		s.record(func(st *Stats) { st.ByStatus[status]++ })
		log.Debug("events request truncated", "status", status)
	default:
		s.record(func(st *Stats) {
			st.ByStatus[status]++
			if status == http.StatusOK {
				st.Pages++
				st.EventsServed += nEvents
			}
		})
		log.Debug("events request", "status", status, "events", nEvents)
	}
	writeBody(w, status, ctype, body)
}

// answer is the API proper: authentication, validation, one page.
func (s *Server) answer(r *http.Request, reorder bool) (status int, body []byte, n int) {
	if !s.authorized(r.Header.Get("Authorization")) {
		return http.StatusUnauthorized, apiError("Unauthorized", "unauthorized"), 0
	}
	q, status, body := parseQuery(r.URL.Query())
	if status != 0 {
		return status, body, 0
	}
	evs, more := s.page(q, s.now())
	after := ""
	if more {
		after = evs[len(evs)-1].id
	}
	if reorder && len(evs) >= 2 {
		evs[0], evs[1] = evs[1], evs[0]
	}
	return http.StatusOK, encodePage(evs, after), len(evs)
}

func (s *Server) authorized(h string) bool {
	scheme, token, ok := strings.Cut(h, " ")
	return ok && strings.EqualFold(scheme, "Bearer") &&
		subtle.ConstantTimeCompare([]byte(strings.TrimSpace(token)), s.apiKey) == 1
}

// query is a validated GET /events request.
type query struct {
	types      []string // distinct
	limit      int
	after      string // "" = from the start
	start, end int64  // Unix nanoseconds
	hasStart   bool
	hasEnd     bool
	org        string
}

// parseQuery validates the parameters; a non-zero status comes with the
// error body to send.
func parseQuery(v url.Values) (q query, status int, body []byte) {
	var invalid []fieldError
	seen := map[string]bool{}
	for _, key := range []string{"events", "events[]"} {
		for _, list := range v[key] {
			for name := range strings.SplitSeq(list, ",") {
				name = strings.TrimSpace(name)
				if name != "" && !seen[name] {
					seen[name] = true
					q.types = append(q.types, name)
				}
			}
		}
	}
	if len(q.types) == 0 {
		invalid = append(invalid, fieldError{"events", "required"})
	}
	q.limit = 10
	if l := v.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 100 {
			invalid = append(invalid, fieldError{"limit", "invalid"})
		}
		q.limit = n
	}
	q.after = v.Get("after")
	for _, r := range []struct {
		key string
		at  *int64
		has *bool
	}{{"range_start", &q.start, &q.hasStart}, {"range_end", &q.end, &q.hasEnd}} {
		if s := v.Get(r.key); s != "" {
			t, err := parseTime(s)
			if err != nil {
				invalid = append(invalid, fieldError{r.key, "invalid"})
				continue
			}
			*r.at, *r.has = t.UnixNano(), true
		}
	}
	if q.hasStart && q.hasEnd && q.end < q.start {
		invalid = append(invalid, fieldError{"range_end", "invalid"})
	}
	q.org = v.Get("organization_id")
	if len(invalid) > 0 {
		return q, http.StatusUnprocessableEntity, validationError(invalid)
	}
	for _, t := range q.types {
		if !model.IsKnownType(t) {
			// The live API's message names the culprit in some versions
			// and not others; the fake names none, so no client comes to
			// depend on it.
			return q, http.StatusBadRequest, apiError("Invalid events request", "invalid_events_request")
		}
	}
	return q, 0, nil
}

// page returns up to q.limit matching events in id order, and whether a
// further matching event is servable now. It copies only the page: the
// bounds are found by binary search, and a rare type (or an organization)
// is found through its index rather than by walking the stream, so pages
// stay cheap over a million events.
func (s *Server) page(q query, now time.Time) ([]stored, bool) {
	s.mu.RLock()
	all := s.events
	typeOK := make([]bool, len(s.byType))
	var lists [][]int32 // index lists to merge
	wanted := 0         // events of the wanted types
	for _, t := range q.types {
		if id, ok := s.typeIDs[t]; ok {
			typeOK[id] = true
			lists = append(lists, s.byType[id])
			wanted += len(s.byType[id])
		}
	}
	byOrg := q.org != ""
	if byOrg {
		lists = nil
		if o := s.orgIDs[q.org]; o != 0 {
			lists = [][]int32{s.byOrg[o]}
		}
	}
	s.mu.RUnlock()

	lo, hi := 0, len(all)
	if q.after != "" {
		lo = sort.Search(len(all), func(i int) bool { return all[i].id > q.after })
	}
	atOrAfter := func(t int64) int {
		return sort.Search(len(all), func(i int) bool { return all[i].created >= t })
	}
	if q.hasStart {
		lo = max(lo, atOrAfter(q.start))
	}
	if s.retention > 0 {
		lo = max(lo, atOrAfter(now.Add(-s.retention).UnixNano()))
	}
	if s.holdBack > 0 {
		hi = min(hi, atOrAfter(now.Add(-s.holdBack).UnixNano()+1))
	}
	if q.hasEnd {
		hi = min(hi, atOrAfter(q.end))
	}

	out := make([]stored, 0, q.limit+1)
	if !byOrg && wanted*4 >= len(all) {
		// The wanted types make up much of the stream (every type, or the
		// Vault types): walking it beats merging many index lists.
		for i := lo; i < hi && len(out) <= q.limit; i++ {
			if typeOK[all[i].typ] {
				out = append(out, all[i])
			}
		}
	} else {
		pos := make([]int, len(lists))
		for i, l := range lists {
			pos[i] = sort.Search(len(l), func(j int) bool { return int(l[j]) >= lo })
		}
		for len(out) <= q.limit {
			best, bestAt := -1, hi
			for i, l := range lists {
				for byOrg && pos[i] < len(l) && int(l[pos[i]]) < hi && !typeOK[all[l[pos[i]]].typ] {
					pos[i]++
				}
				if pos[i] < len(l) && int(l[pos[i]]) < bestAt {
					best, bestAt = i, int(l[pos[i]])
				}
			}
			if best < 0 {
				break
			}
			out = append(out, all[bestAt])
			pos[best]++
		}
	}
	if len(out) > q.limit {
		return out[:q.limit], true
	}
	return out, false
}

// encodePage writes a list answer; after "" is written as null.
func encodePage(evs []stored, after string) []byte {
	size := 96 + len(after)
	for _, e := range evs {
		size += len(e.json) + 1
	}
	b := make([]byte, 0, size)
	b = append(b, `{"object":"list","data":[`...)
	for i, e := range evs {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, e.json...)
	}
	b = append(b, `],"list_metadata":{"before":null,"after":`...)
	if after == "" {
		b = append(b, "null"...)
	} else {
		b = appendString(b, after)
	}
	return append(b, "}}"...)
}

type fieldError struct{ field, code string }

func apiError(message, code string) []byte {
	return appendObject(nil, []field{{"message", message}, {"code", code}})
}

func validationError(errs []fieldError) []byte {
	list := make([]any, len(errs))
	for i, e := range errs {
		list[i] = []field{{"field", e.field}, {"code", e.code}}
	}
	return appendObject(nil, []field{
		{"message", "Validation failed"}, {"code", "invalid_request_parameters"}, {"errors", list},
	})
}

func writeBody(w http.ResponseWriter, status int, ctype string, body []byte) {
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func (s *Server) record(f func(*Stats)) {
	s.ctlMu.Lock()
	defer s.ctlMu.Unlock()
	f(&s.stats)
}
