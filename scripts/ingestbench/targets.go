package main

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

// noopServer is baseline A: a real TCP listener and net/http server that
// reads each body fully and answers as the collector does, so the gap to
// the collector is the collector's own work plus Kafka's acknowledgement.
type noopServer struct {
	srv  *http.Server
	addr string
}

func startNoop() (*noopServer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"success":true}` + "\n"))
		}),
		ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout:       120 * time.Second,
	}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			fmt.Fprintln(os.Stderr, "ingestbench: no-op server:", err)
		}
	}()
	return &noopServer{srv: srv, addr: ln.Addr().String()}, nil
}

func (n *noopServer) close() {
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
