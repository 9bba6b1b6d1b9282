package model

// Page is one page of events ready to be stored, with the cursor move that
// must commit with it.
type Page struct {
	// Stream names the cursor; one database can follow several streams.
	Stream string
	// Prev is the cursor the page was fetched after ("" on the first run);
	// the store refuses the page if the stored cursor is no longer Prev.
	Prev string
	// Next is the cursor after this page: the id of the last event
	// actually returned, never the API's list_metadata.after.
	Next string
	// EventTypes is the type filter the cursor follows.
	EventTypes []string
	Events     []Event
}
