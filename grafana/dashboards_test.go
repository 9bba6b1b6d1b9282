package grafana_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

// The data sources the dashboards may use, by uid, with their plugin type;
// provisioning/datasources/datasources.yaml defines them.
var knownDatasources = map[string]string{
	"syncer-postgres":   "grafana-postgresql-datasource",
	"syncer-prometheus": "prometheus",
}

// dashboard is the part of Grafana's dashboard JSON the tests read.
type dashboard struct {
	file          string
	UID           string  `json:"uid"`
	Title         string  `json:"title"`
	SchemaVersion int     `json:"schemaVersion"`
	Panels        []panel `json:"panels"`
	Templating    struct {
		List []variable `json:"list"`
	} `json:"templating"`
}

type datasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type panel struct {
	ID         int         `json:"id"`
	Type       string      `json:"type"`
	Title      string      `json:"title"`
	Datasource *datasource `json:"datasource"`
	GridPos    struct {
		X, Y, W, H int
	} `json:"gridPos"`
	Targets []target `json:"targets"`
	Panels  []panel  `json:"panels"` // a collapsed row's panels
}

type target struct {
	RefID      string      `json:"refId"`
	Datasource *datasource `json:"datasource"`
	RawSQL     string      `json:"rawSql"`
	Format     string      `json:"format"`
	EditorMode string      `json:"editorMode"`
	RawQuery   bool        `json:"rawQuery"`
	Expr       string      `json:"expr"`
}

type variable struct {
	Name       string          `json:"name"`
	Type       string          `json:"type"`
	Datasource *datasource     `json:"datasource"`
	Query      json.RawMessage `json:"query"`
	IncludeAll bool            `json:"includeAll"`
	AllValue   string          `json:"allValue"`
	Multi      bool            `json:"multi"`
}

// queryText is a query variable's query: a string for SQL data sources,
// an object with a "query" field for Prometheus.
func (v variable) queryText() string {
	var s string
	if json.Unmarshal(v.Query, &s) == nil {
		return s
	}
	var obj struct{ Query string }
	if json.Unmarshal(v.Query, &obj) == nil {
		return obj.Query
	}
	return ""
}

func loadDashboards(t *testing.T) []dashboard {
	t.Helper()
	files, err := filepath.Glob("dashboards/*.json")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 3 {
		t.Fatalf("found %d dashboards in dashboards/, want at least 3", len(files))
	}
	var ds []dashboard
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var d dashboard
		if err := json.Unmarshal(b, &d); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		d.file = filepath.Base(f)
		ds = append(ds, d)
	}
	return ds
}

// allPanels lists the panels, those inside rows included.
func (d dashboard) allPanels() []panel {
	var out []panel
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			out = append(out, p)
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return out
}

// pgTarget is one PostgreSQL query of a dashboard, with where it comes from.
type pgTarget struct {
	where string // dashboard file, panel title, refId
	panel panel
	target
}

func (d dashboard) pgTargets() []pgTarget {
	var out []pgTarget
	for _, p := range d.allPanels() {
		for _, tg := range p.Targets {
			if dsOf(p, tg).UID == "syncer-postgres" {
				out = append(out, pgTarget{fmt.Sprintf("%s: %q %s", d.file, p.Title, tg.RefID), p, tg})
			}
		}
	}
	return out
}

// dsOf is the data source a target queries: its own, or its panel's.
func dsOf(p panel, tg target) datasource {
	if tg.Datasource != nil {
		return *tg.Datasource
	}
	if p.Datasource != nil {
		return *p.Datasource
	}
	return datasource{}
}

func TestDashboardJSON(t *testing.T) {
	t.Parallel()
	dashboards := loadDashboards(t)
	uids, titles := map[string]string{}, map[string]string{}
	for _, d := range dashboards {
		if d.UID == "" || len(d.UID) > 40 {
			t.Errorf("%s: uid %q: want 1 to 40 characters", d.file, d.UID)
		}
		if other, dup := uids[d.UID]; dup {
			t.Errorf("%s: uid %q already used by %s", d.file, d.UID, other)
		}
		uids[d.UID] = d.file
		if d.Title == "" {
			t.Errorf("%s: no title", d.file)
		}
		if other, dup := titles[d.Title]; dup {
			t.Errorf("%s: title %q already used by %s", d.file, d.Title, other)
		}
		titles[d.Title] = d.file
		if d.SchemaVersion < 39 {
			t.Errorf("%s: schemaVersion %d, want Grafana 11's (39 or later)", d.file, d.SchemaVersion)
		}

		ids := map[int]string{}
		var placed []panel
		for _, p := range d.allPanels() {
			where := fmt.Sprintf("%s: panel %q", d.file, p.Title)
			if p.ID <= 0 {
				t.Errorf("%s: id %d, want a positive id", where, p.ID)
			}
			if other, dup := ids[p.ID]; dup {
				t.Errorf("%s: id %d already used by panel %q", where, p.ID, other)
			}
			ids[p.ID] = p.Title
			if p.Type == "" || p.Title == "" {
				t.Errorf("%s: type %q: want a type and a title", where, p.Type)
			}
			g := p.GridPos
			if g.W <= 0 || g.H <= 0 || g.X < 0 || g.Y < 0 || g.X+g.W > 24 {
				t.Errorf("%s: gridPos %+v is outside the 24-column grid", where, g)
			}
			for _, q := range placed {
				h := q.GridPos
				if g.X < h.X+h.W && h.X < g.X+g.W && g.Y < h.Y+h.H && h.Y < g.Y+g.H {
					t.Errorf("%s: gridPos %+v overlaps panel %q at %+v", where, g, q.Title, h)
				}
			}
			placed = append(placed, p)
			if p.Type == "row" {
				continue
			}
			if len(p.Targets) == 0 {
				t.Errorf("%s: no queries", where)
			}
			refIDs := map[string]bool{}
			for _, tg := range p.Targets {
				ds := dsOf(p, tg)
				if want, ok := knownDatasources[ds.UID]; !ok || ds.Type != want {
					t.Errorf("%s %s: data source %+v is not one of %v", where, tg.RefID, ds, knownDatasources)
				}
				if tg.RefID == "" || refIDs[tg.RefID] {
					t.Errorf("%s: refId %q is empty or repeated", where, tg.RefID)
				}
				refIDs[tg.RefID] = true
				switch ds.UID {
				case "syncer-postgres":
					if strings.TrimSpace(tg.RawSQL) == "" || !tg.RawQuery || tg.EditorMode != "code" {
						t.Errorf("%s %s: want raw SQL in the code editor (rawSql, rawQuery, editorMode code)", where, tg.RefID)
					}
					if tg.Format != "table" && tg.Format != "time_series" {
						t.Errorf("%s %s: format %q, want table or time_series", where, tg.RefID, tg.Format)
					}
				case "syncer-prometheus":
					if strings.TrimSpace(tg.Expr) == "" {
						t.Errorf("%s %s: no expr", where, tg.RefID)
					}
				}
			}
		}

		names := map[string]bool{}
		for _, v := range d.Templating.List {
			where := fmt.Sprintf("%s: variable %q", d.file, v.Name)
			if v.Name == "" || names[v.Name] {
				t.Errorf("%s: name empty or repeated", where)
			}
			names[v.Name] = true
			if v.Type != "query" {
				continue
			}
			if v.Datasource == nil || knownDatasources[v.Datasource.UID] != v.Datasource.Type {
				t.Errorf("%s: data source %+v is not one of %v", where, v.Datasource, knownDatasources)
			}
			if v.queryText() == "" {
				t.Errorf("%s: no query", where)
			}
			// The panels' filters test for the custom all value; without
			// it, "All" would expand into the whole list, or into an
			// empty IN () when the list is empty.
			if v.IncludeAll && v.AllValue == "" {
				t.Errorf("%s: includeAll without a custom allValue", where)
			}
		}
		// Every variable filters every query of its data source.
		for _, v := range d.Templating.List {
			for _, p := range d.allPanels() {
				for _, tg := range p.Targets {
					ds := dsOf(p, tg)
					if v.Datasource == nil || ds.UID != v.Datasource.UID {
						continue
					}
					if !usesVariable(tg.RawSQL+tg.Expr, v.Name) {
						t.Errorf("%s: panel %q %s does not use variable $%s", d.file, p.Title, tg.RefID, v.Name)
					}
				}
			}
		}
	}
}

// TestDatasourceProvisioning checks that provisioning defines every data
// source the dashboards name, with the same uid and type.
func TestDatasourceProvisioning(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("provisioning/datasources/datasources.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// Each data source is a list item; its uid and type lines follow.
	defined := map[string]string{}
	for _, item := range strings.Split(string(b), "\n  - ")[1:] {
		uid := regexp.MustCompile(`(?m)^\s*uid:\s*(\S+)`).FindStringSubmatch(item)
		typ := regexp.MustCompile(`(?m)^\s*type:\s*(\S+)`).FindStringSubmatch(item)
		if uid == nil || typ == nil {
			t.Errorf("datasources.yaml: an entry without uid or type:\n%s", item)
			continue
		}
		defined[uid[1]] = typ[1]
	}
	for uid, typ := range knownDatasources {
		if defined[uid] != typ {
			t.Errorf("datasources.yaml defines %s as %q, want type %s", uid, defined[uid], typ)
		}
	}
	for _, want := range []string{"url: postgres:5432", "database: syncer", "user: grafana_reader", "password: $GRAFANA_DB_PASSWORD", "sslmode: disable", "url: http://prometheus:9090"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("datasources.yaml: no %q", want)
		}
	}
	b, err = os.ReadFile("provisioning/dashboards/dashboards.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "path: /var/lib/grafana/dashboards") || !strings.Contains(string(b), "type: file") {
		t.Errorf("dashboards.yaml: want a file provider reading /var/lib/grafana/dashboards")
	}
}

// grafanaVar matches a template variable reference the way Grafana's
// template service does: $name, [[name]] or ${name} with a format.
var grafanaVar = regexp.MustCompile(`\$(\w+)|\[\[(\w+?)(?::(\w+))?\]\]|\$\{(\w+)(?:\.([^:^\}]+))?(?::([^\}]+))?\}`)

func usesVariable(query, name string) bool {
	for _, m := range grafanaVar.FindAllStringSubmatch(query, -1) {
		if m[1] == name || m[2] == name || m[4] == name {
			return true
		}
	}
	return false
}

// queryContext is what Grafana knows when it sends a query: the time
// range, the interval, and each variable's selection (nil for All).
type queryContext struct {
	from, to time.Time
	interval time.Duration
	values   map[string][]string
	options  map[string][]string // each variable's values, for All without a custom all value
}

// interpolate replaces template variables the way Grafana's frontend does
// for the PostgreSQL data source before the query reaches the backend:
// with include-all or multi, each value is quoted as an SQL literal and
// the values are joined with commas; a custom all value goes in raw.
func (qc queryContext) interpolate(sql string, vars []variable) (string, error) {
	byName := map[string]variable{}
	for _, v := range vars {
		byName[v.Name] = v
	}
	var err error
	out := grafanaVar.ReplaceAllStringFunc(sql, func(ref string) string {
		m := grafanaVar.FindStringSubmatch(ref)
		name, format := m[1]+m[2]+m[4], m[3]+m[6]
		switch name {
		case "__interval":
			return formatInterval(qc.interval)
		case "__interval_ms":
			return strconv.FormatInt(qc.interval.Milliseconds(), 10)
		case "__range":
			return formatInterval(qc.to.Sub(qc.from))
		case "__range_s":
			return strconv.FormatInt(int64(qc.to.Sub(qc.from).Seconds()), 10)
		}
		v, ok := byName[name]
		if !ok {
			return ref // a macro such as $__timeFilter, for the backend
		}
		values, all := qc.values[name], qc.values[name] == nil
		if all && v.AllValue != "" && format != "text" {
			return v.AllValue
		}
		if all {
			values = qc.options[name]
		}
		quote := v.Multi || v.IncludeAll
		switch format {
		case "":
		case "sqlstring", "singlequote":
			quote = true
		case "raw", "csv":
			quote = false
		default:
			if err == nil {
				err = fmt.Errorf("variable format %q is not handled by this test", format)
			}
		}
		parts := make([]string, len(values))
		for i, s := range values {
			if quote {
				parts[i] = "'" + strings.ReplaceAll(s, "'", "''") + "'"
			} else {
				parts[i] = s
			}
		}
		return strings.Join(parts, ",")
	})
	return out, err
}

// formatInterval writes an interval as Grafana does for $__interval.
func formatInterval(d time.Duration) string {
	switch {
	case d%(24*time.Hour) == 0:
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	case d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	case d%time.Second == 0:
		return fmt.Sprintf("%ds", d/time.Second)
	}
	return fmt.Sprintf("%dms", d.Milliseconds())
}

// parseInterval reads a macro's interval argument as Grafana does: a
// number and a unit (ms, s, m, h, d, w), quoted or not.
func parseInterval(s string) (time.Duration, error) {
	s = strings.Trim(s, `'"`)
	m := regexp.MustCompile(`^(\d+)(ms|s|m|h|d|w)$`).FindStringSubmatch(s)
	if m == nil {
		return 0, fmt.Errorf("interval %q", s)
	}
	n, _ := strconv.Atoi(m[1])
	unit := map[string]time.Duration{"ms": time.Millisecond, "s": time.Second, "m": time.Minute, "h": time.Hour, "d": 24 * time.Hour, "w": 7 * 24 * time.Hour}[m[2]]
	if n == 0 {
		return 0, fmt.Errorf("interval %q is zero", s)
	}
	return time.Duration(n) * unit, nil
}

// grafanaMacro is the PostgreSQL data source's macro syntax: its arguments
// cannot hold a closing parenthesis.
var grafanaMacro = regexp.MustCompile(`\$([_a-zA-Z0-9]+)\(([^\)]*)\)`)

// expandMacros does what Grafana's PostgreSQL backend does with the
// macros (without TimescaleDB): $__timeFilter, $__timeFrom, $__timeTo,
// $__timeGroup, $__timeGroupAlias, $__time, $__timeEpoch and the
// $__unixEpoch ones. An unknown macro is an error, as it is in Grafana.
func (qc queryContext) expandMacros(sql string) (string, error) {
	from := "'" + qc.from.UTC().Format(time.RFC3339Nano) + "'"
	to := "'" + qc.to.UTC().Format(time.RFC3339Nano) + "'"
	var err error
	fail := func(format string, a ...any) string {
		if err == nil {
			err = fmt.Errorf(format, a...)
		}
		return "macro_error()"
	}
	out := grafanaMacro.ReplaceAllStringFunc(sql, func(call string) string {
		m := grafanaMacro.FindStringSubmatch(call)
		name, args := m[1], strings.Split(m[2], ",")
		for i := range args {
			args[i] = strings.TrimSpace(args[i])
		}
		// Grafana reads "$__timeGroup(...)," as the aliased form.
		if name == "__timeGroup" {
			if i := strings.Index(sql, call); i >= 0 && strings.HasPrefix(sql[i+len(call):], ",") {
				name = "__timeGroupAlias"
			}
		}
		col := args[0]
		switch name {
		case "__time":
			return col + ` AS "time"`
		case "__timeEpoch":
			return "extract(epoch from " + col + `) AS "time"`
		case "__timeFilter":
			return col + " BETWEEN " + from + " AND " + to
		case "__timeFrom":
			return from
		case "__timeTo":
			return to
		case "__timeGroup", "__timeGroupAlias", "__unixEpochGroup", "__unixEpochGroupAlias":
			if len(args) < 2 || len(args) > 3 {
				return fail("%s: want a column, an interval and maybe a fill value", call)
			}
			iv, e := parseInterval(args[1])
			if e != nil {
				return fail("%s: %v", call, e)
			}
			secs := strconv.FormatFloat(iv.Seconds(), 'f', -1, 64)
			expr := "floor(extract(epoch from " + col + ")/" + secs + ")*" + secs
			if strings.HasPrefix(name, "__unixEpoch") {
				expr = "floor(" + col + "/" + secs + ")*" + secs
			}
			if strings.HasSuffix(name, "Alias") {
				expr += ` AS "time"`
			}
			return expr
		case "__unixEpochFilter":
			return fmt.Sprintf("%s >= %d AND %s <= %d", col, qc.from.Unix(), col, qc.to.Unix())
		case "__unixEpochFrom":
			return strconv.FormatInt(qc.from.Unix(), 10)
		case "__unixEpochTo":
			return strconv.FormatInt(qc.to.Unix(), 10)
		}
		return fail("unknown macro %s", call)
	})
	return out, err
}

// expand turns a target's SQL into what PostgreSQL receives.
func (qc queryContext) expand(sql string, vars []variable) (string, error) {
	sql, err := qc.interpolate(sql, vars)
	if err != nil {
		return "", err
	}
	sql, err = qc.expandMacros(sql)
	if err != nil {
		return "", err
	}
	if strings.Contains(sql, "$") {
		return "", fmt.Errorf("a $ is left after expansion:\n%s", sql)
	}
	return sql, nil
}

// result is a query's answer, every value as pgx decodes it.
type result struct {
	columns []string
	numeric []bool
	rows    [][]any
}

// querier is a pool, or one connection of it.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

func runQuery(t *testing.T, db querier, sql string) (result, error) {
	t.Helper()
	rows, err := db.Query(t.Context(), sql)
	if err != nil {
		return result{}, err
	}
	defer rows.Close()
	var r result
	for _, f := range rows.FieldDescriptions() {
		r.columns = append(r.columns, f.Name)
		// int2, int4, int8, float4, float8, numeric
		r.numeric = append(r.numeric, slices.Contains([]uint32{21, 23, 20, 700, 701, 1700}, f.DataTypeOID))
	}
	for rows.Next() {
		vals, err := rows.Values()
		if err != nil {
			return result{}, err
		}
		r.rows = append(r.rows, vals)
	}
	return r, rows.Err()
}

func (r result) column(name string) int { return slices.Index(r.columns, name) }

// number reads a numeric value (pgx gives numeric as pgtype.Numeric).
func number(v any) (float64, bool) {
	switch x := v.(type) {
	case int16:
		return float64(x), true
	case int32:
		return float64(x), true
	case int64:
		return float64(x), true
	case float32:
		return float64(x), true
	case float64:
		return x, true
	case pgtype.Numeric:
		f, err := x.Float64Value()
		return f.Float64, err == nil && f.Valid
	}
	return 0, false
}

// sum adds up every numeric value but the time column: a filter can only
// make it smaller.
func (r result) sum() float64 {
	var s float64
	for _, row := range r.rows {
		for i, v := range row {
			if r.columns[i] == "time" {
				continue
			}
			if f, ok := number(v); ok {
				s += f
			}
		}
	}
	return s
}

// hasData reports whether a panel would show something: a row with a
// value that is neither NULL nor a numeric zero, besides the time.
func (r result) hasData() bool {
	for _, row := range r.rows {
		for i, v := range row {
			if v == nil || r.columns[i] == "time" {
				continue
			}
			if f, ok := number(v); ok && f == 0 {
				continue
			}
			return true
		}
	}
	return false
}

// checkFormat checks what Grafana needs to draw a result: a time series
// needs a "time" column in ascending order, and numeric values, with at
// most a "metric" text column to name the series.
func checkFormat(tg pgTarget, r result) error {
	if tg.Format != "time_series" {
		return nil
	}
	ti := r.column("time")
	if ti < 0 {
		return fmt.Errorf("time series without a time column: %v", r.columns)
	}
	for i, c := range r.columns {
		if i != ti && c != "metric" && !r.numeric[i] {
			return fmt.Errorf("time series column %q is not numeric", c)
		}
	}
	var last float64
	for n, row := range r.rows {
		f, ok := number(row[ti])
		if !ok {
			return fmt.Errorf("time %v (%T) is not an epoch number", row[ti], row[ti])
		}
		if n > 0 && f < last {
			return fmt.Errorf("time goes backwards at row %d: Grafana needs it ascending", n)
		}
		last = f
	}
	return nil
}

// TestPostgresPanels runs every PostgreSQL query of every dashboard, with
// its macros and variables expanded as Grafana would, against a database
// holding three days of sample events, as the read-only role Grafana
// logs in with, for the variables on All, on one
// value each, on all at once and on two actors. A query must run, give
// Grafana a shape it can draw, and show data; a filtered query shows no
// more than the unfiltered one, and what it shows matches the filter.
func TestPostgresPanels(t *testing.T) {
	t.Parallel()
	now := time.Now().UTC()
	db := readerConn(t, sampleDB(t, now.Add(-3*24*time.Hour), now.Add(-10*time.Minute)))
	qc := queryContext{from: now.Add(-7 * 24 * time.Hour), to: time.Now().UTC(), interval: 10 * time.Minute}

	// A real combination, by a dashboard user reading data, so that every
	// panel has something to show with all three filters set.
	var actor, object, key, otherActor string
	err := db.QueryRow(t.Context(), `
		SELECT v.actor_id, v.kv_name, k.key_id
		FROM vault_events v JOIN vault_event_keys k ON k.event_id = v.event_id
		WHERE v.actor_source = 'dashboard' AND v.event_type = 'vault.data.read'
		GROUP BY 1, 2, 3 ORDER BY count(*) DESC, 1, 2, 3 LIMIT 1`).Scan(&actor, &object, &key)
	if err != nil {
		t.Fatal(err)
	}
	err = db.QueryRow(t.Context(), `
		SELECT actor_id FROM vault_events WHERE actor_source = 'api'
		GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1`).Scan(&otherActor)
	if err != nil {
		t.Fatal(err)
	}
	scenarios := []struct {
		name   string
		values map[string][]string
	}{
		{"all", nil},
		{"one actor", map[string][]string{"actor": {actor}}},
		{"one object", map[string][]string{"object": {object}}},
		{"one key", map[string][]string{"key": {key}}},
		{"two actors", map[string][]string{"actor": {actor, otherActor}}},
		{"actor, object and key", map[string][]string{"actor": {actor}, "object": {object}, "key": {key}}},
	}

	ran := 0
	for _, d := range loadDashboards(t) {
		targets := d.pgTargets()
		if len(targets) == 0 {
			continue
		}
		vars := d.Templating.List
		qc := qc
		qc.options = map[string][]string{}
		for _, v := range vars {
			sql, err := qc.expand(v.queryText(), nil)
			if err != nil {
				t.Fatalf("%s: variable %s: %v", d.file, v.Name, err)
			}
			r, err := runQuery(t, db, sql)
			if err != nil {
				t.Fatalf("%s: variable %s: %v\n%s", d.file, v.Name, err, sql)
			}
			// A variable query gives __value (or its only column) and
			// maybe __text.
			vi := max(r.column("__value"), 0)
			for _, row := range r.rows {
				qc.options[v.Name] = append(qc.options[v.Name], fmt.Sprint(row[vi]))
			}
			if len(qc.options[v.Name]) == 0 {
				t.Errorf("%s: variable %s offers no values", d.file, v.Name)
			}
		}
		for _, s := range scenarios {
			if len(vars) == 0 && s.values != nil {
				continue
			}
			for name, want := range s.values {
				for _, w := range want {
					if !slices.Contains(qc.options[name], w) {
						t.Fatalf("%s: variable %s does not offer %q", d.file, name, w)
					}
				}
			}
			qc := qc
			qc.values = s.values
			for _, tg := range targets {
				where := tg.where + " [" + s.name + "]"
				sql, err := qc.expand(tg.RawSQL, vars)
				if err != nil {
					t.Errorf("%s: %v", where, err)
					continue
				}
				r, err := runQuery(t, db, sql)
				ran++
				if err != nil {
					t.Errorf("%s: %v\n%s", where, err, sql)
					continue
				}
				if err := checkFormat(tg, r); err != nil {
					t.Errorf("%s: %v\n%s", where, err, sql)
				}
				if !r.hasData() {
					t.Errorf("%s: no data (%d rows: %v)\n%s", where, len(r.rows), r.rows, sql)
				}
				if tg.panel.Type == "stat" && len(r.rows) != 1 {
					t.Errorf("%s: a stat query gave %d rows, want 1", where, len(r.rows))
				}
				checkFiltered(t, where, r, s.values)
				if s.values != nil {
					unfiltered := qc
					unfiltered.values = nil
					sql, _ := unfiltered.expand(tg.RawSQL, vars)
					all, err := runQuery(t, db, sql)
					if err == nil && r.sum() > all.sum() {
						t.Errorf("%s: sums to %v, more than the %v of All", where, r.sum(), all.sum())
					}
				}
			}
		}
	}
	if ran < 30 {
		t.Errorf("ran %d queries, want at least 30: are the dashboards there?", ran)
	}
}

// checkFiltered checks the rows of a table that shows who, what or which
// keys against the variables' selection.
func checkFiltered(t *testing.T, where string, r result, values map[string][]string) {
	t.Helper()
	for col, name := range map[string]string{"actor_id": "actor", "object": "object"} {
		i, want := r.column(col), values[name]
		if i < 0 || want == nil {
			continue
		}
		for _, row := range r.rows {
			if !slices.Contains(want, fmt.Sprint(row[i])) {
				t.Errorf("%s: %s %v is not in the selection %v", where, col, row[i], want)
				break
			}
		}
	}
	if i, want := r.column("keys"), values["key"]; i >= 0 && want != nil {
		for _, row := range r.rows {
			if !slices.ContainsFunc(want, func(k string) bool { return strings.Contains(fmt.Sprint(row[i]), k) }) {
				t.Errorf("%s: keys %v hold none of %v", where, row[i], want)
				break
			}
		}
	}
}
