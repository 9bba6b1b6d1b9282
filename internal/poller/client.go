package poller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/syncer-audit/syncer/internal/model"
)

// ClientConfig configures the Events API client. Zero fields take the
// defaults given.
type ClientConfig struct {
	BaseURL string // default https://api.workos.com
	APIKey  string // required; sent only in the Authorization header
	// HTTPClient defaults to one with TLS verification on, as always.
	HTTPClient *http.Client
	// RequestTimeout bounds one attempt, body included. Default 30s.
	RequestTimeout time.Duration
	// MaxAttempts bounds the attempts at one request, the first included.
	// Default 8.
	MaxAttempts int
	// MinBackoff and MaxBackoff bound the jittered exponential wait
	// between attempts. Defaults 500ms and 30s.
	MinBackoff, MaxBackoff time.Duration
	// MaxRetryAfter caps how long a Retry-After answer is honoured.
	// Default 5m.
	MaxRetryAfter time.Duration
	// MaxResponseBytes bounds a response body. Default 64 MiB.
	MaxResponseBytes int64
	// RateLimit is the request budget per minute, retries included; the
	// API allows 6,000 per key, shared with every other call made with
	// it. Default 6000.
	RateLimit int
	// Sleep waits between attempts; tests replace it. Default: a timer
	// that ctx cancels.
	Sleep func(ctx context.Context, d time.Duration) error
	// Observe, if set, sees every attempt: for metrics.
	Observe func(Attempt)
	Logger  *slog.Logger
}

// Attempt describes one HTTP attempt at a request.
type Attempt struct {
	Status int           // the HTTP status; 0 when no answer came (network error, cut body)
	Err    error         // nil on success
	Wait   time.Duration // the wait before the next attempt; 0 when none follows
}

func (c *ClientConfig) fill() error {
	if c.BaseURL == "" {
		c.BaseURL = "https://api.workos.com"
	}
	u, err := url.Parse(c.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		// The URL may carry credentials: do not repeat it.
		return errors.New("client config: BaseURL is not an http(s) URL such as https://api.workos.com")
	}
	if strings.HasSuffix(strings.TrimRight(u.Path, "/"), "/events") {
		return fmt.Errorf("client config: BaseURL %s should be the API's root, without /events", u.Redacted())
	}
	if c.APIKey == "" {
		return errors.New("client config: APIKey is empty (set WORKOS_API_KEY)")
	}
	if strings.ContainsFunc(c.APIKey, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return errors.New("client config: the API key holds a space or a control character (a stray newline in WORKOS_API_KEY?)")
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{}
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.RequestTimeout, 30*time.Second)
	def(&c.MinBackoff, 500*time.Millisecond)
	def(&c.MaxBackoff, 30*time.Second)
	def(&c.MaxRetryAfter, 5*time.Minute)
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = 8
	}
	if c.MaxResponseBytes <= 0 {
		c.MaxResponseBytes = 64 << 20
	}
	if c.RateLimit <= 0 {
		c.RateLimit = 6000
	}
	if c.Sleep == nil {
		c.Sleep = sleep
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Client calls GET /events, retrying what retrying can fix.
type Client struct {
	cfg      ClientConfig
	endpoint string
	budget   *limiter
}

// NewClient checks the configuration and returns a client.
func NewClient(cfg ClientConfig) (*Client, error) {
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	return &Client{cfg: cfg, endpoint: strings.TrimRight(cfg.BaseURL, "/") + "/events",
		budget: newLimiter(time.Minute/time.Duration(cfg.RateLimit), 10)}, nil
}

// ListParams selects a page of events.
type ListParams struct {
	Events     []string
	Limit      int
	After      string
	RangeStart time.Time // used when After is empty
	RangeEnd   time.Time
}

func (p ListParams) query() string {
	q := url.Values{}
	q["events"] = p.Events // repeated keys: the form the official SDKs send
	q.Set("limit", strconv.Itoa(p.Limit))
	q.Set("order", "asc") // ignored by the live API today; correct if it ever is not
	if p.After != "" {
		q.Set("after", p.After)
	} else if !p.RangeStart.IsZero() {
		q.Set("range_start", p.RangeStart.UTC().Format(time.RFC3339Nano))
	}
	if !p.RangeEnd.IsZero() {
		q.Set("range_end", p.RangeEnd.UTC().Format(time.RFC3339Nano))
	}
	return q.Encode()
}

// StatusError is an answer other than 200 from the API, with what WorkOS
// said about it.
type StatusError struct {
	Status     int
	Code       string
	Message    string
	RequestID  string
	Errors     []FieldError
	RetryAfter time.Duration // from the Retry-After header; 0 when absent
}

// FieldError is one entry of a 422 answer's "errors".
type FieldError struct {
	Field string `json:"field"`
	Code  string `json:"code"`
}

func (e *StatusError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "workos api answered %d %s", e.Status, http.StatusText(e.Status))
	if e.Code != "" {
		fmt.Fprintf(&b, ", code %q", e.Code)
	}
	if e.Message != "" {
		fmt.Fprintf(&b, ": %q", e.Message)
	}
	for _, f := range e.Errors {
		fmt.Fprintf(&b, " [%s: %s]", f.Field, f.Code)
	}
	if e.RequestID != "" {
		fmt.Fprintf(&b, " (request id %s)", e.RequestID)
	}
	return b.String()
}

// Retryable reports whether the same request may succeed later: rate
// limits, timeouts and server errors. 4xx answers other than 408 and 429
// will fail the same way for ever.
func (e *StatusError) Retryable() bool {
	switch e.Status {
	case http.StatusTooManyRequests, http.StatusRequestTimeout,
		http.StatusInternalServerError, http.StatusBadGateway,
		http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// InvalidEvents reports whether the API rejected the type filter.
func (e *StatusError) InvalidEvents() bool {
	return e.Status == http.StatusBadRequest && e.Code == "invalid_events_request"
}

// TooLargeError is a response body over MaxResponseBytes. Asking again
// for fewer events may fit.
type TooLargeError struct {
	Limit     int64
	RequestID string
}

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("response is over %d bytes, the configured limit (request id %s)", e.Limit, e.RequestID)
}

// transientError is a failure of one attempt that another may not have: a
// network error, a cut or garbled body.
type transientError struct {
	requestID string
	err       error
}

func (e *transientError) Error() string {
	if e.requestID != "" {
		return fmt.Sprintf("%v (request id %s)", e.err, e.requestID)
	}
	return e.err.Error()
}

func (e *transientError) Unwrap() error { return e.err }

// Response is a page as the API returned it.
type Response struct {
	model.List
	RequestID string
	Attempts  int
}

// List fetches one page, retrying rate limits, server errors, network
// errors and cut or garbled bodies with capped, jittered exponential
// backoff, honouring Retry-After. It returns a *StatusError for answers
// that retrying cannot fix, and the last error once MaxAttempts is spent.
func (c *Client) List(ctx context.Context, p ListParams) (Response, error) {
	query := p.query()
	var last error
	for attempt := 1; ; attempt++ {
		if err := c.budget.wait(ctx); err != nil {
			return Response{}, err
		}
		resp, status, err := c.attempt(ctx, query)
		if err == nil {
			c.observe(Attempt{Status: status})
			resp.Attempts = attempt
			return resp, nil
		}
		if ctx.Err() != nil {
			return Response{}, ctx.Err()
		}
		last = err
		var se *StatusError
		var te *transientError
		if errors.As(err, &se) && !se.Retryable() || se == nil && !errors.As(err, &te) {
			c.observe(Attempt{Status: status, Err: err})
			return Response{}, err
		}
		if attempt >= c.cfg.MaxAttempts {
			c.observe(Attempt{Status: status, Err: err})
			return Response{}, fmt.Errorf("giving up after %d attempts: %w", attempt, last)
		}
		wait := c.backoff(attempt)
		if se != nil && se.RetryAfter > 0 {
			wait = max(wait, min(se.RetryAfter, c.cfg.MaxRetryAfter))
		}
		c.observe(Attempt{Status: status, Err: err, Wait: wait})
		c.cfg.Logger.Warn("retrying events request", "attempt", attempt, "wait", wait.Round(time.Millisecond), "error", err)
		if err := c.cfg.Sleep(ctx, wait); err != nil {
			return Response{}, err
		}
	}
}

// backoff is jittered over a doubling ceiling: uniform in
// [MinBackoff, min(MaxBackoff, MinBackoff*2^attempt)].
func (c *Client) backoff(attempt int) time.Duration {
	ceiling := c.cfg.MaxBackoff
	if attempt < 32 {
		ceiling = min(ceiling, c.cfg.MinBackoff<<attempt)
	}
	spread := ceiling - c.cfg.MinBackoff
	if spread <= 0 {
		return c.cfg.MinBackoff
	}
	return c.cfg.MinBackoff + rand.N(spread)
}

func (c *Client) observe(a Attempt) {
	if c.cfg.Observe != nil {
		c.cfg.Observe(a)
	}
}

// attempt makes one request; it returns the HTTP status (0 when none came).
func (c *Client) attempt(ctx context.Context, query string) (Response, int, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.endpoint+"?"+query, nil)
	if err != nil {
		return Response{}, 0, fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+c.cfg.APIKey)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "syncer")
	res, err := c.cfg.HTTPClient.Do(req)
	if err != nil {
		// The URL with its dozen events= keys says nothing the caller
		// does not know; keep the cause.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = fmt.Errorf("GET %s: %w", req.URL.Path, ue.Err)
		}
		return Response{}, 0, &transientError{err: err}
	}
	defer res.Body.Close()
	requestID := res.Header.Get("X-Request-ID")
	body, err := io.ReadAll(io.LimitReader(res.Body, c.cfg.MaxResponseBytes+1))
	if err != nil {
		return Response{}, 0, &transientError{requestID: requestID, err: fmt.Errorf("read response: %w", err)}
	}
	if int64(len(body)) > c.cfg.MaxResponseBytes {
		return Response{}, res.StatusCode, &TooLargeError{Limit: c.cfg.MaxResponseBytes, RequestID: requestID}
	}
	if res.StatusCode != http.StatusOK {
		se := statusError(res, body, requestID)
		// A server (or a proxy) that echoes the request must not put the
		// key into our errors and logs.
		se.Message = strings.ReplaceAll(se.Message, c.cfg.APIKey, "[redacted]")
		return Response{}, res.StatusCode, se
	}
	list, err := model.DecodeList(body)
	if err != nil {
		return Response{}, res.StatusCode, &transientError{requestID: requestID, err: err}
	}
	return Response{List: list, RequestID: requestID}, res.StatusCode, nil
}

func statusError(res *http.Response, body []byte, requestID string) *StatusError {
	se := &StatusError{Status: res.StatusCode, RequestID: requestID}
	var payload struct {
		Message string       `json:"message"`
		Code    string       `json:"code"`
		Errors  []FieldError `json:"errors"`
	}
	if json.Unmarshal(body, &payload) == nil {
		se.Message, se.Code, se.Errors = clip(payload.Message), clip(payload.Code), payload.Errors
		if len(se.Errors) > 10 {
			se.Errors = se.Errors[:10]
		}
	}
	se.RetryAfter = parseRetryAfter(res.Header.Get("Retry-After"), time.Now())
	return se
}

// clip keeps an error message readable whatever the server sends.
func clip(s string) string {
	const limit = 300
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) > limit {
		cut := limit
		for cut > 0 && s[cut]&0xC0 == 0x80 {
			cut--
		}
		s = s[:cut] + "..."
	}
	return s
}

// parseRetryAfter reads delay-seconds or an HTTP date; 0 when absent or
// unreadable.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseFloat(v, 64); err == nil {
		if secs <= 0 || secs != secs {
			return 0
		}
		// Beyond a day is a broken header; the caller caps it anyway.
		return time.Duration(min(secs, 86400) * float64(time.Second))
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}

// limiter spaces requests evenly at one per interval, allowing a burst of
// a few after a quiet spell; all goroutines using a Client share it.
type limiter struct {
	mu       sync.Mutex
	interval time.Duration
	burst    int
	next     time.Time // when the next request may go
}

func newLimiter(interval time.Duration, burst int) *limiter {
	return &limiter{interval: interval, burst: burst}
}

func (l *limiter) wait(ctx context.Context) error {
	l.mu.Lock()
	now := time.Now()
	if earliest := now.Add(-time.Duration(l.burst) * l.interval); l.next.Before(earliest) {
		l.next = earliest
	}
	at := l.next
	l.next = l.next.Add(l.interval)
	l.mu.Unlock()
	if d := at.Sub(now); d > 0 {
		return sleep(ctx, d)
	}
	return nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
