package e2e

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/consentflow/consentflow/collector/ingest"
	"github.com/consentflow/consentflow/enricher/pipeline"
	"github.com/consentflow/consentflow/internal/config"
	"github.com/consentflow/consentflow/sink/chwriter"
)

// The compose file and the image every Go service runs, checked without a
// Docker engine: `docker-compose config` (Debian's docker-compose 1.29,
// which scripts/deps.sh installs) validates and normalizes the file, and
// the services' own config loader reads what each service would read.
const (
	composeFile = "../deployments/compose.yaml"
	dockerfile  = "../deployments/Dockerfile"
)

// composeService is the part of a service in `docker-compose config`'s
// output the test reads.
type composeService struct {
	Image string `yaml:"image"`
	Build *struct {
		Context    string `yaml:"context"`
		Dockerfile string `yaml:"dockerfile"`
	} `yaml:"build"`
	Command     []string          `yaml:"command"`
	Environment map[string]string `yaml:"environment"`
	Ports       []string          `yaml:"ports"`
	Volumes     []string          `yaml:"volumes"`
	Secrets     []composeSecret   `yaml:"secrets"`
	DependsOn   map[string]struct {
		Condition string `yaml:"condition"`
	} `yaml:"depends_on"`
	Healthcheck *struct {
		Test []string `yaml:"test"`
	} `yaml:"healthcheck"`
}

// composeSecret is a secret a service lists, mounted at
// /run/secrets/<target, else source>.
type composeSecret struct {
	Source string `yaml:"source"`
	Target string `yaml:"target"`
}

// goService is one of the pipeline's services in the compose file.
type goService struct {
	name, binary, prefix string
	// load reads the config at path, as the binary's main does.
	load func(path string) (admin string, err error)
	// check looks at what was loaded: the environment took effect.
	check func(t *testing.T)
}

// secretsDir is where compose mounts a service's secrets.
const secretsDir = "/run/secrets/"

// TestCompose validates deployments/compose.yaml with docker-compose and
// checks it against the repository: the services Prometheus scrapes, the
// Dockerfile's binaries and configs (and no secret in the image), every
// environment variable a real config key that loads, dev mode on and the
// development keys and token as compose secrets, the published and probed
// ports the configs' admin ports, and the Prometheus and Grafana mounts.
func TestCompose(t *testing.T) {
	tool := composeTool(t)
	cmd := exec.Command(tool, "-f", composeFile, "config")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("docker-compose config: %v\n%s", err, stderr.Bytes())
	}
	var file struct {
		Services map[string]composeService `yaml:"services"`
		Secrets  map[string]struct {
			File string `yaml:"file"`
		} `yaml:"secrets"`
	}
	if err := yaml.Unmarshal(out, &file); err != nil {
		t.Fatalf("decode docker-compose config's output: %v\n%s", err, out)
	}
	services := file.Services
	for _, name := range []string{"kafka", "clickhouse", "prometheus", "grafana", "collector", "enricher", "sink", "sink-intl"} {
		if _, ok := services[name]; !ok {
			t.Errorf("compose: no service %q", name)
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	img := parseDockerfile(t)
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}

	var (
		collector ingest.Config
		enricher  pipeline.Config
		sinks     = map[string]*chwriter.Config{}
	)
	loadSink := func(name string) func(string) (string, error) {
		return func(path string) (string, error) {
			cfg := chwriter.Default()
			sinks[name] = &cfg
			return cfg.Admin.Listen, config.Load(path, "SINK", &cfg)
		}
	}
	checkSink := func(name, database string) func(*testing.T) {
		return func(t *testing.T) {
			cfg := sinks[name]
			if !slices.Equal(cfg.Kafka.Brokers, []string{"kafka:9092"}) || !slices.Equal(cfg.ClickHouse.Addr, []string{"clickhouse:9000"}) {
				t.Errorf("brokers %v, clickhouse %v: want kafka:9092 and clickhouse:9000 from the environment", cfg.Kafka.Brokers, cfg.ClickHouse.Addr)
			}
			if cfg.Database != database {
				t.Errorf("database %q, want %q", cfg.Database, database)
			}
		}
	}
	goServices := []goService{
		{
			name: "collector", binary: "collector", prefix: "COLLECTOR",
			load: func(path string) (string, error) {
				collector = ingest.Default()
				err := config.Load(path, "COLLECTOR", &collector)
				return collector.Admin.Listen, err
			},
			check: func(t *testing.T) {
				if !slices.Equal(collector.Kafka.Brokers, []string{"kafka:9092"}) {
					t.Errorf("brokers %v, want kafka:9092 from the environment", collector.Kafka.Brokers)
				}
				// The privacy admin API is on: the dev operator, whose token
				// and the pseudonym key Validate read from the image's files.
				if len(collector.Privacy.Operators) == 0 || collector.Privacy.Operators[0].Name != "dev" {
					t.Errorf("privacy operators %v: want the dev operator (the privacy admin API on)", collector.Privacy.Operators)
				}
				if collector.Privacy.Pseudonym.Key == "" {
					t.Error("privacy.pseudonym: no key (COLLECTOR_PRIVACY_PSEUDONYM_KEY_FILE)")
				}
				if !slices.Equal(collector.Privacy.Export.ClickHouse.Addr, []string{"clickhouse:9000"}) {
					t.Errorf("privacy.export.clickhouse.addr %v, want clickhouse:9000", collector.Privacy.Export.ClickHouse.Addr)
				}
				checkPublished(t, services["collector"], collector.HTTP.Listen)
				// The privacy API on its own port, published like the rest
				// on the host's loopback only.
				checkPublished(t, services["collector"], collector.Privacy.Listen)
				if _, adminPort, _ := net.SplitHostPort(collector.Admin.Listen); strings.HasSuffix(collector.Privacy.Listen, ":"+adminPort) {
					t.Errorf("privacy.listen %q shares the admin port", collector.Privacy.Listen)
				}
			},
		},
		{
			name: "enricher", binary: "enricher", prefix: "ENRICHER",
			load: func(path string) (string, error) {
				enricher = pipeline.Default()
				err := config.Load(path, "ENRICHER", &enricher)
				return enricher.Admin.Listen, err
			},
			check: func(t *testing.T) {
				if !slices.Equal(enricher.Kafka.Brokers, []string{"kafka:9092"}) {
					t.Errorf("brokers %v, want kafka:9092 from the environment", enricher.Kafka.Brokers)
				}
				if enricher.Pseudonym.Key == "" || enricher.Export.Pseudonym.Key == "" {
					t.Error("the enricher needs both pseudonym keys (ENRICHER_PSEUDONYM_KEY_FILE, ENRICHER_EXPORT_PSEUDONYM_KEY_FILE)")
				}
			},
		},
		{name: "sink", binary: "sink", prefix: "SINK", load: loadSink("sink"), check: checkSink("sink", "analytics_cn")},
		{name: "sink-intl", binary: "sink", prefix: "SINK", load: loadSink("sink-intl"), check: checkSink("sink-intl", "analytics_intl")},
	}
	keyTypes := map[string]reflect.Type{
		"COLLECTOR": reflect.TypeFor[ingest.Config](),
		"ENRICHER":  reflect.TypeFor[pipeline.Config](),
		"SINK":      reflect.TypeFor[chwriter.Config](),
	}

	adminPorts := map[string]string{} // service -> admin port, from its config
	for _, gs := range goServices {
		t.Run(gs.name, func(t *testing.T) {
			svc := services[gs.name]
			if svc.Build == nil || filepath.Clean(svc.Build.Context) != root || svc.Build.Dockerfile != "deployments/Dockerfile" {
				t.Errorf("build %+v: want the repository root and deployments/Dockerfile", svc.Build)
			}
			if len(svc.Command) != 3 || svc.Command[0] != gs.binary || svc.Command[1] != "--config" {
				t.Fatalf("command %q: want [%s --config <file>]", svc.Command, gs.binary)
			}
			if !slices.Contains(img.binaries, gs.binary) {
				t.Errorf("the Dockerfile does not build and copy %s into the image (it has %v)", gs.binary, img.binaries)
			}
			// A file the service reads: a compose secret, a file mounted
			// from the repository, or one of the image's.
			hostPath := func(p string) string {
				if name, ok := strings.CutPrefix(p, secretsDir); ok {
					if !slices.ContainsFunc(svc.Secrets, func(s composeSecret) bool {
						return s.Source == name && (s.Target == "" || s.Target == name)
					}) {
						t.Fatalf("%s: the service does not list the secret %s", p, name)
					}
					sec, ok := file.Secrets[name]
					if !ok || sec.File == "" {
						t.Fatalf("%s: no top-level secret %s with a file", p, name)
					}
					return sec.File
				}
				if src, ok := mountedFile(svc, p); ok {
					return src
				}
				return img.hostPath(t, p)
			}
			path := withHostSecrets(t, hostPath(svc.Command[2]), hostPath)

			// Every variable is a key the loader binds (any other is
			// silently ignored), and its value is what the service gets.
			keys := envKeys(keyTypes[gs.prefix], gs.prefix+"_")
			clearEnv(t, gs.prefix+"_")
			for k, v := range svc.Environment {
				if !keys[k] {
					t.Errorf("environment %s: not a config key of %s (keys are %s_<SECTION>_<KEY>)", k, gs.binary, gs.prefix)
				}
				if strings.HasSuffix(k, "_FILE") && !strings.HasPrefix(v, secretsDir) {
					t.Errorf("environment %s=%s: secret files come as compose secrets (%s<name>), never from the image", k, v, secretsDir)
				}
				if strings.HasPrefix(v, "/") {
					v = hostPath(v)
				}
				t.Setenv(k, v)
			}
			// A development stack, which says so: the services accept the
			// repository's secrets only in dev mode.
			if svc.Environment[gs.prefix+"_DEV_MODE"] != "true" {
				t.Errorf("environment: want %s_DEV_MODE=true (this stack runs on the repository's development secrets)", gs.prefix)
			}
			admin, err := gs.load(path)
			if err != nil {
				t.Fatalf("%s with its compose environment: %v", svc.Command[2], err)
			}
			gs.check(t)

			_, port, err := net.SplitHostPort(admin)
			if err != nil {
				t.Fatalf("admin.listen %q: %v", admin, err)
			}
			adminPorts[gs.name] = port
			checkPublished(t, svc, admin)
			readyz := fmt.Sprintf("http://127.0.0.1:%s/readyz", port)
			if svc.Healthcheck == nil || !slices.Contains(svc.Healthcheck.Test, readyz) {
				t.Errorf("healthcheck %+v: want a probe of %s", svc.Healthcheck, readyz)
			} else if slices.Contains(svc.Healthcheck.Test, "curl") && !img.hasCurl {
				t.Error("the healthcheck runs curl, which the image's runtime stage does not install")
			}
			for _, dep := range dependencies(gs.name) {
				if svc.DependsOn[dep].Condition != "service_healthy" {
					t.Errorf("depends_on %s: %+v, want condition service_healthy", dep, svc.DependsOn[dep])
				}
			}
		})
	}

	// A config mounted from deployments/ is a copy of the shipped one but
	// for the lists no environment variable can set.
	t.Run("compose-collector.yaml", func(t *testing.T) {
		src, ok := mountedFile(services["collector"], services["collector"].Command[2])
		if !ok {
			t.Skip("the collector reads a config of the image")
		}
		got, want := yamlMap(t, src), yamlMap(t, filepath.Join("..", "configs", "collector.yaml"))
		for _, m := range []map[string]any{got, want} {
			if privacy, ok := m["privacy"].(map[string]any); ok {
				delete(privacy, "operators")
			}
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s differs from configs/collector.yaml outside privacy.operators: change the two together", src)
		}
	})

	t.Run("prometheus", func(t *testing.T) {
		if len(adminPorts) != len(goServices) {
			t.Skip("not every service's config loaded (see above)")
		}
		dir := mountSource(t, services["prometheus"], "/etc/prometheus")
		for _, f := range []string{"prometheus.yml", "alerts.yml"} {
			if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
				t.Errorf("the folder mounted at /etc/prometheus lacks %s: %v", f, err)
			}
		}
		// Each scrape target is a compose service at its admin port.
		b, err := os.ReadFile(filepath.Join(dir, "prometheus.yml"))
		if err != nil {
			t.Fatal(err)
		}
		var prom struct {
			ScrapeConfigs []struct {
				StaticConfigs []struct {
					Targets []string `yaml:"targets"`
				} `yaml:"static_configs"`
			} `yaml:"scrape_configs"`
		}
		if err := yaml.Unmarshal(b, &prom); err != nil {
			t.Fatal(err)
		}
		var targets []string
		for _, sc := range prom.ScrapeConfigs {
			for _, st := range sc.StaticConfigs {
				targets = append(targets, st.Targets...)
			}
		}
		var want []string
		for _, gs := range goServices {
			want = append(want, gs.name+":"+adminPorts[gs.name])
		}
		slices.Sort(targets)
		slices.Sort(want)
		if !slices.Equal(targets, want) {
			t.Errorf("prometheus.yml targets %v, want the services' admin ports %v", targets, want)
		}
	})

	t.Run("grafana", func(t *testing.T) {
		svc := services["grafana"]
		for target, source := range map[string]string{
			"/etc/grafana/provisioning":   "deployments/grafana/provisioning",
			"/var/lib/grafana/dashboards": "deployments/grafana/dashboards",
		} {
			dir := mountSource(t, svc, target)
			if want := filepath.Join(root, source); dir != want {
				t.Errorf("%s mounts %s, want %s", target, dir, want)
			}
			if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
				t.Errorf("%s: the folder mounted at %s is missing (%v)", source, target, err)
			}
		}
	})

	t.Run("kafka", func(t *testing.T) {
		env := services["kafka"].Environment
		for k, want := range map[string]string{
			"KAFKA_PROCESS_ROLES":                            "broker,controller",
			"KAFKA_ADVERTISED_LISTENERS":                     "PLAINTEXT://kafka:9092",
			"KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR":         "1",
			"KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "1",
			"KAFKA_TRANSACTION_STATE_LOG_MIN_ISR":            "1",
			"KAFKA_AUTO_CREATE_TOPICS_ENABLE":                "false",
		} {
			if env[k] != want {
				t.Errorf("kafka: %s=%q, want %q", k, env[k], want)
			}
		}
		for _, name := range []string{"kafka", "clickhouse"} {
			if services[name].Healthcheck == nil || len(services[name].Healthcheck.Test) == 0 {
				t.Errorf("%s has no healthcheck, which the services wait on", name)
			}
		}
	})

	t.Run("dockerfile", func(t *testing.T) {
		goVersion := goDirective(t)
		if img.goTag != goVersion && !strings.HasPrefix(goVersion, img.goTag+".") {
			t.Errorf("builder golang:%s, want go.mod's go %s (or its minor version)", img.goTag, goVersion)
		}
		if !img.cgoOff {
			t.Error("the build does not set CGO_ENABLED=0")
		}
		if img.user == "" || img.user == "root" || img.user == "0" || strings.HasPrefix(img.user, "0:") {
			t.Errorf("runtime USER %q: want a non-root user", img.user)
		}
		// No secret in the image: every file it copies from the
		// repository is a YAML config, none of them a shipped secret.
		files := img.contextFiles(t)
		if len(files) == 0 {
			t.Fatal("the runtime stage copies no config from the repository")
		}
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if _, shipped := config.IsShipped(string(b)); shipped || !strings.HasSuffix(f, ".yaml") {
				t.Errorf("the image gets %s, which is not a YAML config: secrets come from compose secrets or a secret store", f)
			}
		}
	})
}

// withHostSecrets returns the config at path, or when it names files under
// /run/secrets (an operator's token_file) outside comments, a copy naming
// the host files hostPath maps them to.
func withHostSecrets(t *testing.T, path string, hostPath func(string) string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(regexp.QuoteMeta(secretsDir) + `[\w.-]+`)
	lines := strings.Split(string(b), "\n")
	changed := false
	for i, line := range lines {
		if strings.HasPrefix(strings.TrimSpace(line), "#") || !re.MatchString(line) {
			continue
		}
		lines[i] = re.ReplaceAllStringFunc(line, hostPath)
		changed = true
	}
	if !changed {
		return path
	}
	out := filepath.Join(t.TempDir(), filepath.Base(path))
	if err := os.WriteFile(out, []byte(strings.Join(lines, "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	return out
}

// mountedFile returns the host file or folder svc bind-mounts at target,
// if any.
func mountedFile(svc composeService, target string) (string, bool) {
	for _, v := range svc.Volumes {
		parts := strings.Split(v, ":")
		if len(parts) >= 2 && parts[1] == target {
			return parts[0], true
		}
	}
	return "", false
}

// yamlMap reads a YAML file into a map.
func yamlMap(t *testing.T, path string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := yaml.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return m
}

// composeTool returns the path of docker-compose, skipping without it
// unless CI=true.
func composeTool(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("docker-compose")
	if err != nil {
		msg := "docker-compose is not installed (scripts/deps.sh up installs Debian's docker-compose package)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return path
}

// dependencies lists what a service needs healthy before it starts.
func dependencies(service string) []string {
	if service == "enricher" {
		return []string{"kafka"}
	}
	return []string{"kafka", "clickhouse"}
}

// checkPublished fails unless svc publishes listen's port on the same
// host port (the port Prometheus scrapes and README names), on the host's
// 127.0.0.1 only.
func checkPublished(t *testing.T, svc composeService, listen string) {
	t.Helper()
	_, port, err := net.SplitHostPort(listen)
	if err != nil {
		t.Fatalf("listen %q: %v", listen, err)
	}
	for _, p := range svc.Ports {
		parts := strings.Split(strings.TrimSuffix(p, "/tcp"), ":")
		if len(parts) >= 2 && parts[len(parts)-1] == port && parts[len(parts)-2] == port {
			if len(parts) != 3 || parts[0] != "127.0.0.1" {
				t.Errorf("port %s is published as %q: want 127.0.0.1:%s:%s, on the host's loopback only", port, p, port, port)
			}
			return
		}
	}
	t.Errorf("ports %v: want %s published as %s", svc.Ports, port, port)
}

// mountSource returns the host folder svc mounts at target.
func mountSource(t *testing.T, svc composeService, target string) string {
	t.Helper()
	src, ok := mountedFile(svc, target)
	if !ok {
		t.Fatalf("volumes %v: nothing mounted at %s", svc.Volumes, target)
	}
	return filepath.Clean(src)
}

// envKeys lists the environment variables config.Load binds for a config
// struct: prefix plus each leaf's dotted mapstructure key, upper-cased,
// with _ for . (internal/config's leafKeys).
func envKeys(t reflect.Type, prefix string) map[string]bool {
	keys := map[string]bool{}
	var walk func(t reflect.Type, prefix string)
	walk = func(t reflect.Type, prefix string) {
		for i := range t.NumField() {
			f := t.Field(i)
			name := f.Tag.Get("mapstructure")
			if name == "" || name == "-" {
				continue
			}
			key := prefix + strings.ToUpper(name)
			if f.Type.Kind() == reflect.Struct && f.Type.PkgPath() != "time" {
				walk(f.Type, key+"_")
				continue
			}
			keys[key] = true
		}
	}
	walk(t, prefix)
	return keys
}

// clearEnv unsets, for the test, every variable with prefix, so only the
// compose file's reach the loader.
func clearEnv(t *testing.T, prefix string) {
	t.Helper()
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, prefix) {
			t.Setenv(k, "") // restored after the test
			os.Unsetenv(k)
		}
	}
}

// goDirective returns go.mod's go version.
func goDirective(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^go (\S+)$`).FindSubmatch(b)
	if m == nil {
		t.Fatal("go.mod has no go directive")
	}
	return string(m[1])
}

// image is what the test reads from deployments/Dockerfile.
type image struct {
	goTag    string   // the builder's golang tag, variant suffix removed
	cgoOff   bool     // CGO_ENABLED=0 for the build
	binaries []string // built (go build ./<name>) and copied into the runtime stage
	user     string   // the runtime stage's USER
	hasCurl  bool     // the runtime stage installs curl
	// configDir is where `COPY configs/... <dir>` puts the shipped configs
	// in the runtime stage.
	configDir string
	// context are the sources (paths or globs, relative to the
	// repository root) the runtime stage copies from the build context.
	context []string
}

// parseDockerfile reads the instructions of deployments/Dockerfile (as
// text: no engine here), continuation lines joined.
func parseDockerfile(t *testing.T) *image {
	t.Helper()
	b, err := os.ReadFile(dockerfile)
	if err != nil {
		t.Fatal(err)
	}
	var instrs []string
	var cur strings.Builder
	for _, line := range strings.Split(string(b), "\n") {
		trimmed := strings.TrimSpace(line)
		if cur.Len() == 0 && (trimmed == "" || strings.HasPrefix(trimmed, "#")) {
			continue
		}
		if strings.HasSuffix(trimmed, `\`) {
			cur.WriteString(strings.TrimSuffix(trimmed, `\`) + " ")
			continue
		}
		cur.WriteString(trimmed)
		instrs = append(instrs, cur.String())
		cur.Reset()
	}
	img := &image{}
	var built []string
	stages := 0
	var runtime []string // the last stage's instructions
	for _, in := range instrs {
		op, args, _ := strings.Cut(in, " ")
		switch strings.ToUpper(op) {
		case "FROM":
			stages++
			runtime = nil
			if m := regexp.MustCompile(`^golang:([0-9.]+)`).FindStringSubmatch(args); m != nil {
				img.goTag = m[1]
			}
		case "ENV":
			if strings.Contains(args, "CGO_ENABLED=0") {
				img.cgoOff = true
			}
		case "RUN":
			if strings.Contains(args, "go build") {
				if strings.Contains(args, "CGO_ENABLED=0") {
					img.cgoOff = true
				}
				for _, m := range regexp.MustCompile(`\./(\w+)`).FindAllStringSubmatch(args[strings.Index(args, "go build"):], -1) {
					built = append(built, m[1])
				}
			}
		}
		runtime = append(runtime, in)
	}
	if stages < 2 {
		t.Errorf("Dockerfile: %d stage(s), want a builder and a runtime stage", stages)
	}
	if img.goTag == "" {
		t.Error("Dockerfile: no golang builder stage")
	}
	for _, in := range runtime {
		op, args, _ := strings.Cut(in, " ")
		fields := strings.Fields(args)
		switch strings.ToUpper(op) {
		case "USER":
			img.user = args
		case "RUN":
			if strings.Contains(args, "apt-get install") && slices.Contains(fields, "curl") {
				img.hasCurl = true
			}
		case "COPY":
			if len(fields) < 2 {
				continue
			}
			dst := fields[len(fields)-1]
			if strings.HasPrefix(fields[0], "--from=") {
				for _, src := range fields[1 : len(fields)-1] {
					name := filepath.Base(src)
					if slices.Contains(built, name) && dst == "/usr/local/bin/" {
						img.binaries = append(img.binaries, name)
					}
				}
				continue
			}
			img.context = append(img.context, fields[:len(fields)-1]...)
			if strings.HasPrefix(fields[0], "configs/") {
				img.configDir = dst
			}
		}
	}
	if img.configDir == "" {
		t.Fatal("Dockerfile: the runtime stage does not COPY configs/ into the image")
	}
	return img
}

// contextFiles lists the repository files the runtime stage copies from
// the build context (its COPY sources, folders walked, globs expanded).
func (img *image) contextFiles(t *testing.T) []string {
	t.Helper()
	var files []string
	for _, src := range img.context {
		matches, err := filepath.Glob(filepath.Join("..", src))
		if err != nil {
			t.Fatalf("Dockerfile: COPY %s: %v", src, err)
		}
		for _, m := range matches {
			err := filepath.WalkDir(m, func(path string, d os.DirEntry, err error) error {
				if err == nil && !d.IsDir() {
					files = append(files, path)
				}
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	return files
}

// hostPath maps a path in the image to the repository file the runtime
// stage copies there.
func (img *image) hostPath(t *testing.T, p string) string {
	t.Helper()
	rel, ok := strings.CutPrefix(p, img.configDir)
	if !ok {
		t.Fatalf("%s is not under %s, where the image has the configs", p, img.configDir)
	}
	host := filepath.Join("..", "configs", rel)
	if !slices.Contains(img.contextFiles(t), host) {
		t.Fatalf("%s: no such file in the image (the Dockerfile copies %v)", p, img.context)
	}
	abs, err := filepath.Abs(host)
	if err != nil {
		t.Fatal(err)
	}
	return abs
}
