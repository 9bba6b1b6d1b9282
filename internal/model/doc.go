// Package model holds what an event is, independent of where it comes from
// and where it goes: the envelope returned by the WorkOS Events API, the
// typed payloads of the Vault event types, and the pure projection of a page
// of events into the rows of the audit tables.
//
// The raw JSON of an event is the record. Typed decoding is a projection of
// it: an event whose payload cannot be projected is still archived whole and
// carries the reason, so nothing is dropped because a field changed shape.
//
// Text that PostgreSQL cannot store (the NUL character, invalid UTF-8) is
// replaced by U+FFFD when an event is decoded, and the event is marked
// sanitized with its original bytes kept, so every later stage sees only
// storable values.
//
// The package uses the standard library only and does no I/O.
package model
