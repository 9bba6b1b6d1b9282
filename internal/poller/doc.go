// Package poller follows the WorkOS Events API with a cursor.
//
// The cursor is the id of the last event the API returned and the sink
// stored, never the API's list_metadata.after (null on the last page) and
// never derived from stored rows (the API holds fresh events back for a
// few seconds, so a later id can be stored before an earlier one is
// visible). Each page goes to the Sink together with the cursor move, and
// the sink commits both or neither; so a crash at any instant loses nothing
// and, since the store ignores events it already has, duplicates nothing.
//
// Retries: 429, 408, 500, 502, 503, 504, network errors and cut or garbled
// bodies are retried with capped, jittered exponential backoff, honouring
// Retry-After. Other answers (400, 401, 403, 404, 422) fail at once with
// WorkOS's message, code and request id. A type filter that the API
// rejects is bisected to name the rejected types. A page whose ids or
// times go backwards stops the sync with the cursor untouched.
package poller
