package model

import "slices"

// Vault event types. The syncer projects these into the audit tables; every
// other type is archived raw.
const (
	VaultDataCreated                  = "vault.data.created"
	VaultDataUpdated                  = "vault.data.updated"
	VaultDataRead                     = "vault.data.read"
	VaultDataDeleted                  = "vault.data.deleted"
	VaultMetadataRead                 = "vault.metadata.read"
	VaultNamesListed                  = "vault.names.listed"
	VaultKEKCreated                   = "vault.kek.created"
	VaultKEKDeleted                   = "vault.kek.deleted"
	VaultDEKRead                      = "vault.dek.read"
	VaultDEKDecrypted                 = "vault.dek.decrypted"
	VaultBYOKKeyVerificationCompleted = "vault.byok_key.verification_completed"
	VaultBYOKKeyDeleted               = "vault.byok_key.deleted"
)

// vaultTypes is the default type filter: the syncer exists to audit Vault.
var vaultTypes = []string{
	VaultDataCreated, VaultDataRead, VaultDataUpdated, VaultDataDeleted,
	VaultMetadataRead, VaultNamesListed,
	VaultKEKCreated, VaultKEKDeleted,
	VaultDEKRead, VaultDEKDecrypted,
	VaultBYOKKeyVerificationCompleted, VaultBYOKKeyDeleted,
}

// VaultTypes returns the Vault event types, the default type filter.
func VaultTypes() []string { return slices.Clone(vaultTypes) }

// IsVaultType reports whether events of type t are projected into the Vault
// audit tables.
func IsVaultType(t string) bool { return slices.Contains(vaultTypes, t) }

// KnownTypes returns every event type this binary knows by name, sorted: the
// meaning of the type filter "all". Events of types missing from this list
// are still archived when the API returns them; the list only matters for
// asking the API, which rejects a filter with a name it does not know.
func KnownTypes() []string { return slices.Clone(knownTypes) }

// IsKnownType reports whether t is in KnownTypes.
func IsKnownType(t string) bool {
	_, found := slices.BinarySearch(knownTypes, t)
	return found
}
