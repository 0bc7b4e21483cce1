// Command depcheck tells scripts/deps.sh whether a dependency really answers:
// for Kafka, that the broker returns cluster metadata, not merely that its
// port is open.
//
//	depcheck kafka 127.0.0.1:9092
package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

func main() {
	if len(os.Args) != 3 || os.Args[1] != "kafka" {
		fmt.Fprintln(os.Stderr, "usage: depcheck kafka HOST:PORT")
		os.Exit(2)
	}
	if err := checkKafka(os.Args[2]); err != nil {
		fmt.Fprintln(os.Stderr, "depcheck:", err)
		os.Exit(1)
	}
}

func checkKafka(addr string) error {
	client, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		return fmt.Errorf("kafka client: %w", err)
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	meta, err := kadm.NewClient(client).BrokerMetadata(ctx)
	if err != nil {
		return fmt.Errorf("kafka metadata from %s: %w", addr, err)
	}
	if len(meta.Brokers) == 0 {
		return fmt.Errorf("kafka at %s reports no brokers", addr)
	}
	fmt.Printf("kafka cluster %s, %d broker(s), controller %d\n", meta.Cluster, len(meta.Brokers), meta.Controller)
	return nil
}
