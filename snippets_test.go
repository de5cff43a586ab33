package ntpkit

import (
	"fmt"
	"go/doc/comment"
	"go/parser"
	"go/scanner"
	"go/token"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// snippetImports maps the package names the documentation's snippets use
// to their import paths. Snippets leave imports out, as documentation
// usually does; the test adds those of the names each snippet uses.
var snippetImports = map[string]string{
	"context":      "context",
	"errors":       "errors",
	"fmt":          "fmt",
	"http":         "net/http",
	"log":          "log",
	"net":          "net",
	"netip":        "net/netip",
	"os":           "os",
	"signal":       "os/signal",
	"slog":         "log/slog",
	"syscall":      "syscall",
	"time":         "time",
	"tls":          "crypto/tls",
	"auth":         "github.com/ntpkit/ntpkit/server/auth",
	"clock":        "github.com/ntpkit/ntpkit/clock",
	"clocktest":    "github.com/ntpkit/ntpkit/clock/clocktest",
	"daemon":       "github.com/ntpkit/ntpkit/server/daemon",
	"daemonconfig": "github.com/ntpkit/ntpkit/server/daemon/daemonconfig",
	"metrics":      "github.com/ntpkit/ntpkit/server/metrics",
	"ntpwire":      "github.com/ntpkit/ntpkit/ntpwire",
	"nts":          "github.com/ntpkit/ntpkit/server/nts",
	"ops":          "github.com/ntpkit/ntpkit/server/ops",
	"policy":       "github.com/ntpkit/ntpkit/policy",
	"ratelimit":    "github.com/ntpkit/ntpkit/ratelimit",
	"server":       "github.com/ntpkit/ntpkit/server",
	"servertest":   "github.com/ntpkit/ntpkit/server/servertest",
	"symkey":       "github.com/ntpkit/ntpkit/server/symkey",
	"upstream":     "github.com/ntpkit/ntpkit/upstream",
}

// snippet is one block of Go code from the documentation.
type snippet struct {
	where string // file:line
	code  string
}

var goFence = regexp.MustCompile("(?ms)^```go\n(.*?)^```")

// markdownSnippets returns the ```go blocks of a Markdown file.
func markdownSnippets(t *testing.T, file string) []snippet {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var out []snippet
	for _, m := range goFence.FindAllSubmatchIndex(b, -1) {
		line := 1 + strings.Count(string(b[:m[0]]), "\n")
		out = append(out, snippet{fmt.Sprintf("%s:%d", file, line), string(b[m[2]:m[3]])})
	}
	return out
}

// docSnippets returns the code blocks of a Go file's package comment.
func docSnippets(t *testing.T, file string) []snippet {
	t.Helper()
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, file, nil, parser.ParseComments|parser.PackageClauseOnly)
	if err != nil {
		t.Fatal(err)
	}
	if f.Doc == nil {
		t.Fatalf("%s has no package comment", file)
	}
	var out []snippet
	var p comment.Parser
	for _, blk := range p.Parse(f.Doc.Text()).Content {
		if c, ok := blk.(*comment.Code); ok {
			out = append(out, snippet{fmt.Sprintf("%s (package comment, code block %d)", file, len(out)+1), c.Text})
		}
	}
	return out
}

// program turns a snippet into a main package: a whole file stays as it
// is; statements become main's body, with the imports of the package
// names they use.
func program(s snippet) string {
	if strings.HasPrefix(strings.TrimSpace(s.code), "package ") {
		return s.code
	}
	var sc scanner.Scanner
	fset := token.NewFileSet()
	src := []byte(s.code)
	sc.Init(fset.AddFile("", -1, len(src)), src, nil, 0)
	used := map[string]bool{}
	prev := ""
	for {
		_, tok, lit := sc.Scan()
		if tok == token.EOF {
			break
		}
		if tok == token.PERIOD && snippetImports[prev] != "" {
			used[prev] = true
		}
		prev = ""
		if tok == token.IDENT {
			prev = lit
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "// Code from %s.\n\npackage main\n\nimport (\n", s.where)
	for _, name := range slices.Sorted(maps.Keys(used)) {
		fmt.Fprintf(&b, "\t%q\n", snippetImports[name])
	}
	fmt.Fprintf(&b, ")\n\nfunc main() {\n%s}\n", s.code)
	return b.String()
}

// TestDocSnippetsCompile compiles and vets every Go snippet of README.md
// and of the package overviews, so that what a reader copies works.
// Snippets are statements (imports left out) or whole files; each is
// built as its own main package in a temporary directory of this module.
func TestDocSnippetsCompile(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to compile the snippets: %v", err)
	}
	snippets := markdownSnippets(t, "README.md")
	for _, f := range []string{"doc.go", "server/doc.go"} {
		snippets = append(snippets, docSnippets(t, f)...)
	}
	if len(snippets) < 6 {
		t.Fatalf("found %d snippets, want at least 6: is the extraction broken?", len(snippets))
	}
	// A directory starting with "_" is not part of ./..., so a run that
	// dies before cleanup cannot break the module's build.
	dir, err := os.MkdirTemp(".", "_snippets")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	var pkgs []string
	for i, s := range snippets {
		pkg := filepath.Join(dir, fmt.Sprintf("s%02d", i))
		if err := os.Mkdir(pkg, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(pkg, "main.go"), []byte(program(s)), 0o644); err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, "./"+filepath.ToSlash(pkg))
	}
	cmd := exec.Command(goTool, append([]string{"vet"}, pkgs...)...)
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=readonly", "GOPROXY=off", "GOTOOLCHAIN=local")
	if out, err := cmd.CombinedOutput(); err != nil {
		// Name each failing snippet by where it came from.
		msg := string(out)
		for i, s := range snippets {
			msg = strings.ReplaceAll(msg, filepath.ToSlash(filepath.Join(dir, fmt.Sprintf("s%02d", i)))+"/main.go", s.where+" (as main.go)")
		}
		t.Fatalf("go vet of the documentation's snippets: %v\n%s", err, msg)
	}
}
