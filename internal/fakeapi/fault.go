package fakeapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// Fault changes the answer to the next /events request, to test how a
// client copes with what goes wrong in production: rate limits, gateway
// errors, timeouts, cut-off bodies, dropped connections, pages out of order.
// The zero Fault lets one request through unchanged.
type Fault struct {
	// Status, when non-zero, is answered instead of the page, before the
	// key is even checked (as a rate limiter or gateway would).
	Status int
	// RetryAfter is sent as the Retry-After header when non-empty: seconds
	// ("2") or an HTTP date.
	RetryAfter string
	// Body replaces the default body of a Status answer. The default is a
	// WorkOS error object, except for 502 and 504, which get the HTML page
	// a proxy in front of the API would send.
	Body string
	// Delay is waited before answering, on top of Config.Latency; a client
	// that gives up first ends the wait. Without a Status, the normal
	// answer follows the wait.
	Delay time.Duration
	// Truncate sends only the first half of the answer's body, with a
	// matching Content-Length: a complete HTTP answer (200, for a page)
	// whose JSON is cut off.
	Truncate bool
	// Reset announces the whole body, sends half of it and then drops the
	// connection: the client sees an unexpected EOF.
	Reset bool
	// Reorder swaps the first two events of a page, so that ids and
	// created_at go backwards within it: what a client must refuse to store.
	Reorder bool
	// Repeat applies the fault to this many consecutive requests
	// (default 1).
	Repeat int
}

type queuedFault struct {
	Fault
	left int
}

// Inject queues faults; each applies to the next /events request not yet
// claimed by an earlier fault, in order. Only GET /events consumes them,
// never the control routes. Inject panics on a Status outside 100..599
// or a negative Delay or Repeat.
func (s *Server) Inject(faults ...Fault) {
	for _, f := range faults {
		if err := f.validate(); err != nil {
			panic("fakeapi: inject: " + err.Error())
		}
	}
	s.ctlMu.Lock()
	defer s.ctlMu.Unlock()
	for _, f := range faults {
		s.faults = append(s.faults, queuedFault{Fault: f, left: max(f.Repeat, 1)})
	}
}

func (f Fault) validate() error {
	switch {
	case f.Status != 0 && (f.Status < 100 || f.Status > 599):
		return fmt.Errorf("status %d is not an HTTP status", f.Status)
	case f.Delay < 0:
		return fmt.Errorf("delay %s is negative", f.Delay)
	case f.Repeat < 0:
		return fmt.Errorf("repeat %d is negative", f.Repeat)
	}
	return nil
}

// takeFault counts an /events request and claims the fault for it, if any.
func (s *Server) takeFault(rawQuery string) (Fault, bool) {
	s.ctlMu.Lock()
	defer s.ctlMu.Unlock()
	s.stats.Requests++
	s.stats.LastQuery = rawQuery
	if len(s.faults) == 0 {
		return Fault{}, false
	}
	f := s.faults[0].Fault
	s.faults[0].left--
	if s.faults[0].left == 0 {
		s.faults = s.faults[1:]
	}
	s.stats.FaultsApplied++
	return f, true
}

// response is the answer of a Status fault.
func (f Fault) response() (status int, ctype string, body []byte) {
	if f.Body != "" {
		ctype = "text/plain; charset=utf-8"
		switch {
		case json.Valid([]byte(f.Body)):
			ctype = "application/json"
		case strings.HasPrefix(strings.TrimSpace(f.Body), "<"):
			ctype = "text/html; charset=utf-8"
		}
		return f.Status, ctype, []byte(f.Body)
	}
	text := http.StatusText(f.Status)
	if text == "" {
		text = fmt.Sprintf("Status %d", f.Status)
	}
	switch f.Status {
	case http.StatusBadGateway, http.StatusGatewayTimeout:
		page := fmt.Sprintf("<html>\r\n<head><title>%d %s</title></head>\r\n<body>\r\n<center><h1>%d %s</h1></center>\r\n</body>\r\n</html>\r\n",
			f.Status, text, f.Status, text)
		return f.Status, "text/html; charset=utf-8", []byte(page)
	case http.StatusTooManyRequests:
		return f.Status, "application/json", apiError("Too many requests", "rate_limit_exceeded")
	case http.StatusInternalServerError:
		return f.Status, "application/json", apiError("Internal server error", "server_error")
	}
	code := strings.ToLower(strings.NewReplacer(" ", "_", "-", "_", "'", "").Replace(text))
	return f.Status, "application/json", apiError(text, code)
}

// sleep waits d, or less if ctx ends first.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
