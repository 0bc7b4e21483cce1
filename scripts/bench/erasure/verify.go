package erasure

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/consentflow/consentflow/internal/chx"
	"github.com/consentflow/consentflow/internal/policy"
	"github.com/consentflow/consentflow/scripts/internal/benchkit"
)

// maxControlSubjects bounds the control query: enough subjects to be sure
// their rows are found, few enough to stay cheap.
const maxControlSubjects = 1000

// finalCheck counts, in each destination's database, the rows of the
// subjects erased (must be none) and of subjects not erased that had
// events accepted (the control: there must be some, or the pseudonyms the
// bench computes are not the pipeline's and the first count proves
// nothing).
func finalCheck(ctx context.Context, e *infra, p *benchkit.Pipeline, keys keyrings, rep *report) error {
	erased := map[int]bool{}
	var erasedIdx, controlIdx []int
	for _, x := range rep.erasures {
		erased[x.subject] = true // also the refused: one may have landed
		if x.err == nil {
			erasedIdx = append(erasedIdx, x.subject)
		}
	}
	for i := range rep.pop.People {
		if !erased[i] && rep.pop.sent[i].Load() && len(controlIdx) < maxControlSubjects {
			controlIdx = append(controlIdx, i)
		}
	}
	rep.controlSubjects = len(controlIdx)
	rep.erasedRows, rep.controlRows = map[string]uint64{}, map[string]uint64{}
	for d, kr := range map[string]*policy.Keyring{benchkit.DestRegion: keys.region, benchkit.DestExport: keys.export} {
		var err error
		if rep.erasedRows[d], err = subjectRows(ctx, e.Conn, p.Databases[d], kr, rep.pop, erasedIdx); err != nil {
			return fmt.Errorf("final check of %s: %w", p.Databases[d], err)
		}
		if rep.controlRows[d], err = subjectRows(ctx, e.Conn, p.Databases[d], kr, rep.pop, controlIdx); err != nil {
			return fmt.Errorf("control of %s: %w", p.Databases[d], err)
		}
	}
	rep.checked = true
	return nil
}

// subjectRows is how many rows db.events holds of the subjects idx: rows
// whose subject, user_pseudonym or anonymous_pseudonym is one of their
// pseudonyms under keyring kr, as the sink's erasure matches them. The
// subjects go 500 at a time, so a statement stays within ClickHouse's
// max_query_size.
func subjectRows(ctx context.Context, conn driver.Conn, db string, kr *policy.Keyring, pop *population, idx []int) (uint64, error) {
	var total uint64
	for len(idx) > 0 {
		chunk := idx[:min(len(idx), 500)]
		idx = idx[len(chunk):]
		var users, anons []string
		for _, i := range chunk {
			users = append(users, kr.Pseudonyms(policy.KindUser, pop.People[i].UserID)...)
			anons = append(anons, kr.Pseudonyms(policy.KindAnonymous, pop.People[i].AnonymousID)...)
		}
		qctx, cancel := context.WithTimeout(ctx, time.Minute)
		var n uint64
		where, args := chx.SubjectsWhere(users, anons)
		err := conn.QueryRow(qctx, "SELECT count() FROM "+db+".events WHERE "+where, args...).Scan(&n)
		cancel()
		if err != nil {
			return 0, err
		}
		total += n
	}
	return total, nil
}

// statusCheck is what GET /v1/privacy/erasures/{id} said of a sample of
// the requests, next to the receipts the bench read itself.
type statusCheck struct {
	asked, agree int
	problems     []string
}

// crossCheck asks the collector's status API about n of ids, evenly
// spaced, and compares each answer with the receipts: done, and the rows
// each destination deleted.
func crossCheck(ctx context.Context, client *http.Client, privacyURL, token string, ids []string, n int, log *receiptLog) statusCheck {
	var sc statusCheck
	n = min(n, len(ids))
	for k := range n {
		id := ids[k*len(ids)/n]
		sc.asked++
		got, err := erasureStatus(ctx, client, privacyURL, token, id)
		if err != nil {
			sc.problems = append(sc.problems, fmt.Sprintf("%s: %v", id, err))
			continue
		}
		log.mu.Lock()
		r := log.requests[id]
		var problem string
		switch {
		case r == nil:
			problem = "no receipt read"
		case got.Status != "done" || !r.done():
			problem = fmt.Sprintf("status %q, receipts done %v", got.Status, r.done())
		default:
			for _, d := range r.destinations {
				if g, s := got.Destinations[d], r.sinks[d]; g.Status != "done" || g.RowsDeleted != s.rows {
					problem += fmt.Sprintf("%s: status %q rowsDeleted %d, receipts %d rows; ", d, g.Status, g.RowsDeleted, s.rows)
				}
			}
		}
		log.mu.Unlock()
		if problem != "" {
			sc.problems = append(sc.problems, id+": "+problem)
			continue
		}
		sc.agree++
	}
	return sc
}

// erasureStatusAnswer is the part of GET /v1/privacy/erasures/{id} the
// bench compares.
type erasureStatusAnswer struct {
	Status       string `json:"status"`
	Destinations map[string]struct {
		Status      string `json:"status"`
		RowsDeleted int64  `json:"rowsDeleted"`
	} `json:"destinations"`
}

func erasureStatus(ctx context.Context, client *http.Client, privacyURL, token, id string) (erasureStatusAnswer, error) {
	var a erasureStatusAnswer
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, privacyURL+"/v1/privacy/erasures/"+id, nil)
	if err != nil {
		return a, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		return a, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return a, err
	}
	if resp.StatusCode != http.StatusOK {
		return a, fmt.Errorf("%s: %s", resp.Status, body)
	}
	return a, json.Unmarshal(body, &a)
}
