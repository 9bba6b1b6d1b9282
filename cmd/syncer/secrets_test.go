package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/syncer-audit/syncer/internal/pgtest"
)

// TestSecretsNeverShow runs the syncer through its failure paths with
// recognisable secrets and searches everything it printed, logged or
// returned. The fake API echoes the key back in its error bodies, as a
// careless proxy might.
func TestSecretsNeverShow(t *testing.T) {
	t.Parallel()
	const (
		apiKey = "sk_test_SECRET_APIKEY_7f3a9c"
		dbPass = "PGPASS_SECRET_9c2e11"
	)
	echo := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Request-ID", "req_echo")
		w.WriteHeader(http.StatusUnauthorized)
		w.Write([]byte(`{"message":"bad key: ` + strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ") + `","code":"unauthorized"}`))
	})
	srv := httptest.NewServer(echo)
	defer srv.Close()
	serverErrors := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadGateway)
		w.Write([]byte(`<html>upstream said ` + r.Header.Get("Authorization") + `</html>`))
	}))
	defer serverErrors.Close()

	good := pgtest.URL(t)
	u, _ := url.Parse(good)
	withPass := func(host, db string) string {
		v := *u
		v.User = url.UserPassword("postgres", dbPass)
		if host != "" {
			v.Host = host
		}
		if db != "" {
			v.Path = "/" + db
		}
		return v.String()
	}
	// A role whose password must be given: the tests' cluster trusts
	// local connections, so a wrong password cannot be tried; the wrong
	// port, database and user can.
	cases := []struct {
		name string
		args []string
		env  map[string]string
	}{
		{"API echoes the key in a 401", []string{"sync"}, map[string]string{"DATABASE_URL": withPass("", ""), "WORKOS_BASE_URL": srv.URL}},
		{"API keeps failing with 502", []string{"sync", "--max-attempts", "2"}, map[string]string{"DATABASE_URL": withPass("", ""), "WORKOS_BASE_URL": serverErrors.URL}},
		{"API unreachable", []string{"sync", "--max-attempts", "1"}, map[string]string{"DATABASE_URL": withPass("", ""), "WORKOS_BASE_URL": "http://127.0.0.1:1"}},
		{"database unreachable", []string{"sync"}, map[string]string{"DATABASE_URL": withPass("127.0.0.1:1", "")}},
		{"database missing", []string{"sync"}, map[string]string{"DATABASE_URL": withPass("", "no_such_db")}},
		{"status, database missing", []string{"status"}, map[string]string{"DATABASE_URL": withPass("", "no_such_db")}},
		{"migrate, database unreachable", []string{"migrate", "up"}, map[string]string{"DATABASE_URL": withPass("127.0.0.1:1", "")}},
		{"reprocess, database unreachable", []string{"reprocess"}, map[string]string{"DATABASE_URL": withPass("127.0.0.1:1", "")}},
		{"run with a rejected key", []string{"run", "--listen", "127.0.0.1:0"}, map[string]string{"DATABASE_URL": withPass("", ""), "WORKOS_BASE_URL": srv.URL}},
		{"bad URL", []string{"sync"}, map[string]string{"DATABASE_URL": "postgres://postgres:" + dbPass + "@[::1:bad/x"}},
		{"help", []string{"sync", "--help"}, map[string]string{"DATABASE_URL": withPass("", "")}},
		{"grant-reader with a password", []string{"grant-reader", "--password-env", "READER_PW", "grafana_reader"}, map[string]string{"DATABASE_URL": good, "READER_PW": dbPass}},
		{"status of a good database", []string{"status"}, map[string]string{"DATABASE_URL": withPass("", "")}},
	}
	for _, tc := range cases {
		var out, logs bytes.Buffer
		env := map[string]string{"WORKOS_API_KEY": apiKey, "SYNCER_LOG_LEVEL": "debug", "SYNCER_LOG_FORMAT": "text"}
		for k, v := range tc.env {
			env[k] = v
		}
		err := run(context.Background(), tc.args, func(k string) string { return env[k] }, &out, &logs)
		all := out.String() + logs.String()
		if err != nil {
			all += err.Error()
		}
		for _, secret := range []string{apiKey, dbPass, url.QueryEscape(dbPass)} {
			if strings.Contains(all, secret) {
				t.Errorf("%s: a secret shows in the output:\n%s", tc.name, all)
			}
		}
		if tc.name != "help" && tc.name != "grant-reader with a password" && tc.name != "status of a good database" && err == nil {
			t.Errorf("%s: want an error", tc.name)
		}
	}
}

func TestGrantReaderCanOnlyRead(t *testing.T) {
	t.Parallel()
	w := newWorld(t, 100)
	if _, _, err := w.syncer("sync"); err != nil {
		t.Fatal(err)
	}
	for range 2 { // again: harmless
		out, _, err := w.syncer("grant-reader", "auditor")
		if err != nil || !strings.Contains(out, "auditor can now read") {
			t.Fatalf("grant-reader: %q, %v", out, err)
		}
	}
	conn := w.conn()
	defer conn.Close(context.Background())
	ctx := context.Background()
	if _, err := conn.Exec(ctx, `SET ROLE auditor`); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM vault_access_log`).Scan(&n); err != nil || n == 0 {
		t.Errorf("auditor reading the access log: %d rows, %v", n, err)
	}
	for _, q := range []string{`SELECT count(*) FROM sync_gaps`, `SELECT count(*) FROM vault_actors`} {
		if err := conn.QueryRow(ctx, q).Scan(&n); err != nil {
			t.Errorf("auditor: %s: %v", q, err)
		}
	}
	for _, q := range []string{
		`INSERT INTO sync_gaps (stream, gap_from, gap_to, reason) VALUES ('x', now(), now(), 'x')`,
		`DELETE FROM workos_events`,
		`UPDATE vault_events SET actor_name = 'x'`,
		`CREATE TABLE auditor_was_here (x int)`,
		`SELECT count(*) FROM schema_migrations`,
	} {
		_, err := conn.Exec(ctx, q)
		if err == nil || !strings.Contains(err.Error(), "permission denied") {
			t.Errorf("auditor: %s: %v; want permission denied", q, err)
		}
	}
}

// TestSSLModeIsHonoured: the tests' cluster has no TLS, so sslmode=require
// must fail rather than silently fall back to plain text.
func TestSSLModeIsHonoured(t *testing.T) {
	t.Parallel()
	plain := pgtest.URL(t)
	for _, tc := range []struct {
		mode string
		ok   bool
	}{{"disable", true}, {"require", false}, {"verify-full", false}} {
		u, _ := url.Parse(plain)
		q := u.Query()
		q.Set("sslmode", tc.mode)
		u.RawQuery = q.Encode()
		var out bytes.Buffer
		err := run(context.Background(), []string{"status"}, func(k string) string {
			if k == "DATABASE_URL" {
				return u.String()
			}
			return ""
		}, &out, &out)
		if (err == nil) != tc.ok {
			t.Errorf("sslmode=%s: %v; want success %v", tc.mode, err, tc.ok)
		}
	}
}
