package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/syncer-audit/syncer/internal/store"
)

func cmdStatus(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	c := newCommand("status", "Where each cursor stands, the newest event stored and its age, and counts per\nVault event type. Reads only.", stdout)
	databaseURL := c.databaseFlag("PostgreSQL connection URL")
	if err := c.parse(args, getenv); err != nil {
		return err
	}
	st, err := openDatabase(ctx, *databaseURL)
	if err != nil {
		return err
	}
	defer st.Close()
	status, err := st.Status(ctx)
	if err != nil {
		return err
	}
	printStatus(stdout, status, time.Now())
	printVaultCounts(stdout, status)
	return nil
}

func printStatus(w io.Writer, st store.Status, now time.Time) {
	if len(st.Cursors) == 0 {
		fmt.Fprintln(w, "cursor:        none yet (the first sync starts from --since)")
	}
	windows, windowsDone := 0, 0
	for _, c := range st.Cursors {
		if strings.HasPrefix(c.Stream, "window-") {
			windows++
			if c.Done {
				windowsDone++
			}
			continue
		}
		state := fmt.Sprintf("moved %s ago; %d event types", age(now, c.UpdatedAt), len(c.EventTypes))
		if c.RangeEnd != nil {
			state = fmt.Sprintf("backfill of %s up to %s, ", abbreviateTypes(c.EventTypes), c.RangeEnd.UTC().Format(time.RFC3339))
			if c.Done {
				state += "done"
			} else {
				state += "in progress"
			}
		}
		fmt.Fprintf(w, "cursor:        %s = %s (%s)\n", c.Stream, orNone(c.AfterID), state)
	}
	if windows > 0 {
		fmt.Fprintf(w, "first-run backfill: %d of %d windows done\n", windowsDone, windows)
	}
	for _, g := range st.Gaps {
		fmt.Fprintf(w, "GAP:           events from %s to %s may be lost: %s (recorded %s)\n",
			g.From.UTC().Format(time.RFC3339), g.To.UTC().Format(time.RFC3339), g.Reason, g.RecordedAt.UTC().Format(time.RFC3339))
	}
	if st.NewestID == "" {
		fmt.Fprintln(w, "newest event:  none stored")
	} else {
		when := age(now, st.NewestAt) + " old"
		if st.NewestAt.After(now.Add(time.Minute)) {
			when = "in the future: check the clocks"
		}
		fmt.Fprintf(w, "newest event:  %s at %s (%s)\n", st.NewestID, st.NewestAt.UTC().Format(time.RFC3339), when)
	}
	fmt.Fprintf(w, "archived:      %d events", st.Archived)
	if st.Sanitized > 0 {
		fmt.Fprintf(w, " (%d sanitized: text PostgreSQL cannot store was replaced; originals kept)", st.Sanitized)
	}
	fmt.Fprintln(w)
	if len(st.Quarantine) > 0 {
		var parts []string
		for _, q := range st.Quarantine {
			parts = append(parts, fmt.Sprintf("%d %s", q.N, q.Label))
		}
		fmt.Fprintf(w, "quarantined:   %s (see table event_quarantine)\n", strings.Join(parts, ", "))
	} else {
		fmt.Fprintln(w, "quarantined:   none")
	}
}

func printVaultCounts(w io.Writer, st store.Status) {
	fmt.Fprintln(w, "\nVault events by type:")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	var total int64
	for _, c := range st.VaultTypes {
		fmt.Fprintf(tw, "  %s\t%d\n", c.Label, c.N)
		total += c.N
	}
	fmt.Fprintf(tw, "  total\t%d\n", total)
	tw.Flush()
}

func abbreviateTypes(types []string) string {
	if len(types) <= 3 {
		return strings.Join(types, ",")
	}
	return fmt.Sprintf("%s and %d more types", strings.Join(types[:3], ","), len(types)-3)
}

func age(now, t time.Time) string {
	d := now.Sub(t)
	switch {
	case d < 0:
		return "0s"
	case d < time.Minute:
		return d.Round(time.Second).String()
	case d < 48*time.Hour:
		return d.Round(time.Minute).String()
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

// printReport is the demo's audit report: what was archived, by type, and
// the newest lines of the access log.
func printReport(ctx context.Context, w io.Writer, st *store.Store, rows int) error {
	status, err := st.Status(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintln(w, "== archive: events by type ==")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, c := range status.ByType {
		fmt.Fprintf(tw, "  %s\t%d\n", c.Label, c.N)
	}
	fmt.Fprintf(tw, "  total\t%d\n", status.Archived)
	tw.Flush()
	fmt.Fprintln(w)
	fmt.Fprintln(w, "== status ==")
	printStatus(w, status, time.Now())
	access, err := st.LatestAccess(ctx, rows)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "\n== vault_access_log: the newest %d rows ==\n", len(access))
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "occurred_at\tevent_type\tactor (source)\tkv_name\tkeys\tkey_name")
	for _, r := range access {
		actor := "-"
		if r.ActorID != nil {
			actor = deref(r.ActorName) + " " + *r.ActorID + " (" + deref(r.ActorSource) + ")"
		}
		keys := strings.Join(r.KeyIDs, ",")
		if len(r.KeyIDs) > 1 {
			keys = fmt.Sprintf("%s (+%d more)", r.KeyIDs[0], len(r.KeyIDs)-1)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.OccurredAt.UTC().Format("2006-01-02 15:04:05.000"),
			r.EventType, actor, orDash(deref(r.KVName)), orDash(keys), orDash(deref(r.KeyName)))
	}
	return tw.Flush()
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func cmdReprocess(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	c := newCommand("reprocess", `Rebuild the Vault tables (vault_events, vault_event_keys, vault_actors) and
the projection quarantine from the raw archive, with this binary's projection:
after an upgrade that understands more, events quarantined before may now be
projected. One transaction; running it again gives the same tables. It takes
the writer lock, so a running syncer pauses meanwhile.`, stdout)
	databaseURL := c.databaseFlag("PostgreSQL connection URL")
	var wait bool
	c.fs.BoolVar(&wait, "wait", false, "wait for a running syncer's writer lock instead of failing")
	if err := c.parse(args, getenv); err != nil {
		return err
	}
	st, err := openDatabase(ctx, *databaseURL)
	if err != nil {
		return err
	}
	defer st.Close()
	lock, err := st.Lock(ctx, store.LockOptions{Wait: wait})
	if err != nil {
		return fmt.Errorf("reprocess: %w (--wait waits for it)", err)
	}
	defer lock.Release()
	before, err := st.Status(ctx)
	if err != nil {
		return err
	}
	res, err := st.Reprocess(ctx, 0)
	if err != nil {
		return err
	}
	was := int64(0)
	for _, q := range before.Quarantine {
		if q.Label == "projection" {
			was = q.N
		}
	}
	fmt.Fprintf(stdout, "reprocessed %d archived Vault events: %d projected, %d quarantined for projection (before: %d)\n",
		res.Events, res.Projected, res.Quarantined, was)
	return nil
}

func cmdGrantReader(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	c := newCommand("grant-reader", `usage: syncer grant-reader [flags] ROLE

Make ROLE a read-only user of the audit trail, for dashboards and analysts:
SELECT on the audit tables and views, nothing else. The role is created if it
does not exist: with LOGIN and the password read from the environment variable
named by --password-env, or NOLOGIN without it. Run it again after an upgrade
that adds tables.`, stdout)
	c.args = true
	databaseURL := c.databaseFlag("PostgreSQL connection URL (of a role allowed to create roles)")
	var passwordEnv string
	c.fs.StringVar(&passwordEnv, "password-env", "", "name of the environment variable holding the role's password")
	if err := c.parse(args, getenv); err != nil {
		return err
	}
	if c.fs.NArg() != 1 {
		return usageError("grant-reader: want one role name")
	}
	role, password := c.fs.Arg(0), ""
	if passwordEnv != "" {
		if password = getenv(passwordEnv); password == "" {
			return usageError("--password-env %s: that environment variable is empty", passwordEnv)
		}
	}
	st, err := openDatabase(ctx, *databaseURL)
	if err != nil {
		return err
	}
	defer st.Close()
	if err := st.GrantReader(ctx, role, password); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s can now read the audit trail, and only read it\n", role)
	return nil
}
