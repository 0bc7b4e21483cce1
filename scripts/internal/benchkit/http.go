package benchkit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Credentials authenticate a request to the collector: a source's write
// key (HTTP Basic user) or, when Token is set, the operator's bearer
// token of the privacy admin API.
type Credentials struct{ WriteKey, Token string }

// StatusError is an answer other than the one expected.
type StatusError struct {
	Code       int
	RetryAfter time.Duration // its Retry-After, 1s without one
	Msg        string        // its body, trimmed
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("%d %s: %s", e.Code, http.StatusText(e.Code), e.Msg)
}

// PostJSON posts body (JSON) to url with c and returns the answer's body
// (the first 64 KiB) if its status is want, else a *StatusError.
func PostJSON(ctx context.Context, client *http.Client, url string, c Credentials, body []byte, want int) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	} else {
		req.SetBasicAuth(c.WriteKey, "")
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != want {
		retry := time.Second
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
			retry = time.Duration(s) * time.Second
		}
		return nil, &StatusError{Code: resp.StatusCode, RetryAfter: retry, Msg: string(bytes.TrimSpace(msg))}
	}
	return msg, nil
}

// Post posts body to url with writeKey and wants a 200: a Segment batch
// or consent update to the collector.
func Post(ctx context.Context, client *http.Client, url, writeKey string, body []byte) error {
	_, err := PostJSON(ctx, client, url, Credentials{WriteKey: writeKey}, body, http.StatusOK)
	return err
}

// GrantConsent posts the consent update of each of n subjects (consent(i)
// is subject i's) to the collector at baseURL with writeKey, 16 at a time:
// the enricher fails closed, so a load's subjects need consent first.
func GrantConsent(ctx context.Context, client *http.Client, baseURL, writeKey string, n int, consent func(i int) []byte) error {
	return Parallel(ctx, n, 16, func(i int) error {
		if err := Post(ctx, client, baseURL+"/v1/consent", writeKey, consent(i)); err != nil {
			return fmt.Errorf("consent: %w", err)
		}
		return nil
	})
}

// BatchBody is a Segment /v1/batch request sent at now of n events,
// event(b, k) appending the k-th's JSON object to b.
func BatchBody(now time.Time, n, sizeHint int, event func(b []byte, k int) []byte) []byte {
	b := make([]byte, 0, n*sizeHint+64)
	b = append(b, `{"sentAt":"`...)
	b = now.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","batch":[`...)
	for k := range n {
		if k > 0 {
			b = append(b, ',')
		}
		b = event(b, k)
	}
	return append(b, ']', '}')
}

// CountRows is count() of db.events; 0 while the table or the database
// does not exist yet (the sink creates them once it is ready).
func CountRows(ctx context.Context, conn driver.Conn, db string) (uint64, error) {
	var n uint64
	err := conn.QueryRow(ctx, "SELECT count() FROM "+db+".events").Scan(&n)
	var ex *clickhouse.Exception
	if errors.As(err, &ex) && (ex.Code == 60 || ex.Code == 81) { // no table, no database
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("count rows of %s: %w", db, err)
	}
	return n, nil
}

// LookupIDs returns which of ids (message ids) db.events holds. The ids
// must be a benchmark's own (letters, digits, -): they are quoted into
// the query as they are.
func LookupIDs(ctx context.Context, conn driver.Conn, db string, ids []string) ([]string, error) {
	for _, id := range ids {
		if strings.ContainsAny(id, `'\`) {
			return nil, fmt.Errorf("look up message id %q: quotes are not allowed", id)
		}
	}
	var q strings.Builder
	q.WriteString("SELECT message_id FROM " + db + ".events WHERE message_id IN ('")
	q.WriteString(strings.Join(ids, "','"))
	q.WriteString("')")
	rows, err := conn.Query(ctx, q.String())
	if err != nil {
		return nil, fmt.Errorf("look up followed events in %s: %w", db, err)
	}
	defer rows.Close()
	var found []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		found = append(found, id)
	}
	return found, rows.Err()
}
