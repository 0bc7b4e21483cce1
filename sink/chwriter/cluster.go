package chwriter

// Replicated ClickHouse (the config's cluster set), and this comment is where
// the sink's behaviour on a cluster lives.
//
// Tables: events is a ReplicatedMergeTree and privacy_audit a
// ReplicatedReplacingMergeTree, at /clickhouse/tables/{shard}/<database>/<table>
// in ZooKeeper, replica {replica}: the server's macros. events_all, a
// Distributed table over the cluster, is for analysts; the sink never
// writes to it. The sink inserts into one replica: the first of
// clickhouse.addr that answers (list every replica, so that it moves on
// when that one dies).
//
// DDL is explicit per replica, on every server version, never ON CLUSTER:
// the sink reaches every replica anyway (below), so it needs no
// distributed_ddl queue in ZooKeeper (an 18.16 server has ON CLUSTER only
// when its config names one), a replica that is down fails the start at
// once and by name instead of after distributed_ddl_task_timeout, and the
// statements run as the sink's own user. CREATE runs on each replica; an
// ALTER of a replicated table (a column, a mutation, DROP PARTITION) runs
// once, ZooKeeper replicates it, and the sink checks its result on each.
//
// Exactly once: a replica that lags (fetches stopped, or behind) does not
// hold every row another one acknowledged, so the resume point
// (resumeAfterStoredRows) is the highest offset over every replica of the
// cluster, and fails (the group rejoins and asks again) until every
// replica answers. It waits for Start to have found the replicas: the
// group's first assignment can come before, and the one server the sink
// connects to may be the lagging one. An insert whose outcome is unknown is not looked up
// (the replica that took it may be the one that died): the identical block
// is sent again, to whichever replica answers, and the replicated table's
// block de-duplication (insert_deduplicate, on by default; the block's
// hash is kept in ZooKeeper, shared by the replicas, for the last
// replicated_deduplication_window blocks: replicatedSettings) drops it if any
// replica committed it. Rows carry their partition and offset, so two
// different batches never hash alike.
//
// One shard: a cluster of several is refused at start (discoverReplicas).
//
// Erasure and retention: the mutation or DROP PARTITION is issued once;
// the erasure's count and wait for mutations, and retention's check that
// the month is gone, run on every replica, so a receipt says deleted only
// once no replica holds the rows.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/consentflow/consentflow/internal/chx"
)

// replica is one server of the cluster, reached directly.
type replica struct {
	addr string
	conn driver.Conn
}

// engine is the ENGINE clause of table in db: the plain one without a
// cluster, its Replicated form with one.
func engine(cluster, plain, db, table string) string {
	if cluster == "" {
		return plain + "()"
	}
	return fmt.Sprintf("Replicated%s('/clickhouse/tables/{shard}/%s/%s', '{replica}')", plain, db, table)
}

// replicatedSettings are the replicated events table's settings: an
// insert whose outcome was unsure is resent as the identical block, which
// ZooKeeper drops if it remembers the block; it remembers the last
// replicated_deduplication_window blocks (100 by default), which two sinks
// flushing each second with a block per month fill in under a minute. A
// thousand covers a sink held back from resending for several minutes.
func replicatedSettings(cluster string) string {
	if cluster == "" {
		return ""
	}
	return "\nSETTINGS replicated_deduplication_window = 1000"
}

// distributedTable is the analysts' table over every shard of the cluster.
const distributedTable = "events_all"

// discoverReplicas lists the servers of cluster as the server behind conn
// knows them (system.clusters) and opens a connection to each, with the
// user and TLS of cfg.
func discoverReplicas(ctx context.Context, conn driver.Conn, cfg *chx.Config, cluster string) ([]replica, error) {
	query, args := clusterServersQuery(cluster)
	rows, err := conn.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("read system.clusters: %w", err)
	}
	var addrs []string
	shards := map[uint32]bool{}
	for rows.Next() {
		var shard uint32
		var host string
		var port uint16
		if err := rows.Scan(&shard, &host, &port); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read system.clusters: %w", err)
		}
		shards[shard] = true
		addrs = append(addrs, net.JoinHostPort(host, strconv.Itoa(int(port))))
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read system.clusters: %w", err)
	}
	if len(addrs) == 0 {
		return nil, fmt.Errorf("cluster: the server at %v has no cluster %q in its remote_servers", cfg.Addr, cluster)
	}
	// A mutation or DROP PARTITION reaches the replicas of the shard it is
	// issued on only; the sink issues each once, so it takes one shard.
	if len(shards) > 1 {
		return nil, fmt.Errorf("cluster: %q has %d shards; the sink loads one shard of replicas: name a cluster of one shard", cluster, len(shards))
	}
	out := make([]replica, 0, len(addrs))
	for _, a := range addrs {
		c := *cfg
		c.Addr = []string{a}
		rc, err := chx.Open(&c)
		if err != nil {
			closeReplicas(out)
			return nil, err
		}
		out = append(out, replica{addr: a, conn: rc})
	}
	return out, nil
}

func closeReplicas(rs []replica) {
	for _, r := range rs {
		_ = r.conn.Close()
	}
}

// eachReplica runs f on every replica and joins the errors, each naming
// its replica (a replica without an address stands for the one server).
func eachReplica(rs []replica, f func(r replica) error) error {
	var errs []error
	for _, r := range rs {
		if err := f(r); err != nil && r.addr == "" {
			errs = append(errs, err)
		} else if err != nil {
			errs = append(errs, fmt.Errorf("replica %s: %w", r.addr, err))
		}
	}
	return errors.Join(errs...)
}
