package ingest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// newHTTPSender posts /v1/batch bodies to baseURL. Each target gets its own
// transport, so connections to one are never reused for another and the
// pool holds one idle connection per worker.
func newHTTPSender(gen *eventGen, baseURL, writeKey string, workers int) (sendFunc, func()) {
	tr := &http.Transport{
		MaxIdleConns:        workers,
		MaxIdleConnsPerHost: workers,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	client := &http.Client{Transport: tr, Timeout: requestTimeout}
	url := baseURL + "/v1/batch"
	send := func(ctx context.Context, n int) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(gen.batchBody(n)))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		req.SetBasicAuth(writeKey, "")
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		// Read to the end so the connection goes back to the pool.
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("HTTP %d: %s", resp.StatusCode, bytes.TrimSpace(body))
		}
		return nil
	}
	return send, tr.CloseIdleConnections
}

// localServer is an in-process net/http server on a real TCP listener.
type localServer struct {
	srv  *http.Server
	addr string
}

// startNoop is baseline A: a server that reads each body fully and answers
// as the collector does, so the gap to the collector is the collector's own
// work plus Kafka's acknowledgement.
func startNoop() (*localServer, error) {
	return serve(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"success":true}` + "\n"))
	}))
}

// serve serves h on a fresh 127.0.0.1 listener.
func serve(h http.Handler) (*localServer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout:       120 * time.Second,
	}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			fmt.Fprintln(os.Stderr, "ingestbench: in-process server:", err)
		}
	}()
	return &localServer{srv: srv, addr: ln.Addr().String()}, nil
}

func (n *localServer) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = n.srv.Shutdown(ctx)
}

// newRawProducer is baseline B: franz-go with the collector's producer
// settings, writing each event as its own record (key: anonymousId) to
// topic, one ProduceSync per batch. It is the ceiling for the collector,
// which does this plus HTTP, validation and de-identification.
func newRawProducer(brokers []string, topic string) (*kgo.Client, error) {
	return kgo.NewClient(
		kgo.SeedBrokers(brokers...),
		kgo.ClientID("ingestbench-raw"),
		kgo.DefaultProduceTopic(topic),
		kgo.RequiredAcks(kgo.AllISRAcks()), // idempotent, the default, needs acks=all
		// The collector's own settings (collector/ingest.New).
		kgo.ProducerBatchCompression(kgo.Lz4Compression(), kgo.NoCompression()),
		kgo.ProducerLinger(0),
	)
}

// rawSender sends each batch with ProduceSync, or, if async, with one
// Produce per record and a wait for all their promises, as the collector
// does.
func rawSender(cl *kgo.Client, gen *eventGen, async bool) sendFunc {
	return func(ctx context.Context, n int) error {
		ctx, cancel := context.WithTimeout(ctx, requestTimeout)
		defer cancel()
		records := make([]*kgo.Record, n)
		for i := range records {
			value, key := gen.appendEvent(make([]byte, 0, 800))
			records[i] = &kgo.Record{Key: key, Value: value}
		}
		if !async {
			return cl.ProduceSync(ctx, records...).FirstErr()
		}
		errs := make([]error, n)
		var wg sync.WaitGroup
		wg.Add(n)
		for i, rec := range records {
			cl.Produce(ctx, rec, func(_ *kgo.Record, err error) {
				errs[i] = err
				wg.Done()
			})
		}
		wg.Wait()
		return errors.Join(errs...)
	}
}

// startRelay serves baseline C: HTTP in, one record per event out, answered
// once Kafka acknowledged them all, and nothing else: no authentication,
// validation, limits or envelope. It splits a /v1/batch body at the
// top-level commas of its array and keys each record by the anonymousId it
// finds in the bytes. It is the ceiling for any collector built on net/http
// and franz-go on this machine: what separates it from raw is the HTTP hop
// (the load generator's and the server's share of the CPUs), what separates
// the collector from it is the collector's own work.
func startRelay(producer *kgo.Client) (*localServer, error) {
	return serve(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		events := splitBatch(body)
		errs := make(chan error, len(events))
		for _, ev := range events {
			producer.Produce(r.Context(), &kgo.Record{Key: anonymousID(ev), Value: ev}, func(_ *kgo.Record, err error) { errs <- err })
		}
		for range events {
			if err := <-errs; err != nil {
				http.Error(w, err.Error(), http.StatusServiceUnavailable)
				return
			}
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"success":true}` + "\n"))
	}))
}

// splitBatch returns the elements of the array in {"batch":[...]}, found
// by depth and string state alone.
func splitBatch(body []byte) [][]byte {
	start := bytes.IndexByte(body, '[')
	if start < 0 {
		return nil
	}
	var out [][]byte
	depth, inString, escaped, from := 0, false, false, start+1
	for i := start + 1; i < len(body); i++ {
		c := body[i]
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == '{' || c == '[':
			depth++
		case c == '}' || c == ']':
			if depth == 0 { // the array's end
				if ev := bytes.TrimSpace(body[from:i]); len(ev) > 0 {
					out = append(out, ev)
				}
				return out
			}
			depth--
		case c == ',' && depth == 0:
			out = append(out, body[from:i])
			from = i + 1
		}
	}
	return out
}

// anonymousID is the value of the first "anonymousId" in ev, the
// collector's Kafka key.
func anonymousID(ev []byte) []byte {
	const mark = `"anonymousId":"`
	i := bytes.Index(ev, []byte(mark))
	if i < 0 {
		return nil
	}
	v := ev[i+len(mark):]
	if j := bytes.IndexByte(v, '"'); j >= 0 {
		return v[:j]
	}
	return nil
}
