package kafkax

import (
	"fmt"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kprom"
	"github.com/twmb/franz-go/plugin/kslog"
)

// NewClient builds a franz-go client from cfg plus extra, with kprom metrics
// registered in reg under namespace (the service name) and franz-go's own
// logs at warn and above routed to log.
func NewClient(cfg *Config, reg prometheus.Registerer, namespace string, log *slog.Logger, extra ...kgo.Opt) (*kgo.Client, error) {
	opts, err := cfg.Opts()
	if err != nil {
		return nil, err
	}
	metrics := kprom.NewMetrics(namespace, kprom.Registerer(reg))
	opts = append(opts,
		kgo.WithHooks(metrics),
		kgo.WithLogger(levelFloor{kslog.New(log.With("component", "franz-go"))}),
	)
	client, err := kgo.NewClient(append(opts, extra...)...)
	if err != nil {
		return nil, fmt.Errorf("kafka client: %w", err)
	}
	return client, nil
}

// levelFloor keeps franz-go's info and debug chatter out of service logs.
type levelFloor struct{ kgo.Logger }

func (levelFloor) Level() kgo.LogLevel { return kgo.LogLevelWarn }
