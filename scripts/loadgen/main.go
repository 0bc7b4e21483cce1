// Command loadgen posts demo events to a collector in Segment batch format:
// a few subjects, each with a device, viewing pages and products. It is
// bounded (-events) and only talks to the URL it is given.
//
//	loadgen -url http://127.0.0.1:8080 -write-key demo-write-key -events 300
//
// Consent goes through -consent-write-key, a server source's: a client
// source (a web page's key) may not grant cross-border transfer.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"time"
)

func main() {
	url := flag.String("url", "http://127.0.0.1:8080", "collector base URL")
	writeKey := flag.String("write-key", "demo-write-key", "write key of the events (HTTP Basic username)")
	consentKey := flag.String("consent-write-key", "demo-backend-write-key", "write key of the consent updates: a server source's, since every third subject is granted cross-border transfer")
	events := flag.Int("events", 300, "events to send")
	subjects := flag.Int("subjects", 20, "distinct subjects")
	batchSize := flag.Int("batch", 50, "events per request")
	runID := flag.String("run", fmt.Sprintf("run-%d", time.Now().Unix()), "run id, stored in every event's properties.run")
	consent := flag.Bool("consent", true, "first record each subject's consent (analytics; every third subject also cross-border): the enricher drops events of subjects without consent")
	flag.Parse()

	if *consent {
		if err := grantConsent(*url+"/v1/consent", *consentKey, *subjects); err != nil {
			fmt.Fprintln(os.Stderr, "loadgen:", err)
			os.Exit(1)
		}
	}
	sent, err := send(*url+"/v1/batch", *writeKey, *runID, *events, *subjects, *batchSize)
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
	fmt.Printf("loadgen: %d events accepted for %d subjects (run %s)\n", sent, *subjects, *runID)
}

func send(url, writeKey, runID string, total, subjects, batchSize int) (int, error) {
	client := &http.Client{Timeout: 10 * time.Second}
	pages := []string{"Home", "Search", "Product", "Cart", "Checkout"}
	sent := 0
	for sent < total {
		n := min(batchSize, total-sent)
		batch := make([]map[string]any, n)
		for i := range batch {
			s := rand.IntN(subjects)
			ev := map[string]any{
				"type":        "page",
				"name":        pages[rand.IntN(len(pages))],
				"anonymousId": fmt.Sprintf("anon-%04d", s),
				"messageId":   fmt.Sprintf("%s-%06d", runID, sent+i),
				"timestamp":   time.Now().UTC().Format(time.RFC3339Nano),
				"context": map[string]any{
					"ip":       fmt.Sprintf("198.51.100.%d", s%250+1),
					"locale":   "zh-CN",
					"timezone": "Asia/Shanghai",
					"device":   map[string]any{"id": fmt.Sprintf("device-%04d", s), "model": "Pixel 9", "type": "android"},
					"os":       map[string]any{"name": "Android", "version": "15"},
				},
				"properties": map[string]any{"run": runID},
			}
			if s%2 == 0 { // half the subjects are signed in
				ev["userId"] = fmt.Sprintf("user-%04d", s)
			}
			if rand.IntN(3) == 0 {
				ev["type"], ev["event"] = "track", "Product Viewed"
				ev["properties"] = map[string]any{"run": runID, "sku": fmt.Sprintf("sku-%d", rand.IntN(50)), "price": float64(rand.IntN(10000)) / 100}
			}
			batch[i] = ev
		}
		if err := post(client, url, writeKey, batch); err != nil {
			return sent, err
		}
		sent += n
	}
	return sent, nil
}

// grantConsent records consent under each subject's anonymousId, which
// also covers its events after sign-in.
func grantConsent(url, writeKey string, subjects int) error {
	client := &http.Client{Timeout: 10 * time.Second}
	for s := range subjects {
		update := map[string]any{"anonymousId": fmt.Sprintf("anon-%04d", s), "purposes": map[string]bool{"analytics": true},
			"crossBorder": s%3 == 0, "timestamp": time.Now().Add(-time.Minute).UTC().Format(time.RFC3339Nano)}
		if err := post(client, url, writeKey, update); err != nil {
			return fmt.Errorf("consent: %w", err)
		}
	}
	return nil
}

func post(client *http.Client, url, writeKey string, payload any) error {
	if batch, ok := payload.([]map[string]any); ok {
		payload = map[string]any{"batch": batch, "sentAt": time.Now().UTC().Format(time.RFC3339Nano)}
	}
	body, err := json.Marshal(payload)
	if err != nil {
		return err
	}
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.SetBasicAuth(writeKey, "")
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("post: %w", err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("post: %s: %s", resp.Status, bytes.TrimSpace(msg))
	}
	return nil
}
