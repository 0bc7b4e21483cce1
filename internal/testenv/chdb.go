package testenv

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// CurrentEngine is a current ClickHouse release as a library: PyPI's
// chdb-core in the Python environment scripts/chdb.sh makes. No current
// server installs here (Debian ships 18.16), and this engine runs the same
// SQL.
type CurrentEngine struct {
	python, runner string
}

// Statement is one statement for CurrentEngine.Run, and what its answer
// must be, if anything.
type Statement struct {
	Name string `json:"name"`
	SQL  string `json:"sql"`
	// Expect, when not nil, are the answer's lines (TabSeparated), in any
	// order; empty for no rows.
	Expect []string `json:"expect"`
	// Until, when set, runs the statement again until it answers this.
	Until string `json:"until,omitempty"`
	// Settings are set for the statement alone, as a client sends them
	// with it.
	Settings map[string]any `json:"settings,omitempty"`
	// FailsWith, when set, are the error codes of which the statement
	// must fail with one.
	FailsWith []int32 `json:"fails_with,omitempty"`
}

// NewCurrentEngine makes (the first time: it downloads the wheel) or finds
// the environment, or skips the test (with -short, or when it cannot be
// made), failing it instead when CI=true.
func NewCurrentEngine(t testing.TB) *CurrentEngine {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: skipping test that needs the chdb-core environment (scripts/chdb.sh)")
	}
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(filepath.Join(root, "scripts", "chdb.sh"), "venv").CombinedOutput()
	if err != nil {
		unavailable(t, "scripts/chdb.sh venv: "+err.Error()+"\n"+string(out))
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return &CurrentEngine{python: lines[len(lines)-1], runner: filepath.Join(root, "scripts", "chdb", "runsql.py")}
}

// Version is the engine's ClickHouse version, as SELECT version() says.
func (e *CurrentEngine) Version(t testing.TB) string {
	t.Helper()
	out, err := exec.Command(e.python, e.runner, "--version").Output()
	if err != nil {
		t.Fatalf("%s --version: %v", e.runner, err)
	}
	return strings.TrimSpace(string(out))
}

// Run runs the statements in order in a fresh engine, failing the test with
// the engine's error and the statement at the first that fails or answers
// otherwise than it must.
func (e *CurrentEngine) Run(t testing.TB, statements []Statement) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "statements.json")
	data, err := json.MarshalIndent(statements, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, data, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(e.python, e.runner, file).CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	t.Log(strings.TrimSpace(string(out)))
}
