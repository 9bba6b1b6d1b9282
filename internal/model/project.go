package model

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"time"
)

// VaultRecord is one row of vault_events: who did what to which object or
// key, and when. Empty strings are stored as NULL.
type VaultRecord struct {
	EventID    string    `json:"event_id"`
	EventType  string    `json:"event_type"`
	OccurredAt time.Time `json:"occurred_at"`
	Actor
	KVName         string          `json:"kv_name,omitempty"`
	KeyID          string          `json:"key_id,omitempty"`
	KeyName        string          `json:"key_name,omitempty"`
	KeyContext     json.RawMessage `json:"key_context,omitempty"`
	OrganizationID string          `json:"organization_id,omitempty"`
	KeyProvider    string          `json:"key_provider,omitempty"`
	Verified       *bool           `json:"verified,omitempty"`
	// KeyIDs is the key_ids array of vault.dek.read; with KeyID it makes
	// the rows of vault_event_keys.
	KeyIDs []string `json:"key_ids,omitempty"`
}

// EventKey is one row of vault_event_keys: a key an event touched.
type EventKey struct {
	EventID string `json:"event_id"`
	KeyID   string `json:"key_id"`
}

// ActorSeen is one row of vault_actors as seen in a batch of events: the
// name and source are those of the latest event.
type ActorSeen struct {
	Actor
	FirstSeen time.Time
	LastSeen  time.Time
}

// Quarantine kinds: why an event is in event_quarantine.
const (
	// QuarantineEnvelope: the envelope is invalid (no id, type or time).
	QuarantineEnvelope = "envelope"
	// QuarantineProjection: a Vault event whose payload the audit tables
	// cannot describe; it is archived but has no vault_events row.
	QuarantineProjection = "projection"
	// QuarantineConflict: an id seen again with other content; the first
	// content is kept.
	QuarantineConflict = "conflict"
)

// Quarantined is one row of event_quarantine.
type Quarantined struct {
	// Fingerprint identifies the (content, reason) pair, so that reading
	// the same bad event twice records it once.
	Fingerprint string
	EventID     string
	EventType   string
	Kind        string
	Reason      string
	Raw         []byte
}

// NewQuarantined builds a quarantine row for an event.
func NewQuarantined(ev Event, kind, reason string) Quarantined {
	h := sha256.New()
	h.Write([]byte(kind))
	h.Write([]byte{0})
	h.Write([]byte(reason))
	h.Write([]byte{0})
	h.Write(ev.Raw)
	return Quarantined{
		Fingerprint: hex.EncodeToString(h.Sum(nil)),
		EventID:     ev.ID,
		EventType:   ev.Type,
		Kind:        kind,
		Reason:      reason,
		Raw:         ev.Raw,
	}
}

// Rows is what a batch of events adds to the audit tables besides the raw
// archive.
type Rows struct {
	Vault      []VaultRecord
	Keys       []EventKey
	Actors     []ActorSeen
	Quarantine []Quarantined
}

// Project turns events into audit rows. It is pure: the same events give
// the same rows. Events with an invalid envelope, and Vault events whose
// payload cannot be projected, become quarantine rows with the reason;
// events of other types give no rows (the archive holds them).
func Project(events []Event) Rows {
	var rows Rows
	actors := map[string]int{} // actor id -> index in rows.Actors
	nameAt, sourceAt := map[int]time.Time{}, map[int]time.Time{}
	for _, ev := range events {
		if ev.Problem != "" {
			rows.Quarantine = append(rows.Quarantine, NewQuarantined(ev, QuarantineEnvelope, ev.Problem))
			continue
		}
		if !IsVaultType(ev.Type) {
			continue
		}
		rec, err := ProjectVault(ev)
		if err != nil {
			rows.Quarantine = append(rows.Quarantine, NewQuarantined(ev, QuarantineProjection, err.Error()))
			continue
		}
		rows.Vault = append(rows.Vault, rec)
		for _, k := range recordKeys(rec) {
			rows.Keys = append(rows.Keys, EventKey{EventID: rec.EventID, KeyID: k})
		}
		if rec.Actor.ID == "" {
			continue
		}
		i, seen := actors[rec.Actor.ID]
		if !seen {
			i = len(rows.Actors)
			actors[rec.Actor.ID] = i
			rows.Actors = append(rows.Actors, ActorSeen{Actor: Actor{ID: rec.Actor.ID}, FirstSeen: rec.OccurredAt, LastSeen: rec.OccurredAt})
		}
		a := &rows.Actors[i]
		if rec.OccurredAt.Before(a.FirstSeen) {
			a.FirstSeen = rec.OccurredAt
		}
		if rec.OccurredAt.After(a.LastSeen) {
			a.LastSeen = rec.OccurredAt
		}
		// The newest event that names the actor (or gives its source)
		// wins, whatever the order within the page; one without a name
		// keeps the last known, as the store's upsert does across pages.
		if rec.Name != "" && !rec.OccurredAt.Before(nameAt[i]) {
			a.Name, nameAt[i] = rec.Name, rec.OccurredAt
		}
		if rec.Source != "" && !rec.OccurredAt.Before(sourceAt[i]) {
			a.Source, sourceAt[i] = rec.Source, rec.OccurredAt
		}
	}
	return rows
}

// ProjectVault projects one valid Vault event into its record.
func ProjectVault(ev Event) (VaultRecord, error) {
	p, err := DecodeVault(ev.Type, ev.Data)
	if err != nil {
		return VaultRecord{}, err
	}
	rec, err := p.record()
	if err == nil {
		err = checkLengths(rec)
	}
	if err != nil {
		return VaultRecord{}, err
	}
	rec.EventID, rec.EventType, rec.OccurredAt = ev.ID, ev.Type, ev.CreatedAt
	return rec, nil
}

// recordKeys lists the distinct, non-empty keys a record touched, in order.
func recordKeys(rec VaultRecord) []string {
	if rec.KeyID == "" && len(rec.KeyIDs) == 0 {
		return nil
	}
	keys := make([]string, 0, len(rec.KeyIDs)+1)
	seen := make(map[string]bool, len(rec.KeyIDs)+1)
	for _, k := range append([]string{rec.KeyID}, rec.KeyIDs...) {
		if k != "" && !seen[k] {
			seen[k] = true
			keys = append(keys, k)
		}
	}
	return keys
}
