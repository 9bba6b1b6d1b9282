package grafana_test

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// daemonMetrics are the metrics the syncer exposes, with their labels; a
// dashboard asking for anything else would draw nothing.
var daemonMetrics = map[string][]string{
	"syncer_store_events_written_total":        {"event_type"},
	"syncer_store_pages_written_total":         nil,
	"syncer_store_tx_duration_seconds":         nil, // a histogram
	"syncer_store_quarantined_total":           {"kind"},
	"syncer_api_requests_total":                {"status_class"},
	"syncer_api_retries_total":                 nil,
	"syncer_api_rate_limit_wait_seconds_total": nil,
	"syncer_poller_seconds_since_last_success": nil,
	"syncer_archive_newest_event_age_seconds":  nil,
	"syncer_webhook_requests_total":            {"result"},
}

// labelValues are the values a label can take, where they are bounded.
var labelValues = map[string][]string{
	"status_class": {"2xx", "4xx", "5xx", "error"},
	"kind":         {"envelope", "projection", "conflict"},
	"result":       {"accepted", "bad_signature", "stale", "malformed"},
}

// Labels every series has from the scrape, and a histogram's bucket bound.
var scrapeLabels = []string{"instance", "job", "le"}

var promFunctions = strings.Fields(`sum min max avg count stddev stdvar topk bottomk quantile count_values group
	rate irate increase delta idelta deriv predict_linear resets changes
	avg_over_time min_over_time max_over_time sum_over_time count_over_time last_over_time quantile_over_time
	histogram_quantile abs ceil floor round clamp clamp_min clamp_max sort sort_desc
	absent absent_over_time vector scalar time timestamp label_replace label_join`)

var promKeywords = strings.Fields(`by without on ignoring group_left group_right and or unless bool offset`)

var (
	promString  = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'`)
	promMatcher = regexp.MustCompile(`\{([^}]*)\}`)
	promLabel   = regexp.MustCompile(`^\s*(\w+)\s*(=~|!~|!=|=)\s*("(?:[^"\\]|\\.)*")\s*$`)
	promRange   = regexp.MustCompile(`\[[^\]]*\]`)
	promGroup   = regexp.MustCompile(`\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)`)
	promIdent   = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*`)
	promNumber  = regexp.MustCompile(`\b\d+(\.\d+)?([eE][+-]?\d+)?\b`)
)

// checkPromQL checks that expr asks only for the daemon's metrics and
// labels, with bounded labels matched to values they can take. It is a
// lexical check, not a PromQL parser, but a misspelt metric, label or
// function, or an unbalanced bracket, fails it.
func checkPromQL(expr string) error {
	if err := balanced(expr); err != nil {
		return err
	}
	// Grafana's own variables stand for durations or label values.
	e := regexp.MustCompile(`\$(__rate_interval|__interval|__range)\b`).ReplaceAllString(expr, "5m")
	var labels []string // label names the expression uses
	for _, m := range promMatcher.FindAllStringSubmatch(e, -1) {
		for _, part := range splitMatchers(m[1]) {
			lm := promLabel.FindStringSubmatch(part)
			if lm == nil {
				return fmt.Errorf("label matcher %q", part)
			}
			labels = append(labels, lm[1])
			if allowed, bounded := labelValues[lm[1]]; bounded && (lm[2] == "=" || lm[2] == "!=") {
				if v := strings.Trim(lm[3], `"`); !slices.Contains(allowed, v) {
					return fmt.Errorf("label %s is never %q (it is one of %v)", lm[1], v, allowed)
				}
			}
		}
	}
	e = promMatcher.ReplaceAllString(e, " ")
	e = promRange.ReplaceAllString(e, " ")
	for _, m := range promGroup.FindAllStringSubmatch(e, -1) {
		for _, l := range strings.Split(m[2], ",") {
			if l = strings.TrimSpace(l); l != "" {
				labels = append(labels, l)
			}
		}
	}
	e = promGroup.ReplaceAllString(e, " ")
	e = promString.ReplaceAllString(e, " ")
	e = promNumber.ReplaceAllString(e, " ")

	var metrics []string
	for _, loc := range promIdent.FindAllStringIndex(e, -1) {
		word := e[loc[0]:loc[1]]
		call := strings.HasPrefix(strings.TrimLeft(e[loc[1]:], " \t\n"), "(")
		switch {
		case call && slices.Contains(promFunctions, word):
		case call:
			return fmt.Errorf("unknown function %s", word)
		case slices.Contains(promKeywords, word):
		default:
			if metricOf(word) == "" {
				return fmt.Errorf("%s is not a metric the syncer exposes", word)
			}
			metrics = append(metrics, word)
		}
	}
	if len(metrics) == 0 {
		return fmt.Errorf("no metric")
	}
	for _, l := range labels {
		if slices.Contains(scrapeLabels, l) {
			continue
		}
		found := false
		for _, m := range metrics {
			found = found || slices.Contains(daemonMetrics[metricOf(m)], l)
		}
		if !found {
			return fmt.Errorf("label %s: none of %v has it", l, metrics)
		}
	}
	return nil
}

// metricOf names the daemon metric a series name belongs to ("" for
// none): the metric itself, or a histogram's _bucket, _sum or _count.
func metricOf(series string) string {
	if _, ok := daemonMetrics[series]; ok {
		return series
	}
	const histogram = "syncer_store_tx_duration_seconds"
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if series == histogram+suffix {
			return histogram
		}
	}
	return ""
}

// splitMatchers splits the inside of {...} on commas outside quotes.
func splitMatchers(s string) []string {
	var parts []string
	var cur strings.Builder
	quoted := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' && quoted && i+1 < len(s):
			cur.WriteByte(c)
			i++
			c = s[i]
		case c == '"':
			quoted = !quoted
		case c == ',' && !quoted:
			parts = append(parts, cur.String())
			cur.Reset()
			continue
		}
		cur.WriteByte(c)
	}
	if strings.TrimSpace(cur.String()) != "" {
		parts = append(parts, cur.String())
	}
	return parts
}

func balanced(expr string) error {
	var stack []byte
	pairs := map[byte]byte{')': '(', ']': '[', '}': '{'}
	noQuotes := promString.ReplaceAllString(expr, `""`)
	for i := 0; i < len(noQuotes); i++ {
		switch c := noQuotes[i]; c {
		case '(', '[', '{':
			stack = append(stack, c)
		case ')', ']', '}':
			if len(stack) == 0 || stack[len(stack)-1] != pairs[c] {
				return fmt.Errorf("unbalanced %q at %d", c, i)
			}
			stack = stack[:len(stack)-1]
		}
	}
	if len(stack) > 0 {
		return fmt.Errorf("unclosed %q", stack[len(stack)-1])
	}
	return nil
}

// TestPrometheusQueries checks every Prometheus query of the dashboards,
// template variables included, against the metrics the daemon exposes.
func TestPrometheusQueries(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	n := 0
	for _, d := range loadDashboards(t) {
		for _, p := range d.allPanels() {
			for _, tg := range p.Targets {
				if dsOf(p, tg).UID != "syncer-prometheus" {
					continue
				}
				n++
				if err := checkPromQL(tg.Expr); err != nil {
					t.Errorf("%s: panel %q %s: %v\n%s", d.file, p.Title, tg.RefID, err, tg.Expr)
				}
				for _, w := range promIdent.FindAllString(tg.Expr, -1) {
					if m := metricOf(w); m != "" {
						seen[m] = true
					}
				}
			}
		}
		for _, v := range d.Templating.List {
			if v.Datasource == nil || v.Datasource.UID != "syncer-prometheus" {
				continue
			}
			q := v.queryText()
			m := regexp.MustCompile(`^label_values\((\w+),\s*(\w+)\)$`).FindStringSubmatch(q)
			if m == nil {
				t.Errorf("%s: variable %s: query %q, want label_values(metric, label)", d.file, v.Name, q)
				continue
			}
			if err := checkPromQL(m[1] + ` == 0 or sum by (` + m[2] + `) (` + m[1] + `)`); err != nil {
				t.Errorf("%s: variable %s: %v", d.file, v.Name, err)
			}
		}
	}
	if n == 0 {
		t.Fatal("no Prometheus queries found")
	}
	// The Prometheus dashboard shows every health metric the daemon has.
	for m := range daemonMetrics {
		if !seen[m] {
			t.Errorf("no panel shows %s", m)
		}
	}
}

// TestCheckPromQL makes sure the check above can fail.
func TestCheckPromQL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		expr string
		ok   bool
	}{
		{`sum by (event_type) (rate(syncer_store_events_written_total{instance=~"$instance"}[$__rate_interval])) * 60`, true},
		{`histogram_quantile(0.99, sum by (le) (rate(syncer_store_tx_duration_seconds_bucket[5m])))`, true},
		{`sum(increase(syncer_api_requests_total{status_class!="2xx"}[$__range]))`, true},
		{`min(syncer_poller_seconds_since_last_success >= 0)`, true},
		{`rate(syncer_events_written_total[5m])`, false},                        // not a metric of the daemon
		{`syncer_store_pages_written_total_bucket`, false},                      // not a histogram
		{`sum(rate(syncer_api_requests_total{status_class="500"}[5m]))`, false}, // not a status class
		{`sum by (event_type) (syncer_api_requests_total)`, false},              // no such label there
		{`rat(syncer_api_retries_total[5m])`, false},                            // no such function
		{`sum(rate(syncer_api_retries_total[5m])`, false},                       // unbalanced
		{`up`, false},
	}
	for _, tt := range tests {
		err := checkPromQL(tt.expr)
		if (err == nil) != tt.ok {
			t.Errorf("checkPromQL(%q) = %v, want ok %v", tt.expr, err, tt.ok)
		}
	}
}
