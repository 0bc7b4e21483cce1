package erasure

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

// infra is the run (connections, names, built binaries, temporary
// directory, what to delete at the end) and the flags.
type infra struct {
	*benchkit.Run
	o options
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
		{"k1", benchkit.DevPseudonymKey, "pseudonym", "ENRICHER_PSEUDONYM_KEY", &k.region},
		{"x1", benchkit.DevExportKey, "export.pseudonym", "ENRICHER_EXPORT_PSEUDONYM_KEY", &k.export},
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
