package buildinfo

import (
	"runtime"
	"runtime/debug"
	"testing"
)

func TestInfo(t *testing.T) {
	plat := runtime.GOOS + "/" + runtime.GOARCH
	tests := []struct {
		name  string
		bi    *debug.BuildInfo
		short string
		line  string
	}{
		{"no build info", nil, "(devel)", "ntpquery (devel) " + runtime.Version() + " " + plat},
		{"release", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "github.com/ntpkit/ntpkit", Version: "v0.3.1"}},
			"v0.3.1", "ntpquery v0.3.1 go1.26.8 " + plat},
		{"checkout", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "github.com/ntpkit/ntpkit", Version: "(devel)"},
			Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "7078206ab1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6"}, {Key: "vcs.time", Value: "2026-12-02T17:00:00Z"}, {Key: "vcs.modified", Value: "true"}}},
			"devel-7078206ab1c2-dirty", "ntpquery devel-7078206ab1c2-dirty (2026-12-02T17:00:00Z) go1.26.8 " + plat},
		{"go test binary", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "github.com/ntpkit/ntpkit"}},
			"(devel)", "ntpquery (devel) go1.26.8 " + plat},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := fromBuildInfo(tt.bi)
			if got := in.Short(); got != tt.short {
				t.Errorf("Short() = %q, want %q", got, tt.short)
			}
			if got := in.Line("ntpquery"); got != tt.line {
				t.Errorf("Line() = %q, want %q", got, tt.line)
			}
		})
	}
}
