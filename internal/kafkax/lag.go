package kafkax

import (
	"context"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Lag is a consumer's lag in records: per partition, the high watermark a
// fetch reported minus the offset after its last record, summed over the
// partitions the consumer holds. It is exported as
// <namespace>_consumer_lag_records. On transactional topics each commit
// marker counts as one record, so an idle consumer may show a lag of one
// per partition.
type Lag struct {
	mu  sync.Mutex
	lag map[string]map[int32]int64
}

// NewLag registers the lag gauge of a consumer under namespace.
func NewLag(reg prometheus.Registerer, namespace string) *Lag {
	l := &Lag{lag: map[string]map[int32]int64{}}
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: namespace, Name: "consumer_lag_records",
		Help: "Records between the consumer's position and the partitions' high watermarks as of the last fetch, summed over the partitions it holds.",
	}, l.total))
	return l
}

// Opts forget the lag of partitions the consumer gives up.
func (l *Lag) Opts() []kgo.Opt {
	return []kgo.Opt{kgo.OnPartitionsRevoked(l.forget), kgo.OnPartitionsLost(l.forget)}
}

func (l *Lag) forget(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for topic, partitions := range lost {
		for _, p := range partitions {
			delete(l.lag[topic], p)
		}
	}
}

// Observe records what a poll's fetches say of each partition.
func (l *Lag) Observe(fetches kgo.Fetches) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fetches.EachPartition(func(p kgo.FetchTopicPartition) {
		if n := len(p.Records); n > 0 {
			if l.lag[p.Topic] == nil {
				l.lag[p.Topic] = map[int32]int64{}
			}
			l.lag[p.Topic][p.Partition] = max(0, p.HighWatermark-p.Records[n-1].Offset-1)
		}
	})
}

// Behind is the lag in records as of the last fetches.
func (l *Lag) Behind() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	var sum int64
	for _, parts := range l.lag {
		for _, n := range parts {
			sum += n
		}
	}
	return sum
}

func (l *Lag) total() float64 { return float64(l.Behind()) }
