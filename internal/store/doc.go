// Package store writes the audit trail to PostgreSQL with pgx/v5.
//
// The contract with the poller is WritePage: a page's events, their
// projection into the Vault tables, any gaps, and the stream's new cursor
// commit in one transaction, or none of it does. The cursor moves only
// from the value the page was fetched after (a compare-and-set), which
// guards the single-writer lock; so a crash at any instant leaves the
// archive exactly equal to what the stored cursors cover, and the next run
// goes on from there. Every table is written with one statement per page
// (unnest arrays), whatever the page's size.
//
// Events are immutable: the first content stored for an id wins, and a
// different one later is quarantined as a conflict. Values PostgreSQL
// cannot hold never fail a page for good: the model sanitizes text and
// bounds identifiers, and JSON the server still refuses is isolated event
// by event, kept as original bytes and quarantined.
package store
