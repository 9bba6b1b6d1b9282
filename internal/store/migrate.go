package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/golang-migrate/migrate/v4"
	"github.com/golang-migrate/migrate/v4/database"
	migratepgx "github.com/golang-migrate/migrate/v4/database/pgx/v5"
	"github.com/golang-migrate/migrate/v4/source/iofs"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/syncer-audit/syncer/migrations"
)

// Migrator applies the embedded migrations. golang-migrate takes an
// advisory lock while it works, so concurrent starts are safe.
type Migrator struct {
	db *sql.DB
	m  *migrate.Migrate
}

// NewMigrator connects to databaseURL for migrating. Close it when done.
func NewMigrator(databaseURL string) (*Migrator, error) {
	cfg, err := pgx.ParseConfig(databaseURL)
	if err != nil {
		return nil, fmt.Errorf("migrate: database url: %w", err)
	}
	db := stdlib.OpenDB(*cfg)
	driver, err := migratepgx.WithInstance(db, &migratepgx.Config{})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("migrate: connect: %w", err)
	}
	src, err := iofs.New(migrations.FS, ".")
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("migrate: read embedded migrations: %w", err)
	}
	m, err := migrate.NewWithInstance("iofs", src, "postgres", driver)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("migrate: %w", err)
	}
	return &Migrator{db: db, m: m}, nil
}

// Up applies every pending migration. A migration that a crash
// interrupted (the version is "dirty") is run again: each is one
// transaction and safe to repeat, so whether the crash came before or
// after its commit, running it again completes it.
func (g *Migrator) Up() error {
	if err := g.recover(); err != nil {
		return err
	}
	if err := g.m.Up(); err != nil && !errors.Is(err, migrate.ErrNoChange) {
		return fmt.Errorf("migrate up: %w", err)
	}
	return nil
}

// recover turns a dirty version V back into V-1, so that Up runs V again.
func (g *Migrator) recover() error {
	v, dirty, err := g.m.Version()
	if errors.Is(err, migrate.ErrNilVersion) || (err == nil && !dirty) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("migrate: read version: %w", err)
	}
	prev := int(v) - 1
	if prev < 1 {
		prev = database.NilVersion
	}
	if err := g.m.Force(prev); err != nil {
		return fmt.Errorf("migrate: re-run interrupted migration %d: %w", v, err)
	}
	return nil
}

// Down reverts the last steps migrations.
func (g *Migrator) Down(steps int) error {
	if steps < 1 {
		return fmt.Errorf("migrate down: steps must be at least 1, got %d", steps)
	}
	if err := g.m.Steps(-steps); err != nil {
		return fmt.Errorf("migrate down %d: %w", steps, err)
	}
	return nil
}

// Version reports the applied version (0 when none) and whether a failed
// migration left the schema dirty.
func (g *Migrator) Version() (version uint, dirty bool, err error) {
	version, dirty, err = g.m.Version()
	if errors.Is(err, migrate.ErrNilVersion) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("migrate version: %w", err)
	}
	return version, dirty, nil
}

// Close releases the connection.
func (g *Migrator) Close() error {
	srcErr, dbErr := g.m.Close()
	return errors.Join(srcErr, dbErr, g.db.Close())
}

// MigrateUp applies every pending migration to the database at databaseURL.
func MigrateUp(ctx context.Context, databaseURL string) error {
	g, err := NewMigrator(databaseURL)
	if err != nil {
		return err
	}
	defer g.Close()
	done := make(chan error, 1)
	go func() { done <- g.Up() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		g.m.GracefulStop <- true
		<-done
		return ctx.Err()
	}
}
