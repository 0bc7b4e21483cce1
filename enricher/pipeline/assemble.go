package pipeline

// A batch's records: each raw record's decoding, its clean and export
// records, and what it adds to the batch's output.

import (
	"errors"
	"fmt"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/consentflow/consentflow/internal/consentstore"
	"github.com/consentflow/consentflow/internal/event"
	"github.com/consentflow/consentflow/internal/kafkax"
	"github.com/consentflow/consentflow/internal/policy"
)

// item is one raw record on its way through a batch.
type item struct {
	rec    *kgo.Record
	in     *policy.Parsed
	poison error
	key    dedupKey // source and messageId, for de-duplication
	// user and anon are the event's userId and anonymousId, hashed.
	user, anon consentstore.Subject
	d          policy.Decision
	dup        bool
	// linkStands: an identify or alias that would be kept by the consent
	// in force before it, whatever it carries itself and were its subject
	// not erased: only such an event may link (or erase) a device.
	linkStands bool
	// linkOwner is the userId the device of an identify or alias is
	// linked to already, by the links tail or earlier in the batch.
	linkOwner string
	// consent holds privacy.consent records of the consent the event
	// carried; carriedRefused says it granted what its source may not.
	consent        []*kgo.Record
	carriedRefused bool
	clean          *kgo.Record
	// violations are the event's departures from the catalogue, counted
	// under eventLabel.
	violations []policy.Violation
	eventLabel string
	export     *kgo.Record // the export, or its dead letter when refused
	gate       error       // why the gate refused the export
}

// process turns a batch into its output records, the de-duplication keys of
// the events it stores, and its counts.
func (p *Pipeline) process(records []*kgo.Record) (out []*kgo.Record, keys []dedupKey, t *tally) {
	out, keys, t, _ = p.processBatch(records, nil, nil)
	return out, keys, t
}

// assemble appends an item's output records, and its de-duplication key
// if it is stored, and counts it.
func (p *Pipeline) assemble(it *item, out []*kgo.Record, keys []dedupKey, t *tally) ([]*kgo.Record, []dedupKey) {
	switch {
	case it.poison != nil:
		t.dropped[dropPoison]++
		return append(out, kafkax.DeadLetter(it.rec, p.cfg.Topics.DLQ.Name, stage, "invalid_envelope", it.poison)), keys
	case it.dup:
		t.dropped[dropDuplicate]++
		return out, keys
	}
	if link, refused := p.linkRecord(it); link != nil {
		out = append(out, link...)
		if link[0].Topic == p.cfg.Topics.Identities.Name {
			t.links++
		}
	} else if refused != "" {
		t.linksRefused[refused]++
	}
	out = append(out, it.consent...)
	t.carriedWritten += len(it.consent)
	if it.carriedRefused {
		t.carriedRefused++
	}
	if it.d.Drop != "" {
		t.dropped[string(it.d.Drop)]++
		return out, keys
	}
	keys = append(keys, it.key)
	out = append(out, it.clean)
	t.clean++
	if it.in.UserAgentCut() {
		t.uaTruncated++
	}
	if it.in.UserAgentUnparsed() {
		t.uaUnparsed++
	}
	if len(it.violations) > 0 {
		label := p.clean.EventLabel(it.in)
		for _, v := range it.violations {
			t.violations = append(t.violations, violation{source: it.in.Env.SourceID, event: label, Violation: v})
		}
	}
	for _, name := range it.d.Purposes.Names() {
		t.purposes[name]++
	}
	if it.d.ByDefault {
		t.defaultGrants[strings.ToLower(it.in.Env.SourceID)]++
	}
	switch {
	case it.gate != nil:
		out = append(out, it.export)
		t.dropped[dropGateRefused]++
	case it.export != nil:
		out = append(out, it.export)
		t.export++
	}
	return out, keys
}

// parse decodes a raw record; an error means it is poison (permanent).
// The record's value must not change while the result is in use.
func parse(rec *kgo.Record) (*policy.Parsed, error) {
	if in, ok := policy.ParseRaw(rec.Value); ok {
		return in, nil
	}
	// Anything unusual, poison included, the slow way: the same result,
	// or the error that says what is wrong.
	env, err := event.DecodeEnvelope(rec.Value)
	if err != nil {
		return nil, fmt.Errorf("decode envelope: %w", err)
	}
	in, err := policy.Parse(env)
	if err != nil {
		return nil, fmt.Errorf("decode event: %w", err)
	}
	return in, nil
}

// route de-identifies a kept event for events.clean.<region> and, with
// cross-border consent, for the export topic through the gate.
func (p *Pipeline) route(it *item, mem *arena) {
	// A clean event is about as long as the raw one, seldom longer.
	value, subject, err := p.clean.AppendDeidentified(mem.room(len(it.rec.Value)), it.in, it.d, &it.violations)
	if err != nil {
		it.poison = fmt.Errorf("de-identify: %w", err)
		return
	}
	it.clean = mem.record()
	it.clean.Topic = p.cfg.Topics.Clean.Name
	it.clean.Value = mem.take(value)
	it.clean.Key = mem.take(append(mem.room(len(subject)), subject...))
	if !it.d.Export || p.export == nil {
		return
	}
	x, err := policy.Export(it.in, it.d, p.export)
	switch {
	case errors.Is(err, policy.ErrGateRefused):
		// The in-region copy stands; the export must not leave.
		it.gate = err
		it.export = kafkax.DeadLetter(it.rec, p.cfg.Topics.DLQ.Name, stage, dropGateRefused, err)
		return
	case err != nil:
		it.poison = fmt.Errorf("de-identify for export: %w", err)
		return
	}
	it.export = p.exportRecord(x)
}

// exportRecord is the only way onto the export topic, and it takes only
// what the cross-border gate let through.
func (p *Pipeline) exportRecord(x policy.Exportable) *kgo.Record {
	return &kgo.Record{Topic: p.cfg.Export.Topic.Name, Key: x.Key(), Value: x.Value()}
}
