package erasure

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
)

// operatorsLine is the shipped collector.yaml's (empty) operator list.
var operatorsLine = regexp.MustCompile(`(?m)^  operators: \[\]$`)

// collectorConfig writes a copy of configs/collector.yaml with the dev
// operator switched on, as scripts/run.sh does: privacy.operators is a list
// of structs, which no environment variable can set.
func collectorConfig(e *infra) (string, error) {
	b, err := os.ReadFile(filepath.Join(e.o.Root, "configs", "collector.yaml"))
	if err != nil {
		return "", err
	}
	if !operatorsLine.Match(b) {
		return "", errors.New(`configs/collector.yaml: no line "  operators: []" to switch the dev operator on in`)
	}
	line := fmt.Sprintf("  operators: [{name: dev, token_file: %s}]", strconv.Quote(e.o.tokenFile))
	b = operatorsLine.ReplaceAllLiteral(b, []byte(line))
	path := filepath.Join(e.Dir, "collector.yaml")
	return path, os.WriteFile(path, b, 0o600)
}
