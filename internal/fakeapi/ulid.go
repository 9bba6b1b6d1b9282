package fakeapi

// crockford is the Crockford base32 alphabet ULIDs are written in: digits
// and capitals without I, L, O and U, so ids sort as text in time order.
const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

// appendULID writes the 26-character ULID whose 48-bit time part is ms and
// whose 80-bit random part is hi (top 16 bits) and lo (low 64 bits).
func appendULID(b []byte, ms uint64, hi uint16, lo uint64) []byte {
	// The 128-bit value as two words: a = ms<<16 | hi, then lo. 26 base32
	// digits hold 130 bits, so the first digit carries only 3 of them.
	a := ms<<16 | uint64(hi)
	var out [26]byte
	for i := 25; i >= 0; i-- {
		out[i] = crockford[lo&31]
		lo = lo>>5 | a<<59
		a >>= 5
	}
	return append(b, out[:]...)
}
