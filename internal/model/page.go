package model

import "time"

// Stream is one cursor and what it follows. The main stream follows the
// configured type filter for ever; a backfill stream covers a closed time
// range for some types and is done once it reaches the range's end.
type Stream struct {
	Name string
	// AfterID is the cursor: the id of the last event written; "" before
	// the first page.
	AfterID string
	// AfterTime is the created_at of that event, to tell how far behind
	// the API's retention window the cursor is.
	AfterTime  time.Time
	EventTypes []string
	// RangeStart is where a stream without a cursor starts; RangeEnd, if
	// set, is where a backfill stops.
	RangeStart, RangeEnd time.Time
	// Done marks a backfill that reached RangeEnd.
	Done bool
}

// Bounded reports whether the stream is a backfill with an end.
func (s Stream) Bounded() bool { return !s.RangeEnd.IsZero() }

// Gap is a period whose events the API may no longer hold: the syncer
// could not ask for them before the retention window dropped them.
type Gap struct {
	From, To time.Time
	Reason   string
}

// Page is one page of events ready to be stored, with the stream state
// that must commit with it.
type Page struct {
	// Stream is the stream as it stands after this page. Its AfterID is
	// the id of the last event actually returned, never the API's
	// list_metadata.after.
	Stream Stream
	// Prev is the cursor the page was fetched after ("" on the first
	// page); the store refuses the page if the stored cursor is no longer
	// Prev, which means another writer follows the same stream.
	Prev string
	// Events may be empty: a page can also just record a stream's new
	// filter, its end, or a gap.
	Events []Event
	Gaps   []Gap
}
