// Package monitoring holds the Prometheus alert rules and the Grafana
// dashboard for the ntpkit daemon; its tests check them against promtool
// and against the metric names the daemon's code exports.
package monitoring

import (
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/ntpkit/ntpkit/internal/interop"
	"github.com/ntpkit/ntpkit/upstream"
)

const repoRoot = "../../.."

// external are the metrics the rules and the dashboard use that other
// exporters provide.
var external = map[string]bool{
	"up":                            true, // Prometheus, per scrape target
	"node_netstat_Udp_RcvbufErrors": true, // node_exporter
}

func TestAlertRulesPromtool(t *testing.T) {
	promtool := interop.RequireTool(t, "promtool")
	for _, args := range [][]string{
		{"check", "rules", "ntpkit.rules.yml"},
		{"test", "rules", "ntpkit.rules.test.yml"},
	} {
		out, err := exec.Command(promtool, args...).CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// exported returns the string literals of the module's non-test Go code:
// metric names (those starting with ntpkit_) and label values. Reading the
// code, not a copy of it, keeps the check valid wherever the metrics code
// lives.
func exported(t *testing.T) (metrics, literals map[string]bool) {
	t.Helper()
	metrics, literals = map[string]bool{}, map[string]bool{}
	fset := token.NewFileSet()
	err := filepath.WalkDir(repoRoot, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) && path != repoRoot {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		ast.Inspect(f, func(n ast.Node) bool {
			if lit, ok := n.(*ast.BasicLit); ok && lit.Kind == token.STRING {
				if s, err := strconv.Unquote(lit.Value); err == nil {
					literals[s] = true
					if metricName.MatchString(s) {
						metrics[s] = true
					}
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for s := upstream.SourceState(0); s.String() != "unknown"; s++ {
		literals[s.String()] = true
	}
	if len(metrics) < 20 {
		t.Fatalf("found only %d ntpkit_ metric names in the code: %v", len(metrics), metrics)
	}
	return metrics, literals
}

var (
	metricName = regexp.MustCompile(`^ntpkit_[a-z0-9_]+$`)
	// identifier finds PromQL identifiers: metric names, functions,
	// keywords and label names.
	identifier = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*`)
	matcher    = regexp.MustCompile(`([a-z_]+)\s*(=~|!~|!=|=)\s*"([^"]*)"`)
	// promqlWords are the identifiers in our expressions that are not
	// metrics.
	promqlWords = map[string]bool{
		"rate": true, "sum": true, "by": true, "without": true, "abs": true, "max": true, "min": true,
		"label_values": true, "instance": true, "job": true, "source": true, "state": true, "reason": true,
		"code": true, "result": true, "version": true, "kind": true, "action": true,
	}
	durationLit = regexp.MustCompile(`\[[0-9]+[smhd]\]`)
)

// checkExpr reports the metrics and label values in a PromQL expression
// that the daemon does not export, and returns the metrics it uses.
func checkExpr(t *testing.T, where, expr string, metrics, literals map[string]bool) []string {
	t.Helper()
	var used []string
	for _, m := range matcher.FindAllStringSubmatch(expr, -1) {
		if m[1] == "instance" || m[1] == "job" || strings.HasPrefix(m[3], "$") {
			continue
		}
		if !literals[m[3]] {
			t.Errorf("%s: label value %s=%q appears nowhere in the daemon's code: %s", where, m[1], m[3], expr)
		}
	}
	bare := durationLit.ReplaceAllString(matcher.ReplaceAllString(expr, ""), "")
	for _, id := range identifier.FindAllString(bare, -1) {
		switch {
		case promqlWords[id] || external[id]:
		case metrics[id]:
			used = append(used, id)
		default:
			t.Errorf("%s: %q is not a metric the daemon exports: %s", where, id, expr)
		}
	}
	return used
}

// ruleExprs returns the expr: lines of the rules file (single-line
// expressions, as ntpkit.rules.yml writes them) by alert name.
func ruleExprs(t *testing.T) map[string]string {
	t.Helper()
	data, err := os.ReadFile("ntpkit.rules.yml")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	alert := ""
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if a, ok := strings.CutPrefix(line, "- alert: "); ok {
			alert = a
		}
		if e, ok := strings.CutPrefix(line, "expr: "); ok {
			if alert == "" || out[alert] != "" {
				t.Fatalf("expr %q without its own alert", e)
			}
			out[alert] = e
		}
	}
	return out
}

type dashboard struct {
	Title      string `json:"title"`
	UID        string `json:"uid"`
	Templating struct {
		List []struct {
			Name  string          `json:"name"`
			Query json.RawMessage `json:"query"`
		} `json:"list"`
	} `json:"templating"`
	Panels []struct {
		ID      int    `json:"id"`
		Type    string `json:"type"`
		Title   string `json:"title"`
		GridPos struct {
			X, Y, W, H int
		} `json:"gridPos"`
		Targets []struct {
			RefID string `json:"refId"`
			Expr  string `json:"expr"`
		} `json:"targets"`
	} `json:"panels"`
}

func TestRulesAndDashboardUseExportedMetrics(t *testing.T) {
	metrics, literals := exported(t)
	used := map[string]bool{}

	rules := ruleExprs(t)
	if len(rules) < 8 {
		t.Fatalf("%d alert expressions in ntpkit.rules.yml", len(rules))
	}
	for alert, expr := range rules {
		for _, m := range checkExpr(t, "rule "+alert, expr, metrics, literals) {
			used[m] = true
		}
	}

	data, err := os.ReadFile("ntpkit.grafana.json")
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatalf("dashboard: %v", err)
	}
	if d.Title == "" || d.UID == "" || len(d.Panels) < 10 {
		t.Fatalf("dashboard: title %q uid %q, %d panels", d.Title, d.UID, len(d.Panels))
	}
	ids := map[int]bool{}
	for _, p := range d.Panels {
		if ids[p.ID] {
			t.Errorf("panel %q: id %d used twice", p.Title, p.ID)
		}
		ids[p.ID] = true
		if p.GridPos.W <= 0 || p.GridPos.H <= 0 || p.GridPos.X+p.GridPos.W > 24 {
			t.Errorf("panel %q: bad gridPos %+v", p.Title, p.GridPos)
		}
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, q := range p.Targets {
			if q.RefID == "" || q.Expr == "" {
				t.Errorf("panel %q: target %+v lacks refId or expr", p.Title, q)
			}
			for _, m := range checkExpr(t, "panel "+p.Title, q.Expr, metrics, literals) {
				used[m] = true
			}
		}
	}
	for _, v := range d.Templating.List {
		var q struct{ Query string }
		if json.Unmarshal(v.Query, &q) == nil && q.Query != "" {
			checkExpr(t, "variable "+v.Name, q.Query, metrics, literals)
		}
	}

	// Everything the README tells operators to watch is in the rules or
	// on the dashboard.
	readme, err := os.ReadFile(filepath.Join(repoRoot, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(readme), "**What to monitor.**")
	if !ok {
		t.Fatal(`README has no "What to monitor" paragraph`)
	}
	section, _, _ = strings.Cut(section, "\n\n")
	for _, m := range regexp.MustCompile(`ntpkit_[a-z0-9_]+`).FindAllString(section, -1) {
		if !metrics[m] {
			t.Errorf("README's What to monitor names %s, which the daemon does not export", m)
		}
		if !used[m] {
			t.Errorf("README's What to monitor names %s; neither the rules nor the dashboard use it", m)
		}
	}
}
