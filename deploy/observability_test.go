package deploy

import (
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/prometheus/client_golang/prometheus"
	"go.yaml.in/yaml/v3"

	"github.com/dunningco/dunning/metrics"
)

const (
	svcPrometheus = "prometheus"
	svcGrafana    = "grafana"
)

// mountSource is the host path of the bind mount at target in s.
func mountSource(t *testing.T, s types.ServiceConfig, target string) string {
	t.Helper()
	for _, v := range s.Volumes {
		if v.Target == target {
			if v.Type != types.VolumeTypeBind {
				t.Fatalf("%s: %s is a %s mount, want the repository's files bound", s.Name, target, v.Type)
			}
			return v.Source
		}
	}
	t.Fatalf("%s: nothing mounted at %s", s.Name, target)
	return ""
}

func readYAML(t *testing.T, path string, into any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, into); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// listenPort is the port of a listen address such as ":8082", failing
// when the address is loopback (unreachable from another container).
func listenPort(t *testing.T, what, addr string) string {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("%s = %q: %v", what, addr, err)
	}
	if ip := net.ParseIP(host); host == "localhost" || (ip != nil && ip.IsLoopback()) {
		t.Fatalf("%s = %q listens on loopback: Prometheus in another container cannot scrape it", what, addr)
	}
	return port
}

func TestPrometheusScrapesWorkersAndAPI(t *testing.T) {
	p := loadProject(t, nil)
	prom := service(t, p, svcPrometheus)
	if !strings.HasPrefix(prom.Image, "prom/prometheus:v") {
		t.Errorf("prometheus image = %q, want a pinned prom/prometheus:vX.Y.Z", prom.Image)
	}
	for _, dep := range []string{svcWorker, svcStarter} {
		if _, ok := prom.DependsOn[dep]; !ok {
			t.Errorf("prometheus does not depend on %s", dep)
		}
	}
	workerPort := listenPort(t, "worker DUNNING_WORKER_HEALTH_ADDR", mustEnv(t, service(t, p, svcWorker), "DUNNING_WORKER_HEALTH_ADDR"))
	apiPort := listenPort(t, "starter DUNNING_API_ADDR", mustEnv(t, service(t, p, svcStarter), "DUNNING_API_ADDR"))

	var cfg struct {
		ScrapeConfigs []struct {
			JobName     string `yaml:"job_name"`
			MetricsPath string `yaml:"metrics_path"`
			DNSSD       []struct {
				Names []string `yaml:"names"`
				Type  string   `yaml:"type"`
				Port  int      `yaml:"port"`
			} `yaml:"dns_sd_configs"`
			Static []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	readYAML(t, mountSource(t, prom, "/etc/prometheus/prometheus.yml"), &cfg)
	targets := map[string]bool{}
	for _, sc := range cfg.ScrapeConfigs {
		if sc.MetricsPath != "/metrics" {
			t.Errorf("job %s scrapes %q, want /metrics", sc.JobName, sc.MetricsPath)
		}
		for _, d := range sc.DNSSD {
			for _, n := range d.Names {
				targets[n+":"+strconv.Itoa(d.Port)] = true
			}
		}
		for _, s := range sc.Static {
			for _, tg := range s.Targets {
				targets[tg] = true
			}
		}
	}
	// Every worker replica through the service's DNS name, and the API's
	// private listener (never the public one).
	for _, want := range []string{svcWorker + ":" + workerPort, svcStarter + ":" + apiPort} {
		if !targets[want] {
			t.Errorf("Prometheus does not scrape %s; targets %v", want, targets)
		}
	}
	publicPort := listenPort(t, "starter DUNNING_PUBLIC_ADDR", mustEnv(t, service(t, p, svcStarter), "DUNNING_PUBLIC_ADDR"))
	if targets[svcStarter+":"+publicPort] {
		t.Errorf("Prometheus scrapes the public listener %s: /metrics is served on the private one", publicPort)
	}
}

func TestGrafanaProvisionsDatasourceAndDashboard(t *testing.T) {
	p := loadProject(t, nil)
	g := service(t, p, svcGrafana)
	if !strings.HasPrefix(g.Image, "grafana/grafana:") || strings.HasSuffix(g.Image, ":latest") {
		t.Errorf("grafana image = %q, want a pinned grafana/grafana tag", g.Image)
	}
	if d, ok := g.DependsOn[svcPrometheus]; !ok || d.Condition != types.ServiceConditionHealthy {
		t.Errorf("grafana depends on prometheus = %+v, want service_healthy", d)
	}
	for _, port := range g.Ports {
		if port.HostIP != "127.0.0.1" {
			t.Errorf("grafana port %s published on %q, want loopback only", port.Published, port.HostIP)
		}
	}
	provisioning := mountSource(t, g, "/etc/grafana/provisioning")

	var ds struct {
		Datasources []struct {
			UID, Type, URL string
		} `yaml:"datasources"`
	}
	readYAML(t, filepath.Join(provisioning, "datasources", "prometheus.yml"), &ds)
	if len(ds.Datasources) != 1 || ds.Datasources[0].Type != "prometheus" || ds.Datasources[0].URL != "http://"+svcPrometheus+":9090" {
		t.Fatalf("datasources = %+v, want the prometheus service", ds.Datasources)
	}
	uid := ds.Datasources[0].UID

	var providers struct {
		Providers []struct {
			Type    string
			Options struct{ Path string }
		} `yaml:"providers"`
	}
	readYAML(t, filepath.Join(provisioning, "dashboards", "dunning.yml"), &providers)
	if len(providers.Providers) != 1 || providers.Providers[0].Type != "file" {
		t.Fatalf("dashboard providers = %+v", providers.Providers)
	}
	dashboards := mountSource(t, g, providers.Providers[0].Options.Path)

	b, err := os.ReadFile(filepath.Join(dashboards, "dunning.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		UID    string `json:"uid"`
		Panels []struct {
			Type       string `json:"type"`
			Title      string `json:"title"`
			Datasource struct {
				UID string `json:"uid"`
			} `json:"datasource"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("dunning.json: %v", err)
	}
	ours := registeredNames(t)
	used := map[string]bool{}
	namePattern := regexp.MustCompile(`\bdunning_[a-z_]+`)
	for _, panel := range dash.Panels {
		if panel.Type == "row" {
			continue
		}
		if panel.Datasource.UID != uid {
			t.Errorf("panel %q uses datasource %q, want %q", panel.Title, panel.Datasource.UID, uid)
		}
		if len(panel.Targets) == 0 {
			t.Errorf("panel %q has no query", panel.Title)
		}
		for _, target := range panel.Targets {
			for _, name := range namePattern.FindAllString(target.Expr, -1) {
				if !ours[name] {
					t.Errorf("panel %q queries %s, which package metrics does not export", panel.Title, name)
				}
				used[strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(name, "_bucket"), "_count"), "_sum")] = true
			}
		}
	}
	// Every metric of ours is on the dashboard.
	for name := range ours {
		if !strings.HasSuffix(name, "_bucket") && !strings.HasSuffix(name, "_count") && !strings.HasSuffix(name, "_sum") && !used[name] {
			t.Errorf("no panel shows %s", name)
		}
	}
}

// registeredNames lists the dunning_ series names package metrics exports,
// histograms with their _bucket, _count and _sum series.
func registeredNames(t *testing.T) map[string]bool {
	t.Helper()
	m := metrics.New()
	if err := m.WatchPhase(metrics.PhaseNeedsAttention, nil); err != nil {
		t.Fatal(err)
	}
	descs := make(chan *prometheus.Desc, 256)
	go func() {
		m.Registry().Describe(descs)
		close(descs)
	}()
	fqName := regexp.MustCompile(`fqName: "(dunning_[a-z_]+)"`)
	names := map[string]bool{}
	for d := range descs {
		if match := fqName.FindStringSubmatch(d.String()); match != nil {
			names[match[1]] = true
			if match[1] == "dunning_activity_duration_seconds" {
				for _, suffix := range []string{"_bucket", "_count", "_sum"} {
					names[match[1]+suffix] = true
				}
				delete(names, match[1])
				names[match[1]] = false // not a series on its own
			}
		}
	}
	if len(names) < 8 {
		t.Fatalf("package metrics describes only %v", names)
	}
	return names
}

func mustEnv(t *testing.T, s types.ServiceConfig, key string) string {
	t.Helper()
	v, ok := env(s, key)
	if !ok || v == "" {
		t.Fatalf("%s: %s is not set", s.Name, key)
	}
	return v
}
