package fakeapi

import (
	"bytes"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/syncer-audit/syncer/internal/model"
)

// GenConfig sets up a Generator. The zero value is usable: the same
// config always yields the same stream, byte for byte.
type GenConfig struct {
	Seed int64
	// Start is the created_at of the first event, truncated to the
	// millisecond. The zero value means 2026-03-12T17:58:01.120Z, a fixed
	// time so that a zero config stays deterministic.
	Start time.Time
	// Step is the mean gap between events (default 1s). Gaps are drawn
	// from an exponential distribution, so events come in bursts and
	// several often share a millisecond when Step is small.
	Step time.Duration
	// VaultShare is the share of Vault events, in [0, 1] (0 means the
	// default, 0.8). The rest are other known types.
	VaultShare float64
}

// defaultStart is GenConfig.Start's zero-value meaning: the time in the
// shared API notes' example event.
var defaultStart = time.Date(2026, 3, 12, 17, 58, 1, 120_000_000, time.UTC)

// Generator makes a realistic, deterministic stream of events: a handful of
// actors, Vault entries, keys and organizations that recur the way they do
// in a real tenant, so tests and benchmarks see plausible repetition and
// the syncer's projections get exercised on every Vault payload shape.
// It is safe for concurrent use, though events taken by several goroutines
// interleave; to grow a Server's stream while it runs, use Server.Generate.
type Generator struct {
	mu         sync.Mutex
	rng        *rand.Rand
	at         int64   // created_at of the next event, Unix nanoseconds
	step       float64 // mean gap, nanoseconds
	vaultShare float64

	// The last ULID handed out, so ids within one millisecond increase.
	lastMS uint64
	hi     uint16
	lo     uint64

	deck    []string // Vault types still to deal, see nextVault
	common  []string // frequent non-Vault types the model knows
	others  []string // every non-Vault type the model knows
	actors  []actor
	orgs    []org
	kvs     []kvEntry
	keks    []kek
	deks    []string
	clients []string
	users   []person

	buf []byte
}

type actor struct{ id, source, name string }

type org struct{ id, name, domain, provider string }

type kvEntry struct{ name, keyID, orgID string }

type kek struct{ name, id string }

type person struct{ id, first, last, email string }

// vaultDeck is one deal of Vault types: every type at least once, weighted
// roughly like a tenant that mostly reads secrets. Dealing from shuffled
// decks (rather than drawing independently) guarantees every Vault type
// appears within the first 40 Vault events and in every 80 consecutive ones.
var vaultDeck = map[string]int{
	model.VaultDataRead:                     12,
	model.VaultDEKDecrypted:                 6,
	model.VaultDEKRead:                      5,
	model.VaultMetadataRead:                 3,
	model.VaultDataCreated:                  3,
	model.VaultDataUpdated:                  3,
	model.VaultNamesListed:                  2,
	model.VaultBYOKKeyVerificationCompleted: 2,
	model.VaultDataDeleted:                  1,
	model.VaultKEKCreated:                   1,
	model.VaultKEKDeleted:                   1,
	model.VaultBYOKKeyDeleted:               1,
}

// commonTypes are the non-Vault types a tenant sees most; each has a
// payload shaped like the real one. Only those the model knows are used,
// so every generated event can be asked for by name.
var commonTypes = []string{
	"user.created", "user.updated", "user.deleted",
	"session.created", "session.revoked",
	"authentication.password_succeeded", "authentication.password_failed",
	"authentication.magic_auth_succeeded", "authentication.sso_succeeded",
	"authentication.email_verification_succeeded", "authentication.mfa_succeeded",
	"authentication.oauth_succeeded",
	"organization.created", "organization.updated",
	"organization_membership.created", "organization_membership.updated",
	"dsync.user.created", "dsync.user.updated", "dsync.group.user_added",
}

var (
	kvNames = []string{
		"stripe-api-key", "db-password-prod", "db-password-staging", "sendgrid-api-key",
		"github-deploy-token", "aws-access-key-prod", "slack-webhook-url", "jwt-signing-secret",
		"customer-ssn-4821", "oauth-client-secret", "twilio-auth-token", "datadog-api-key",
		"redis-password", "s3-backup-key", "pagerduty-token", "openai-api-key",
		"ssh-deploy-key", "tls-private-key", "webhook-signing-secret", "payroll-bank-account",
	}
	kekNames = []string{
		"kek-primary", "kek-us-east-1", "kek-eu-west-1", "kek-payments", "kek-backups", "kek-legacy-2024",
	}
	// Person names include non-ASCII letters on purpose: real actor names do.
	people = [][2]string{
		{"Maya", "Okafor"}, {"Lucas", "Ferreira"}, {"Priya", "Raman"}, {"Jonas", "Müller"},
		{"Amélie", "Dubois"}, {"Kenji", "Watanabe"}, {"Sofia", "Lindqvist"}, {"Omar", "Haddad"},
		{"Grace", "Mensah"}, {"Diego", "Álvarez"},
	}
	orgSeeds = []struct{ name, domain, provider string }{
		{"Acme Corp", "acme.example", "AWS_KMS"},
		{"Globex", "globex.example", "GCP_KMS"},
		{"Initech", "initech.example", "AZURE_KEY_VAULT"},
		{"Umbrella Health", "umbrella.example", "AWS_KMS"},
	}
	userAgents = []string{
		"Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15",
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36",
		"workos-node/7.30.0",
	}
)

// NewGenerator returns a Generator for cfg. It panics on a negative Step,
// a VaultShare outside [0, 1] or a Start before 1970 (ULIDs cannot
// express it): those are mistakes in a test, not conditions to handle.
func NewGenerator(cfg GenConfig) *Generator {
	switch {
	case cfg.Step < 0:
		panic("fakeapi: GenConfig.Step is negative")
	case cfg.VaultShare < 0 || cfg.VaultShare > 1:
		panic("fakeapi: GenConfig.VaultShare is outside [0, 1]")
	case !cfg.Start.IsZero() && cfg.Start.Before(time.Unix(0, 0)):
		panic("fakeapi: GenConfig.Start is before 1970")
	}
	if cfg.Start.IsZero() {
		cfg.Start = defaultStart
	}
	if cfg.Step == 0 {
		cfg.Step = time.Second
	}
	if cfg.VaultShare == 0 {
		cfg.VaultShare = 0.8
	}
	seed := uint64(cfg.Seed)
	g := &Generator{
		rng:        rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		at:         cfg.Start.Truncate(time.Millisecond).UnixNano(),
		step:       float64(cfg.Step),
		vaultShare: cfg.VaultShare,
	}
	for _, t := range model.KnownTypes() {
		if !model.IsVaultType(t) {
			g.others = append(g.others, t)
		}
	}
	for _, t := range commonTypes {
		if model.IsKnownType(t) {
			g.common = append(g.common, t)
		}
	}
	g.makePools(cfg.Start)
	return g
}

// makePools draws the recurring cast: ids are ULIDs dated up to a year
// before the stream starts, as objects in a real tenant predate its events.
func (g *Generator) makePools(start time.Time) {
	id := func(prefix string) string {
		ms := uint64(start.UnixMilli()) - g.rng.Uint64N(365*24*3600*1000)
		return string(appendULID([]byte(prefix), ms, uint16(g.rng.Uint32()), g.rng.Uint64()))
	}
	for _, o := range orgSeeds {
		g.orgs = append(g.orgs, org{id: id("org_"), name: o.name, domain: o.domain, provider: o.provider})
	}
	for _, n := range kekNames {
		g.keks = append(g.keks, kek{name: n, id: id("key_")})
	}
	for range 24 {
		g.deks = append(g.deks, id("dek_"))
	}
	for _, n := range kvNames {
		g.kvs = append(g.kvs, kvEntry{
			name:  n,
			keyID: g.keks[g.rng.IntN(len(g.keks))].id,
			orgID: g.orgs[g.rng.IntN(len(g.orgs))].id,
		})
	}
	for range 2 {
		g.clients = append(g.clients, id("client_"))
	}
	// API actors first: pickActor relies on the order.
	g.actors = []actor{
		{id("key_"), "api", "API Key"},
		{id("key_"), "api", "Production API Key"},
		{id("key_"), "api", "billing-worker"},
		{id("user_"), "api", "CI Deploy Key"},
	}
	for _, p := range people[:4] {
		g.actors = append(g.actors, actor{id("user_"), "dashboard", p[0] + " " + p[1]})
	}
	for _, p := range people {
		g.users = append(g.users, person{
			id: id("user_"), first: p[0], last: p[1],
			email: strings.ToLower(asciiName(p[0])+"."+asciiName(p[1])) + "@" + orgSeeds[len(g.users)%len(orgSeeds)].domain,
		})
	}
}

// asciiName drops accents the simple way, for email addresses.
func asciiName(s string) string {
	return strings.NewReplacer("é", "e", "ü", "u", "Á", "A", "á", "a").Replace(s)
}

// Take returns the next n events.
func (g *Generator) Take(n int) []Event {
	g.mu.Lock()
	defer g.mu.Unlock()
	evs := make([]Event, n)
	for i := range evs {
		evs[i] = g.next()
	}
	return evs
}

// Next returns the next event. Ids strictly increase and created_at never
// goes backwards.
func (g *Generator) Next() Event {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.next()
}

func (g *Generator) next() Event {
	ms := uint64(g.at / int64(time.Millisecond))
	created := time.UnixMilli(int64(ms)).UTC()
	ts := created.Format(createdAtLayout)
	g.nextRandom(ms)

	var (
		typ   string
		data  []field
		orgID string
		who   *actor
	)
	if g.rng.Float64() < g.vaultShare || len(g.others) == 0 {
		typ = g.nextVault()
		data, orgID, who = g.vaultData(typ)
	} else {
		typ = g.nextOther()
		data, orgID = g.otherData(typ, ts)
		if g.rng.IntN(5) == 0 {
			who = g.pickActor()
		}
	}

	var idBuf [32]byte
	id := string(appendULID(append(idBuf[:0], "event_"...), ms, g.hi, g.lo))
	b := append(g.buf[:0], `{"object":"event","id":`...)
	b = appendString(b, id)
	b = append(b, `,"event":`...)
	b = appendString(b, typ)
	b = append(b, `,"data":`...)
	b = appendObject(b, data)
	b = append(b, `,"created_at":`...)
	b = appendString(b, ts)
	if ctx, ok := g.context(who); ok {
		b = append(b, `,"context":`...)
		b = appendObject(b, ctx)
	}
	b = append(b, '}')
	g.buf = b

	raw := bytes.Clone(b)
	g.at += int64(g.rng.ExpFloat64() * g.step)
	return Event{ID: id, Type: typ, CreatedAt: created, JSON: raw, org: orgID, made: &raw[0], madeLen: len(raw)}
}

// nextRandom advances the ULID random part: fresh for a new millisecond,
// one more within the same one, as monotonic ULID generators do. A fresh
// value has its top bit clear, so the increments cannot overflow.
func (g *Generator) nextRandom(ms uint64) {
	if ms == g.lastMS && (g.hi != 0 || g.lo != 0) {
		g.lo++
		if g.lo == 0 {
			g.hi++
		}
		return
	}
	g.lastMS = ms
	g.hi = uint16(g.rng.Uint32()) & 0x7fff
	g.lo = g.rng.Uint64()
}

// nextVault deals the next Vault type from the current deck, shuffling a
// new one when it runs out.
func (g *Generator) nextVault() string {
	if len(g.deck) == 0 {
		for _, t := range model.VaultTypes() {
			for range vaultDeck[t] {
				g.deck = append(g.deck, t)
			}
		}
		g.rng.Shuffle(len(g.deck), func(i, j int) { g.deck[i], g.deck[j] = g.deck[j], g.deck[i] })
	}
	t := g.deck[len(g.deck)-1]
	g.deck = g.deck[:len(g.deck)-1]
	return t
}

// nextOther picks a non-Vault type: mostly a common one, sometimes any type
// the model knows, so the long tail of event families shows up too.
func (g *Generator) nextOther() string {
	if len(g.common) > 0 && g.rng.IntN(100) < 85 {
		return g.common[g.rng.IntN(len(g.common))]
	}
	return g.others[g.rng.IntN(len(g.others))]
}

// pickActor favours API keys: most Vault traffic is machines reading secrets.
func (g *Generator) pickActor() *actor {
	if g.rng.IntN(4) > 0 {
		return &g.actors[g.rng.IntN(4)]
	}
	return &g.actors[4+g.rng.IntN(len(g.actors)-4)]
}

// vaultData builds the payload of a Vault event exactly as the API notes
// list its fields, and says which organization and actor it involves.
func (g *Generator) vaultData(typ string) ([]field, string, *actor) {
	if typ == model.VaultBYOKKeyVerificationCompleted || typ == model.VaultBYOKKeyDeleted {
		o := g.orgs[g.rng.IntN(len(g.orgs))]
		data := []field{{"organization_id", o.id}, {"key_provider", o.provider}}
		if typ == model.VaultBYOKKeyVerificationCompleted {
			data = append(data, field{"verified", g.rng.IntN(10) > 0})
		}
		return data, o.id, nil
	}
	a := g.pickActor()
	data := []field{{"actor_id", a.id}, {"actor_source", a.source}, {"actor_name", a.name}}
	orgID := ""
	switch typ {
	case model.VaultDataCreated, model.VaultDataUpdated:
		kv := g.kvs[g.rng.IntN(len(g.kvs))]
		orgID = kv.orgID
		data = append(data, field{"kv_name", kv.name}, field{"key_id", kv.keyID},
			field{"key_context", []field{{"organization_id", kv.orgID}}})
	case model.VaultDataRead:
		kv := g.kvs[g.rng.IntN(len(g.kvs))]
		data = append(data, field{"kv_name", kv.name}, field{"key_id", kv.keyID})
	case model.VaultDataDeleted, model.VaultMetadataRead:
		data = append(data, field{"kv_name", g.kvs[g.rng.IntN(len(g.kvs))].name})
	case model.VaultNamesListed:
	case model.VaultKEKCreated, model.VaultKEKDeleted:
		k := g.keks[g.rng.IntN(len(g.keks))]
		data = append(data, field{"key_name", k.name}, field{"key_id", k.id})
	case model.VaultDEKRead:
		perm := g.rng.Perm(len(g.deks))
		ids := make([]string, 1+g.rng.IntN(5))
		for i := range ids {
			ids[i] = g.deks[perm[i]]
		}
		orgID = g.orgs[g.rng.IntN(len(g.orgs))].id
		data = append(data, field{"key_ids", ids}, field{"key_context", []field{{"organization_id", orgID}}})
	case model.VaultDEKDecrypted:
		data = append(data, field{"key_id", g.deks[g.rng.IntN(len(g.deks))]})
	default:
		panic("fakeapi: no payload for Vault type " + typ)
	}
	return data, orgID, a
}

// otherData builds a small payload shaped like the type's family; families
// without a specific shape get an object with an id. It says which
// organization the event is tied to ("" for user-level events).
func (g *Generator) otherData(typ, ts string) ([]field, string) {
	u := g.users[g.rng.IntN(len(g.users))]
	o := g.orgs[g.rng.IntN(len(g.orgs))]
	family, action, _ := strings.Cut(typ, ".")
	ip := "203.0.113." + strconv.Itoa(1+g.rng.IntN(254))
	ua := userAgents[g.rng.IntN(len(userAgents))]
	switch family {
	case "user":
		return []field{
			{"object", "user"}, {"id", u.id}, {"email", u.email},
			{"first_name", u.first}, {"last_name", u.last}, {"email_verified", g.rng.IntN(5) > 0},
			{"profile_picture_url", nil}, {"created_at", ts}, {"updated_at", ts},
		}, ""
	case "session":
		return []field{
			{"object", "session"}, {"id", g.freshID("session_")}, {"user_id", u.id},
			{"organization_id", o.id}, {"ip_address", ip}, {"user_agent", ua},
			{"created_at", ts}, {"updated_at", ts},
		}, o.id
	case "authentication":
		kind, outcome := action, "succeeded"
		for _, suffix := range []string{"_succeeded", "_failed", "_started", "_timed_out", "_detected"} {
			if k, ok := strings.CutSuffix(action, suffix); ok {
				kind, outcome = k, suffix[1:]
			}
		}
		data := []field{
			{"type", kind}, {"status", outcome}, {"user_id", u.id}, {"email", u.email},
			{"ip_address", ip}, {"user_agent", ua},
		}
		if outcome == "failed" {
			data = append(data, field{"error", []field{{"code", kind + "_failed"}, {"message", "Authentication failed."}}})
		}
		return data, ""
	case "organization":
		return []field{
			{"object", "organization"}, {"id", o.id}, {"name", o.name},
			{"allow_profiles_outside_organization", false},
			{"domains", []any{[]field{{"object", "organization_domain"}, {"id", g.freshID("org_domain_")}, {"domain", o.domain}}}},
			{"created_at", ts}, {"updated_at", ts},
		}, o.id
	case "organization_membership":
		return []field{
			{"object", "organization_membership"}, {"id", g.freshID("om_")}, {"user_id", u.id},
			{"organization_id", o.id}, {"status", "active"}, {"role", []field{{"slug", "member"}}},
			{"created_at", ts}, {"updated_at", ts},
		}, o.id
	case "dsync":
		dir := "directory_" + o.id[len("org_"):]
		group := []field{
			{"object", "directory_group"}, {"id", g.freshID("directory_group_")},
			{"directory_id", dir}, {"organization_id", o.id}, {"name", "Engineering"},
		}
		switch {
		case action == "group.user_added" || action == "group.user_removed":
			return []field{
				{"directory_id", dir}, {"organization_id", o.id},
				{"user", []field{{"object", "directory_user"}, {"id", g.freshID("directory_user_")}, {"email", u.email}}},
				{"group", group},
			}, o.id
		case strings.HasPrefix(action, "group."):
			return group, o.id
		case !strings.HasPrefix(action, "user."):
			return []field{
				{"object", "directory"}, {"id", dir}, {"organization_id", o.id},
				{"type", "okta scim v2.0"}, {"state", "active"}, {"name", o.name},
			}, o.id
		}
		return []field{
			{"object", "directory_user"}, {"id", g.freshID("directory_user_")},
			{"directory_id", dir}, {"organization_id", o.id},
			{"idp_id", strconv.Itoa(100000 + g.rng.IntN(900000))},
			{"first_name", u.first}, {"last_name", u.last},
			{"emails", []any{[]field{{"primary", true}, {"type", "work"}, {"value", u.email}}}},
			{"state", "active"}, {"created_at", ts}, {"updated_at", ts},
		}, o.id
	}
	return []field{{"object", family}, {"id", g.freshID(family + "_")}, {"created_at", ts}}, ""
}

// freshID makes a new object id dated at the current event.
func (g *Generator) freshID(prefix string) string {
	return string(appendULID([]byte(prefix), uint64(g.at/int64(time.Millisecond)), uint16(g.rng.Uint32()), g.rng.Uint64()))
}

// context builds the envelope's context: usually a client id, sometimes
// with the actor too, sometimes empty, sometimes absent, as in live data.
func (g *Generator) context(who *actor) ([]field, bool) {
	switch r := g.rng.IntN(100); {
	case r < 8:
		return nil, false
	case r < 11:
		return []field{}, true
	}
	ctx := []field{{"client_id", g.clients[g.rng.IntN(len(g.clients))]}}
	if who != nil && g.rng.IntN(10) < 4 {
		ctx = append(ctx, field{"actor", []field{{"id", who.id}, {"source", who.source}, {"name", who.name}}})
	}
	return ctx, true
}
