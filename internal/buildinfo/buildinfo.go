// Package buildinfo says which build of an ntpkit command is running, from
// the information the Go toolchain embeds: the module version when built
// with "go install module@version", else the VCS revision of the checkout
// it was built from. The commands print it for -version and the daemon
// reports it in its status and metrics.
package buildinfo

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Info is what is known about the running binary's build.
type Info struct {
	// Module is the main module's path.
	Module string
	// Version is the main module's version ("v0.3.1"), or "(devel)" for a
	// build from a checkout.
	Version string
	// Revision, Time and Modified describe the checkout a development
	// build came from (vcs.revision, vcs.time, vcs.modified); empty
	// without VCS information, as under "go test" or "go run file.go".
	Revision string
	Time     string
	Modified bool
	// GoVersion is the toolchain that built the binary.
	GoVersion string
	// Platform is GOOS/GOARCH.
	Platform string
}

// Read returns the running binary's build information.
func Read() Info {
	bi, _ := debug.ReadBuildInfo()
	return fromBuildInfo(bi)
}

func fromBuildInfo(bi *debug.BuildInfo) Info {
	in := Info{Version: "(devel)", GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if bi == nil {
		return in
	}
	in.Module = bi.Main.Path
	if bi.Main.Version != "" {
		in.Version = bi.Main.Version
	}
	if bi.GoVersion != "" {
		in.GoVersion = bi.GoVersion
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			in.Revision = s.Value
		case "vcs.time":
			in.Time = s.Value
		case "vcs.modified":
			in.Modified = s.Value == "true"
		}
	}
	return in
}

// Short is the version an operator compares between hosts: the module
// version of a release build; for a development build "devel-" and the
// first 12 digits of the revision, with "-dirty" when the checkout had
// changes; "(devel)" when nothing more is known.
func (in Info) Short() string {
	if in.Version != "(devel)" || in.Revision == "" {
		return in.Version
	}
	rev := in.Revision
	if len(rev) > 12 {
		rev = rev[:12]
	}
	v := "devel-" + rev
	if in.Modified {
		v += "-dirty"
	}
	return v
}

// Line is the one-line answer to "prog -version": the program, its
// version, the revision's time when known, and the toolchain and platform.
func (in Info) Line(prog string) string {
	when := ""
	if in.Version == "(devel)" && in.Time != "" {
		when = " (" + in.Time + ")"
	}
	return fmt.Sprintf("%s %s%s %s %s", prog, in.Short(), when, in.GoVersion, in.Platform)
}
