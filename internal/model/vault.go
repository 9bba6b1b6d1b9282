package model

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
)

// Actor is who performed a Vault operation. Source is "api" or "dashboard"
// today and is kept as given: new sources must not break the audit trail.
type Actor struct {
	ID     string `json:"actor_id"`
	Source string `json:"actor_source"`
	Name   string `json:"actor_name"`
}

// KeyContext is the encryption context that selected a key, a flat JSON
// object kept as received. Its values are strings by the documentation, but
// one SDK types them as anything, so they are not checked.
type KeyContext = json.RawMessage

// The typed payloads, one per Vault event type. Fields follow the API; a
// field absent from an event decodes as its zero value.
type (
	VaultDataCreatedPayload struct {
		Actor
		KVName     string     `json:"kv_name"`
		KeyID      string     `json:"key_id"`
		KeyContext KeyContext `json:"key_context"`
	}
	VaultDataUpdatedPayload VaultDataCreatedPayload
	VaultDataReadPayload    struct {
		Actor
		KVName string `json:"kv_name"`
		KeyID  string `json:"key_id"`
	}
	VaultDataDeletedPayload struct {
		Actor
		KVName string `json:"kv_name"`
	}
	VaultMetadataReadPayload VaultDataDeletedPayload
	VaultNamesListedPayload  struct{ Actor }
	VaultKEKCreatedPayload   struct {
		Actor
		KeyName string `json:"key_name"`
		KeyID   string `json:"key_id"`
	}
	VaultKEKDeletedPayload VaultKEKCreatedPayload
	VaultDEKReadPayload    struct {
		Actor
		KeyIDs     []string   `json:"key_ids"`
		KeyContext KeyContext `json:"key_context"`
	}
	VaultDEKDecryptedPayload struct {
		Actor
		KeyID string `json:"key_id"`
	}
	VaultBYOKKeyVerificationCompletedPayload struct {
		OrganizationID string `json:"organization_id"`
		KeyProvider    string `json:"key_provider"`
		Verified       *bool  `json:"verified"`
	}
	VaultBYOKKeyDeletedPayload struct {
		OrganizationID string `json:"organization_id"`
		KeyProvider    string `json:"key_provider"`
	}
)

// VaultPayload is the typed payload of a Vault event.
type VaultPayload interface {
	// record projects the payload into its audit record, or says which
	// field the audit trail needs and did not get.
	record() (VaultRecord, error)
}

var vaultPayloads = map[string]func() VaultPayload{
	VaultDataCreated:                  func() VaultPayload { return new(VaultDataCreatedPayload) },
	VaultDataUpdated:                  func() VaultPayload { return new(VaultDataUpdatedPayload) },
	VaultDataRead:                     func() VaultPayload { return new(VaultDataReadPayload) },
	VaultDataDeleted:                  func() VaultPayload { return new(VaultDataDeletedPayload) },
	VaultMetadataRead:                 func() VaultPayload { return new(VaultMetadataReadPayload) },
	VaultNamesListed:                  func() VaultPayload { return new(VaultNamesListedPayload) },
	VaultKEKCreated:                   func() VaultPayload { return new(VaultKEKCreatedPayload) },
	VaultKEKDeleted:                   func() VaultPayload { return new(VaultKEKDeletedPayload) },
	VaultDEKRead:                      func() VaultPayload { return new(VaultDEKReadPayload) },
	VaultDEKDecrypted:                 func() VaultPayload { return new(VaultDEKDecryptedPayload) },
	VaultBYOKKeyVerificationCompleted: func() VaultPayload { return new(VaultBYOKKeyVerificationCompletedPayload) },
	VaultBYOKKeyDeleted:               func() VaultPayload { return new(VaultBYOKKeyDeletedPayload) },
}

// DecodeVault decodes the data of a Vault event into its typed payload. It
// fails for a type that is not a Vault type, for data that is not an
// object, and for a field of the wrong JSON type, naming the field.
func DecodeVault(eventType string, data json.RawMessage) (VaultPayload, error) {
	newPayload, ok := vaultPayloads[eventType]
	if !ok {
		return nil, fmt.Errorf("%q is not a Vault event type", eventType)
	}
	if len(data) == 0 || data[0] != '{' {
		return nil, errors.New("data is not a JSON object")
	}
	p := newPayload()
	if err := decodeExact(data, p); err != nil {
		return nil, err
	}
	return p, nil
}

// decodeExact fills the tagged fields of the struct dst points to from
// the members of the JSON object data whose key matches a tag exactly.
// encoding/json also accepts keys that match only when case is ignored,
// and lets the last of them win, so {"actor_id":"a","ACTOR_ID":"b"} would
// project actor b while the archive says a; here only actor_id counts.
func decodeExact(data json.RawMessage, dst any) error {
	v := reflect.ValueOf(dst).Elem()
	fields := fieldsOf(v.Type())
	// A repeated key: the last one wins, as in encoding/json and jsonb.
	return members(data, func(k, raw []byte) error {
		name := keyName(k)
		index, ok := fields[name]
		if !ok {
			return nil
		}
		if err := json.Unmarshal(raw, v.FieldByIndex(index).Addr().Interface()); err != nil {
			var typeErr *json.UnmarshalTypeError
			if errors.As(err, &typeErr) {
				return fmt.Errorf("data.%s: want %s, got %s", name, jsonKind(typeErr.Type.Kind().String()), typeErr.Value)
			}
			return fmt.Errorf("data.%s: %w", name, err)
		}
		return nil
	})
}

// fieldsOf maps the json tags of a payload struct, embedded structs
// included, to their field indexes; computed once per type.
func fieldsOf(t reflect.Type) map[string][]int {
	if m, ok := fieldCache.Load(t); ok {
		return m.(map[string][]int)
	}
	m := map[string][]int{}
	var walk func(t reflect.Type, prefix []int)
	walk = func(t reflect.Type, prefix []int) {
		for i := range t.NumField() {
			f := t.Field(i)
			index := append(append([]int(nil), prefix...), i)
			if f.Anonymous {
				walk(f.Type, index)
				continue
			}
			if name, _, _ := strings.Cut(f.Tag.Get("json"), ","); name != "" {
				m[name] = index
			}
		}
	}
	walk(t, nil)
	fieldCache.Store(t, m)
	return m
}

var fieldCache sync.Map // reflect.Type -> map[string][]int

func jsonKind(goKind string) string {
	switch goKind {
	case "slice":
		return "array"
	case "ptr":
		return "boolean"
	case "struct", "map":
		return "object"
	}
	return goKind
}

// MaxKeyLength bounds the identifiers the audit tables index: actor ids,
// kv names, key ids and names, organization ids. Real ones are short; a
// longer one cannot be an index entry, so its event is quarantined rather
// than wedging the page.
const MaxKeyLength = 1024

// checkLengths reports an identifier over MaxKeyLength.
func checkLengths(rec VaultRecord) error {
	fields := []struct{ name, v string }{
		{"actor_id", rec.Actor.ID}, {"actor_source", rec.Source}, {"kv_name", rec.KVName}, {"key_id", rec.KeyID},
		{"key_name", rec.KeyName}, {"organization_id", rec.OrganizationID}, {"key_provider", rec.KeyProvider},
	}
	for _, k := range rec.KeyIDs {
		fields = append(fields, struct{ name, v string }{"key_ids[]", k})
	}
	for _, f := range fields {
		if len(f.v) > MaxKeyLength {
			return fmt.Errorf("data.%s is %d bytes long, over %d", f.name, len(f.v), MaxKeyLength)
		}
	}
	return nil
}

// need reports the first field of a (name, value) list that is empty.
func need(fields ...string) error {
	var missing []string
	for i := 0; i+1 < len(fields); i += 2 {
		if fields[i+1] == "" {
			missing = append(missing, "data."+fields[i])
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing %s", strings.Join(missing, ", "))
	}
	return nil
}

// checkContext accepts an absent key_context and an object; anything else
// is a payload the audit trail cannot describe.
func checkContext(kc KeyContext) (KeyContext, error) {
	kc = nonNull(kc)
	if len(kc) > 0 && kc[0] != '{' {
		return nil, errors.New("data.key_context: want object")
	}
	return kc, nil
}

func (p *VaultDataCreatedPayload) record() (VaultRecord, error) {
	kc, err := checkContext(p.KeyContext)
	return VaultRecord{Actor: p.Actor, KVName: p.KVName, KeyID: p.KeyID, KeyContext: kc},
		errors.Join(need("actor_id", p.ID, "kv_name", p.KVName), err)
}

func (p *VaultDataUpdatedPayload) record() (VaultRecord, error) {
	return (*VaultDataCreatedPayload)(p).record()
}

func (p *VaultDataReadPayload) record() (VaultRecord, error) {
	return VaultRecord{Actor: p.Actor, KVName: p.KVName, KeyID: p.KeyID},
		need("actor_id", p.ID, "kv_name", p.KVName)
}

func (p *VaultDataDeletedPayload) record() (VaultRecord, error) {
	return VaultRecord{Actor: p.Actor, KVName: p.KVName}, need("actor_id", p.ID, "kv_name", p.KVName)
}

func (p *VaultMetadataReadPayload) record() (VaultRecord, error) {
	return (*VaultDataDeletedPayload)(p).record()
}

func (p *VaultNamesListedPayload) record() (VaultRecord, error) {
	return VaultRecord{Actor: p.Actor}, need("actor_id", p.ID)
}

func (p *VaultKEKCreatedPayload) record() (VaultRecord, error) {
	err := need("actor_id", p.ID)
	if err == nil && p.KeyID == "" && p.KeyName == "" {
		err = errors.New("missing data.key_id and data.key_name")
	}
	return VaultRecord{Actor: p.Actor, KeyName: p.KeyName, KeyID: p.KeyID}, err
}

func (p *VaultKEKDeletedPayload) record() (VaultRecord, error) {
	return (*VaultKEKCreatedPayload)(p).record()
}

func (p *VaultDEKReadPayload) record() (VaultRecord, error) {
	kc, err := checkContext(p.KeyContext)
	if len(p.KeyIDs) == 0 {
		err = errors.Join(err, errors.New("missing data.key_ids"))
	}
	return VaultRecord{Actor: p.Actor, KeyIDs: p.KeyIDs, KeyContext: kc},
		errors.Join(need("actor_id", p.ID), err)
}

func (p *VaultDEKDecryptedPayload) record() (VaultRecord, error) {
	return VaultRecord{Actor: p.Actor, KeyID: p.KeyID}, need("actor_id", p.ID, "key_id", p.KeyID)
}

func (p *VaultBYOKKeyVerificationCompletedPayload) record() (VaultRecord, error) {
	return VaultRecord{OrganizationID: p.OrganizationID, KeyProvider: p.KeyProvider, Verified: p.Verified},
		need("organization_id", p.OrganizationID)
}

func (p *VaultBYOKKeyDeletedPayload) record() (VaultRecord, error) {
	return VaultRecord{OrganizationID: p.OrganizationID, KeyProvider: p.KeyProvider},
		need("organization_id", p.OrganizationID)
}
