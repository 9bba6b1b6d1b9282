package fakeapi

import "testing"

// ulidTime decodes the millisecond time part of a ULID, the first 10
// characters. It reports false for text that is not Crockford base32.
func ulidTime(s string) (uint64, bool) {
	if len(s) < 10 {
		return 0, false
	}
	var ms uint64
	for i := range 10 {
		d := -1
		for j := range len(crockford) {
			if crockford[j] == s[i] {
				d = j
			}
		}
		if d < 0 {
			return 0, false
		}
		ms = ms<<5 | uint64(d)
	}
	return ms, true
}

func TestULID(t *testing.T) {
	tests := []struct {
		name string
		ms   uint64
		hi   uint16
		lo   uint64
		want string
	}{
		{"zero", 0, 0, 0, "00000000000000000000000000"},
		{"max", 1<<48 - 1, 0xFFFF, ^uint64(0), "7ZZZZZZZZZZZZZZZZZZZZZZZZZ"},
		{"random part only", 0, 0, 1, "00000000000000000000000001"},
		{"time part only", 1, 0, 0, "00000000010000000000000000"},
		// The ulid reference implementation documents that 01ARYZ6S41...
		// decodes to the time 1469918176385.
		{"documented time", 1469918176385, 0, 0, "01ARYZ6S410000000000000000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := string(appendULID(nil, tt.ms, tt.hi, tt.lo))
			if got != tt.want {
				t.Fatalf("appendULID = %s, want %s", got, tt.want)
			}
			if ms, ok := ulidTime(got); !ok || ms != tt.ms {
				t.Fatalf("time part decodes to %d (%v), want %d", ms, ok, tt.ms)
			}
		})
	}
}
