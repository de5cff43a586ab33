package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"time"
)

// isReloadable reports whether a top-level configuration section is
// applied by a reload (SIGHUP). Every other section is read only at start;
// a reload that changes one logs that a restart is needed.
func isReloadable(section string) bool {
	switch section {
	case "access", "rate_limit":
		return true
	}
	return false
}

// watchReloads reloads the configuration on every value from hup until
// ctx ends.
func (d *daemon) watchReloads(ctx context.Context, hup <-chan os.Signal) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			d.reload(time.Now())
		}
	}
}

// reload re-reads the configuration file, validates all of it, and swaps
// in its reloadable sections atomically. On any error nothing changes and
// the running configuration keeps serving; the error is logged and kept
// for /v1/status.
func (d *daemon) reload(now time.Time) error {
	restart, err := d.tryReload()
	d.reloads.record(now, err)
	if err != nil {
		d.logger.Error("config reload refused", "reason", err.Error())
		return err
	}
	if len(restart) > 0 {
		d.logger.Warn("config changes need a restart to take effect", "sections", restart)
	}
	d.logger.Info("config reloaded", "generation", d.reloads.snapshot().Generation)
	return nil
}

func (d *daemon) tryReload() (restart []string, err error) {
	// TLS certificates first: if the new pair is bad, nothing changes.
	if d.reloadCerts != nil {
		if err := d.reloadCerts(); err != nil {
			return nil, fmt.Errorf("nts certificate: %w", err)
		}
		if d.load == nil {
			return nil, nil // no configuration file: the certificates were all there was
		}
	}
	if d.load == nil {
		return nil, errors.New("the daemon was started without -config: there is no file to reload")
	}
	next, err := d.load()
	if err != nil {
		return nil, err
	}
	merged, restart, err := mergeReloadable(*d.cfg.Load(), next)
	if err != nil {
		return nil, err
	}
	if d.applyReloadable != nil {
		if err := d.applyReloadable(merged); err != nil {
			return nil, err
		}
	}
	d.cfg.Store(&merged)
	return restart, nil
}

// mergeReloadable returns cur with the reloadable sections taken from
// next, and the names of the other sections that differ between the two
// (which only a restart applies).
func mergeReloadable(cur, next Config) (Config, []string, error) {
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
		if isReloadable(k) {
			curMap[k] = v
		} else if !bytes.Equal(curMap[k], v) {
			restart = append(restart, k)
		}
	}
	slices.Sort(restart)
	data, err := json.Marshal(curMap)
	if err != nil {
		return Config{}, nil, fmt.Errorf("reload: %w", err)
	}
	var merged Config
	if err := decodeStrict(data, &merged); err != nil {
		return Config{}, nil, fmt.Errorf("reload: %w", err)
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
		return nil, fmt.Errorf("reload: %w", err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("reload: %w", err)
	}
	return m, nil
}
