package webhook_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/syncer-audit/syncer/internal/webhook"
)

var secret = []byte("whsec_test_not_a_real_secret")

func TestVerify(t *testing.T) {
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	body := []byte(`{"id":"event_01","event":"vault.data.read"}`)
	good := webhook.Sign(secret, body, now.Add(-time.Minute))
	ts, sig, _ := strings.Cut(good, ", ")
	for _, tc := range []struct {
		name   string
		header string
		body   []byte
		want   error
	}{
		{"valid", good, body, nil},
		{"order and spaces", " " + sig + " ,  " + ts + " ", body, nil},
		{"rotation: second v1 matches", ts + ", v1=" + strings.Repeat("ab", 32) + ", " + sig, body, nil},
		{"body changed", good, []byte(`{"id":"event_02"}`), webhook.ErrMismatch},
		{"other secret", webhook.Sign([]byte("other"), body, now), body, webhook.ErrMismatch},
		{"too old", webhook.Sign(secret, body, now.Add(-4*time.Minute)), body, webhook.ErrStale},
		{"from the future", webhook.Sign(secret, body, now.Add(4*time.Minute)), body, webhook.ErrStale},
		{"no header", "", body, webhook.ErrMalformed},
		{"no v1", ts, body, webhook.ErrMalformed},
		{"no t", sig, body, webhook.ErrMalformed},
		{"t not a number", "t=soon, " + sig, body, webhook.ErrMalformed},
		{"v1 not hex", ts + ", v1=zz", body, webhook.ErrMalformed},
	} {
		if got := webhook.Verify(secret, tc.header, tc.body, now, 3*time.Minute); got != tc.want {
			t.Errorf("%s: Verify = %v; want %v", tc.name, got, tc.want)
		}
	}
}

func TestHandlerWakesOnlyOnAVerifiedDelivery(t *testing.T) {
	now := time.Now()
	woken := 0
	results := map[string]int{}
	h := &webhook.Handler{Secret: secret, Wake: func() { woken++ }, Observe: func(r string) { results[r]++ }, Now: func() time.Time { return now }}
	body := `{"id":"event_01"}`
	post := func(header, body string) int {
		req := httptest.NewRequest(http.MethodPost, "/webhooks/workos", strings.NewReader(body))
		if header != "" {
			req.Header.Set("WorkOS-Signature", header)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code
	}
	if code := post(webhook.Sign(secret, []byte(body), now), body); code != http.StatusAccepted || woken != 1 {
		t.Errorf("verified delivery: %d, woken %d; want 202 and one wake", code, woken)
	}
	for _, bad := range []struct{ header, body string }{
		{webhook.Sign(secret, []byte(body), now), `{"id":"event_tampered"}`},
		{webhook.Sign(secret, []byte(body), now.Add(-time.Hour)), body},
		{"", body},
	} {
		if code := post(bad.header, bad.body); code != http.StatusUnauthorized {
			t.Errorf("bad delivery answered %d; want 401", code)
		}
	}
	if woken != 1 {
		t.Errorf("woken %d times; refused deliveries must not wake the poller", woken)
	}
	if results[webhook.Accepted] != 1 || results[webhook.BadSignature] != 1 || results[webhook.Stale] != 1 || results[webhook.Malformed] != 1 {
		t.Errorf("results = %v", results)
	}
	req := httptest.NewRequest(http.MethodGet, "/webhooks/workos", nil)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("GET answered %d; want 405", rec.Code)
	}
}
