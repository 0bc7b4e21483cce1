// Package e2e runs the three stages together against the real Kafka and
// ClickHouse and checks what reaches ClickHouse.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/consentflow/consentflow/collector/ingest"
	"github.com/consentflow/consentflow/enricher/pipeline"
	"github.com/consentflow/consentflow/internal/config"
	"github.com/consentflow/consentflow/internal/obs"
	"github.com/consentflow/consentflow/internal/testenv"
	"github.com/consentflow/consentflow/sink/chwriter"
)

// subject is one person in the test, with every raw identifier the pipeline
// must never let reach the clean topic or ClickHouse.
type subject struct {
	userID, anonymousID, deviceID, advertisingID, ip             string
	imei, androidID, mac, pushToken, deviceName, email, latitude string
}

func (s subject) identifiers() []string {
	return []string{s.userID, s.anonymousID, s.deviceID, s.advertisingID, s.ip,
		s.imei, s.androidID, s.mac, s.pushToken, s.deviceName, s.email, s.latitude}
}

func TestEndToEnd(t *testing.T) {
	brokers := testenv.KafkaBrokers(t)
	chAddr := testenv.ClickHouseAddr(t)
	ctx := testenv.Context(t, 3*time.Minute)
	run := testenv.Name(t, "e2e")
	raw, clean, dlq, dlqIntl, rawDLQ := "events.raw."+run, "events.clean."+run, "events.dlq.cn."+run, "events.dlq.intl."+run, "events.dlq.raw."+run
	consent, erasures, export, requests := "privacy.consent."+run, "privacy.erasures."+run, "events.export."+run, "privacy.erasure-requests."+run
	testenv.DeleteTopicsAfter(t, brokers, raw, clean, dlq, dlqIntl, rawDLQ, consent, erasures, export, requests)
	database := "analytics_" + run

	// The shipped configs, pointed at this run's topics and database: a
	// development setup (demo write keys, development keys).
	devMode(t)
	t.Setenv("ENRICHER_PSEUDONYM_KEY_FILE", "../configs/dev-pseudonym.key")
	t.Setenv("ENRICHER_EXPORT_PSEUDONYM_KEY_FILE", "../configs/dev-export.key")
	ccfg := ingest.Default()
	load(t, "../configs/collector.yaml", "COLLECTOR", &ccfg)
	ccfg.Kafka.Brokers, ccfg.HTTP.Listen, ccfg.Topics.Raw.Name = brokers, "127.0.0.1:0", raw
	ccfg.Topics.Consent.Name = consent
	// The test posts as a server-side source would, with each end user's
	// address in context.ip.
	ccfg.Sources[0].TrustContextIP = true

	ecfg := pipeline.Default()
	load(t, "../configs/enricher.yaml", "ENRICHER", &ecfg)
	ecfg.Kafka.Brokers, ecfg.GroupID, ecfg.TransactionalID = brokers, "enricher-"+run, "enricher-"+run
	ecfg.Topics.Raw.Name, ecfg.Topics.Clean.Name, ecfg.Topics.DLQ.Name = raw, clean, rawDLQ
	ecfg.Topics.Consent.Name, ecfg.Topics.Erasures.Name, ecfg.Export.Topic.Name = consent, erasures, export
	ecfg.Topics.ErasureRequests.Name = requests

	scfg := chwriter.Default()
	load(t, "../configs/sink.yaml", "SINK", &scfg)
	scfg.Kafka.Brokers, scfg.GroupID, scfg.Database = brokers, "sink-"+run, database
	scfg.ClickHouse.Addr = []string{chAddr}
	// Each sink logs in as a user that may use its database only
	// (deployments/clickhouse); the test's own queries are the default user's.
	testenv.ClickHouseSinkUser(t, chAddr, database).Apply(&scfg.ClickHouse)
	scfg.Topics.Clean.Name, scfg.Topics.DLQ.Name = clean, dlq
	scfg.Batch.MaxWait = 200 * time.Millisecond

	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	// The export destination's sink: the shipped sink-intl.yaml, on this
	// run's export topic and its own database.
	xcfg := chwriter.Default()
	load(t, "../configs/sink-intl.yaml", "SINK", &xcfg)
	xcfg.Kafka.Brokers, xcfg.GroupID, xcfg.Database = brokers, "sink-intl-"+run, database+"_intl"
	xcfg.ClickHouse.Addr = []string{chAddr}
	testenv.ClickHouseSinkUser(t, chAddr, database+"_intl").Apply(&xcfg.ClickHouse)
	xcfg.Topics.Clean.Name, xcfg.Topics.DLQ.Name = export, dlqIntl
	xcfg.Batch.MaxWait = 200 * time.Millisecond
	isolatePrivacy(t, brokers, run, &ccfg, &ecfg, &scfg, &xcfg)

	start(t, ctx, func(reg prometheus.Registerer) (obs.Component, error) { return chwriter.New(scfg, reg, log) })
	start(t, ctx, func(reg prometheus.Registerer) (obs.Component, error) { return chwriter.New(xcfg, reg, log) })
	start(t, ctx, func(reg prometheus.Registerer) (obs.Component, error) { return pipeline.New(ecfg, reg, log) })
	collector := start(t, ctx, func(reg prometheus.Registerer) (obs.Component, error) { return ingest.New(ccfg, reg, log) }).(*ingest.Server)

	subjects := make([]subject, 5)
	for i := range subjects {
		subjects[i] = subject{
			userID:        fmt.Sprintf("user-%d-%s@example.com", i, run),
			anonymousID:   fmt.Sprintf("anon-%d-%s", i, run),
			deviceID:      fmt.Sprintf("device-%d-%s", i, run),
			advertisingID: fmt.Sprintf("idfa-%d-%s", i, run),
			ip:            fmt.Sprintf("203.0.113.%d", 150+i),
			imei:          fmt.Sprintf("35693803564%04d", i),
			androidID:     fmt.Sprintf("android-%d-%s", i, run),
			mac:           fmt.Sprintf("02:00:5e:10:00:%02x", i),
			pushToken:     fmt.Sprintf("apns-token-%d-%s", i, run),
			deviceName:    fmt.Sprintf("Subject %d's phone %s", i, run),
			email:         fmt.Sprintf("mail-%d-%s@example.com", i, run),
			latitude:      fmt.Sprintf("31.23%06d", 100+i),
		}
	}
	subjects[4].ip = "2001:db8:1234:5678::abcd" // one IPv6 client

	// Every subject consents to analytics through the consent endpoint,
	// the first two to transfer abroad as well; the enricher fails closed
	// without it. A userId's grants come from the first party's backend.
	for i, s := range subjects {
		update := map[string]any{"userId": s.userID, "purposes": map[string]bool{"analytics": true}, "crossBorder": i < 2,
			"timestamp": time.Now().Add(-time.Minute).UTC().Format(time.RFC3339Nano)}
		if resp := postAs(t, serverKey, "http://"+collector.Addr()+"/v1/consent", update); !resp.Success {
			t.Fatalf("consent for subject %d: %+v", i, resp)
		}
	}

	// Each subject sends 40 events in batches of 10; the last subject's
	// events carry no messageId, so the collector must generate them.
	url := "http://" + collector.Addr() + "/v1/batch"
	var posted []string
	for i, s := range subjects {
		for b := range 4 {
			var batch []map[string]any
			for j := range 10 {
				ev := map[string]any{
					"type":        []string{"track", "page", "screen", "identify"}[j%4],
					"event":       "Product Viewed",
					"name":        "Home",
					"userId":      s.userID,
					"anonymousId": s.anonymousID,
					"timestamp":   time.Now().UTC().Format(time.RFC3339Nano),
					"context": map[string]any{
						"ip": s.ip,
						"device": map[string]any{"id": s.deviceID, "advertisingId": s.advertisingID, "model": "Pixel 9",
							"imei": s.imei, "androidId": s.androidID, "mac": s.mac, "token": s.pushToken, "name": s.deviceName},
						"externalIds": []map[string]any{{"id": s.email, "type": "email"}},
						"location":    map[string]any{"latitude": json.Number(s.latitude), "longitude": 121.47},
						"page":        map[string]any{"url": "https://shop.example/p?email=" + s.email},
						"traits":      map[string]any{"email": s.email},
						"userAgent":   "Agent " + s.deviceName,
						"locale":      "zh-CN",
					},
					"properties": map[string]any{"sku": fmt.Sprintf("sku-%d", j), "price": 9.5, "run": run, "note": "reach me at " + s.email},
				}
				if i < len(subjects)-1 {
					id := fmt.Sprintf("%s-%d-%d-%d", run, i, b, j)
					ev["messageId"] = id
					posted = append(posted, id)
				}
				batch = append(batch, ev)
			}
			if resp := post(t, url, map[string]any{"batch": batch}); !resp.Success || len(resp.Rejected) != 0 {
				t.Fatalf("batch for subject %d: %+v", i, resp)
			}
			if i == 0 && b == 0 {
				// An SDK retrying a batch whose answer it lost: the
				// enricher drops the copies, so the count stays exact.
				post(t, url, map[string]any{"batch": batch})
			}
		}
	}

	conn := testenv.ClickHouseDB(t, chAddr, database)

	const want = 5 * 40
	counts := map[string]uint64{}
	for deadline := time.Now().Add(90 * time.Second); ; {
		counts = map[string]uint64{}
		rows, err := conn.Query(ctx, "SELECT message_id, count() FROM "+database+".events GROUP BY message_id")
		if err == nil {
			for rows.Next() {
				var id string
				var n uint64
				if err := rows.Scan(&id, &n); err != nil {
					t.Fatal(err)
				}
				counts[id] = n
			}
			rows.Close()
		}
		var total uint64
		for _, n := range counts {
			total += n
		}
		if total >= want {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ClickHouse holds %d rows after 90s, want %d (last error: %v)", total, want, err)
		}
		time.Sleep(250 * time.Millisecond)
	}

	// Every posted messageId exactly once; the rest are the 40 generated ones.
	for _, id := range posted {
		if counts[id] != 1 {
			t.Errorf("messageId %s stored %d times, want 1", id, counts[id])
		}
		delete(counts, id)
	}
	if len(counts) != 40 {
		t.Errorf("%d generated messageIds in ClickHouse, want 40", len(counts))
	}
	for id, n := range counts {
		if n != 1 || len(id) != 36 {
			t.Errorf("generated messageId %q stored %d times (want a UUID, once)", id, n)
		}
	}

	var allIDs []string
	for _, s := range subjects {
		allIDs = append(allIDs, s.identifiers()...)
	}

	// Positive control: the raw topic does carry the identifiers, so the
	// searches below would find them if they leaked.
	rawText := recordsText(t, ctx, brokers, raw)
	for _, id := range allIDs {
		if !strings.Contains(rawText, id) {
			t.Fatalf("control: raw topic lacks %q; the leak search below proves nothing", id)
		}
	}
	cleanText := recordsText(t, ctx, brokers, clean)
	chText := tableText(t, ctx, conn, database+".events")
	exported := testenv.ReadAll(t, ctx, brokers, export)
	if len(exported) != 2*40 {
		t.Errorf("export topic holds %d events, want the 80 of the two subjects with cross-border consent", len(exported))
	}
	intl := testenv.ClickHouseDB(t, chAddr, database+"_intl")
	for deadline := time.Now().Add(30 * time.Second); ; {
		var rows, exportKeyed uint64
		err := intl.QueryRow(ctx, "SELECT count(), countIf(startsWith(subject, 'x1.')) FROM "+database+"_intl.events").Scan(&rows, &exportKeyed)
		if err == nil && rows == 2*40 && exportKeyed == rows {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the export database holds %d rows (%d under the export key), want 80 (err %v)", rows, exportKeyed, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
	exportText := recordsText(t, ctx, brokers, export)
	for _, id := range allIDs {
		if strings.Contains(cleanText, id) {
			t.Errorf("raw identifier %q found in the clean topic", id)
		}
		if strings.Contains(exportText, id) {
			t.Errorf("raw identifier %q found in the export topic", id)
		}
		if strings.Contains(chText, id) {
			t.Errorf("raw identifier %q found in ClickHouse", id)
		}
	}
	for _, truncated := range []string{"203.0.113.0", "2001:db8:1234::"} {
		if !strings.Contains(chText, truncated) {
			t.Errorf("truncated IP %s not in ClickHouse", truncated)
		}
	}
}

func load(t *testing.T, path, prefix string, cfg config.Validator) {
	t.Helper()
	if err := config.Load(path, prefix, cfg); err != nil {
		t.Fatal(err)
	}
}

// devMode switches dev_mode on for the three services, as `make run`
// does: the tests run the shipped configs with the repository's demo write
// keys and development keys, which config.Load refuses otherwise.
func devMode(t *testing.T) {
	t.Helper()
	for _, prefix := range []string{"COLLECTOR", "ENRICHER", "SINK"} {
		t.Setenv(prefix+"_DEV_MODE", "true")
	}
}

// start builds a component with its own registry, starts it, and shuts it
// down when the test ends.
func start(t *testing.T, ctx context.Context, build func(prometheus.Registerer) (obs.Component, error)) obs.Component {
	t.Helper()
	return startOn(t, ctx, prometheus.NewRegistry(), build)
}

type batchResponse struct {
	Success  bool               `json:"success"`
	Error    string             `json:"error"`
	Rejected []ingest.Rejection `json:"rejected"`
}

// The shipped config's write keys: a web page's (a client source) and a
// first-party backend's (a server source).
const (
	clientKey = "demo-write-key"
	serverKey = "demo-backend-write-key"
)

// post posts body as the client source and wants 200.
func post(t *testing.T, url string, body any) batchResponse {
	t.Helper()
	return postAs(t, clientKey, url, body)
}

// postAs posts body with writeKey and wants 200.
func postAs(t *testing.T, writeKey, url string, body any) batchResponse {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(b))
	req.SetBasicAuth(writeKey, "")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out batchResponse
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("decode response (%d): %v", resp.StatusCode, err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST %s: %d %+v", url, resp.StatusCode, out)
	}
	return out
}

// recordsText returns every key, value and header of a topic as one string.
func recordsText(t *testing.T, ctx context.Context, brokers []string, topic string) string {
	t.Helper()
	var sb strings.Builder
	for _, r := range testenv.ReadAll(t, ctx, brokers, topic) {
		sb.Write(r.Key)
		sb.WriteByte('\n')
		sb.Write(r.Value)
		sb.WriteByte('\n')
		for _, h := range r.Headers {
			sb.WriteString(h.Key + "=" + string(h.Value) + "\n")
		}
	}
	return sb.String()
}

// tableText returns every value of every row of table, whatever the column
// types, as one string.
func tableText(t *testing.T, ctx context.Context, conn driver.Conn, table string) string {
	t.Helper()
	rows, err := conn.Query(ctx, "SELECT * FROM "+table)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	types := rows.ColumnTypes()
	var sb strings.Builder
	for rows.Next() {
		dest := make([]any, len(types))
		for i, ct := range types {
			dest[i] = reflect.New(ct.ScanType()).Interface()
		}
		if err := rows.Scan(dest...); err != nil {
			t.Fatal(err)
		}
		for _, d := range dest {
			fmt.Fprintf(&sb, "%v\t", reflect.ValueOf(d).Elem().Interface())
		}
		sb.WriteByte('\n')
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return sb.String()
}

// startOn builds a component on reg, starts it, and shuts it down when the
// test ends.
func startOn(t *testing.T, ctx context.Context, reg *prometheus.Registry, build func(prometheus.Registerer) (obs.Component, error)) obs.Component {
	t.Helper()
	c, err := build(reg)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		if err := c.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return c
}
