package main

import (
	"fmt"
	"path/filepath"

	"github.com/consentflow/consentflow/internal/keyring"
	"github.com/consentflow/consentflow/internal/policy"
	"github.com/consentflow/consentflow/scripts/internal/benchkit"
)

// bench names the tool's topics, consumer groups and databases (see
// benchkit.Prefixes) and its temporary directory.
const bench = "erasurebench"

// The development pseudonym keys, relative to the repository root: the
// in-region key k1 and the export destination's x1, as `make run` and the
// tests use them.
const (
	devPseudonymKey = "configs/dev-pseudonym.key"
	devExportKey    = "configs/dev-export.key"
)

// binaries are the three commands, built once per run.
type binaries struct{ collector, enricher, sink string }

// infra is the run's connections, names and built binaries, and the
// record of what to delete at the end.
type infra struct {
	*benchkit.Infra
	o    options
	bins binaries
	tmp  string // the run's temporary directory: binaries, collector.yaml
}

// keyrings are the pseudonym keys the pipeline runs with: the in-region
// keyring (the clean topic, analytics_cn's rows) and the export
// destination's.
type keyrings struct{ region, export *policy.Keyring }

// loadKeys reads the dev keys as the services do (keyring.Config), so the
// final check computes the very pseudonyms the enricher wrote.
func loadKeys(root string) (keyrings, error) {
	var k keyrings
	for _, c := range []struct {
		id, file, section, env string
		out                    **policy.Keyring
	}{
		{"k1", devPseudonymKey, "pseudonym", "ENRICHER_PSEUDONYM_KEY", &k.region},
		{"x1", devExportKey, "export.pseudonym", "ENRICHER_EXPORT_PSEUDONYM_KEY", &k.export},
	} {
		cfg := keyring.Config{KeyID: c.id, KeyFile: filepath.Join(root, c.file)}
		err := cfg.Resolve(c.section)
		if err == nil {
			err = cfg.Validate(c.section, c.env)
		}
		if err != nil {
			return k, fmt.Errorf("dev key %s: %w", c.file, err)
		}
		kr, err := cfg.Keyring()
		if err != nil {
			return k, fmt.Errorf("dev key %s: %w", c.file, err)
		}
		*c.out = kr
	}
	return k, nil
}
