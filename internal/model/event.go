package model

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// MaxIDLength bounds an event id and an event type. WorkOS ids are about
// 32 characters and types under 60; a longer one is a sign of a broken or
// hostile response, and would not fit PostgreSQL's index rows.
const MaxIDLength = 255

// Event is one event envelope as the API returned it. Every field it had is
// kept: the named ones below, and the rest in Extra.
type Event struct {
	ID        string
	Type      string
	CreatedAt time.Time       // zero when missing or unparseable; Problem says so
	Data      json.RawMessage // nil when absent or null
	Context   json.RawMessage // nil when absent or null
	// Extra holds the envelope's other fields (such as the emulator's
	// environment_id) as a JSON object; nil when there are none. The
	// constant "object": "event" is not kept.
	Extra json.RawMessage

	// Raw is the envelope's bytes exactly as received.
	Raw []byte
	// Sanitized is true when Raw held text PostgreSQL cannot store (NUL,
	// invalid UTF-8, lone UTF-16 surrogates) and the fields above were
	// rebuilt with U+FFFD in its place.
	Sanitized bool
	// Problem says why the envelope is not valid (no id, no type, a bad
	// created_at); empty when it is. An event with a Problem but an ID is
	// archived and quarantined; one without an ID can only be quarantined.
	Problem string
}

// DecodeEvent decodes one envelope. It fails only when raw is not JSON at
// all; an envelope with missing or wrongly typed fields decodes with
// Problem set, so that it can still be kept.
func DecodeEvent(raw []byte) (Event, error) {
	if !json.Valid(raw) {
		var v json.RawMessage
		err := json.Unmarshal(raw, &v) // for its message
		return Event{Raw: raw}, fmt.Errorf("decode event: %w", err)
	}
	return decodeEvent(raw)
}

// decodeEvent decodes an envelope known to be valid JSON. It reads the
// members in place, without a map: on the hot path every event passes
// here.
func decodeEvent(raw []byte) (Event, error) {
	ev := Event{Raw: raw}
	clean, sanitized, err := Sanitize(raw)
	if err != nil {
		return ev, err
	}
	ev.Sanitized = sanitized
	if kind := valueKind(clean); kind != "object" {
		ev.Problem = "envelope is a JSON " + kind + ", not an object"
		return ev, nil
	}
	var (
		id, typ, created []byte
		seen             [3]bool
		extra            []byte
	)
	err = members(clean, func(k, v []byte) error {
		switch {
		case keyIs(k, "id"):
			id, seen[0] = v, true
		case keyIs(k, "event"):
			typ, seen[1] = v, true
		case keyIs(k, "created_at"):
			created, seen[2] = v, true
		case keyIs(k, "data"):
			ev.Data = nonNull(v)
		case keyIs(k, "context"):
			ev.Context = nonNull(v)
		case keyIs(k, "object") && string(v) == `"event"`:
		default:
			if extra == nil {
				extra = append(make([]byte, 0, len(k)+len(v)+8), '{')
			} else {
				extra = append(extra, ',')
			}
			extra = append(append(append(extra, k...), ':'), v...)
		}
		return nil
	})
	if err != nil {
		return ev, fmt.Errorf("decode event: %w", err)
	}
	if extra != nil {
		ev.Extra = append(extra, '}')
	}
	var problems []string
	ev.ID, problems = stringField("id", id, seen[0], problems)
	switch {
	case len(ev.ID) > MaxIDLength:
		problems = append(problems, fmt.Sprintf("id is %d bytes long, over %d", len(ev.ID), MaxIDLength))
		ev.ID = ""
	case sanitized && strings.ContainsRune(ev.ID, utf8.RuneError):
		// Cleaned, it would no longer be the API's id, nor a cursor.
		problems = append(problems, "id holds characters PostgreSQL cannot store")
		ev.ID = ""
	}
	ev.Type, problems = stringField("event", typ, seen[1], problems)
	if len(ev.Type) > MaxIDLength {
		problems = append(problems, fmt.Sprintf("event type is %d bytes long, over %d", len(ev.Type), MaxIDLength))
		ev.Type = ""
	}
	var when string
	when, problems = stringField("created_at", created, seen[2], problems)
	if when != "" {
		t, err := ParseTime(when)
		if err != nil {
			problems = append(problems, "created_at: "+err.Error())
		}
		ev.CreatedAt = t
	}
	ev.Problem = strings.Join(problems, "; ")
	return ev, nil
}

// valueKind names the kind of a valid JSON value by its first byte.
func valueKind(v []byte) string {
	i := skipSpace(v, 0)
	if i >= len(v) {
		return "nothing"
	}
	switch v[i] {
	case '{':
		return "object"
	case '[':
		return "array"
	case '"':
		return "string"
	case 't', 'f':
		return "boolean"
	case 'n':
		return "null"
	}
	return "number"
}

// stringField reads a required string member, noting a problem when it
// is missing, empty or not a string.
func stringField(key string, v []byte, present bool, problems []string) (string, []string) {
	if !present || string(v) == "null" {
		return "", append(problems, key+" is missing")
	}
	if len(v) < 2 || v[0] != '"' {
		return "", append(problems, key+" is not a string")
	}
	var s string
	if bytes.IndexByte(v, '\\') < 0 {
		s = string(v[1 : len(v)-1])
	} else if err := json.Unmarshal(v, &s); err != nil {
		return "", append(problems, key+" is not a string")
	}
	if s == "" {
		return "", append(problems, key+" is empty")
	}
	return s, problems
}

func nonNull(v json.RawMessage) json.RawMessage {
	if len(v) == 0 || string(v) == "null" {
		return nil
	}
	return v
}

// List is one page of GET /events.
type List struct {
	Events []Event
	// After is list_metadata.after: "" when null or missing, which the API
	// does on the last page. It is a hint that more pages exist, never a
	// cursor to store.
	After string
}

// DecodeList decodes a GET /events response body. It fails when the body is
// not a JSON list object (a truncated or garbled response); single events
// with problems decode with Problem set instead.
func DecodeList(body []byte) (List, error) {
	var page struct {
		Data         *[]json.RawMessage `json:"data"`
		ListMetadata struct {
			After json.RawMessage `json:"after"`
		} `json:"list_metadata"`
	}
	if err := json.Unmarshal(body, &page); err != nil {
		return List{}, fmt.Errorf("decode event list: %w", err)
	}
	if page.Data == nil {
		return List{}, errors.New("decode event list: no data array")
	}
	var list List
	if a := page.ListMetadata.After; len(a) > 0 && a[0] == '"' {
		if err := json.Unmarshal(a, &list.After); err != nil {
			return List{}, fmt.Errorf("decode event list: list_metadata.after: %w", err)
		}
	}
	list.Events = make([]Event, 0, len(*page.Data))
	for i, raw := range *page.Data {
		ev, err := decodeEvent(raw) // the page was validated whole
		if err != nil {
			return List{}, fmt.Errorf("decode event list: data[%d]: %w", i, err)
		}
		list.Events = append(list.Events, ev)
	}
	return list, nil
}

// ParseTime parses the timestamp forms WorkOS is known to emit: RFC 3339
// with Z or an offset, and the zone-less "2023-04-28 20:05:31.093" of the
// docs' own sample, which is UTC; "T" or a space between date and time, 0
// to 9 fractional digits.
func ParseTime(s string) (time.Time, error) {
	for _, layout := range timeLayouts {
		if t, err := time.Parse(layout, s); err == nil {
			if y := t.UTC().Year(); y < 1970 || y > 9999 {
				return time.Time{}, fmt.Errorf("timestamp %q is out of range (years 1970 to 9999)", truncate(s, 64))
			}
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("unrecognised timestamp %q", truncate(s, 64))
}

var timeLayouts = []string{
	"2006-01-02T15:04:05.999999999Z07:00",
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02T15:04:05.999999999Z07",
	"2006-01-02 15:04:05.999999999Z07",
	"2006-01-02T15:04:05.999999999",
	"2006-01-02 15:04:05.999999999",
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}

// Sanitize returns raw unchanged when PostgreSQL can store it as jsonb, and
// otherwise a re-encoding in which invalid UTF-8, NUL characters and lone
// UTF-16 surrogates are replaced by U+FFFD; changed reports which. It fails
// only when raw is not JSON.
func Sanitize(raw []byte) (clean []byte, changed bool, err error) {
	validUTF8 := utf8.Valid(raw)
	nul, lone := false, false
	if bytes.Contains(raw, []byte(`\u`)) || bytes.Contains(raw, []byte(`\U`)) {
		nul, lone = scanEscapes(raw)
	}
	if validUTF8 && !nul && !lone {
		return raw, false, nil
	}
	// encoding/json already turns invalid UTF-8 and lone surrogates into
	// U+FFFD when it decodes; NUL it keeps, so replace that by hand.
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, false, fmt.Errorf("sanitize: %w", err)
	}
	v = replaceNUL(v)
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, false, fmt.Errorf("sanitize: %w", err)
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), true, nil
}

// scanEscapes walks the backslash escapes of a JSON text and reports whether
// it encodes a NUL character or a UTF-16 surrogate without its pair, the
// two escapes that PostgreSQL's jsonb refuses.
func scanEscapes(raw []byte) (nul, lone bool) {
	pendingHigh := false
	for i := 0; i < len(raw); i++ {
		if raw[i] != '\\' {
			if pendingHigh {
				lone = true
				pendingHigh = false
			}
			continue
		}
		if i+1 >= len(raw) {
			break
		}
		if raw[i+1] != 'u' || i+5 >= len(raw) {
			i++ // an escaped character such as \\ or \"; skip it
			if pendingHigh {
				lone = true
				pendingHigh = false
			}
			continue
		}
		var r rune
		for _, c := range raw[i+2 : i+6] {
			r <<= 4
			switch {
			case c >= '0' && c <= '9':
				r |= rune(c - '0')
			case c >= 'a' && c <= 'f':
				r |= rune(c-'a') + 10
			case c >= 'A' && c <= 'F':
				r |= rune(c-'A') + 10
			}
		}
		i += 5
		switch {
		case r == 0:
			nul = true
		case r >= 0xD800 && r < 0xDC00:
			if pendingHigh {
				lone = true
			}
			pendingHigh = true
			continue
		case r >= 0xDC00 && r < 0xE000:
			if !pendingHigh {
				lone = true
			}
		default:
			if pendingHigh {
				lone = true
			}
		}
		pendingHigh = false
	}
	return nul, lone || pendingHigh
}

func replaceNUL(v any) any {
	switch x := v.(type) {
	case string:
		return strings.ReplaceAll(x, "\x00", "\uFFFD")
	case []any:
		for i := range x {
			x[i] = replaceNUL(x[i])
		}
		return x
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, val := range x {
			out[strings.ReplaceAll(k, "\x00", "\uFFFD")] = replaceNUL(val)
		}
		return out
	default:
		return v
	}
}
