package grafana_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/syncer-audit/syncer/migrations"
)

var update = flag.Bool("update", false, "rewrite the outputs in docs/auditing.md from the sample database")

const auditingDoc = "../docs/auditing.md"

// auditStart is when the sample of docs/auditing.md begins: a Friday at
// 06:00 UTC, so that its four days hold business hours, nights and a
// weekend. A fixed time gives the same ids and rows on every run, so the
// outputs in the document can be compared with the real ones.
var auditStart = time.Date(2026, 3, 6, 6, 0, 0, 0, time.UTC)

// readTypes are the event types whose answer holds secret material.
var readTypes = []string{"vault.data.read", "vault.dek.read", "vault.dek.decrypted"}

// docQuery is one query of docs/auditing.md: a marker comment, the SQL,
// then its output.
type docQuery struct {
	name, sql, output string
	outputAt          [2]int // where the output sits in the document
}

var docQueryRE = regexp.MustCompile("(?s)<!-- query: ([a-z0-9-]+) -->\n```sql\n(.*?)```\n+```text\n(.*?)```")

func readDocQueries(t *testing.T) (string, []docQuery) {
	t.Helper()
	b, err := os.ReadFile(auditingDoc)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	var qs []docQuery
	for _, m := range docQueryRE.FindAllStringSubmatchIndex(doc, -1) {
		qs = append(qs, docQuery{name: doc[m[2]:m[3]], sql: doc[m[4]:m[5]], output: doc[m[6]:m[7]], outputAt: [2]int{m[6], m[7]}})
	}
	if n := strings.Count(doc, "<!-- query:"); n != len(qs) || n == 0 {
		t.Fatalf("%s: %d query markers, %d of them followed by ```sql and ```text blocks", auditingDoc, n, len(qs))
	}
	return doc, qs
}

// TestAuditingDoc runs every query of docs/auditing.md on the sample
// database and compares its output with the one printed there (go test
// -run TestAuditingDoc -update rewrites them), then checks what each
// answer claims against the audit tables themselves.
func TestAuditingDoc(t *testing.T) {
	t.Parallel()
	db := sampleDB(t, auditStart, auditStart.Add(96*time.Hour))
	doc, queries := readDocQueries(t)

	checks := auditChecks()
	var out strings.Builder
	last := 0
	for _, q := range queries {
		r, err := runQuery(t, db, q.sql)
		if err != nil {
			t.Errorf("%s: %v\n%s", q.name, err, q.sql)
			continue
		}
		if len(r.rows) == 0 {
			t.Errorf("%s: no rows", q.name)
		}
		check, ok := checks[q.name]
		if !ok {
			t.Errorf("%s: no check for this query in auditChecks", q.name)
		} else {
			check(t, db, r)
		}
		got := formatResult(r)
		if *update {
			out.WriteString(doc[last:q.outputAt[0]])
			out.WriteString(got)
			last = q.outputAt[1]
		} else if got != q.output {
			t.Errorf("%s: the output in %s is not what the query gives now (go test ./grafana -run TestAuditingDoc -update rewrites it):\n--- in the document\n%s--- now\n%s",
				q.name, auditingDoc, q.output, got)
		}
	}
	if *update {
		out.WriteString(doc[last:])
		if err := os.WriteFile(auditingDoc, []byte(out.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for name := range checks {
		if !slices.ContainsFunc(queries, func(q docQuery) bool { return q.name == name }) {
			t.Errorf("check %s has no query in %s", name, auditingDoc)
		}
	}
}

// auditChecks verifies each documented answer against the tables.
func auditChecks() map[string]func(*testing.T, *pgxpool.Pool, result) {
	return map[string]func(*testing.T, *pgxpool.Pool, result){
		"object-period": func(t *testing.T, db *pgxpool.Pool, r result) {
			from := time.Date(2026, 3, 7, 9, 0, 0, 0, time.UTC)
			to := from.Add(6 * time.Hour)
			for _, row := range r.rows {
				at := row[r.column("occurred_at")].(time.Time)
				if at.Before(from) || !at.Before(to) {
					t.Errorf("object-period: %s is outside [%s, %s)", at, from, to)
				}
			}
			want := count(t, db, `SELECT count(*) FROM vault_events WHERE kv_name = 'payroll-bank-account' AND occurred_at >= $1 AND occurred_at < $2`, from, to)
			if len(r.rows) != want {
				t.Errorf("object-period: %d rows, but vault_events has %d accesses", len(r.rows), want)
			}
		},
		"key-access": func(t *testing.T, db *pgxpool.Pool, r result) {
			for _, row := range r.rows {
				key, typ := row[r.column("key_id")].(string), row[r.column("event_type")].(string)
				if !slices.Contains(readTypes, typ) {
					t.Errorf("key-access: event type %s is not a read", typ)
				}
				want := count(t, db, `SELECT count(*) FROM vault_events v JOIN vault_event_keys k USING (event_id)
					WHERE v.actor_id = (SELECT actor_id FROM vault_actors WHERE actor_name = 'Jonas Müller')
					  AND k.key_id = $1 AND v.event_type = $2`, key, typ)
				if got, _ := number(row[r.column("times")]); int(got) != want {
					t.Errorf("key-access: %s %s: %v times, vault_events says %d", key, typ, got, want)
				}
			}
		},
		"dashboard-reads": func(t *testing.T, db *pgxpool.Pool, r result) {
			total := 0
			for _, row := range r.rows {
				if !slices.Contains(readTypes, row[r.column("event_type")].(string)) {
					t.Errorf("dashboard-reads: %v is not a read", row)
				}
				n, _ := number(row[r.column("reads")])
				total += int(n)
			}
			want := count(t, db, `SELECT count(*) FROM vault_events WHERE actor_source = 'dashboard' AND event_type = ANY($1)`, readTypes)
			if total != want {
				t.Errorf("dashboard-reads: %d reads, vault_events has %d", total, want)
			}
		},
		"dashboard-reads-object": func(t *testing.T, db *pgxpool.Pool, r result) {
			for _, row := range r.rows {
				if row[r.column("kv_name")] != "payroll-bank-account" || !slices.Contains(readTypes, row[r.column("event_type")].(string)) {
					t.Errorf("dashboard-reads-object: %v", row)
				}
			}
		},
		"off-hours": func(t *testing.T, db *pgxpool.Pool, r result) {
			total := 0
			for _, row := range r.rows {
				n, _ := number(row[r.column("accesses")])
				total += int(n)
			}
			if want := count(t, db, `SELECT count(*) FROM vault_off_hours_access`); total != want {
				t.Errorf("off-hours: %d accesses, the view has %d", total, want)
			}
		},
		"off-hours-detail": func(t *testing.T, db *pgxpool.Pool, r result) {
			for _, row := range r.rows {
				at := row[r.column("occurred_at")].(time.Time)
				if businessHours(at) {
					t.Errorf("off-hours-detail: %s is within business hours", at)
				}
				if want := at.UTC().Format("Mon 15:04"); row[r.column("utc_day_time")] != want {
					t.Errorf("off-hours-detail: utc_day_time %v, want %s", row[r.column("utc_day_time")], want)
				}
			}
		},
		"first-access-object": func(t *testing.T, db *pgxpool.Pool, r result) {
			want := count(t, db, `SELECT count(DISTINCT actor_id) FROM vault_events WHERE kv_name = 'payroll-bank-account'`)
			if len(r.rows) != want {
				t.Errorf("first-access-object: %d actors, vault_events has %d", len(r.rows), want)
			}
		},
		"first-access-period": func(t *testing.T, db *pgxpool.Pool, r result) {
			for _, row := range r.rows {
				// None of them touched the object before the period.
				n := count(t, db, `SELECT count(*) FROM vault_events v JOIN vault_actors a USING (actor_id)
					WHERE a.actor_name = $1 AND v.kv_name = $2 AND v.occurred_at < '2026-03-07 12:00:00+00'`,
					row[r.column("actor_name")], row[r.column("kv_name")])
				if n != 0 {
					t.Errorf("first-access-period: %v touched it %d times before", row, n)
				}
			}
		},
		"new-actors": func(t *testing.T, db *pgxpool.Pool, r result) {
			if want := count(t, db, `SELECT count(DISTINCT actor_id) FROM vault_events`); len(r.rows) != want {
				t.Errorf("new-actors: %d actors, vault_events has %d", len(r.rows), want)
			}
		},
		"quarantine": func(t *testing.T, db *pgxpool.Pool, r result) {
			var kinds []string
			for _, row := range r.rows {
				kinds = append(kinds, row[r.column("kind")].(string))
			}
			for _, k := range []string{"conflict", "envelope", "projection"} {
				if !slices.Contains(kinds, k) {
					t.Errorf("quarantine: no %s row in %v", k, kinds)
				}
			}
		},
		"gaps": func(t *testing.T, db *pgxpool.Pool, r result) {
			if len(r.rows) != 1 || !r.rows[0][r.column("gap_to")].(time.Time).Equal(auditStart) {
				t.Errorf("gaps: %v, want the one gap before the sample starts", r.rows)
			}
		},
	}
}

// businessHours is the definition the views use: Monday to Friday, 08:00
// to 18:00 UTC.
func businessHours(at time.Time) bool {
	at = at.UTC()
	wd := at.Weekday()
	return wd != time.Saturday && wd != time.Sunday && at.Hour() >= 8 && at.Hour() < 18
}

// TestAuditViews recomputes each audit view from vault_events and
// vault_event_keys in Go and compares: the views hold exactly the rows
// their definitions promise, with the columns the documentation names.
func TestAuditViews(t *testing.T) {
	t.Parallel()
	db := sampleDB(t, auditStart, auditStart.Add(96*time.Hour))
	ctx := t.Context()

	wantColumns := map[string][]string{
		"vault_key_access":       {"actor_id", "actor_name", "actor_source", "key_id", "event_type", "occurred_at", "kv_name", "event_id"},
		"vault_dashboard_reads":  {"occurred_at", "actor_id", "actor_name", "event_type", "kv_name", "key_ids", "event_id"},
		"vault_off_hours_access": {"occurred_at", "utc_day_time", "actor_id", "actor_name", "actor_source", "event_type", "kv_name", "key_ids", "event_id"},
		"vault_first_access":     {"actor_id", "kv_name", "first_accessed_at", "event_type", "actor_name", "actor_source", "event_id"},
	}
	for view, want := range wantColumns {
		rows, _ := db.Query(ctx, `SELECT column_name FROM information_schema.columns WHERE table_name = $1 ORDER BY ordinal_position`, view)
		got, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("%s has columns %v (%v), want %v", view, got, err, want)
		}
	}

	type event struct {
		id, typ               string
		at                    time.Time
		actor, source, object pgtype.Text
	}
	rows, _ := db.Query(ctx, `SELECT event_id, event_type, occurred_at, actor_id, actor_source, kv_name FROM vault_events`)
	events, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (event, error) {
		var e event
		err := row.Scan(&e.id, &e.typ, &e.at, &e.actor, &e.source, &e.object)
		return e, err
	})
	if err != nil || len(events) < 1000 {
		t.Fatalf("vault_events: %d rows, %v", len(events), err)
	}
	rows, _ = db.Query(ctx, `SELECT event_id || ' ' || key_id FROM vault_event_keys`)
	eventKeys, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	keysOf := map[string][]string{}
	for _, ek := range eventKeys {
		id, key, _ := strings.Cut(ek, " ")
		keysOf[id] = append(keysOf[id], key)
	}

	var keyAccess, dashboardReads, offHours []string
	type pair struct{ actor, object string }
	first := map[pair]event{}
	for _, e := range events {
		read := slices.Contains(readTypes, e.typ)
		if read {
			for _, k := range keysOf[e.id] {
				keyAccess = append(keyAccess, e.id+" "+k)
			}
		}
		if read && e.source.String == "dashboard" {
			dashboardReads = append(dashboardReads, e.id)
		}
		if e.actor.Valid && !businessHours(e.at) {
			offHours = append(offHours, e.id)
		}
		if e.actor.Valid && e.object.Valid {
			p := pair{e.actor.String, e.object.String}
			if f, seen := first[p]; !seen || e.at.Before(f.at) || (e.at.Equal(f.at) && e.id < f.id) {
				first[p] = e
			}
		}
	}
	var firstAccess []string
	for p, e := range first {
		firstAccess = append(firstAccess, fmt.Sprintf("%s %s %d %s", p.actor, p.object, e.at.UnixMicro(), e.id))
	}

	for _, c := range []struct {
		view, sql string
		want      []string
	}{
		{"vault_key_access", `SELECT event_id || ' ' || key_id FROM vault_key_access`, keyAccess},
		{"vault_dashboard_reads", `SELECT event_id FROM vault_dashboard_reads`, dashboardReads},
		{"vault_off_hours_access", `SELECT event_id FROM vault_off_hours_access`, offHours},
		{"vault_first_access", `SELECT actor_id || ' ' || kv_name || ' ' || (extract(epoch FROM first_accessed_at) * 1000000)::bigint || ' ' || event_id FROM vault_first_access`, firstAccess},
	} {
		rows, _ := db.Query(ctx, c.sql)
		got, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Errorf("%s: %v", c.view, err)
			continue
		}
		slices.Sort(got)
		slices.Sort(c.want)
		if len(c.want) == 0 {
			t.Errorf("%s: the sample has no rows for it", c.view)
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("%s: %d rows, want %d recomputed from vault_events; first difference: %s", c.view, len(got), len(c.want), firstDifference(got, c.want))
		}
	}
}

func firstDifference(got, want []string) string {
	for i := range min(len(got), len(want)) {
		if got[i] != want[i] {
			return fmt.Sprintf("got %q, want %q", got[i], want[i])
		}
	}
	return "one list is longer"
}

// TestAuditViewsMigration runs migration 0003 again over itself, down and
// up: it must be idempotent, drop what it made, and give the views to the
// roles that may read vault_access_log.
func TestAuditViewsMigration(t *testing.T) {
	t.Parallel()
	db := sampleDB(t, auditStart, auditStart.Add(24*time.Hour))
	ctx := t.Context()
	up, err := migrations.FS.ReadFile("0003_audit_views.up.sql")
	if err != nil {
		t.Fatal(err)
	}
	down, err := migrations.FS.ReadFile("0003_audit_views.down.sql")
	if err != nil {
		t.Fatal(err)
	}
	views := []string{"vault_key_access", "vault_dashboard_reads", "vault_off_hours_access", "vault_first_access"}

	role := fmt.Sprintf("audit_reader_%d", time.Now().UnixNano())
	exec := func(sql string, args ...any) {
		t.Helper()
		if _, err := db.Exec(ctx, sql, args...); err != nil {
			t.Fatalf("%.60s: %v", sql, err)
		}
	}
	exec(`CREATE ROLE ` + role + ` NOLOGIN`)
	t.Cleanup(func() {
		// The role holds grants in this database only; PostgreSQL drops a
		// role once nothing refers to it.
		ctx := context.Background()
		_, _ = db.Exec(ctx, `DROP OWNED BY `+role)
		_, _ = db.Exec(ctx, `DROP ROLE `+role)
	})
	exec(`GRANT SELECT ON vault_access_log TO ` + role)

	exec(string(up)) // a second time over the first
	for _, v := range views {
		var ok bool
		if err := db.QueryRow(ctx, `SELECT has_table_privilege($1, $2, 'SELECT')`, role, v).Scan(&ok); err != nil || !ok {
			t.Errorf("%s: a reader of vault_access_log cannot read it (%v)", v, err)
		}
	}
	exec(string(down))
	exec(string(down))
	for _, v := range views {
		var exists bool
		if err := db.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, v).Scan(&exists); err != nil || exists {
			t.Errorf("%s is still there after the down migration (%v)", v, err)
		}
	}
	if n := count(t, db, `SELECT count(*) FROM pg_proc WHERE proname = 'vault_is_business_hours'`); n != 0 {
		t.Errorf("vault_is_business_hours is still there after the down migration")
	}
	exec(string(up))
	if n := count(t, db, `SELECT count(*) FROM vault_off_hours_access`); n == 0 {
		t.Errorf("vault_off_hours_access is empty after down and up")
	}
}

// formatResult prints a result as an aligned table, times in UTC, NULL
// as nothing, arrays in braces, with the row count after.
func formatResult(r result) string {
	cells := make([][]string, len(r.rows))
	widths := make([]int, len(r.columns))
	for i, c := range r.columns {
		widths[i] = utf8.RuneCountInString(c)
	}
	for n, row := range r.rows {
		cells[n] = make([]string, len(row))
		for i, v := range row {
			cells[n][i] = formatValue(v)
			widths[i] = max(widths[i], utf8.RuneCountInString(cells[n][i]))
		}
	}
	var b strings.Builder
	line := func(vals []string, right []bool) {
		var parts []string
		for i, v := range vals {
			pad := strings.Repeat(" ", widths[i]-utf8.RuneCountInString(v))
			if right != nil && right[i] {
				parts = append(parts, pad+v)
			} else {
				parts = append(parts, v+pad)
			}
		}
		b.WriteString(strings.TrimRight(" "+strings.Join(parts, " | "), " ") + "\n")
	}
	line(r.columns, nil)
	var rule []string
	for _, w := range widths {
		rule = append(rule, strings.Repeat("-", w+2))
	}
	b.WriteString(strings.Join(rule, "+") + "\n")
	for _, row := range cells {
		line(row, r.numeric)
	}
	if len(r.rows) == 1 {
		b.WriteString("(1 row)\n")
	} else {
		fmt.Fprintf(&b, "(%d rows)\n", len(r.rows))
	}
	return b.String()
}

func formatValue(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case time.Time:
		return x.UTC().Format("2006-01-02 15:04:05.999999") + "+00"
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			parts[i] = formatValue(e)
		}
		return "{" + strings.Join(parts, ",") + "}"
	case pgtype.Numeric:
		f, _ := x.Float64Value()
		return fmt.Sprint(f.Float64)
	}
	return fmt.Sprint(v)
}
