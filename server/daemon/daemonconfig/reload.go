package daemonconfig

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
)

// Reloadable reports whether a top-level section of the configuration
// ("access", "rate_limit") is applied by a reload (daemon.Daemon.Reload).
// Every other section is read only at start.
func Reloadable(section string) bool {
	switch section {
	case "access", "rate_limit":
		return true
	}
	return false
}

// Merge returns cur with the reloadable sections taken from next, and the
// names of the other top-level sections that differ between the two
// (which only a restart applies), sorted. The merged configuration is
// validated.
func Merge(cur, next Config) (Config, []string, error) {
	curMap, err := sections(cur)
	if err != nil {
		return Config{}, nil, err
	}
	nextMap, err := sections(next)
	if err != nil {
		return Config{}, nil, err
	}
	var restart []string
	for k, v := range nextMap {
		if Reloadable(k) {
			curMap[k] = v
		} else if !bytes.Equal(curMap[k], v) {
			restart = append(restart, k)
		}
	}
	slices.Sort(restart)
	data, err := json.Marshal(curMap)
	if err != nil {
		return Config{}, nil, fmt.Errorf("config: merge: %w", err)
	}
	var merged Config
	if err := decodeStrict(data, &merged); err != nil {
		return Config{}, nil, fmt.Errorf("config: merge: %w", err)
	}
	if err := merged.Validate(); err != nil {
		return Config{}, nil, err
	}
	return merged, restart, nil
}

// sections splits cfg into its top-level JSON sections.
func sections(cfg Config) (map[string]json.RawMessage, error) {
	data, err := json.Marshal(cfg)
	if err != nil {
		return nil, fmt.Errorf("config: merge: %w", err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("config: merge: %w", err)
	}
	return m, nil
}
