// Package deploy_test checks the deployment files without Docker, Kubernetes
// or systemd running: docker-compose.yml, the Dockerfile, the Kubernetes
// manifests and the systemd units are parsed and held to what a person
// would check before running them, and every syncer command line in them is
// checked against the help of the binary built from this tree.
package deploy_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"go.yaml.in/yaml/v3"
)

// demoAPIKey is the one credential allowed in the files: the fake API's
// made-up key, used only by the demo profile.
const demoAPIKey = "sk_test_fake"

// nonRootUID is distroless's "nonroot" user, which the image runs as and the
// Kubernetes manifests require.
const nonRootUID = 65532

// ---- docker-compose.yml ---------------------------------------------------

type composeFile struct {
	Services map[string]*service `yaml:"services"`
	Volumes  map[string]any      `yaml:"volumes"`
}

type service struct {
	Image       string              `yaml:"image"`
	Build       any                 `yaml:"build"`
	Profiles    []string            `yaml:"profiles"`
	Command     stringList          `yaml:"command"`
	Restart     string              `yaml:"restart"`
	Environment envMap              `yaml:"environment"`
	EnvFile     any                 `yaml:"env_file"`
	Volumes     []mount             `yaml:"volumes"`
	DependsOn   dependsOn           `yaml:"depends_on"`
	Healthcheck *healthcheck        `yaml:"healthcheck"`
	Ports       []string            `yaml:"ports"`
	Networks    map[string]*network `yaml:"networks"`
}

type network struct {
	Aliases []string `yaml:"aliases"`
}

type healthcheck struct {
	Test stringList `yaml:"test"`
}

// stringList is a command or test: a YAML list, or a string split on spaces.
type stringList []string

func (l *stringList) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		*l = strings.Fields(n.Value)
		return nil
	}
	var s []string
	err := n.Decode(&s)
	*l = s
	return err
}

// envMap is environment: a map, or a list of NAME=value.
type envMap map[string]string

func (e *envMap) UnmarshalYAML(n *yaml.Node) error {
	m := map[string]string{}
	if n.Kind == yaml.SequenceNode {
		var list []string
		if err := n.Decode(&list); err != nil {
			return err
		}
		for _, kv := range list {
			k, v, _ := strings.Cut(kv, "=")
			m[k] = v
		}
	} else if err := n.Decode(&m); err != nil {
		return err
	}
	*e = m
	return nil
}

type dependency struct {
	Condition string `yaml:"condition"`
	Required  *bool  `yaml:"required"`
}

// dependsOn is depends_on: a list of names, or a map of name to condition.
type dependsOn map[string]dependency

func (d *dependsOn) UnmarshalYAML(n *yaml.Node) error {
	m := map[string]dependency{}
	if n.Kind == yaml.SequenceNode {
		var names []string
		if err := n.Decode(&names); err != nil {
			return err
		}
		for _, name := range names {
			m[name] = dependency{Condition: "service_started"}
		}
	} else if err := n.Decode(&m); err != nil {
		return err
	}
	*d = m
	return nil
}

// mount is a service volume, short ("src:dst:ro") or long syntax.
type mount struct {
	Type     string `yaml:"type"`
	Source   string `yaml:"source"`
	Target   string `yaml:"target"`
	ReadOnly bool   `yaml:"read_only"`
}

func (m *mount) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		type long mount
		return n.Decode((*long)(m))
	}
	parts := strings.Split(n.Value, ":")
	switch len(parts) {
	case 1:
		*m = mount{Type: "volume", Target: parts[0]} // anonymous volume
		return nil
	case 2, 3:
		*m = mount{Source: parts[0], Target: parts[1], ReadOnly: len(parts) == 3 && strings.Contains(parts[2], "ro")}
	default:
		return fmt.Errorf("volume %q: want source:target[:mode]", n.Value)
	}
	m.Type = "volume"
	if strings.HasPrefix(m.Source, ".") || strings.HasPrefix(m.Source, "/") || strings.HasPrefix(m.Source, "~") {
		m.Type = "bind"
	}
	return nil
}

func readCompose(t *testing.T) (*composeFile, string) {
	t.Helper()
	raw, err := os.ReadFile("../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var c composeFile
	if err := yaml.Unmarshal(raw, &c); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	if len(c.Services) == 0 {
		t.Fatal("docker-compose.yml: no services")
	}
	return &c, string(raw)
}

// enabled are the services "docker compose --profile P up" starts: those
// with no profile, and those with one of the given profiles.
func (c *composeFile) enabled(profiles ...string) map[string]*service {
	out := map[string]*service{}
	for name, s := range c.Services {
		if len(s.Profiles) == 0 || slices.ContainsFunc(s.Profiles, func(p string) bool { return slices.Contains(profiles, p) }) {
			out[name] = s
		}
	}
	return out
}

// selections are the ways to start the stack the file's comments document.
var selections = map[string][]string{"no profile": nil, "demo": {"demo"}, "prod": {"prod"}}

// syncerServices run the syncer image.
var syncerServices = []string{"syncer-migrate", "syncer-init", "syncer", "fakeapi", "syncer-demo"}

func TestComposeServices(t *testing.T) {
	c, _ := readCompose(t)
	want := map[string][]string{
		"postgres":       nil,
		"syncer-migrate": nil,
		"syncer-init":    nil,
		"prometheus":     nil,
		"grafana":        nil,
		"syncer":         {"prod"},
		"fakeapi":        {"demo"},
		"syncer-demo":    {"demo"},
	}
	for name, profiles := range want {
		s, ok := c.Services[name]
		if !ok {
			t.Errorf("service %s missing", name)
			continue
		}
		if !slices.Equal(s.Profiles, profiles) {
			t.Errorf("service %s: profiles %v, want %v", name, s.Profiles, profiles)
		}
		if s.Image == "" {
			t.Errorf("service %s: no image", name)
		}
	}
	// The daemons, and only them, are what each profile adds.
	for sel, profiles := range selections {
		var daemons []string
		for name, s := range c.enabled(profiles...) {
			if len(s.Command) > 0 && s.Command[0] == "run" {
				daemons = append(daemons, name)
			}
		}
		slices.Sort(daemons)
		want := map[string][]string{"no profile": nil, "demo": {"syncer-demo"}, "prod": {"syncer"}}[sel]
		if !slices.Equal(daemons, want) {
			t.Errorf("%s: syncer daemons %v, want %v", sel, daemons, want)
		}
	}
}

func TestComposeStartOrder(t *testing.T) {
	c, _ := readCompose(t)
	valid := map[string]bool{"service_started": true, "service_healthy": true, "service_completed_successfully": true}
	for name, s := range c.Services {
		for dep, d := range s.DependsOn {
			target, ok := c.Services[dep]
			if !ok {
				t.Errorf("%s depends on %s, which is not a service", name, dep)
				continue
			}
			if !valid[d.Condition] {
				t.Errorf("%s depends on %s with condition %q", name, dep, d.Condition)
			}
			if d.Condition == "service_healthy" && target.Healthcheck == nil {
				t.Errorf("%s waits for %s to be healthy, but %s has no healthcheck", name, dep, dep)
			}
			if d.Condition == "service_completed_successfully" && target.Restart != "no" {
				t.Errorf("%s waits for %s to complete, but %s restarts (%q)", name, dep, dep, target.Restart)
			}
		}
	}
	// Compose refuses a project where an enabled service depends on a
	// disabled one, whichever way it is started.
	for sel, profiles := range selections {
		on := c.enabled(profiles...)
		for name, s := range on {
			for dep, d := range s.DependsOn {
				if _, ok := on[dep]; !ok && (d.Required == nil || *d.Required) {
					t.Errorf("%s: %s depends on %s, which this selection does not start", sel, name, dep)
				}
			}
		}
	}
	// No cycles.
	state := map[string]int{} // 1 visiting, 2 done
	var visit func(name string, path []string)
	visit = func(name string, path []string) {
		switch state[name] {
		case 1:
			t.Errorf("depends_on cycle: %s", strings.Join(append(path, name), " -> "))
			return
		case 2:
			return
		}
		state[name] = 1
		if s := c.Services[name]; s != nil {
			for _, dep := range slices.Sorted(maps.Keys(s.DependsOn)) {
				visit(dep, append(path, name))
			}
		}
		state[name] = 2
	}
	for _, name := range slices.Sorted(maps.Keys(c.Services)) {
		visit(name, nil)
	}
	// The order that matters: a healthy database, then the migrations, then
	// the reader role, then the daemons and Grafana.
	order := []struct{ from, to, cond string }{
		{"syncer-migrate", "postgres", "service_healthy"},
		{"syncer-init", "syncer-migrate", "service_completed_successfully"},
		{"syncer", "syncer-init", "service_completed_successfully"},
		{"syncer-demo", "syncer-init", "service_completed_successfully"},
		{"grafana", "syncer-init", "service_completed_successfully"},
	}
	for _, o := range order {
		if s := c.Services[o.from]; s == nil || s.DependsOn[o.to].Condition != o.cond {
			t.Errorf("%s should depend on %s with %s", o.from, o.to, o.cond)
		}
	}
}

func TestComposeVolumes(t *testing.T) {
	c, _ := readCompose(t)
	used := map[string]bool{}
	for _, name := range slices.Sorted(maps.Keys(c.Services)) {
		for _, m := range c.Services[name].Volumes {
			switch m.Type {
			case "volume":
				if m.Source == "" {
					t.Errorf("%s: anonymous volume at %s: name it, so that it is kept and found again", name, m.Target)
					continue
				}
				used[m.Source] = true
				if _, ok := c.Volumes[m.Source]; !ok {
					t.Errorf("%s uses volume %s, which is not declared under volumes", name, m.Source)
				}
			case "bind":
				// Files this directory ships must exist; ./grafana is another's.
				if strings.HasPrefix(m.Source, "./deploy/") {
					if _, err := os.Stat(filepath.Join("..", m.Source)); err != nil {
						t.Errorf("%s mounts %s: %v", name, m.Source, err)
					}
				}
				if !m.ReadOnly {
					t.Errorf("%s mounts %s read-write; configuration should be read-only", name, m.Source)
				}
			}
		}
	}
	for v := range c.Volumes {
		if !used[v] {
			t.Errorf("volume %s is declared but no service uses it", v)
		}
	}
	for _, want := range []struct{ service, target string }{
		{"postgres", "/var/lib/postgresql/data"},
		{"grafana", "/var/lib/grafana"},
		{"prometheus", "/prometheus"},
	} {
		if m, ok := mountAt(c.Services[want.service], want.target); !ok || m.Type != "volume" {
			t.Errorf("%s: want a named volume at %s, got %+v", want.service, want.target, m)
		}
	}
}

func mountAt(s *service, target string) (mount, bool) {
	if s == nil {
		return mount{}, false
	}
	for _, m := range s.Volumes {
		if m.Target == target {
			return m, true
		}
	}
	return mount{}, false
}

func TestComposePostgresAndGrafana(t *testing.T) {
	c, _ := readCompose(t)
	pg := c.Services["postgres"]
	if pg == nil {
		t.Fatal("no postgres service")
	}
	if !strings.HasPrefix(pg.Image, "postgres:15") {
		t.Errorf("postgres image %s, want postgres:15-alpine", pg.Image)
	}
	if pg.Healthcheck == nil || !slices.Contains(pg.Healthcheck.Test, "pg_isready") {
		t.Errorf("postgres: want a pg_isready healthcheck, got %+v", pg.Healthcheck)
	}
	// Grafana's provisioned data source reads database syncer at postgres:5432.
	if db := pg.Environment["POSTGRES_DB"]; db != "syncer" {
		t.Errorf("POSTGRES_DB %q, want syncer", db)
	}
	if ports := pg.Ports; len(ports) != 0 {
		t.Errorf("postgres publishes %v: its password may be a local default, keep it on the Compose network", ports)
	}
	for _, name := range []string{"syncer-migrate", "syncer-init", "syncer", "syncer-demo"} {
		s := c.Services[name]
		if s == nil {
			continue
		}
		u, err := url.Parse(substitute(s.Environment["DATABASE_URL"]))
		if err != nil {
			t.Errorf("%s: DATABASE_URL: %v", name, err)
			continue
		}
		if u.Host != "postgres:5432" || u.Path != "/syncer" || u.User.Username() != pg.Environment["POSTGRES_USER"] {
			t.Errorf("%s: DATABASE_URL %s does not reach the postgres service's database syncer as %s", name, u.Redacted(), pg.Environment["POSTGRES_USER"])
		}
		if p, _ := u.User.Password(); p != substitute(pg.Environment["POSTGRES_PASSWORD"]) {
			t.Errorf("%s: DATABASE_URL's password is not postgres's POSTGRES_PASSWORD", name)
		}
	}

	g := c.Services["grafana"]
	if g == nil {
		t.Fatal("no grafana service")
	}
	for src, dst := range map[string]string{
		"./grafana/provisioning": "/etc/grafana/provisioning",
		"./grafana/dashboards":   "/var/lib/grafana/dashboards",
	} {
		if m, ok := mountAt(g, dst); !ok || m.Source != src || m.Type != "bind" {
			t.Errorf("grafana: want %s mounted at %s, got %+v", src, dst, m)
		}
	}
	if g.Healthcheck == nil {
		t.Error("grafana: no healthcheck")
	}
	if !slices.ContainsFunc(g.Ports, func(p string) bool { return strings.HasSuffix(p, ":3000") }) {
		t.Errorf("grafana: port 3000 not published: %v", g.Ports)
	}
	// The reader role is made with the password Grafana logs in with.
	initSvc := c.Services["syncer-init"]
	if initSvc == nil {
		t.Fatal("no syncer-init service")
	}
	want := []string{"grant-reader", "--password-env", "GRAFANA_DB_PASSWORD", "grafana_reader"}
	if !slices.Equal(initSvc.Command, want) {
		t.Errorf("syncer-init command %v, want %v", initSvc.Command, want)
	}
	if g.Environment["GRAFANA_DB_PASSWORD"] == "" || g.Environment["GRAFANA_DB_PASSWORD"] != initSvc.Environment["GRAFANA_DB_PASSWORD"] {
		t.Errorf("GRAFANA_DB_PASSWORD differs: grafana %q, syncer-init %q", g.Environment["GRAFANA_DB_PASSWORD"], initSvc.Environment["GRAFANA_DB_PASSWORD"])
	}
	if p := c.Services["prometheus"]; p == nil || p.Healthcheck == nil {
		t.Error("prometheus: missing, or no healthcheck")
	}
}

func TestComposeSyncerImage(t *testing.T) {
	c, _ := readCompose(t)
	first := c.Services["syncer-migrate"]
	if first == nil || first.Build == nil {
		t.Fatal("syncer-migrate: missing, or no build")
	}
	for _, name := range syncerServices {
		s := c.Services[name]
		if s == nil {
			continue // TestComposeServices reports it
		}
		if s.Image != first.Image || fmt.Sprint(s.Build) != fmt.Sprint(first.Build) {
			t.Errorf("%s: image %q build %v; want the same as syncer-migrate's, %q %v", name, s.Image, s.Build, first.Image, first.Build)
		}
		checkCommand(t, "compose "+name, s.Command, s.Environment)
	}
	// The image built is the repository's Dockerfile.
	b, _ := first.Build.(map[string]any)
	if b["context"] != "." || (b["dockerfile"] != nil && b["dockerfile"] != "Dockerfile") {
		t.Errorf("syncer build %v: want context . and the Dockerfile", first.Build)
	}
}

// interpolation is ${NAME}, ${NAME:-default}, ${NAME-default},
// ${NAME:?err}, ${NAME?err}, ${NAME:+alt}.
var interpolation = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])([^}]*))?\}`)

// substitute replaces every interpolation with its default, as Compose does
// with nothing set.
func substitute(s string) string {
	return interpolation.ReplaceAllStringFunc(s, func(m string) string {
		sub := interpolation.FindStringSubmatch(m)
		if strings.HasSuffix(sub[2], "-") {
			return sub[3]
		}
		return ""
	})
}

// secretName is an environment variable that holds a credential.
var secretName = regexp.MustCompile(`(?i)(PASSWORD|SECRET|TOKEN|_KEY)$`)

func TestComposeSecrets(t *testing.T) {
	c, raw := readCompose(t)
	for _, name := range slices.Sorted(maps.Keys(c.Services)) {
		s := c.Services[name]
		demoOnly := slices.Equal(s.Profiles, []string{"demo"})
		for k, v := range s.Environment {
			switch {
			case k == "DATABASE_URL":
				// The password part is an interpolation, nothing else.
				m := regexp.MustCompile(`^postgres(?:ql)?://[^:@/]+:([^@]*)@`).FindStringSubmatch(v)
				if m == nil || !interpolation.MatchString(m[1]) || interpolation.FindString(m[1]) != m[1] {
					t.Errorf("%s: DATABASE_URL's password must come from a variable: %s", name, v)
				} else {
					checkSecretDefault(t, name, k, m[1])
				}
			case secretName.MatchString(k):
				if v == demoAPIKey {
					if !demoOnly {
						t.Errorf("%s: %s is the fake demo key, but the service is not demo-only", name, k)
					}
					continue
				}
				if interpolation.FindString(v) != v || v == "" {
					t.Errorf("%s: %s is set in the file (%q); take it from a variable", name, k, v)
					continue
				}
				checkSecretDefault(t, name, k, v)
			}
		}
	}
	// The real syncer's key has no default of any kind.
	if s := c.Services["syncer"]; s != nil {
		sub := interpolation.FindStringSubmatch(s.Environment["WORKOS_API_KEY"])
		if sub == nil || sub[1] != "WORKOS_API_KEY" || sub[3] != "" {
			t.Errorf("syncer: WORKOS_API_KEY %q, want ${WORKOS_API_KEY} with no default", s.Environment["WORKOS_API_KEY"])
		}
	}
	// Nothing that looks like a real WorkOS key anywhere in the file.
	for _, m := range regexp.MustCompile(`sk_(?:live|test)_[A-Za-z0-9_]+`).FindAllString(raw, -1) {
		if m != demoAPIKey {
			t.Errorf("docker-compose.yml holds a WorkOS key: %s", m)
		}
	}
}

// checkSecretDefault allows a secret's interpolation a default only when it
// says it is for local use, or is Grafana's own admin default (which Grafana
// makes the user change at the first login).
func checkSecretDefault(t *testing.T, service, key, expr string) {
	t.Helper()
	sub := interpolation.FindStringSubmatch(expr)
	def := sub[3]
	switch {
	case !strings.HasSuffix(sub[2], "-") || def == "":
	case strings.Contains(def, "insecure-local-only"):
	case key == "GF_SECURITY_ADMIN_PASSWORD" && def == "admin":
	default:
		t.Errorf("%s: %s defaults to %q; a secret's default must say insecure-local-only", service, key, def)
	}
}

func TestComposeDemoNeedsNoSettings(t *testing.T) {
	c, raw := readCompose(t)
	// Compose interpolates the whole file whatever the profile: one
	// required variable anywhere would stop the demo too.
	for _, m := range interpolation.FindAllStringSubmatch(raw, -1) {
		if strings.HasSuffix(m[2], "?") {
			t.Errorf("%s is required; the demo must start with nothing set", m[0])
		}
	}
	demo := c.enabled("demo")
	for _, name := range slices.Sorted(maps.Keys(demo)) {
		s := demo[name]
		if s.EnvFile != nil {
			t.Errorf("demo: %s reads an env_file, which a fresh checkout does not have", name)
		}
		for k, v := range s.Environment {
			for _, m := range interpolation.FindAllStringSubmatch(v, -1) {
				if m[1] == "WORKOS_API_KEY" {
					t.Errorf("demo: %s's %s needs WORKOS_API_KEY", name, k)
				}
				if !strings.HasSuffix(m[2], "-") {
					t.Errorf("demo: %s's %s needs %s set (no default)", name, k, m[1])
				}
			}
		}
	}
	fake, syncer := demo["fakeapi"], demo["syncer-demo"]
	if fake == nil || syncer == nil {
		t.Fatal("demo: fakeapi or syncer-demo missing")
	}
	if demo["syncer"] != nil {
		t.Error("demo also starts the real syncer")
	}
	// The demo syncer talks to the fake, with the key the fake accepts.
	listen := flagValue(fake.Command, "--listen")
	host, port, _ := strings.Cut(listen, ":")
	if host != "0.0.0.0" && host != "" {
		t.Errorf("fakeapi listens on %q: other containers cannot reach it", listen)
	}
	if u := syncer.Environment["WORKOS_BASE_URL"]; u != "http://fakeapi:"+port {
		t.Errorf("syncer-demo: WORKOS_BASE_URL %q, want http://fakeapi:%s", u, port)
	}
	fakeKey := firstNonEmpty(flagValue(fake.Command, "--api-key"), fake.Environment["FAKEAPI_KEY"], demoAPIKey)
	if k := syncer.Environment["WORKOS_API_KEY"]; k != demoAPIKey || k != fakeKey {
		t.Errorf("syncer-demo's key %q, the fake accepts %q; want both %q", k, fakeKey, demoAPIKey)
	}
	if syncer.DependsOn["fakeapi"].Condition == "" {
		t.Error("syncer-demo does not wait for fakeapi")
	}
	if flagValue(fake.Command, "--append-every") == "" {
		t.Error("fakeapi appends no events: the dashboards would not move")
	}
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

func flagValue(args []string, name string) string {
	for i, a := range args {
		if a == name && i+1 < len(args) {
			return args[i+1]
		}
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v
		}
	}
	return ""
}

func TestComposePrometheus(t *testing.T) {
	c, _ := readCompose(t)
	p := c.Services["prometheus"]
	if p == nil {
		t.Fatal("no prometheus service")
	}
	cfg := flagValue(p.Command, "--config.file")
	m, ok := mountAt(p, cfg)
	if cfg == "" || !ok || m.Source != "./deploy/prometheus.yml" {
		t.Errorf("prometheus: --config.file %q should be ./deploy/prometheus.yml mounted there; got %+v", cfg, m)
	}
	var prom struct {
		ScrapeConfigs []struct {
			JobName       string `yaml:"job_name"`
			MetricsPath   string `yaml:"metrics_path"`
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	raw, err := os.ReadFile("prometheus.yml")
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(raw, &prom); err != nil {
		t.Fatalf("prometheus.yml: %v", err)
	}
	var targets []string
	for _, sc := range prom.ScrapeConfigs {
		if sc.JobName != "syncer" {
			continue
		}
		if sc.MetricsPath != "" && sc.MetricsPath != "/metrics" {
			t.Errorf("job syncer scrapes %s, want /metrics", sc.MetricsPath)
		}
		for _, s := range sc.StaticConfigs {
			targets = append(targets, s.Targets...)
		}
	}
	if len(targets) == 0 {
		t.Fatal("prometheus.yml: no job syncer with targets")
	}
	// Each target's host answers in both profiles that run a syncer.
	for _, target := range targets {
		host, port, _ := strings.Cut(target, ":")
		if port != "9090" {
			t.Errorf("target %s: the syncer serves /metrics on 9090", target)
		}
		for _, sel := range []string{"demo", "prod"} {
			found := false
			for name, s := range c.enabled(sel) {
				aliases := []string{name}
				for _, n := range s.Networks {
					if n != nil {
						aliases = append(aliases, n.Aliases...)
					}
				}
				if slices.Contains(aliases, host) && len(s.Command) > 0 && s.Command[0] == "run" {
					found = true
				}
			}
			if !found {
				t.Errorf("%s: no syncer daemon answers to %q, which Prometheus scrapes", sel, host)
			}
		}
	}
}

// ---- the syncer's command lines -------------------------------------------

var (
	buildOnce sync.Once
	binary    string
	buildErr  error
)

// syncerBinary builds cmd/syncer from this tree, once per test run.
func syncerBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "syncer-deploy-test")
		if err != nil {
			buildErr = err
			return
		}
		binary = filepath.Join(dir, "syncer")
		cmd := exec.Command("go", "build", "-o", binary, "./cmd/syncer")
		cmd.Dir = ".."
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./cmd/syncer: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binary
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binary != "" {
		os.RemoveAll(filepath.Dir(binary))
	}
	os.Exit(code)
}

var helpCache sync.Map

// help is "syncer <command> --help".
func help(t *testing.T, command string) string {
	t.Helper()
	if h, ok := helpCache.Load(command); ok {
		return h.(string)
	}
	var out bytes.Buffer
	cmd := exec.Command(syncerBinary(t), command, "--help")
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.Env = []string{} // no DATABASE_URL or key from the test's environment
	if err := cmd.Run(); err != nil {
		t.Fatalf("syncer %s --help: %v\n%s", command, err, out.String())
	}
	helpCache.Store(command, out.String())
	return out.String()
}

// checkCommand holds a syncer command line, and the environment it runs
// with, to the binary's help: a renamed flag or a misspelt variable would
// otherwise be ignored or fail only at deploy time.
func checkCommand(t *testing.T, where string, args []string, env map[string]string) {
	t.Helper()
	commands := []string{"sync", "run", "status", "migrate", "reprocess", "grant-reader", "fakeapi"}
	if len(args) == 0 || !slices.Contains(commands, args[0]) {
		t.Errorf("%s: %v is not a syncer command", where, args)
		return
	}
	h := help(t, args[0])
	for _, a := range args[1:] {
		if !strings.HasPrefix(a, "--") {
			continue
		}
		name, _, _ := strings.Cut(a, "=")
		if !strings.Contains(h, "  "+name+" ") && !strings.Contains(h, "  "+name+"\n") {
			t.Errorf("%s: syncer %s has no flag %s", where, args[0], name)
		}
	}
	for k := range env {
		if !regexp.MustCompile(`^(SYNCER_|WORKOS_|FAKEAPI_)|^DATABASE_URL$`).MatchString(k) {
			continue
		}
		if !strings.Contains(h, k) {
			t.Errorf("%s: syncer %s does not read %s", where, args[0], k)
		}
	}
	if pe := flagValue(args, "--password-env"); pe != "" {
		if _, ok := env[pe]; !ok {
			t.Errorf("%s: --password-env %s, but %s is not set", where, pe, pe)
		}
	}
}

// ---- Kubernetes -----------------------------------------------------------

type k8sObject struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name   string            `yaml:"name"`
		Labels map[string]string `yaml:"labels"`
	} `yaml:"metadata"`
	Spec       yaml.Node         `yaml:"spec"`
	Type       string            `yaml:"type"`
	StringData map[string]string `yaml:"stringData"`
	Data       map[string]string `yaml:"data"`
}

type podTemplate struct {
	Metadata struct {
		Labels map[string]string `yaml:"labels"`
	} `yaml:"metadata"`
	Spec podSpec `yaml:"spec"`
}

type podSpec struct {
	RestartPolicy   string `yaml:"restartPolicy"`
	SecurityContext struct {
		RunAsNonRoot *bool `yaml:"runAsNonRoot"`
		RunAsUser    *int  `yaml:"runAsUser"`
	} `yaml:"securityContext"`
	InitContainers []container `yaml:"initContainers"`
	Containers     []container `yaml:"containers"`
	Volumes        []struct {
		Name string `yaml:"name"`
	} `yaml:"volumes"`
}

type container struct {
	Name  string   `yaml:"name"`
	Image string   `yaml:"image"`
	Args  []string `yaml:"args"`
	Env   []struct {
		Name      string `yaml:"name"`
		Value     string `yaml:"value"`
		ValueFrom *struct {
			SecretKeyRef *struct {
				Name string `yaml:"name"`
				Key  string `yaml:"key"`
			} `yaml:"secretKeyRef"`
		} `yaml:"valueFrom"`
	} `yaml:"env"`
	Ports []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	} `yaml:"ports"`
	LivenessProbe   *probe `yaml:"livenessProbe"`
	ReadinessProbe  *probe `yaml:"readinessProbe"`
	StartupProbe    *probe `yaml:"startupProbe"`
	SecurityContext struct {
		AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
		ReadOnlyRootFilesystem   *bool `yaml:"readOnlyRootFilesystem"`
		Capabilities             struct {
			Drop []string `yaml:"drop"`
		} `yaml:"capabilities"`
	} `yaml:"securityContext"`
	VolumeMounts []struct {
		Name string `yaml:"name"`
	} `yaml:"volumeMounts"`
}

type probe struct {
	HTTPGet *httpGet `yaml:"httpGet"`
}

type httpGet struct {
	Path string `yaml:"path"`
	Port any    `yaml:"port"` // a number or a port's name
}

// readManifests reads every document of a file of manifests.
func readManifests(t *testing.T, file string) []k8sObject {
	t.Helper()
	f, err := os.Open(filepath.Join("kubernetes", file))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dec := yaml.NewDecoder(f)
	dec.KnownFields(true)
	var objs []k8sObject
	for {
		var o k8sObject
		err := dec.Decode(&o)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if o.Kind == "" || o.APIVersion == "" || o.Metadata.Name == "" {
			t.Errorf("%s: a document without kind, apiVersion or name: %+v", file, o)
		}
		objs = append(objs, o)
	}
	return objs
}

func kinds(objs []k8sObject) []string {
	var ks []string
	for _, o := range objs {
		ks = append(ks, o.APIVersion+" "+o.Kind)
	}
	return ks
}

func decodeSpec(t *testing.T, o k8sObject, v any) {
	t.Helper()
	if err := o.Spec.Decode(v); err != nil {
		t.Fatalf("%s %s: spec: %v", o.Kind, o.Metadata.Name, err)
	}
}

// exampleSecret is the Secret of secret.example.yaml: its name and keys.
func exampleSecret(t *testing.T) (string, map[string]string) {
	t.Helper()
	objs := readManifests(t, "secret.example.yaml")
	if got := kinds(objs); !slices.Equal(got, []string{"v1 Secret"}) {
		t.Fatalf("secret.example.yaml holds %v, want one v1 Secret", got)
	}
	s := objs[0]
	values := maps.Clone(s.StringData)
	maps.Copy(values, s.Data)
	for k, v := range values {
		if !strings.Contains(v, "REPLACE_ME") {
			t.Errorf("secret.example.yaml: %s is %q; an example holds placeholders (REPLACE_ME) only", k, v)
		}
	}
	return s.Metadata.Name, values
}

// checkPod holds a pod to the rules every syncer pod follows: non-root,
// read-only root, no privilege escalation, secrets from the Secret, the
// same image, commands the binary knows.
func checkPod(t *testing.T, where string, p podSpec) {
	t.Helper()
	secret, keys := exampleSecret(t)
	sc := p.SecurityContext
	if sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.RunAsUser == nil || *sc.RunAsUser != nonRootUID {
		t.Errorf("%s: want runAsNonRoot and runAsUser %d", where, nonRootUID)
	}
	volumes := map[string]bool{}
	for _, v := range p.Volumes {
		volumes[v.Name] = true
	}
	all := append(slices.Clone(p.InitContainers), p.Containers...)
	if len(p.Containers) == 0 {
		t.Errorf("%s: no containers", where)
	}
	for _, c := range all {
		w := where + " container " + c.Name
		if !strings.Contains(c.Image, "syncer") || !strings.Contains(c.Image, ":") {
			t.Errorf("%s: image %q, want the syncer image with a tag", w, c.Image)
		}
		csc := c.SecurityContext
		if csc.ReadOnlyRootFilesystem == nil || !*csc.ReadOnlyRootFilesystem {
			t.Errorf("%s: readOnlyRootFilesystem not set", w)
		}
		if csc.AllowPrivilegeEscalation == nil || *csc.AllowPrivilegeEscalation {
			t.Errorf("%s: allowPrivilegeEscalation not false", w)
		}
		if !slices.Contains(csc.Capabilities.Drop, "ALL") {
			t.Errorf("%s: capabilities not dropped", w)
		}
		for _, m := range c.VolumeMounts {
			if !volumes[m.Name] {
				t.Errorf("%s mounts volume %s, which the pod does not have", w, m.Name)
			}
		}
		env := map[string]string{}
		for _, e := range c.Env {
			env[e.Name] = e.Value
			isSecret := e.Name == "DATABASE_URL" || secretName.MatchString(e.Name)
			ref := e.ValueFrom
			switch {
			case isSecret && (ref == nil || ref.SecretKeyRef == nil):
				t.Errorf("%s: %s must come from a Secret", w, e.Name)
			case ref != nil && ref.SecretKeyRef != nil:
				if ref.SecretKeyRef.Name != secret {
					t.Errorf("%s: %s from Secret %s; the example Secret is %s", w, e.Name, ref.SecretKeyRef.Name, secret)
				}
				if _, ok := keys[ref.SecretKeyRef.Key]; !ok {
					t.Errorf("%s: %s from key %s, which secret.example.yaml lacks", w, e.Name, ref.SecretKeyRef.Key)
				}
			}
		}
		checkCommand(t, w, c.Args, env)
	}
}

// containerPort resolves a port, a number or a container port's name.
func containerPort(c container, port any) int {
	switch v := port.(type) {
	case int:
		return v
	case string:
		if n, err := strconv.Atoi(v); err == nil {
			return n
		}
		for _, cp := range c.Ports {
			if cp.Name == v {
				return cp.ContainerPort
			}
		}
	}
	return 0
}

func TestKubernetesDeployment(t *testing.T) {
	objs := readManifests(t, "deployment.yaml")
	want := []string{"apps/v1 Deployment", "v1 Service", "policy/v1 PodDisruptionBudget"}
	if got := kinds(objs); !slices.Equal(got, want) {
		t.Fatalf("deployment.yaml holds %v, want %v", got, want)
	}
	var d struct {
		Replicas *int `yaml:"replicas"`
		Selector struct {
			MatchLabels map[string]string `yaml:"matchLabels"`
		} `yaml:"selector"`
		Strategy struct {
			RollingUpdate struct {
				MaxUnavailable any `yaml:"maxUnavailable"`
			} `yaml:"rollingUpdate"`
		} `yaml:"strategy"`
		Template podTemplate `yaml:"template"`
	}
	decodeSpec(t, objs[0], &d)
	if d.Replicas == nil || *d.Replicas != 2 {
		t.Errorf("replicas not 2: want one active, one standby")
	}
	// Never fewer than the wanted replicas during a rollout: a standby is
	// there to take the lock when the active pod is replaced.
	if fmt.Sprint(d.Strategy.RollingUpdate.MaxUnavailable) != "0" {
		t.Errorf("maxUnavailable %v, want 0", d.Strategy.RollingUpdate.MaxUnavailable)
	}
	podLabels := d.Template.Metadata.Labels
	if len(d.Selector.MatchLabels) == 0 || !subset(d.Selector.MatchLabels, podLabels) {
		t.Errorf("selector %v does not match the pod labels %v", d.Selector.MatchLabels, podLabels)
	}
	checkPod(t, "Deployment", d.Template.Spec)
	if len(d.Template.Spec.Containers) != 1 {
		t.Fatalf("Deployment: %d containers, want 1", len(d.Template.Spec.Containers))
	}
	c := d.Template.Spec.Containers[0]
	if !slices.Equal(c.Args, []string{"run"}) {
		t.Errorf("Deployment args %v, want [run]", c.Args)
	}
	for _, p := range []struct {
		name  string
		probe *probe
		path  string
	}{
		{"livenessProbe", c.LivenessProbe, "/healthz"},
		{"readinessProbe", c.ReadinessProbe, "/readyz"},
	} {
		if p.probe == nil || p.probe.HTTPGet == nil {
			t.Errorf("%s: missing, or not an httpGet", p.name)
			continue
		}
		if p.probe.HTTPGet.Path != p.path || containerPort(c, p.probe.HTTPGet.Port) != 9090 {
			t.Errorf("%s: GET %s on port %d, want %s on 9090", p.name, p.probe.HTTPGet.Path, containerPort(c, p.probe.HTTPGet.Port), p.path)
		}
	}

	var svc struct {
		Selector                 map[string]string `yaml:"selector"`
		PublishNotReadyAddresses bool              `yaml:"publishNotReadyAddresses"`
		Ports                    []struct {
			Port       int `yaml:"port"`
			TargetPort any `yaml:"targetPort"`
		} `yaml:"ports"`
	}
	decodeSpec(t, objs[1], &svc)
	if len(svc.Selector) == 0 || !subset(svc.Selector, podLabels) {
		t.Errorf("Service selector %v does not match the pod labels %v", svc.Selector, podLabels)
	}
	if len(svc.Ports) != 1 || containerPort(c, svc.Ports[0].TargetPort) != 9090 {
		t.Errorf("Service ports %+v: want one, to the container's 9090", svc.Ports)
	}
	if !svc.PublishNotReadyAddresses {
		t.Error("Service: publishNotReadyAddresses off: a pod failing readiness would vanish from Prometheus")
	}

	var pdb struct {
		Selector struct {
			MatchLabels map[string]string `yaml:"matchLabels"`
		} `yaml:"selector"`
	}
	decodeSpec(t, objs[2], &pdb)
	if len(pdb.Selector.MatchLabels) == 0 || !subset(pdb.Selector.MatchLabels, podLabels) {
		t.Errorf("PodDisruptionBudget selector %v does not match the pod labels", pdb.Selector.MatchLabels)
	}
}

func subset(sub, of map[string]string) bool {
	for k, v := range sub {
		if of[k] != v {
			return false
		}
	}
	return true
}

func TestKubernetesCronJob(t *testing.T) {
	objs := readManifests(t, "cronjob.yaml")
	if got := kinds(objs); !slices.Equal(got, []string{"batch/v1 CronJob"}) {
		t.Fatalf("cronjob.yaml holds %v, want one batch/v1 CronJob", got)
	}
	var cj struct {
		Schedule          string `yaml:"schedule"`
		ConcurrencyPolicy string `yaml:"concurrencyPolicy"`
		JobTemplate       struct {
			Spec struct {
				Template podTemplate `yaml:"template"`
			} `yaml:"spec"`
		} `yaml:"jobTemplate"`
	}
	decodeSpec(t, objs[0], &cj)
	if cj.Schedule != "*/5 * * * *" {
		t.Errorf("schedule %q, want every five minutes", cj.Schedule)
	}
	if cj.ConcurrencyPolicy != "Forbid" {
		t.Errorf("concurrencyPolicy %q, want Forbid", cj.ConcurrencyPolicy)
	}
	pod := cj.JobTemplate.Spec.Template.Spec
	if pod.RestartPolicy != "Never" && pod.RestartPolicy != "OnFailure" {
		t.Errorf("restartPolicy %q: a Job's pod wants Never or OnFailure", pod.RestartPolicy)
	}
	checkPod(t, "CronJob", pod)
	if len(pod.Containers) != 1 || !slices.Equal(pod.Containers[0].Args, []string{"sync"}) {
		t.Errorf("CronJob: want one container running sync")
	}
}

func TestKubernetesInitJob(t *testing.T) {
	objs := readManifests(t, "job-init.yaml")
	if got := kinds(objs); !slices.Equal(got, []string{"batch/v1 Job"}) {
		t.Fatalf("job-init.yaml holds %v, want one batch/v1 Job", got)
	}
	var j struct {
		Template podTemplate `yaml:"template"`
	}
	decodeSpec(t, objs[0], &j)
	pod := j.Template.Spec
	checkPod(t, "Job syncer-init", pod)
	// The migrations first: the grants name their tables.
	var steps [][]string
	for _, c := range append(slices.Clone(pod.InitContainers), pod.Containers...) {
		steps = append(steps, c.Args)
	}
	if len(steps) != 2 || !slices.Equal(steps[0], []string{"migrate", "up"}) || len(steps[1]) == 0 || steps[1][0] != "grant-reader" {
		t.Errorf("Job steps %v, want migrate up, then grant-reader", steps)
	}
}

func TestKubernetesSameImage(t *testing.T) {
	images := map[string]bool{}
	for _, f := range []string{"deployment.yaml", "cronjob.yaml", "job-init.yaml"} {
		raw, err := os.ReadFile(filepath.Join("kubernetes", f))
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range regexp.MustCompile(`(?m)^\s*image:\s*(\S+)`).FindAllStringSubmatch(string(raw), -1) {
			images[m[1]] = true
		}
	}
	if len(images) != 1 {
		t.Errorf("the manifests name %d images, want one: %v", len(images), slices.Sorted(maps.Keys(images)))
	}
}

// ---- systemd --------------------------------------------------------------

type unitFile map[string]map[string][]string

func readUnit(t *testing.T, name string) unitFile {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("systemd", name))
	if err != nil {
		t.Fatal(err)
	}
	u := unitFile{}
	section := ""
	for i, line := range strings.Split(string(raw), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = strings.Trim(line, "[]")
			u[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("%s:%d: not a key=value in a section: %q", name, i+1, line)
			}
			u[section][k] = append(u[section][k], v)
		}
	}
	return u
}

func (u unitFile) get(section, key string) string {
	return strings.Join(u[section][key], " ")
}

// on is a systemd boolean's true.
func (u unitFile) on(section, key string) bool {
	return slices.Contains([]string{"yes", "true", "on", "1"}, u.get(section, key))
}

func TestSystemd(t *testing.T) {
	daemon := readUnit(t, "syncer.service")
	oneshot := readUnit(t, "syncer-sync.service")
	timer := readUnit(t, "syncer-sync.timer")

	for _, key := range []string{"DynamicUser", "NoNewPrivileges"} {
		if !daemon.on("Service", key) {
			t.Errorf("syncer.service: %s=%q, want yes", key, daemon.get("Service", key))
		}
	}
	for key, want := range map[string]string{
		"ProtectSystem":   "strict",
		"EnvironmentFile": "/etc/syncer.env",
		"Restart":         "on-failure",
	} {
		if got := daemon.get("Service", key); got != want {
			t.Errorf("syncer.service: %s=%q, want %q", key, got, want)
		}
	}
	if exec := strings.Fields(daemon.get("Service", "ExecStart")); len(exec) < 2 || !filepath.IsAbs(exec[0]) || exec[1] != "run" {
		t.Errorf("syncer.service: ExecStart %v, want an absolute path to syncer, run", exec)
	}
	// Restarting after "a setting is wrong" would only fill the journal.
	if !slices.Contains(strings.Fields(daemon.get("Service", "RestartPreventExitStatus")), "2") {
		t.Error("syncer.service: RestartPreventExitStatus lacks 2 (a setting is wrong)")
	}
	if daemon.get("Install", "WantedBy") == "" {
		t.Error("syncer.service: no [Install] WantedBy")
	}

	if got := oneshot.get("Service", "Type"); got != "oneshot" {
		t.Errorf("syncer-sync.service: Type=%q, want oneshot", got)
	}
	if exec := strings.Fields(oneshot.get("Service", "ExecStart")); len(exec) < 2 || exec[1] != "sync" {
		t.Errorf("syncer-sync.service: ExecStart %v, want syncer sync", exec)
	}
	// The one-shot is as confined as the daemon.
	notHardening := map[string]bool{"Type": true, "ExecStart": true, "Restart": true, "RestartSec": true, "RestartPreventExitStatus": true, "TimeoutStartSec": true}
	for key, v := range daemon["Service"] {
		if notHardening[key] {
			continue
		}
		if got := oneshot["Service"][key]; !slices.Equal(got, v) {
			t.Errorf("syncer-sync.service: %s=%v, syncer.service has %v", key, got, v)
		}
	}

	if timer.get("Timer", "OnCalendar") == "" || !timer.on("Timer", "Persistent") {
		t.Errorf("syncer-sync.timer: want OnCalendar and Persistent=yes, got %v", timer["Timer"])
	}
	if u := timer.get("Timer", "Unit"); u != "" && u != "syncer-sync.service" {
		t.Errorf("syncer-sync.timer starts %s, want syncer-sync.service", u)
	}
	if timer.get("Install", "WantedBy") != "timers.target" {
		t.Error("syncer-sync.timer: want WantedBy=timers.target")
	}
	for _, unit := range []unitFile{daemon, oneshot} {
		args := strings.Fields(unit.get("Service", "ExecStart"))
		checkCommand(t, "systemd "+args[1], args[1:], nil)
	}
}

// TestSystemdVerify has systemd-analyze read the units where it is
// installed: it names unknown keys and values it cannot parse.
func TestSystemdVerify(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not installed")
	}
	dir := t.TempDir()
	var files []string
	for _, name := range []string{"syncer.service", "syncer-sync.service", "syncer-sync.timer"} {
		raw, err := os.ReadFile(filepath.Join("systemd", name))
		if err != nil {
			t.Fatal(err)
		}
		// systemd-analyze also checks that ExecStart's program exists.
		raw = bytes.ReplaceAll(raw, []byte("/usr/local/bin/syncer"), []byte(syncerBinary(t)))
		f := filepath.Join(dir, name)
		if err := os.WriteFile(f, raw, 0o644); err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	out, err := exec.Command(analyze, append([]string{"verify"}, files...)...).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}

func TestEnvExamples(t *testing.T) {
	for _, f := range []string{"systemd/syncer.env.example", "compose.env.example"} {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, line := range strings.Split(string(raw), "\n") {
			k, v, ok := strings.Cut(strings.TrimSpace(line), "=")
			if !ok || strings.HasPrefix(k, "#") || v == "" {
				continue
			}
			if (k == "DATABASE_URL" || secretName.MatchString(k)) && !strings.Contains(v, "REPLACE_ME") {
				t.Errorf("%s:%d: %s holds a value; an example holds placeholders (REPLACE_ME) only", f, i+1, k)
			}
		}
	}
}

// ---- Dockerfile -----------------------------------------------------------

type instruction struct {
	op, args string
}

// readDockerfile returns the instructions, continuation lines joined.
func readDockerfile(t *testing.T) []instruction {
	t.Helper()
	raw, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	var out []instruction
	var cur string
	for _, line := range strings.Split(string(raw), "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") || (trimmed == "" && cur == "") {
			continue
		}
		if strings.HasSuffix(trimmed, "\\") {
			cur += strings.TrimSuffix(trimmed, "\\") + " "
			continue
		}
		cur += trimmed
		op, args, _ := strings.Cut(cur, " ")
		out = append(out, instruction{strings.ToUpper(op), strings.TrimSpace(args)})
		cur = ""
	}
	return out
}

func TestDockerfile(t *testing.T) {
	var stages [][]instruction
	for _, in := range readDockerfile(t) {
		if in.op == "FROM" {
			stages = append(stages, nil)
		}
		if len(stages) == 0 {
			t.Fatalf("%s before the first FROM", in.op)
		}
		stages[len(stages)-1] = append(stages[len(stages)-1], in)
	}
	if len(stages) < 2 {
		t.Fatalf("%d stages, want a build stage and a final one", len(stages))
	}
	from := func(stage []instruction) (image, name string) {
		f := strings.Fields(stage[0].args)
		f = slices.DeleteFunc(f, func(s string) bool { return strings.HasPrefix(s, "--platform") })
		if len(f) >= 3 && strings.EqualFold(f[1], "AS") {
			return f[0], f[2]
		}
		return f[0], ""
	}

	// The builder's Go is the one go.mod asks for.
	builder, builderName := from(stages[0])
	gomod, err := os.ReadFile("../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(gomod)
	if m == nil || !strings.HasPrefix(builder, "golang:"+string(m[1])) {
		t.Errorf("builder %s, want golang:%s as go.mod says", builder, m[1])
	}
	var build, env string
	for _, in := range stages[0] {
		if in.op == "RUN" && strings.Contains(in.args, "go build") {
			build = in.args
		}
		if in.op == "ENV" {
			env += " " + in.args
		}
	}
	build += env
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", `-ldflags "-s -w"`, "./cmd/syncer"} {
		if !strings.Contains(build, want) {
			t.Errorf("the build lacks %s: %q", want, build)
		}
	}

	final := stages[len(stages)-1]
	base, _ := from(final)
	if base != "gcr.io/distroless/static-debian12:nonroot" && base != "scratch" {
		t.Errorf("final image %s, want distroless static nonroot or scratch", base)
	}
	got := map[string][]string{}
	for _, in := range final[1:] {
		got[in.op] = append(got[in.op], in.args)
	}
	users := got["USER"]
	if len(users) == 0 {
		t.Fatal("the final stage has no USER: it would run as root")
	}
	user := users[len(users)-1]
	uid, _, _ := strings.Cut(user, ":")
	if uid == "root" || uid == "0" || uid != strconv.Itoa(nonRootUID) {
		t.Errorf("USER %s, want %d (numeric, so that Kubernetes' runAsNonRoot can verify it)", user, nonRootUID)
	}
	copied := false
	for _, c := range got["COPY"] {
		if strings.Contains(c, "--from="+builderName) && strings.HasSuffix(c, " /syncer") {
			copied = true
		}
	}
	if !copied {
		t.Errorf("the final stage does not copy /syncer from the %s stage", builderName)
	}
	for op, want := range map[string]string{"ENTRYPOINT": `["/syncer"]`, "CMD": `["run"]`, "EXPOSE": "9090"} {
		if v := got[op]; len(v) != 1 || v[0] != want {
			t.Errorf("%s %v, want %s", op, v, want)
		}
	}
}

func TestDockerignore(t *testing.T) {
	raw, err := os.ReadFile("../.dockerignore")
	if err != nil {
		t.Fatal(err)
	}
	var patterns []string
	for _, line := range strings.Split(string(raw), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			patterns = append(patterns, line)
		}
	}
	for _, want := range []string{".git", ".syncer", "bin", "test/emulator/node_modules", "**/node_modules", ".env"} {
		if !slices.Contains(patterns, want) {
			t.Errorf(".dockerignore lacks %s", want)
		}
	}
	// What the build needs stays in the context.
	for _, need := range []string{"go.mod", "go.sum", "cmd", "cmd/syncer", "cmd/syncer/main.go", "internal", "migrations", "migrations/embed.go"} {
		for _, p := range patterns {
			if strings.HasPrefix(p, "!") {
				continue
			}
			if ok, _ := filepath.Match(strings.TrimPrefix(p, "**/"), need); ok {
				t.Errorf(".dockerignore pattern %s leaves %s out of the build", p, need)
			}
		}
	}
}
