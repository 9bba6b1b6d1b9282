package fakeapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/syncer-audit/syncer/internal/model"
)

// Event is one event as the fake serves it. JSON is the record: it is
// written into pages byte for byte, so a test can serve exactly the
// envelope it wants to see decoded, odd fields and all. ID, Type and
// CreatedAt are what the fake filters and orders by.
type Event struct {
	ID        string // "event_" + a 26-character ULID when made by Generator
	Type      string
	CreatedAt time.Time
	JSON      []byte // the whole envelope as served; kept, not copied

	// org is the organization the event is tied to, and made records the
	// JSON the Generator wrote, so Append can trust it without parsing it
	// again (a million events are appended in benchmarks). An event whose
	// JSON was replaced after generation is parsed like any other.
	org     string
	made    *byte
	madeLen int
}

// createdAtLayout is how live traffic writes created_at: UTC, milliseconds, Z.
const createdAtLayout = "2006-01-02T15:04:05.000Z"

// ParseEvent reads an envelope the way Append and POST /_fake/events need
// it: id, event and created_at must be present and non-empty strings;
// everything else is kept as it is in raw. created_at may be RFC 3339 with
// any fraction, or the documentation's "2006-01-02 15:04:05.000" form; a
// time without a zone is UTC.
func ParseEvent(raw []byte) (Event, error) {
	var env struct {
		ID        *string         `json:"id"`
		Event     *string         `json:"event"`
		CreatedAt *string         `json:"created_at"`
		Data      json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(raw, &env); err != nil {
		return Event{}, fmt.Errorf("parse event: %w", err)
	}
	var missing []error
	for _, f := range []struct {
		name string
		v    *string
	}{{"id", env.ID}, {"event", env.Event}, {"created_at", env.CreatedAt}} {
		if f.v == nil || *f.v == "" {
			missing = append(missing, fmt.Errorf("parse event: %s is missing", f.name))
		}
	}
	if err := errors.Join(missing...); err != nil {
		return Event{}, err
	}
	created, err := parseTime(*env.CreatedAt)
	if err != nil {
		return Event{}, fmt.Errorf("parse event %s: created_at: %w", *env.ID, err)
	}
	return Event{ID: *env.ID, Type: *env.Event, CreatedAt: created, JSON: raw, org: dataOrg(env.Data)}, nil
}

// timeLayouts are the created_at and range_* forms accepted: live traffic,
// any RFC 3339 fraction, zone-less and space-separated variants, and a bare
// date.
var timeLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02T15:04:05.999999999",
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02 15:04:05.999999999",
	"2006-01-02",
}

func parseTime(s string) (time.Time, error) {
	for _, layout := range timeLayouts {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not an ISO-8601 time", s)
}

// dataOrg is the organization an event is tied to, for the organization_id
// filter: data.organization_id, else data.key_context.organization_id (the
// Vault events that carry a key context), else data.id when data is an
// organization. Anything else, or a value that is not a string, ties the
// event to no organization.
func dataOrg(data json.RawMessage) string {
	if len(data) == 0 || data[0] != '{' {
		return ""
	}
	var d struct {
		OrganizationID any            `json:"organization_id"`
		KeyContext     map[string]any `json:"key_context"`
		Object         any            `json:"object"`
		ID             any            `json:"id"`
	}
	if json.Unmarshal(data, &d) != nil {
		// A field of an unexpected shape: try the common case alone.
		var only struct {
			OrganizationID string `json:"organization_id"`
		}
		_ = json.Unmarshal(data, &only)
		return only.OrganizationID
	}
	if s, ok := d.OrganizationID.(string); ok && s != "" {
		return s
	}
	if s, ok := d.KeyContext["organization_id"].(string); ok && s != "" {
		return s
	}
	if d.Object == "organization" {
		if s, ok := d.ID.(string); ok {
			return s
		}
	}
	return ""
}

// VaultCount returns how many of evs are Vault events, the ones the syncer
// projects into audit rows: the number a test expects to find there.
func VaultCount(evs []Event) int {
	n := 0
	for _, ev := range evs {
		if model.IsVaultType(ev.Type) {
			n++
		}
	}
	return n
}

// field is one member of a JSON object the Generator writes. Values are
// string, bool, []string, []field (an object), []any (an array) or nil.
type field struct {
	k string
	v any
}

func appendObject(b []byte, fs []field) []byte {
	b = append(b, '{')
	for i, f := range fs {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, f.k)
		b = append(b, ':')
		b = appendValue(b, f.v)
	}
	return append(b, '}')
}

func appendValue(b []byte, v any) []byte {
	switch v := v.(type) {
	case nil:
		return append(b, "null"...)
	case string:
		return appendString(b, v)
	case bool:
		return strconv.AppendBool(b, v)
	case int:
		return strconv.AppendInt(b, int64(v), 10)
	case []field:
		return appendObject(b, v)
	case []string:
		b = append(b, '[')
		for i, s := range v {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, s)
		}
		return append(b, ']')
	case []any:
		b = append(b, '[')
		for i, e := range v {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendValue(b, e)
		}
		return append(b, ']')
	}
	panic(fmt.Sprintf("fakeapi: no JSON form for %T", v))
}

// appendString writes s as a JSON string. Valid UTF-8 passes through;
// quotes, backslashes and control characters are escaped, and invalid
// bytes become U+FFFD as encoding/json would make them.
func appendString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
			i++
		case c < 0x20:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&15])
			i++
		case c < utf8.RuneSelf:
			b = append(b, c)
			i++
		default:
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 {
				b = append(b, `\ufffd`...)
			} else {
				b = append(b, s[i:i+size]...)
			}
			i += size
		}
	}
	return append(b, '"')
}
