package pipeline

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/consentflow/consentflow/internal/event"
	"github.com/consentflow/consentflow/internal/policy"
)

// CheckPolicy reads one case from in and writes, for the in-region
// destination and the export destination, what the configured policy does
// with it: kept for which purposes or dropped and why, and the output
// event. It is `enricher policy check`, for the privacy office to see what
// a config does; it touches no Kafka.
//
// The input is a policy.Case ({"envelope": ..., "consent": [...],
// "suppressed": false}) or a bare Segment event, which is wrapped as if
// received now from source with no known consent.
func CheckPolicy(cfg Config, source string, in io.Reader, out io.Writer) error {
	raw, err := io.ReadAll(in)
	if err != nil {
		return fmt.Errorf("read input: %w", err)
	}
	c, err := readCase(raw, source, cfg.Region)
	if err != nil {
		return err
	}
	agents, err := policy.NewUserAgentParser(16)
	if err != nil {
		return err
	}
	clean, export, err := cfg.NewProfiles(agents)
	if err != nil {
		return err
	}
	exports := map[string]*policy.Profile{}
	if export != nil {
		exports[cfg.Export.Name] = export
	}
	report, err := policy.Evaluate(c, cfg.Consent.Rules(), "clean", clean, exports)
	if err != nil {
		return fmt.Errorf("evaluate: %w", err)
	}
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	return enc.Encode(report)
}

func readCase(raw []byte, source, region string) (policy.Case, error) {
	var probe struct {
		Envelope json.RawMessage `json:"envelope"`
	}
	if err := json.Unmarshal(raw, &probe); err != nil {
		return policy.Case{}, fmt.Errorf("input is not JSON: %w", err)
	}
	if probe.Envelope != nil {
		var c policy.Case
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&c); err != nil {
			return policy.Case{}, fmt.Errorf("decode case: %w", err)
		}
		envJSON, _ := json.Marshal(c.Envelope)
		if _, err := event.DecodeEnvelope(envJSON); err != nil {
			return policy.Case{}, fmt.Errorf("case envelope: %w", err)
		}
		return c, nil
	}
	ev, err := event.DecodeEvent(raw)
	if err != nil {
		return policy.Case{}, fmt.Errorf("input is neither a case nor a Segment event: %w", err)
	}
	id := ev.MessageID
	if id == "" {
		id = "policy-check"
	}
	return policy.Case{Envelope: event.Envelope{SchemaVersion: event.SchemaVersion, MessageID: id,
		ReceivedAt: time.Now().UTC(), SourceID: source, Region: region, Event: ev}}, nil
}
