// Package webhook receives WorkOS webhooks as a trigger, not as data.
//
// Webhook deliveries are unordered and retried for days, so storing their
// payloads would bring back the holes and stale rows the ordered Events API
// avoids. A verified delivery only wakes the poller, which then reads the
// API at once; the payload is never written.
package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Results, as the Handler reports them to Observe.
const (
	Accepted     = "accepted"
	BadSignature = "bad_signature"
	Stale        = "stale"
	Malformed    = "malformed"
)

// Handler verifies the WorkOS-Signature header and wakes the poller.
type Handler struct {
	// Secret is the endpoint's signing secret. Required.
	Secret []byte
	// Tolerance is how old a signature's timestamp may be. Default 3m.
	Tolerance time.Duration
	// Wake is called for each verified delivery; it must not block.
	Wake func()
	// Observe, if set, sees each delivery's result.
	Observe func(result string)
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// MaxBody bounds the body read. Default 1 MiB.
	MaxBody int64
	Logger  *slog.Logger

	mu       sync.Mutex
	lastLog  time.Time
	unlogged int
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	maxBody := h.MaxBody
	if maxBody <= 0 {
		maxBody = 1 << 20
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil || int64(len(body)) > maxBody {
		h.done(w, Malformed, http.StatusRequestEntityTooLarge)
		return
	}
	now := time.Now
	if h.Now != nil {
		now = h.Now
	}
	tolerance := h.Tolerance
	if tolerance <= 0 {
		tolerance = 3 * time.Minute
	}
	switch err := Verify(h.Secret, r.Header.Get("WorkOS-Signature"), body, now(), tolerance); {
	case errors.Is(err, ErrStale):
		h.done(w, Stale, http.StatusUnauthorized)
	case errors.Is(err, ErrMalformed):
		h.done(w, Malformed, http.StatusUnauthorized)
	case err != nil:
		h.done(w, BadSignature, http.StatusUnauthorized)
	default:
		if h.Wake != nil {
			h.Wake()
		}
		h.done(w, Accepted, http.StatusAccepted)
	}
}

func (h *Handler) done(w http.ResponseWriter, result string, status int) {
	if h.Observe != nil {
		h.Observe(result)
	}
	if h.Logger != nil && result != Accepted {
		// Anyone can post here: log refusals at most once a minute, with
		// how many there were; the metric counts each one.
		h.mu.Lock()
		h.unlogged++
		if time.Since(h.lastLog) >= time.Minute {
			h.Logger.Warn("webhook refused", "result", result, "status", status, "refused_since_last_line", h.unlogged)
			h.lastLog, h.unlogged = time.Now(), 0
		}
		h.mu.Unlock()
	}
	w.WriteHeader(status)
}

// Errors of Verify.
var (
	ErrMalformed = errors.New("webhook: malformed WorkOS-Signature header")
	ErrStale     = errors.New("webhook: signature timestamp outside the tolerance")
	ErrMismatch  = errors.New("webhook: signature does not match")
)

// Verify checks a WorkOS-Signature header ("t=<unix ms>, v1=<hex>") for
// body: v1 must be HMAC-SHA256(secret, t + "." + body), compared in
// constant time, and t within tolerance of now. The header is read
// tolerantly: spaces, either order, and several v1 values (as during a
// secret rotation), any of which may match.
func Verify(secret []byte, header string, body []byte, now time.Time, tolerance time.Duration) error {
	var ts string
	var sigs [][]byte
	for _, part := range strings.Split(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			continue
		}
		switch strings.TrimSpace(k) {
		case "t":
			ts = strings.TrimSpace(v)
		case "v1":
			if sig, err := hex.DecodeString(strings.TrimSpace(v)); err == nil {
				sigs = append(sigs, sig)
			}
		}
	}
	ms, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || len(sigs) == 0 || len(secret) == 0 {
		return ErrMalformed
	}
	at := time.UnixMilli(ms)
	if d := now.Sub(at); d > tolerance || d < -tolerance {
		return ErrStale
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(ts))
	mac.Write([]byte("."))
	mac.Write(body)
	want := mac.Sum(nil)
	for _, sig := range sigs {
		if hmac.Equal(sig, want) {
			return nil
		}
	}
	return ErrMismatch
}

// Sign makes a WorkOS-Signature header for body at t: what WorkOS sends,
// for tests and for the fake API.
func Sign(secret []byte, body []byte, t time.Time) string {
	ts := strconv.FormatInt(t.UnixMilli(), 10)
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(ts))
	mac.Write([]byte("."))
	mac.Write(body)
	return "t=" + ts + ", v1=" + hex.EncodeToString(mac.Sum(nil))
}
