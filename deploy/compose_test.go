package deploy

import (
	"bufio"
	"context"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	enumspb "go.temporal.io/api/enums/v1"

	"github.com/dunningco/dunning/worker"
	"github.com/dunningco/dunning/workflows"
)

const (
	repoRoot    = ".."
	composeFile = "../docker-compose.yml"
	dockerfile  = "../Dockerfile"
	projectName = "dunning-check"
)

// Services of the production topology.
const (
	svcPostgres = "postgresql"
	svcTemporal = "temporal"
	svcSchema   = "temporal-schema"
	svcSetup    = "temporal-setup"
	svcUI       = "temporal-ui"
	svcWorker   = "worker"
	svcStarter  = "starter"
)

// searchAttributes are the custom search attributes the dunning workflows
// set, with the type each must be registered as: taken from the workflow
// package, so a new attribute the compose file does not create fails here.
var searchAttributes = func() map[string]string {
	out := map[string]string{}
	for name, typ := range workflows.SearchAttributeTypes() {
		switch typ {
		case enumspb.INDEXED_VALUE_TYPE_KEYWORD:
			out[name] = "Keyword"
		case enumspb.INDEXED_VALUE_TYPE_INT:
			out[name] = "Int"
		case enumspb.INDEXED_VALUE_TYPE_DATETIME:
			out[name] = "Datetime"
		default:
			out[name] = typ.String()
		}
	}
	return out
}()

// providerKeys are the third-party credentials the worker reads; empty means
// dry-run.
var providerKeys = []string{
	"STRIPE_API_KEY",
	"SENDGRID_API_KEY",
	"TWILIO_ACCOUNT_SID",
	"TWILIO_AUTH_TOKEN",
}

// loadProject loads docker-compose.yml as `docker compose` would, with env as
// the only environment (the process environment is ignored, so results do not
// depend on the machine running the tests).
func loadProject(t *testing.T, env map[string]string) *types.Project {
	t.Helper()
	var envList []string
	for k, v := range env {
		envList = append(envList, k+"="+v)
	}
	opts, err := cli.NewProjectOptions(
		[]string{composeFile},
		cli.WithName(projectName),
		cli.WithWorkingDirectory(repoRoot),
		cli.WithEnv(envList),
		cli.WithInterpolation(true),
		cli.WithNormalization(true),
		cli.WithConsistency(true),
		cli.WithResolvedPaths(true),
	)
	if err != nil {
		t.Fatalf("compose options: %v", err)
	}
	project, err := cli.ProjectFromOptions(context.Background(), opts)
	if err != nil {
		t.Fatalf("load %s: %v", composeFile, err)
	}
	if project.Name != projectName {
		t.Fatalf("project name = %q, want %q", project.Name, projectName)
	}
	return project
}

func service(t *testing.T, p *types.Project, name string) types.ServiceConfig {
	t.Helper()
	s, ok := p.Services[name]
	if !ok {
		t.Fatalf("service %q not defined; have %v", name, serviceNames(p))
	}
	return s
}

func serviceNames(p *types.Project) []string {
	names := make([]string, 0, len(p.Services))
	for n := range p.Services {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

func env(s types.ServiceConfig, key string) (string, bool) {
	v, ok := s.Environment[key]
	if !ok || v == nil {
		return "", false
	}
	return *v, true
}

func TestServicesExist(t *testing.T) {
	p := loadProject(t, nil)
	for _, name := range []string{svcPostgres, svcSchema, svcTemporal, svcSetup, svcUI, svcWorker, svcStarter} {
		t.Run(name, func(t *testing.T) {
			service(t, p, name)
		})
	}
	for _, name := range serviceNames(p) {
		if strings.Contains(name, "dev") {
			t.Errorf("service %q: the development server is not part of the production topology", name)
		}
	}
}

func TestBuiltFromRepoDockerfile(t *testing.T) {
	p := loadProject(t, nil)
	root, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	want, err := filepath.Abs(dockerfile)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		service string
		command []string
	}{
		{svcWorker, []string{"dunning-worker"}},
		{svcStarter, []string{"dunning", "serve"}},
	} {
		t.Run(tc.service, func(t *testing.T) {
			s := service(t, p, tc.service)
			if s.Build == nil {
				t.Fatal("no build section")
			}
			if filepath.Clean(s.Build.Context) != root {
				t.Errorf("build context = %q, want repository root %q", s.Build.Context, root)
			}
			df := s.Build.Dockerfile
			if df == "" {
				df = "Dockerfile"
			}
			if !filepath.IsAbs(df) {
				df = filepath.Join(s.Build.Context, df)
			}
			if filepath.Clean(df) != want {
				t.Errorf("dockerfile = %q, want %q", df, want)
			}
			if !slices.Equal(s.Command, tc.command) {
				t.Errorf("command = %q, want %q", s.Command, tc.command)
			}
		})
	}
}

func TestPublishedPorts(t *testing.T) {
	p := loadProject(t, nil)
	for _, tc := range []struct {
		service   string
		published string
		target    uint32
	}{
		{svcStarter, "8080", 8080},
		{svcStarter, "8081", 8081},
		{svcUI, "8233", 8080},
		{svcTemporal, "7233", 7233},
	} {
		t.Run(tc.service, func(t *testing.T) {
			s := service(t, p, tc.service)
			for _, port := range s.Ports {
				if port.Published == tc.published {
					if port.Target != tc.target {
						t.Errorf("host port %s -> container %d, want %d", tc.published, port.Target, tc.target)
					}
					return
				}
			}
			t.Errorf("host port %s not published; ports: %+v", tc.published, s.Ports)
		})
	}
}

func TestStarterListensOnPublishedPort(t *testing.T) {
	p := loadProject(t, nil)
	s := service(t, p, svcStarter)
	for name, want := range map[string]string{"DUNNING_API_ADDR": ":8080", "DUNNING_PUBLIC_ADDR": ":8081"} {
		if got, _ := env(s, name); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	// The private API is for billing systems on this host or network, not
	// the internet.
	for _, port := range s.Ports {
		if port.Target == 8080 && port.HostIP != "127.0.0.1" {
			t.Errorf("the private API is published on %q, want 127.0.0.1", port.HostIP)
		}
	}
}

func TestTemporalUsesPostgreSQL(t *testing.T) {
	p := loadProject(t, nil)
	temporal := service(t, p, svcTemporal)
	pg := service(t, p, svcPostgres)
	pgUser, _ := env(pg, "POSTGRES_USER")
	pgPassword, _ := env(pg, "POSTGRES_PASSWORD")

	for _, tc := range []struct{ key, want string }{
		{"DB", "postgres12"},
		{"DB_PORT", "5432"},
		{"POSTGRES_SEEDS", svcPostgres},
		{"POSTGRES_USER", pgUser},
		{"POSTGRES_PWD", pgPassword},
	} {
		t.Run(tc.key, func(t *testing.T) {
			got, ok := env(temporal, tc.key)
			if !ok {
				t.Fatalf("%s not set", tc.key)
			}
			if got != tc.want {
				t.Errorf("%s = %q, want %q", tc.key, got, tc.want)
			}
		})
	}
	if dep, ok := temporal.DependsOn[svcPostgres]; !ok || dep.Condition != types.ServiceConditionHealthy {
		t.Errorf("temporal must wait for postgresql to be healthy; depends_on = %+v", temporal.DependsOn)
	}
}

func TestHealthchecks(t *testing.T) {
	p := loadProject(t, nil)
	for _, tc := range []struct{ service, probe string }{
		{svcPostgres, "pg_isready"},
		{svcTemporal, "7233"}, // the frontend's port
	} {
		t.Run(tc.service, func(t *testing.T) {
			s := service(t, p, tc.service)
			if s.HealthCheck == nil || s.HealthCheck.Disable || len(s.HealthCheck.Test) == 0 {
				t.Fatal("no healthcheck")
			}
			if test := strings.Join(s.HealthCheck.Test, " "); !strings.Contains(test, tc.probe) {
				t.Errorf("healthcheck %q does not run %q", test, tc.probe)
			}
		})
	}
}

func TestDependencies(t *testing.T) {
	p := loadProject(t, nil)
	for _, tc := range []struct {
		service, on, condition string
	}{
		{svcWorker, svcTemporal, types.ServiceConditionHealthy},
		{svcWorker, svcPostgres, types.ServiceConditionHealthy},
		{svcWorker, svcSetup, types.ServiceConditionCompletedSuccessfully},
		{svcStarter, svcTemporal, types.ServiceConditionHealthy},
		{svcStarter, svcPostgres, types.ServiceConditionHealthy},
		{svcSetup, svcTemporal, types.ServiceConditionHealthy},
		{svcUI, svcTemporal, types.ServiceConditionHealthy},
		// The schema exists before the server starts.
		{svcSchema, svcPostgres, types.ServiceConditionHealthy},
		{svcTemporal, svcSchema, types.ServiceConditionCompletedSuccessfully},
		{svcStarter, svcSetup, types.ServiceConditionCompletedSuccessfully},
	} {
		t.Run(tc.service+"->"+tc.on, func(t *testing.T) {
			s := service(t, p, tc.service)
			dep, ok := s.DependsOn[tc.on]
			if !ok {
				t.Fatalf("%s does not depend on %s; depends_on = %+v", tc.service, tc.on, s.DependsOn)
			}
			if dep.Condition != tc.condition {
				t.Errorf("condition = %q, want %q", dep.Condition, tc.condition)
			}
		})
	}
}

func TestTemporalClientsAddressTemporalService(t *testing.T) {
	p := loadProject(t, nil)
	for _, name := range serviceNames(p) {
		s := p.Services[name]
		addr, ok := env(s, "TEMPORAL_ADDRESS")
		if !ok {
			continue
		}
		t.Run(name, func(t *testing.T) {
			if addr != "temporal:7233" {
				t.Errorf("TEMPORAL_ADDRESS = %q, want temporal:7233", addr)
			}
		})
	}
	for _, tc := range []struct{ service, key, want string }{
		{svcWorker, "TEMPORAL_NAMESPACE", "default"},
		{svcWorker, "DUNNING_TASK_QUEUE", "dunning"},
		{svcStarter, "TEMPORAL_NAMESPACE", "default"},
		{svcStarter, "DUNNING_TASK_QUEUE", "dunning"},
		{svcWorker, "TEMPORAL_ADDRESS", "temporal:7233"},
		{svcStarter, "TEMPORAL_ADDRESS", "temporal:7233"},
		{svcUI, "TEMPORAL_ADDRESS", "temporal:7233"},
	} {
		t.Run(tc.service+"/"+tc.key, func(t *testing.T) {
			if got, _ := env(service(t, p, tc.service), tc.key); got != tc.want {
				t.Errorf("%s = %q, want %q", tc.key, got, tc.want)
			}
		})
	}
}

func TestDatabaseURLPointsAtPostgreSQL(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
	}{
		{"defaults", nil},
		{"overridden credentials", map[string]string{"POSTGRES_USER": "ledger", "POSTGRES_PASSWORD": "s3cret"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := loadProject(t, tc.env)
			pg := service(t, p, svcPostgres)
			pgUser, _ := env(pg, "POSTGRES_USER")
			pgPassword, _ := env(pg, "POSTGRES_PASSWORD")
			if db, _ := env(pg, "POSTGRES_DB"); db != "dunning" {
				t.Errorf("postgresql POSTGRES_DB = %q, want dunning (the ledger database)", db)
			}

			var users []string
			for _, name := range serviceNames(p) {
				raw, ok := env(p.Services[name], "DATABASE_URL")
				if !ok {
					continue
				}
				users = append(users, name)
				u, err := url.Parse(raw)
				if err != nil {
					t.Errorf("%s: DATABASE_URL %q: %v", name, raw, err)
					continue
				}
				if u.Scheme != "postgres" && u.Scheme != "postgresql" {
					t.Errorf("%s: DATABASE_URL scheme %q, want postgres", name, u.Scheme)
				}
				if u.Hostname() != svcPostgres {
					t.Errorf("%s: DATABASE_URL host %q, want the %s service", name, u.Hostname(), svcPostgres)
				}
				if port := u.Port(); port != "" && port != "5432" {
					t.Errorf("%s: DATABASE_URL port %q, want 5432", name, port)
				}
				if u.Path != "/dunning" {
					t.Errorf("%s: DATABASE_URL database %q, want /dunning", name, u.Path)
				}
				if got := u.User.Username(); got != pgUser {
					t.Errorf("%s: DATABASE_URL user %q, want %q", name, got, pgUser)
				}
				if got, _ := u.User.Password(); got != pgPassword {
					t.Errorf("%s: DATABASE_URL password does not match postgresql's POSTGRES_PASSWORD", name)
				}
				if deps := p.Services[name].DependsOn; deps[svcPostgres].Condition != types.ServiceConditionHealthy {
					t.Errorf("%s reads DATABASE_URL but does not wait for a healthy %s", name, svcPostgres)
				}
			}
			if !slices.Contains(users, svcWorker) {
				t.Errorf("worker has no DATABASE_URL; services with one: %v", users)
			}
		})
	}
}

// imageTag returns the tag of an image reference ("" if it has none) and
// whether it is pinned by digest.
func imageTag(image string) (tag string, digest bool) {
	if i := strings.Index(image, "@"); i >= 0 {
		return "", true
	}
	last := image[strings.LastIndex(image, "/")+1:]
	if i := strings.LastIndex(last, ":"); i >= 0 {
		return last[i+1:], false
	}
	return "", false
}

func TestImageTag(t *testing.T) {
	for _, tc := range []struct {
		image, tag string
		digest     bool
	}{
		{"postgres:16", "16", false},
		{"postgres", "", false},
		{"temporalio/ui:latest", "latest", false},
		{"localhost:5000/dunning", "", false},
		{"localhost:5000/dunning:1.2", "1.2", false},
		{"postgres@sha256:abc", "", true},
	} {
		tag, digest := imageTag(tc.image)
		if tag != tc.tag || digest != tc.digest {
			t.Errorf("imageTag(%q) = %q, %v; want %q, %v", tc.image, tag, digest, tc.tag, tc.digest)
		}
	}
}

func TestImagesPinned(t *testing.T) {
	p := loadProject(t, nil)
	for _, name := range serviceNames(p) {
		s := p.Services[name]
		t.Run(name, func(t *testing.T) {
			if s.Image == "" {
				if s.Build == nil {
					t.Fatal("neither image nor build")
				}
				return // built locally from this repository
			}
			tag, digest := imageTag(s.Image)
			switch {
			case digest:
			case tag == "":
				t.Errorf("image %q has no tag (implicitly latest)", s.Image)
			case strings.EqualFold(tag, "latest"):
				t.Errorf("image %q uses the latest tag", s.Image)
			}
		})
	}
}

var saFlag = regexp.MustCompile(`--name[= ]+"?(\w+)"?\s+--type[= ]+"?(\w+)"?`)

func TestSearchAttributesCreated(t *testing.T) {
	p := loadProject(t, nil)
	s := service(t, p, svcSetup)
	sh := script(s)
	if !strings.Contains(sh, "temporal operator search-attribute create") {
		t.Fatalf("%s does not run `temporal operator search-attribute create`: %q", svcSetup, sh)
	}
	if !strings.Contains(sh, "--namespace default") {
		t.Errorf("%s does not target the default namespace: %q", svcSetup, sh)
	}
	created := map[string]string{}
	for _, m := range saFlag.FindAllStringSubmatch(sh, -1) {
		created[m[1]] = m[2]
	}
	for name, typ := range searchAttributes {
		t.Run(name, func(t *testing.T) {
			got, ok := created[name]
			if !ok {
				t.Fatalf("not created by %s", svcSetup)
			}
			if got != typ {
				t.Errorf("created as %s, want %s", got, typ)
			}
		})
	}
	for name := range created {
		if _, ok := searchAttributes[name]; !ok {
			t.Errorf("%s creates unknown search attribute %s", svcSetup, name)
		}
	}
	if s.Restart != "no" {
		t.Errorf("%s is one-shot; restart = %q, want \"no\"", svcSetup, s.Restart)
	}
}

// TestTemporalImages: the server runs from the current server image, its
// schema and setup from the admin tools of the same release, and nothing
// uses the auto-setup image, deprecated from server 1.30.
func TestTemporalImages(t *testing.T) {
	p := loadProject(t, nil)
	for _, name := range serviceNames(p) {
		if img := p.Services[name].Image; strings.Contains(img, "auto-setup") {
			t.Errorf("%s uses %s; the auto-setup image is deprecated, use temporalio/server with admin-tools", name, img)
		}
	}
	server := service(t, p, svcTemporal).Image
	repo, version, _ := strings.Cut(server, ":")
	if repo != "temporalio/server" {
		t.Fatalf("temporal image = %q, want temporalio/server", server)
	}
	for _, name := range []string{svcSchema, svcSetup} {
		img := service(t, p, name).Image
		r, v, _ := strings.Cut(img, ":")
		if r != "temporalio/admin-tools" {
			t.Errorf("%s image = %q, want temporalio/admin-tools", name, img)
		}
		// Admin tools carry the schema files of their own release.
		if !strings.HasPrefix(v, version) {
			t.Errorf("%s image %q is not of the server's release %s", name, img, version)
		}
	}
}

// script is a one-shot service's shell script.
func script(s types.ServiceConfig) string {
	return strings.Join(append(slices.Clone(s.Entrypoint), s.Command...), " ")
}

// TestSchemaJob: temporal-schema creates both of Temporal's databases and
// brings each schema up to the image's version, before the server starts.
func TestSchemaJob(t *testing.T) {
	p := loadProject(t, nil)
	s := service(t, p, svcSchema)
	sh := script(s)
	for _, want := range []string{
		"temporal-sql-tool", "--plugin postgres12", "--ep postgresql",
		"temporal temporal_visibility", " create", "setup-schema -v 0.0",
		"/etc/temporal/schema/postgresql/v12/", "update-schema",
	} {
		if !strings.Contains(sh, want) {
			t.Errorf("%s does not run %q: %s", svcSchema, want, sh)
		}
	}
	if s.Restart != "no" {
		t.Errorf("%s is one-shot; restart = %q, want \"no\"", svcSchema, s.Restart)
	}
	pg := service(t, p, svcPostgres)
	pgUser, _ := env(pg, "POSTGRES_USER")
	pgPassword, _ := env(pg, "POSTGRES_PASSWORD")
	if u, _ := env(s, "SQL_USER"); u != pgUser {
		t.Errorf("SQL_USER = %q, want postgresql's user %q", u, pgUser)
	}
	if pw, _ := env(s, "SQL_PASSWORD"); pw != pgPassword {
		t.Errorf("SQL_PASSWORD does not match postgresql's POSTGRES_PASSWORD")
	}
}

// TestNamespaceRegistered: the setup job waits for the cluster's health and
// registers the namespace the clients use.
func TestNamespaceRegistered(t *testing.T) {
	p := loadProject(t, nil)
	sh := script(service(t, p, svcSetup))
	for _, want := range []string{"temporal operator cluster health", "temporal operator namespace create --namespace default"} {
		if !strings.Contains(sh, want) {
			t.Errorf("%s does not run %q: %s", svcSetup, want, sh)
		}
	}
}

// TestStopGracePeriods: Docker SIGKILLs a container 10 s after SIGTERM by
// default; a worker must get its whole stop timeout so in-flight charges
// and sends finish and are recorded, and the API its shutdown grace.
func TestStopGracePeriods(t *testing.T) {
	p := loadProject(t, nil)
	for _, tc := range []struct {
		service string
		min     time.Duration
	}{
		{svcWorker, worker.WorkerStopTimeout},
		{svcStarter, 30 * time.Second},
	} {
		t.Run(tc.service, func(t *testing.T) {
			s := service(t, p, tc.service)
			if s.StopGracePeriod == nil || time.Duration(*s.StopGracePeriod) <= tc.min {
				t.Errorf("stop_grace_period = %v, want more than %s", s.StopGracePeriod, tc.min)
			}
		})
	}
}

// TestWebUIDecodesThroughCodecEndpoint: the UI's codec endpoint is the
// API's /codec, and the API lets the UI's origin call it.
func TestWebUIDecodesThroughCodecEndpoint(t *testing.T) {
	p := loadProject(t, nil)
	ui := service(t, p, svcUI)
	endpoint, _ := env(ui, "TEMPORAL_CODEC_ENDPOINT")
	u, err := url.Parse(endpoint)
	if err != nil || u.Path != "/codec" || u.Port() != "8081" {
		t.Errorf("TEMPORAL_CODEC_ENDPOINT = %q, want the starter's public /codec on :8081", endpoint)
	}
	if v, _ := env(ui, "TEMPORAL_CODEC_INCLUDE_CREDENTIALS"); v != "true" {
		t.Errorf("TEMPORAL_CODEC_INCLUDE_CREDENTIALS = %q, want true (the codec session cookie)", v)
	}
	origins, _ := env(service(t, p, svcStarter), "DUNNING_CODEC_ORIGINS")
	if !slices.Contains(strings.Split(origins, ","), "http://localhost:8233") {
		t.Errorf("DUNNING_CODEC_ORIGINS = %q does not allow the UI's origin http://localhost:8233", origins)
	}
}

func TestProviderKeysPassThrough(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
		want func(key string) string
	}{
		{"unset means dry-run", nil, func(string) string { return "" }},
		{"set in shell", map[string]string{
			"STRIPE_API_KEY":     "sk_test_1",
			"SENDGRID_API_KEY":   "SG.test",
			"TWILIO_ACCOUNT_SID": "AC123",
			"TWILIO_AUTH_TOKEN":  "tok",
		}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := loadProject(t, tc.env)
			w := service(t, p, svcWorker)
			for _, key := range providerKeys {
				want := tc.env[key]
				if tc.want != nil {
					want = tc.want(key)
				}
				got, ok := env(w, key)
				if !ok {
					t.Errorf("%s not passed to the worker", key)
					continue
				}
				if got != want {
					t.Errorf("%s = %q, want %q", key, got, want)
				}
			}
		})
	}
}

func TestWorkerScalesHorizontally(t *testing.T) {
	p := loadProject(t, nil)
	w := service(t, p, svcWorker)
	if w.ContainerName != "" {
		t.Errorf("worker sets container_name %q, which prevents more than one replica", w.ContainerName)
	}
	if w.Deploy == nil || w.Deploy.Replicas == nil || *w.Deploy.Replicas < 2 {
		t.Errorf("worker deploy.replicas should be at least 2")
	}
	for _, port := range w.Ports {
		if port.Published != "" {
			t.Errorf("worker publishes host port %s, which collides across replicas", port.Published)
		}
	}
	if w.Restart != types.RestartPolicyUnlessStopped {
		t.Errorf("worker restart = %q, want %q", w.Restart, types.RestartPolicyUnlessStopped)
	}
}

func TestPostgresDataPersisted(t *testing.T) {
	p := loadProject(t, nil)
	pg := service(t, p, svcPostgres)
	for _, v := range pg.Volumes {
		if v.Type == types.VolumeTypeVolume && v.Target == "/var/lib/postgresql/data" {
			if _, ok := p.Volumes[v.Source]; !ok {
				t.Errorf("volume %q is not declared at top level", v.Source)
			}
			return
		}
	}
	t.Errorf("postgresql data directory is not on a named volume: %+v", pg.Volumes)
}

func TestTemporalDynamicConfigExists(t *testing.T) {
	p := loadProject(t, nil)
	s := service(t, p, svcTemporal)
	path, ok := env(s, "DYNAMIC_CONFIG_FILE_PATH")
	if !ok {
		return // the image's built-in default applies
	}
	// The server resolves the path against /etc/temporal.
	const configDir = "/etc/temporal/config/dynamicconfig"
	inContainer := filepath.Join("/etc/temporal", path)
	for _, v := range s.Volumes {
		if v.Type != types.VolumeTypeBind || v.Target != configDir {
			continue
		}
		host := filepath.Join(v.Source, strings.TrimPrefix(inContainer, configDir))
		if _, err := os.Stat(host); err != nil {
			t.Errorf("DYNAMIC_CONFIG_FILE_PATH=%s: %v", path, err)
		}
		return
	}
	t.Errorf("DYNAMIC_CONFIG_FILE_PATH=%s but %s is not mounted from the repository", path, configDir)
}

// goDirective returns the major.minor of go.mod's `go` line.
func goDirective(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^go\s+(\d+\.\d+)(?:\.\d+)?\s*$`).FindSubmatch(data)
	if m == nil {
		t.Fatal("go.mod has no go directive")
	}
	return string(m[1])
}

type stage struct {
	image, name string
	lines       []string // instructions after FROM, continuations joined
}

// parseDockerfile splits a Dockerfile into build stages.
func parseDockerfile(t *testing.T) []stage {
	t.Helper()
	f, err := os.Open(dockerfile)
	if err != nil {
		t.Fatalf("Dockerfile: %v", err)
	}
	defer f.Close()

	var (
		stages  []stage
		pending string
	)
	from := regexp.MustCompile(`(?i)^FROM\s+(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?`)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.HasSuffix(line, `\`) {
			pending += strings.TrimSuffix(line, `\`) + " "
			continue
		}
		line, pending = pending+line, ""
		if m := from.FindStringSubmatch(line); m != nil {
			stages = append(stages, stage{image: m[1], name: m[2]})
			continue
		}
		if len(stages) == 0 {
			t.Fatalf("Dockerfile instruction before FROM: %q", line)
		}
		stages[len(stages)-1].lines = append(stages[len(stages)-1].lines, line)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(stages) < 2 {
		t.Fatalf("Dockerfile has %d stage(s), want a multi-stage build", len(stages))
	}
	return stages
}

func TestDockerfileBuilderMatchesGoMod(t *testing.T) {
	want := goDirective(t)
	stages := parseDockerfile(t)
	builder := stages[0]
	repo, tag, _ := strings.Cut(builder.image, ":")
	if repo != "golang" && repo != "docker.io/library/golang" {
		t.Fatalf("builder stage image = %q, want golang", builder.image)
	}
	got := regexp.MustCompile(`^\d+\.\d+`).FindString(tag)
	if got != want {
		t.Errorf("builder is golang:%s (Go %q); go.mod says go %s", tag, got, want)
	}
}

func TestDockerfileBuildsStaticBinaries(t *testing.T) {
	stages := parseDockerfile(t)
	build := strings.Join(stages[0].lines, "\n")
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "./cmd/dunning-worker", "./cmd/dunning"} {
		if !strings.Contains(build, want) {
			t.Errorf("builder stage does not contain %q", want)
		}
	}

	final := stages[len(stages)-1]
	if strings.HasPrefix(final.image, "golang") {
		t.Errorf("final stage runs on the Go toolchain image %q", final.image)
	}
	user := ""
	var copied []string
	for _, l := range final.lines {
		fields := strings.Fields(l)
		switch strings.ToUpper(fields[0]) {
		case "USER":
			user = fields[1]
		case "COPY":
			copied = append(copied, fields[1:]...)
		}
	}
	if user == "" || user == "root" || user == "0" || strings.HasPrefix(user, "root:") || strings.HasPrefix(user, "0:") {
		t.Errorf("final stage USER = %q, want a non-root user", user)
	}
	for _, bin := range []string{"dunning-worker", "dunning"} {
		found := slices.ContainsFunc(copied, func(src string) bool {
			return filepath.Base(src) == bin
		})
		if !found {
			t.Errorf("final stage does not copy the %s binary", bin)
		}
	}
}

func TestDockerignore(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(repoRoot, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	var patterns []string
	for _, l := range strings.Split(string(data), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			patterns = append(patterns, strings.Trim(l, "/"))
		}
	}
	for _, want := range []string{".git", "bin", ".dev"} {
		if !slices.Contains(patterns, want) {
			t.Errorf(".dockerignore does not exclude %s", want)
		}
	}
	for _, keep := range []string{"go.mod", "go.sum", "cmd", "*.go", "**/*.go"} {
		if slices.Contains(patterns, keep) {
			t.Errorf(".dockerignore excludes %s, which the build needs", keep)
		}
	}
}
