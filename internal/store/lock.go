package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// ErrLocked means another syncer holds the writer lock of this database.
var ErrLocked = errors.New("another syncer holds the writer lock of this database")

// writerLockKey is the advisory lock every syncer writing to a database
// takes: one writer per database, whatever the streams.
const writerLockKey int64 = 0x73796e636572 // "syncer"

// Lock is the single-writer lock: a PostgreSQL session advisory lock held
// on a connection of its own, so that it lasts exactly as long as that
// connection. If the process dies, PostgreSQL drops the connection and the
// lock with it, and a standby takes over. The compare-and-set on the cursor
// stays as the second guard for the moment between a lost connection and
// the holder noticing.
type Lock struct {
	conn *pgx.Conn
	lost chan struct{}
	stop chan struct{}
	done sync.WaitGroup
	once sync.Once
}

// LockOptions tune Lock.
type LockOptions struct {
	// Wait makes Lock wait for the lock instead of failing with ErrLocked.
	Wait bool
	// Poll is how often a waiting Lock tries again, and how often a held
	// lock's connection is checked. Default 2s.
	Poll time.Duration
	// Waiting is called once if the lock is taken and Wait is set.
	Waiting func()
}

// Lock takes the writer lock, or fails with ErrLocked when another syncer
// holds it and opts.Wait is not set.
func (s *Store) Lock(ctx context.Context, opts LockOptions) (*Lock, error) {
	if opts.Poll <= 0 {
		opts.Poll = 2 * time.Second
	}
	conn, err := pgx.ConnectConfig(ctx, s.pool.Config().ConnConfig.Copy())
	if err != nil {
		return nil, fmt.Errorf("writer lock: connect: %w", err)
	}
	announced := false
	for {
		var got bool
		if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, writerLockKey).Scan(&got); err != nil {
			conn.Close(context.WithoutCancel(ctx))
			return nil, fmt.Errorf("writer lock: %w", err)
		}
		if got {
			break
		}
		if !opts.Wait {
			conn.Close(context.WithoutCancel(ctx))
			return nil, ErrLocked
		}
		if !announced && opts.Waiting != nil {
			opts.Waiting()
			announced = true
		}
		t := time.NewTimer(opts.Poll)
		select {
		case <-ctx.Done():
			t.Stop()
			conn.Close(context.WithoutCancel(ctx))
			return nil, ctx.Err()
		case <-t.C:
		}
	}
	l := &Lock{conn: conn, lost: make(chan struct{}), stop: make(chan struct{})}
	l.done.Add(1)
	go l.watch(opts.Poll)
	return l, nil
}

// watch checks the lock's connection; if it fails, the lock is gone.
func (l *Lock) watch(every time.Duration) {
	defer l.done.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), every+5*time.Second)
			err := l.conn.Ping(ctx)
			cancel()
			if err != nil {
				close(l.lost)
				return
			}
		}
	}
}

// Lost is closed when the connection holding the lock has failed: the
// holder must stop writing and take the lock again.
func (l *Lock) Lost() <-chan struct{} { return l.lost }

// Release gives the lock up.
func (l *Lock) Release() {
	l.once.Do(func() {
		close(l.stop)
		l.done.Wait()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		l.conn.Close(ctx) // closing the session releases its advisory locks
	})
}
