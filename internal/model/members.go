package model

import (
	"bytes"
	"encoding/json"
	"errors"
)

// errNotObject is returned by members for JSON that is not an object.
var errNotObject = errors.New("not a JSON object")

// members calls f with each key (still quoted and escaped, as in the
// input) and raw value of a JSON object, in order, without allocating.
// The input must already be valid JSON, as every slice handed to the
// decoder here is: the page it came from was validated whole. It stops at
// the first error f returns.
func members(obj []byte, f func(key, value []byte) error) error {
	i := skipSpace(obj, 0)
	if i >= len(obj) || obj[i] != '{' {
		return errNotObject
	}
	i = skipSpace(obj, i+1)
	if i < len(obj) && obj[i] == '}' {
		return nil
	}
	for i < len(obj) {
		kEnd := skipValue(obj, i) // the key, a string
		key := obj[i:kEnd]
		i = skipSpace(obj, kEnd)
		if i >= len(obj) || obj[i] != ':' {
			return errNotObject
		}
		vStart := skipSpace(obj, i+1)
		vEnd := skipValue(obj, vStart)
		if err := f(key, obj[vStart:vEnd]); err != nil {
			return err
		}
		i = skipSpace(obj, vEnd)
		if i >= len(obj) || obj[i] == '}' {
			return nil
		}
		i = skipSpace(obj, i+1) // the comma
	}
	return nil
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\n' || b[i] == '\t' || b[i] == '\r') {
		i++
	}
	return i
}

// skipValue returns the index just past the valid JSON value at b[i].
func skipValue(b []byte, i int) int {
	if i >= len(b) {
		return i
	}
	switch b[i] {
	case '"':
		for j := i + 1; j < len(b); j++ {
			switch b[j] {
			case '\\':
				j++
			case '"':
				return j + 1
			}
		}
		return len(b)
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				j = skipValue(b, j) - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1
				}
			}
		}
		return len(b)
	default: // number, true, false, null
		j := i
		for j < len(b) {
			switch b[j] {
			case ',', '}', ']', ' ', '\n', '\t', '\r':
				return j
			}
			j++
		}
		return j
	}
}

// keyIs reports whether a quoted key from members is name, as a JSON
// decoder reads it: "\u0069d" is "id" too, or the audit rows and the
// archive (jsonb unescapes keys) would disagree.
func keyIs(key []byte, name string) bool {
	if len(key) < 2 {
		return false
	}
	inner := key[1 : len(key)-1]
	if bytes.IndexByte(inner, '\\') < 0 {
		return string(inner) == name
	}
	var s string
	return json.Unmarshal(key, &s) == nil && s == name
}

// keyName unescapes a quoted key from members.
func keyName(key []byte) string {
	if len(key) < 2 {
		return ""
	}
	inner := key[1 : len(key)-1]
	if bytes.IndexByte(inner, '\\') < 0 {
		return string(inner)
	}
	var s string
	json.Unmarshal(key, &s) //nolint:errcheck // a key from valid JSON
	return s
}
