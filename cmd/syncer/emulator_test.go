package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/syncer-audit/syncer/internal/pgtest"
)

// The official WorkOS CLI (npm package workos 0.14.0) ships an API emulator
// written by WorkOS, not by us. It differs from the live API in ways the
// syncer must survive: it reads the type filter only as events[]= (so every
// type comes back), defaults to newest first, uses evt_ ids, adds
// environment_id to the envelope, and emits names the live API does not.
const emulatorKey = "sk_test_default"

// startEmulator runs "workos emulate" on a free loopback port.
func startEmulator(t *testing.T) string {
	t.Helper()
	bin, err := filepath.Abs("../../test/emulator/node_modules/workos/dist/bin.js")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("the WorkOS emulator is not installed (%v); run: npm ci --prefix test/emulator (make test does)", err)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node is needed to run the WorkOS emulator: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	var logs bytes.Buffer
	cmd := exec.Command(node, bin, "emulate", "--port", fmt.Sprint(port))
	cmd.Stdout, cmd.Stderr = &logs, &logs
	cmd.Env = append(os.Environ(), "CI=true", "DO_NOT_TRACK=1", "WORKOS_TELEMETRY=false")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("emulator output:\n%s", logs.String())
		}
	})
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	waitFor(t, func() bool {
		res, err := http.Get(base + "/health")
		if err != nil {
			return false
		}
		res.Body.Close()
		return res.StatusCode == http.StatusOK
	})
	return base
}

// emulatorCall sends one REST call and decodes the answer.
func emulatorCall(t *testing.T, method, url string, body any) map[string]any {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, url, rd)
	req.Header.Set("Authorization", "Bearer "+emulatorKey)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	if res.StatusCode >= 300 {
		t.Fatalf("%s %s: %d %s", method, url, res.StatusCode, raw)
	}
	out := map[string]any{}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &out); err != nil {
			t.Fatalf("%s %s: %v: %s", method, url, err, raw)
		}
	}
	return out
}

// emulatorEventIDs lists every event the emulator holds, by its own API.
func emulatorEventIDs(t *testing.T, base string) []string {
	t.Helper()
	var ids []string
	after := ""
	for range 1000 {
		url := base + "/events?limit=100&order=asc"
		if after != "" {
			url += "&after=" + after
		}
		page := emulatorCall(t, http.MethodGet, url, nil)
		data, _ := page["data"].([]any)
		for _, e := range data {
			ids = append(ids, e.(map[string]any)["id"].(string))
		}
		next, _ := page["list_metadata"].(map[string]any)["after"].(string)
		if next == "" || len(data) == 0 {
			slices.Sort(ids)
			return ids
		}
		after = next
	}
	t.Fatal("the emulator's event list does not end")
	return nil
}

func TestAgainstTheWorkOSEmulator(t *testing.T) {
	t.Parallel()
	base := startEmulator(t)
	populate := func(round int) {
		for o := range 3 {
			org := emulatorCall(t, http.MethodPost, base+"/organizations", map[string]any{"name": fmt.Sprintf("Org %d-%d", round, o)})
			emulatorCall(t, http.MethodPut, base+"/organizations/"+org["id"].(string), map[string]any{"name": fmt.Sprintf("Org %d-%d renamed", round, o)})
			for u := range 3 {
				user := emulatorCall(t, http.MethodPost, base+"/user_management/users", map[string]any{
					"email": fmt.Sprintf("user%d-%d-%d@example.com", round, o, u), "first_name": "User", "last_name": fmt.Sprint(u)})
				emulatorCall(t, http.MethodPost, base+"/user_management/organization_memberships", map[string]any{
					"user_id": user["id"], "organization_id": org["id"]})
			}
		}
		emulatorCall(t, http.MethodPost, base+"/authorization/roles", map[string]any{"slug": fmt.Sprintf("auditor-%d", round), "name": "Auditor"})
	}
	populate(1)

	db := pgtest.URL(t)
	env := map[string]string{"DATABASE_URL": db, "WORKOS_API_KEY": emulatorKey, "WORKOS_BASE_URL": base, "SYNCER_LOG_FORMAT": "json"}
	sync := func() string {
		var out, logs bytes.Buffer
		if err := run(context.Background(), []string{"sync", "--events", "all"}, func(k string) string { return env[k] }, &out, &logs); err != nil {
			t.Fatalf("sync against the emulator: %v\n%s", err, logs.String())
		}
		return out.String()
	}
	archived := func() []string { return archivedIDs(t, db) }

	sync()
	want := emulatorEventIDs(t, base)
	if len(want) < 20 {
		t.Fatalf("the emulator lists %d events; the setup should have made at least 20", len(want))
	}
	if got := archived(); !slices.Equal(got, want) {
		t.Fatalf("archived %d events, the emulator lists %d; they differ:\n got %v\nwant %v", len(got), len(want), got, want)
	}
	if out := sync(); !strings.Contains(out, "caught up: 0 events") {
		t.Errorf("a second sync printed %q; want 0 new events", out)
	}

	// Events made after the first sync are picked up by the next one.
	populate(2)
	sync()
	want = emulatorEventIDs(t, base)
	if got := archived(); !slices.Equal(got, want) {
		t.Errorf("after more activity: archived %d events, the emulator lists %d", len(got), len(want))
	}
	if n := len(want); n < 45 {
		t.Errorf("only %d events after two rounds", n)
	}
}
