// Package migrations holds the SQL that creates and evolves the syncer's
// tables, embedded in the binary and applied by golang-migrate. A migration
// that has been released is never edited: changes come as new files.
package migrations

import "embed"

// FS holds the NNNN_name.up.sql and NNNN_name.down.sql files.
//
//go:embed *.sql
var FS embed.FS
