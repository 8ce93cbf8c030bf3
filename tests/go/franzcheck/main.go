// franzcheck: a small command-line driver for franz-go (kgo + kadm), used by pykbroker's compat suite
// (compat/checks/franz_go.py) to check wire compatibility with the strictest Go Kafka client.
//
// Build: tests/tools/setup_franz_go.sh   (fetches the modules from the Go module proxy, builds .tools/bin/franzcheck)
// Run:   echo '{"bootstrap":"127.0.0.1:9092","timeout_ms":20000}' | .tools/bin/franzcheck metadata
//
// Each command reads one JSON object (its parameters) on stdin and prints one JSON object on stdout:
// {"ok":true,...} on success, {"ok":false,"error":"..."} on failure (exit 1; exit 2 for a usage error).
// Byte fields (keys, values, header values) are base64 in JSON, null for a null key or value.
//
//	metadata                                        -> topics, brokers, cluster, controller
//	create-topic   topic, partitions, configs{k:v}  -> configs as DescribeConfigs reports them afterwards
//	describe-topic topic                            -> partitions, leaders
//	delete-topics  topics[]
//	produce        topic, records[], acks(all|1|0), compression, idempotent -> acked [[partition, offset]]
//	transactional-produce topic, transactional_id, transactions[{records[], commit}] (each: begin, send, end)
//	consume        topic, starts{partition: offset|null}, count, read_committed -> records[]
//	end-offsets    topic                            -> offsets{partition: end offset}
//	offset-for-time topic, partition, timestamp     -> offset, timestamp (kadm's end-offset fallback: timestamp -1)
//	group-consume  topic, group, count              -> records[], committed{partition: offset} (cooperative-sticky)
//	group-list-describe topic, group                -> listed, state, members, protocol (one member active)
//
// Client logs go to stderr at the level in $FRANZCHECK_LOG (error|warn|info|debug; default warn).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// params is the union of every command's parameters (each uses the ones it needs).
type params struct {
	Bootstrap   string            `json:"bootstrap"`
	TimeoutMs   int64             `json:"timeout_ms"`
	Topic       string            `json:"topic"`
	Topics      []string          `json:"topics"`
	Partitions  int32             `json:"partitions"`
	Partition   int32             `json:"partition"`
	Configs     map[string]string `json:"configs"`
	Records     []record          `json:"records"`
	Acks        string            `json:"acks"`
	Compression string            `json:"compression"`
	Idempotent  bool              `json:"idempotent"`
	Starts      map[string]*int64 `json:"starts"`
	Count       int               `json:"count"`
	Group       string            `json:"group"`
	Timestamp   int64             `json:"timestamp"`
	// admin_surface.go's client-quotas
	ClientID string  `json:"client_id"`
	Rate     float64 `json:"rate"`
	// transactional-produce and read_committed consume
	TransactionalID string        `json:"transactional_id"`
	Transactions    []transaction `json:"transactions"`
	ReadCommitted   bool          `json:"read_committed"`
}

type transaction struct {
	Records []record `json:"records"`
	Commit  bool     `json:"commit"`
}

type header struct {
	Key   string `json:"key"`
	Value []byte `json:"value"`
}

type record struct {
	Key       []byte   `json:"key"`
	Value     []byte   `json:"value"`
	Headers   []header `json:"headers"`
	Timestamp *int64   `json:"timestamp"`
	Partition *int32   `json:"partition"`
	Offset    int64    `json:"offset"`
}

type result map[string]any

type usageError struct{ error }

var commands = map[string]func(context.Context, *params) (result, error){
	"metadata":              metadata,
	"create-topic":          createTopic,
	"describe-topic":        describeTopic,
	"delete-topics":         deleteTopics,
	"produce":               produce,
	"transactional-produce": transactionalProduce,
	"consume":               consume,
	"end-offsets":           endOffsets,
	"offset-for-time":       offsetForTime,
	"group-consume":         groupConsume,
	"group-list-describe":   groupListDescribe,
}

func main() {
	if len(os.Args) != 2 || commands[os.Args[1]] == nil {
		names := make([]string, 0, len(commands))
		for name := range commands {
			names = append(names, name)
		}
		sort.Strings(names)
		finish(nil, usageError{fmt.Errorf("usage: franzcheck COMMAND < params.json; commands: %s",
			strings.Join(names, ", "))})
	}
	var p params
	raw, err := io.ReadAll(os.Stdin)
	if err == nil {
		err = json.Unmarshal(raw, &p)
	}
	if err != nil || p.Bootstrap == "" {
		finish(nil, usageError{fmt.Errorf("stdin must be a JSON object with at least \"bootstrap\" (%v)", err)})
	}
	if p.TimeoutMs <= 0 {
		p.TimeoutMs = 30000
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(p.TimeoutMs)*time.Millisecond)
	defer cancel()
	out, err := commands[os.Args[1]](ctx, &p)
	if err != nil && ctx.Err() != nil {
		err = fmt.Errorf("timed out after %d ms: %w", p.TimeoutMs, err)
	}
	finish(out, err)
}

// finish prints the one result line and exits: 0 ok, 1 failed, 2 usage.
func finish(out result, err error) {
	if out == nil {
		out = result{}
	}
	code := 0
	out["ok"] = err == nil
	if err != nil {
		out["error"] = err.Error()
		code = 1
		var u usageError
		if errors.As(err, &u) {
			code = 2
		}
	}
	line, _ := json.Marshal(out)
	fmt.Println(string(line))
	os.Exit(code)
}

func logLevel() kgo.LogLevel {
	switch strings.ToLower(os.Getenv("FRANZCHECK_LOG")) {
	case "error":
		return kgo.LogLevelError
	case "info":
		return kgo.LogLevelInfo
	case "debug":
		return kgo.LogLevelDebug
	case "none", "off":
		return kgo.LogLevelNone
	}
	return kgo.LogLevelWarn
}

func newClient(p *params, opts ...kgo.Opt) (*kgo.Client, error) {
	base := []kgo.Opt{
		kgo.SeedBrokers(strings.Split(p.Bootstrap, ",")...),
		kgo.ClientID("franzcheck"),
		kgo.WithLogger(kgo.BasicLogger(os.Stderr, logLevel(), nil)),
	}
	return kgo.NewClient(append(base, opts...)...)
}

// withAdmin runs fn with a kadm client over a fresh kgo client, closed afterwards.
func withAdmin(p *params, fn func(*kadm.Client) (result, error)) (result, error) {
	cl, err := newClient(p)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	return fn(kadm.NewClient(cl))
}

// retry calls fn until it succeeds or ctx ends (the broker may still be catching up); the last error.
func retry(ctx context.Context, fn func() error) error {
	for {
		err := fn()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// ---------------------------------------------------------------- admin (kadm)

func metadata(ctx context.Context, p *params) (result, error) {
	return withAdmin(p, func(adm *kadm.Client) (result, error) {
		md, err := adm.Metadata(ctx)
		if err != nil {
			return nil, err
		}
		brokers := []result{}
		for _, b := range md.Brokers {
			brokers = append(brokers, result{"id": b.NodeID, "host": b.Host, "port": b.Port})
		}
		return result{"topics": md.Topics.Names(), "brokers": brokers, "cluster": md.Cluster,
			"controller": md.Controller}, nil
	})
}

func createTopic(ctx context.Context, p *params) (result, error) {
	return withAdmin(p, func(adm *kadm.Client) (result, error) {
		configs := map[string]*string{}
		for k, v := range p.Configs {
			configs[k] = kadm.StringPtr(v)
		}
		resp, err := adm.CreateTopic(ctx, p.Partitions, -1, configs, p.Topic)
		if err == nil {
			err = resp.Err
		}
		if err != nil {
			return nil, fmt.Errorf("create %s: %w (%s)", p.Topic, err, resp.ErrMessage)
		}
		described := map[string]any{}
		if len(p.Configs) > 0 {
			err = retry(ctx, func() error {
				rcs, err := adm.DescribeTopicConfigs(ctx, p.Topic)
				if err != nil {
					return err
				}
				rc, err := rcs.On(p.Topic, nil)
				if err == nil {
					err = rc.Err
				}
				if err != nil {
					return err
				}
				for _, c := range rc.Configs {
					if _, asked := p.Configs[c.Key]; asked {
						described[c.Key] = result{"value": c.Value, "source": c.Source.String()}
					}
				}
				return nil
			})
			if err != nil {
				return nil, fmt.Errorf("describe configs of %s: %w", p.Topic, err)
			}
		}
		return result{"topic": p.Topic, "topic_id": resp.ID.String(), "partitions": resp.NumPartitions,
			"replication_factor": resp.ReplicationFactor, "configs": described}, nil
	})
}

func describeTopic(ctx context.Context, p *params) (result, error) {
	return withAdmin(p, func(adm *kadm.Client) (result, error) {
		tds, err := adm.ListTopics(ctx, p.Topic)
		if err != nil {
			return nil, err
		}
		td, ok := tds[p.Topic]
		if !ok {
			return nil, fmt.Errorf("%s missing from the metadata response", p.Topic)
		}
		if td.Err != nil {
			return nil, fmt.Errorf("describe %s: %w", p.Topic, td.Err)
		}
		leaders := map[string]int32{}
		for _, pd := range td.Partitions {
			if pd.Err != nil {
				return nil, fmt.Errorf("describe %s partition %d: %w", p.Topic, pd.Partition, pd.Err)
			}
			leaders[strconv.Itoa(int(pd.Partition))] = pd.Leader
		}
		return result{"topic": p.Topic, "topic_id": td.ID.String(), "partitions": len(td.Partitions),
			"leaders": leaders}, nil
	})
}

func deleteTopics(ctx context.Context, p *params) (result, error) {
	return withAdmin(p, func(adm *kadm.Client) (result, error) {
		resps, err := adm.DeleteTopics(ctx, p.Topics...)
		if err != nil {
			return nil, err
		}
		if err := resps.Error(); err != nil {
			return nil, err
		}
		return result{"deleted": p.Topics}, nil
	})
}

func endOffsets(ctx context.Context, p *params) (result, error) {
	return withAdmin(p, func(adm *kadm.Client) (result, error) {
		listed, err := adm.ListEndOffsets(ctx, p.Topic)
		if err == nil {
			err = listed.Error()
		}
		if err != nil {
			return nil, err
		}
		offsets := map[string]int64{}
		listed.Each(func(o kadm.ListedOffset) { offsets[strconv.Itoa(int(o.Partition))] = o.Offset })
		return result{"offsets": offsets}, nil
	})
}

func offsetForTime(ctx context.Context, p *params) (result, error) {
	return withAdmin(p, func(adm *kadm.Client) (result, error) {
		listed, err := adm.ListOffsetsAfterMilli(ctx, p.Timestamp, p.Topic)
		if err == nil {
			err = listed.Error()
		}
		if err != nil {
			return nil, err
		}
		o, ok := listed.Lookup(p.Topic, p.Partition)
		if !ok {
			return nil, fmt.Errorf("no listed offset for %s/%d", p.Topic, p.Partition)
		}
		return result{"offset": o.Offset, "timestamp": o.Timestamp}, nil
	})
}

// ---------------------------------------------------------------- produce (kgo)

var codecs = map[string]kgo.CompressionCodec{
	"": kgo.NoCompression(), "none": kgo.NoCompression(), "gzip": kgo.GzipCompression(),
	"snappy": kgo.SnappyCompression(), "lz4": kgo.Lz4Compression(), "zstd": kgo.ZstdCompression(),
}

var acks = map[string]kgo.Acks{"": kgo.AllISRAcks(), "all": kgo.AllISRAcks(), "-1": kgo.AllISRAcks(),
	"1": kgo.LeaderAck(), "0": kgo.NoAck()}

func produce(ctx context.Context, p *params) (result, error) {
	codec, okCodec := codecs[p.Compression]
	ack, okAcks := acks[p.Acks]
	if !okCodec || !okAcks {
		return nil, usageError{fmt.Errorf("unknown compression %q or acks %q", p.Compression, p.Acks)}
	}
	opts := []kgo.Opt{kgo.DefaultProduceTopic(p.Topic), kgo.RequiredAcks(ack),
		kgo.ProducerBatchCompression(codec), kgo.ProducerLinger(5 * time.Millisecond)}
	// franz-go's producer is idempotent by default, which requires acks=all: off only where acks are lower.
	if !p.Idempotent && p.Acks != "" && p.Acks != "all" && p.Acks != "-1" {
		opts = append(opts, kgo.DisableIdempotentWrite())
	}
	cl, err := newClient(p, append(opts, partitioner(p.Records)...)...)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	acked, err := send(ctx, cl, p.Records)
	if err != nil {
		return nil, err
	}
	return result{"acked": acked}, nil
}

// partitioner: records that name their partition go there; otherwise kgo's default (murmur2 of the key).
func partitioner(recs []record) []kgo.Opt {
	if len(recs) > 0 && recs[0].Partition != nil {
		return []kgo.Opt{kgo.RecordPartitioner(kgo.ManualPartitioner())}
	}
	return nil
}

// send produces recs and waits for every ack: [partition, offset] per record, or the first failure.
func send(ctx context.Context, cl *kgo.Client, recs []record) ([][2]int64, error) {
	acked := make([][2]int64, len(recs))
	errs := make([]error, len(recs))
	for i, r := range recs {
		rec := &kgo.Record{Key: r.Key, Value: r.Value}
		for _, h := range r.Headers {
			rec.Headers = append(rec.Headers, kgo.RecordHeader{Key: h.Key, Value: h.Value})
		}
		if r.Timestamp != nil {
			rec.Timestamp = time.UnixMilli(*r.Timestamp)
		}
		if r.Partition != nil {
			rec.Partition = *r.Partition
		}
		i := i
		cl.Produce(ctx, rec, func(rec *kgo.Record, err error) {
			acked[i], errs[i] = [2]int64{int64(rec.Partition), rec.Offset}, err
		})
	}
	if err := cl.Flush(ctx); err != nil {
		return nil, fmt.Errorf("flush: %w", err)
	}
	failed := 0
	var first error
	for _, err := range errs {
		if err != nil {
			failed++
			if first == nil {
				first = err
			}
		}
	}
	if first != nil {
		return nil, fmt.Errorf("%d of %d records failed; first: %w", failed, len(errs), first)
	}
	return acked, nil
}

func transactionalProduce(ctx context.Context, p *params) (result, error) {
	var all []record
	for _, t := range p.Transactions {
		all = append(all, t.Records...)
	}
	opts := append([]kgo.Opt{kgo.DefaultProduceTopic(p.Topic), kgo.TransactionalID(p.TransactionalID)},
		partitioner(all)...)
	cl, err := newClient(p, opts...)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	ended := []bool{}
	for i, t := range p.Transactions {
		if err := cl.BeginTransaction(); err != nil {
			return nil, fmt.Errorf("transaction %d: begin: %w", i, err)
		}
		// acked before the end, as the other clients do: aborted records are in the log too
		if _, err := send(ctx, cl, t.Records); err != nil {
			return nil, fmt.Errorf("transaction %d: %w", i, err)
		}
		end := kgo.TryAbort
		if t.Commit {
			end = kgo.TryCommit
		}
		if err := cl.EndTransaction(ctx, end); err != nil {
			return nil, fmt.Errorf("transaction %d: end (commit %v): %w", i, t.Commit, err)
		}
		ended = append(ended, t.Commit)
	}
	return result{"ended": ended}, nil
}

// ---------------------------------------------------------------- consume (kgo)

func toRecord(r *kgo.Record) record {
	ts := r.Timestamp.UnixMilli()
	part := r.Partition
	out := record{Key: r.Key, Value: r.Value, Timestamp: &ts, Partition: &part, Offset: r.Offset,
		Headers: []header{}}
	for _, h := range r.Headers {
		out.Headers = append(out.Headers, header{Key: h.Key, Value: h.Value})
	}
	return out
}

// poll reads until count records arrived (the first count, in fetch order) or ctx ends.
func poll(ctx context.Context, cl *kgo.Client, count int) ([]*kgo.Record, error) {
	var got []*kgo.Record
	for len(got) < count {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return got, fmt.Errorf("received %d of %d records: %w", len(got), count, ctx.Err())
		}
		var fetchErr error
		fetches.EachError(func(t string, p int32, err error) {
			fetchErr = errors.Join(fetchErr, fmt.Errorf("fetch %s/%d: %w", t, p, err))
		})
		if fetchErr != nil {
			return got, fetchErr
		}
		fetches.EachRecord(func(r *kgo.Record) {
			if len(got) < count {
				got = append(got, r)
			}
		})
	}
	return got, nil
}

func records(recs []*kgo.Record) []record {
	out := make([]record, 0, len(recs))
	for _, r := range recs {
		out = append(out, toRecord(r))
	}
	return out
}

func consume(ctx context.Context, p *params) (result, error) {
	starts := map[int32]kgo.Offset{}
	for part, at := range p.Starts {
		n, err := strconv.Atoi(part)
		if err != nil {
			return nil, usageError{fmt.Errorf("bad partition %q", part)}
		}
		starts[int32(n)] = kgo.NewOffset().AtStart()
		if at != nil {
			starts[int32(n)] = kgo.NewOffset().At(*at)
		}
	}
	isolation := kgo.ReadUncommitted()
	if p.ReadCommitted {
		isolation = kgo.ReadCommitted()
	}
	cl, err := newClient(p, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{p.Topic: starts}),
		kgo.FetchIsolationLevel(isolation))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	got, err := poll(ctx, cl, p.Count)
	return result{"records": records(got)}, err
}

// groupMember is a kgo group consumer with the cooperative-sticky balancer and manual commits.
func groupMember(p *params, opts ...kgo.Opt) (*kgo.Client, error) {
	return newClient(p, append([]kgo.Opt{kgo.ConsumerGroup(p.Group), kgo.ConsumeTopics(p.Topic),
		kgo.Balancers(kgo.CooperativeStickyBalancer()), kgo.DisableAutoCommit(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.SessionTimeout(6 * time.Second)}, opts...)...)
}

func groupConsume(ctx context.Context, p *params) (result, error) {
	cl, err := groupMember(p)
	if err != nil {
		return nil, err
	}
	defer cl.Close() // leaves the group
	got, err := poll(ctx, cl, p.Count)
	if err != nil {
		return result{"records": records(got)}, err
	}
	if err := cl.CommitRecords(ctx, got...); err != nil {
		return nil, fmt.Errorf("commit: %w", err)
	}
	// Read the commit back through the admin API (OffsetFetch) so the result shows what the broker stored.
	fetched, err := kadm.NewClient(cl).FetchOffsets(ctx, p.Group)
	if err == nil {
		err = fetched.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("fetch committed offsets: %w", err)
	}
	committed := map[string]int64{}
	fetched.Each(func(o kadm.OffsetResponse) {
		if o.Topic == p.Topic {
			committed[strconv.Itoa(int(o.Partition))] = o.At
		}
	})
	return result{"records": records(got), "committed": committed}, nil
}

func groupListDescribe(ctx context.Context, p *params) (result, error) {
	assigned := make(chan struct{}, 1)
	member, err := groupMember(p, kgo.OnPartitionsAssigned(func(context.Context, *kgo.Client, map[string][]int32) {
		select {
		case assigned <- struct{}{}:
		default:
		}
	}))
	if err != nil {
		return nil, err
	}
	defer member.Close()
	go func() { // keeps the member polling, as an application would
		for ctx.Err() == nil && !member.PollFetches(ctx).IsClientClosed() {
		}
	}()
	select {
	case <-assigned:
	case <-ctx.Done():
		return nil, fmt.Errorf("the member got no assignment: %w", ctx.Err())
	}
	out := result{}
	err = retry(ctx, func() error {
		return listDescribe(ctx, kadm.NewClient(member), p, out)
	})
	return out, err
}

// listDescribe fills out from ListGroups and DescribeGroups; an error until the group shows one Stable member.
func listDescribe(ctx context.Context, adm *kadm.Client, p *params, out result) error {
	listed, err := adm.ListGroups(ctx)
	if err != nil {
		return fmt.Errorf("list groups: %w", err)
	}
	lg, ok := listed[p.Group]
	out["listed"] = ok
	out["listed_state"] = lg.State
	out["listed_protocol_type"] = lg.ProtocolType
	described, err := adm.DescribeGroups(ctx, p.Group)
	if err == nil {
		err = described.Error()
	}
	if err != nil {
		return fmt.Errorf("describe group: %w", err)
	}
	d := described[p.Group]
	out["state"], out["members"], out["protocol"], out["protocol_type"] = d.State, len(d.Members), d.Protocol, d.ProtocolType
	topics := []string{}
	for _, m := range d.Members {
		if a, ok := m.Assigned.AsConsumer(); ok {
			for _, t := range a.Topics {
				topics = append(topics, t.Topic)
			}
		}
	}
	out["assigned_topics"] = topics
	if !ok || d.State != "Stable" || len(d.Members) != 1 {
		return fmt.Errorf("group %s: listed %v, state %q, %d members", p.Group, ok, d.State, len(d.Members))
	}
	return nil
}
