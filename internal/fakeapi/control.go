package fakeapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// maxGenerate bounds POST /_fake/events?n=N: ten million events is several
// gigabytes, more than any benchmark here needs.
const maxGenerate = 10_000_000

// serveControl answers the /_fake/ routes, which let another process (the
// demo, a benchmark driver) grow the stream, queue faults and read stats.
// They need no key and never consume faults.
func (s *Server) serveControl(w http.ResponseWriter, r *http.Request) {
	method := map[string]string{
		"/_fake/events": http.MethodPost,
		"/_fake/faults": http.MethodPost,
		"/_fake/stats":  http.MethodGet,
	}[r.URL.Path]
	switch {
	case method == "":
		writeBody(w, http.StatusNotFound, "application/json", apiError("Not Found", "not_found"))
		return
	case r.Method != method:
		w.Header().Set("Allow", method)
		writeBody(w, http.StatusMethodNotAllowed, "application/json", apiError("Method Not Allowed", "method_not_allowed"))
		return
	}
	switch r.URL.Path {
	case "/_fake/events":
		s.controlEvents(w, r)
	case "/_fake/faults":
		s.controlFaults(w, r)
	case "/_fake/stats":
		writeJSON(w, http.StatusOK, s.Stats())
	}
}

// controlEvents appends N generated events (?n=N) or the JSON array of
// envelopes in the body.
func (s *Server) controlEvents(w http.ResponseWriter, r *http.Request) {
	var (
		added int
		err   error
	)
	if n := r.URL.Query().Get("n"); n != "" {
		added, err = s.appendGenerated(n)
	} else {
		added, err = s.appendBody(w, r)
	}
	var status int
	switch {
	case err == nil:
		resp := struct {
			Appended int     `json:"appended"`
			Len      int     `json:"len"`
			LastID   *string `json:"last_id"`
		}{Appended: added}
		s.mu.RLock()
		if resp.Len = len(s.events); resp.Len > 0 {
			id := s.events[resp.Len-1].id
			resp.LastID = &id
		}
		s.mu.RUnlock()
		writeJSON(w, http.StatusOK, resp)
		return
	case errors.Is(err, errOrder):
		status = http.StatusConflict
	default:
		status = http.StatusBadRequest
	}
	s.log.Debug("control append rejected", "err", err)
	writeBody(w, status, "application/json", apiError(err.Error(), "invalid_request"))
}

func (s *Server) appendGenerated(nParam string) (int, error) {
	n, err := strconv.Atoi(nParam)
	if err != nil || n < 1 || n > maxGenerate {
		return 0, fmt.Errorf("n must be an integer in 1..%d, got %q", maxGenerate, nParam)
	}
	evs, err := s.generate(n)
	return len(evs), err
}

func (s *Server) appendBody(w http.ResponseWriter, r *http.Request) (int, error) {
	var raws []json.RawMessage
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<30)).Decode(&raws); err != nil {
		return 0, fmt.Errorf("body must be a JSON array of event envelopes: %w", err)
	}
	evs := make([]Event, len(raws))
	for i, raw := range raws {
		ev, err := ParseEvent(raw)
		if err != nil {
			return 0, fmt.Errorf("event %d: %w", i, err)
		}
		evs[i] = ev
	}
	return len(evs), s.append(evs)
}

// faultJSON is a Fault as POST /_fake/faults takes it.
type faultJSON struct {
	Status     int    `json:"status"`
	RetryAfter string `json:"retry_after"`
	Body       string `json:"body"`
	DelayMS    int64  `json:"delay_ms"`
	Truncate   bool   `json:"truncate"`
	Reset      bool   `json:"reset"`
	Reorder    bool   `json:"reorder"`
	Repeat     int    `json:"repeat"`
}

func (s *Server) controlFaults(w http.ResponseWriter, r *http.Request) {
	var in []faultJSON
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		writeBody(w, http.StatusBadRequest, "application/json",
			apiError("body must be a JSON array of faults: "+err.Error(), "invalid_request"))
		return
	}
	faults := make([]Fault, len(in))
	for i, f := range in {
		faults[i] = Fault{
			Status: f.Status, RetryAfter: f.RetryAfter, Body: f.Body,
			Delay:    time.Duration(f.DelayMS) * time.Millisecond,
			Truncate: f.Truncate, Reset: f.Reset, Reorder: f.Reorder, Repeat: f.Repeat,
		}
		if err := faults[i].validate(); err != nil {
			writeBody(w, http.StatusBadRequest, "application/json",
				apiError(fmt.Sprintf("fault %d: %v", i, err), "invalid_request"))
			return
		}
	}
	s.Inject(faults...)
	writeJSON(w, http.StatusOK, struct {
		Queued  int `json:"queued"`
		Pending int `json:"pending"`
	}{len(faults), s.Stats().FaultsPending})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		panic("fakeapi: encode control answer: " + err.Error())
	}
	writeBody(w, status, "application/json", b)
}
