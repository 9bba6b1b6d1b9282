// Package fakeapi is an in-memory fake of the WorkOS Events API
// (GET /events), for the syncer's tests, its demo and its benchmarks. A
// Server is an http.Handler: mount it on an httptest.Server, Append events
// (or let a Generator make a realistic stream), Inject faults, and point
// the client under test at it.
//
// # What it is faithful to
//
//   - Authentication: only "Authorization: Bearer <Config.APIKey>" is
//     served (the scheme is matched without regard to case); anything else
//     gets 401 {"message":"Unauthorized","code":"unauthorized"}. Every
//     answer, errors included, carries an X-Request-ID of the form req_...
//   - The type filter is required: without one the answer is 422 with
//     errors [{"field":"events","code":"required"}]. A single name the API
//     does not know fails the whole request with 400, code
//     invalid_events_request. The names the fake knows are
//     model.KnownTypes, so the fake and the syncer agree by construction;
//     to test the 400 path, ask for a made-up name.
//   - limit defaults to 10 and must be 1..100, else 422 naming limit.
//   - after is a cursor by position: events with an id greater than it
//     are returned, so an id the fake never held still works.
//   - order is accepted and ignored: pages are always oldest first, as the
//     live server does whatever the documentation says.
//   - The answer is {"object":"list","data":[...],"list_metadata":
//     {"before":null,"after":...}}, where after is the id of the page's
//     last event, or null when no further matching event can be served
//     now. An empty data means caught up; the cursor to keep is the last
//     event's id, never the null.
//   - Events are served byte for byte as appended, so a test can feed a
//     client any envelope: odd created_at forms, unknown fields, missing
//     context, payloads of the wrong shape.
//   - New events can be held back (Config.HoldBack) and old ones forgotten
//     (Config.Retention), the two time windows a client must live with.
//
// # Where it deliberately differs
//
//   - It is lenient about the filter's form: repeated keys
//     (events=a&events=b, the form known to work live), a comma list
//     (events=a,b) and brackets (events[]=a, the form the WorkOS CLI's
//     emulator reads) are all accepted and their union used. The fake does
//     not tell a client which form is right; Stats.LastQuery lets a test
//     check what was sent.
//   - The 400 for an unknown name does not say which name it was: a
//     client must not depend on the live API's message, and against the
//     fake it cannot.
//   - The live API's validation codes for limit and the range parameters
//     are not known; the fake uses "invalid".
//   - range_start and range_end bound created_at as a half-open interval:
//     range_start inclusive, range_end exclusive, so consecutive windows
//     neither overlap nor leave gaps. They accept RFC 3339 with any
//     fraction or zone, the zone-less and space-separated forms, and a bare
//     date. A range_end before range_start is a 422.
//   - organization_id keeps the events tied to that organization: those
//     whose data has that organization_id, or a key_context with it (the
//     Vault data and key events), or that are the organization itself
//     (organization.* events). User-level events drop out. An organization
//     the fake has never seen gives an empty page, not the live API's 400.
//   - The hold-back applies to every read, not only cursor reads, and only
//     when HoldBack is positive: by default every appended event is served
//     at once, whatever its created_at, so tests need no clock.
//   - Rate limits, outages and broken connections happen only when
//     injected (see Fault). A Status fault is answered before the key is
//     checked, as a rate limiter or gateway in front of the API would;
//     502 and 504 get an HTML body, as a proxy sends them.
//   - The stream is kept sorted: Append refuses an id that is not greater
//     than the last, or a created_at earlier than the last. A page whose
//     ids go backwards, which the live API should never send and a client
//     must refuse, is made by a Reorder fault instead.
//   - Only GET /events exists: there are no other WorkOS routes and no
//     webhooks.
//
// # Control routes
//
// So that a separate process (the demo, a benchmark driver) can drive the
// fake, it also serves, without authentication:
//
//   - POST /_fake/events?n=N appends N events from Config.Generator (400
//     when there is none).
//   - POST /_fake/events with a JSON array of envelopes appends them; each
//     needs id, event and created_at, and ids must increase (409 when they
//     would go backwards, 400 for anything else wrong).
//   - POST /_fake/faults with a JSON array of faults queues them; the
//     fields are status, retry_after, body, delay_ms, truncate, reset,
//     reorder and repeat. Unknown fields are refused.
//   - GET /_fake/stats returns Stats as JSON.
//
// Faults are used up only by GET /events requests, never by these routes.
//
// # Scale
//
// Events live in one slice sorted by id, with an index of positions per
// type and per organization. A page is found by binary search and a walk
// of the stream or of an index, and copies only the page, so pages stay in
// the tens of microseconds over a million events (see the benchmarks);
// the index costs about 70 bytes per event besides its JSON. Requests and
// Append may run concurrently: readers see a consistent prefix of the
// stream.
package fakeapi
