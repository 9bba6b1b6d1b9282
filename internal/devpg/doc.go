// Package devpg runs a throwaway PostgreSQL server for the demo and for
// tests, so that neither needs a database set up by hand.
//
// It prefers the server binaries installed on the machine: it runs initdb
// into a data directory and starts the postgres process itself, listening
// only on 127.0.0.1 with trust authentication. Only when no binaries can be
// found does it fall back to a postgres:15-alpine container, and only if a
// Docker engine answers. With neither it fails with an error that says what
// to install, rather than leaving the caller to guess.
//
// PostgreSQL refuses to run as root. When this process is root, the server
// runs as the "postgres" system user instead: the directories it needs are
// handed to that user and every PostgreSQL program is started with its
// credentials.
//
// The server is started in its own process group, so a Ctrl-C at the
// terminal reaches only this process, which then stops the server cleanly;
// and it is tied to this process with a parent-death signal, so it does not
// outlive a crash or a kill -9.
package devpg
