// The admin APIs beyond topics (issue 12), each a command returning the facts it observed, as
// tests/java/AdminSurface.java does for the Java client: raw kmsg requests through a kgo client, so
// the bytes are franz-go's own and the answers (error codes) are reported as they come.
package main

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() {
	commands["admin-configs"] = adminConfigs
	commands["admin-partitions"] = adminPartitions
	commands["admin-log-dirs"] = adminLogDirs
	commands["admin-replicas"] = adminReplicas
	commands["client-quotas"] = clientQuotas
}

// withClient runs fn with a fresh kgo client, closed afterwards.
func withClient(p *params, fn func(*kgo.Client) (result, error)) (result, error) {
	cl, err := newClient(p)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	return fn(cl)
}

func errName(code int16) string {
	if err := kerr.ErrorForCode(code); err != nil {
		return kerr.TypedErrorForCode(code).Message
	}
	return "ok"
}

func nodeID(ctx context.Context, cl *kgo.Client) (int32, error) {
	resp, err := kmsg.NewPtrDescribeClusterRequest().RequestWith(ctx, cl)
	if err != nil {
		return 0, err
	}
	if len(resp.Brokers) == 0 {
		return 0, fmt.Errorf("DescribeCluster listed no brokers")
	}
	return resp.Brokers[0].NodeID, nil
}

func describeTopicConfigs(ctx context.Context, cl *kgo.Client, topic string) (map[string]result, error) {
	req := kmsg.NewPtrDescribeConfigsRequest()
	req.IncludeSynonyms, req.IncludeDocumentation = true, true
	res := kmsg.NewDescribeConfigsRequestResource()
	res.ResourceType, res.ResourceName = kmsg.ConfigResourceTypeTopic, topic
	req.Resources = append(req.Resources, res)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return nil, err
	}
	if len(resp.Resources) != 1 || resp.Resources[0].ErrorCode != 0 {
		return nil, fmt.Errorf("DescribeConfigs of %s: %v", topic, resp.Resources)
	}
	out := map[string]result{}
	for _, c := range resp.Resources[0].Configs {
		out[c.Name] = result{"value": c.Value, "source": c.Source.String(), "documented": c.Documentation != nil && *c.Documentation != ""}
	}
	return out, nil
}

func adminConfigs(ctx context.Context, p *params) (result, error) {
	return withClient(p, func(cl *kgo.Client) (result, error) {
		var before map[string]result
		err := retry(ctx, func() error { // Kafka's broker learns of a new topic a moment after CreateTopics
			var err error
			before, err = describeTopicConfigs(ctx, cl, p.Topic)
			return err
		})
		if err != nil {
			return nil, err
		}
		req := kmsg.NewPtrIncrementalAlterConfigsRequest()
		res := kmsg.NewIncrementalAlterConfigsRequestResource()
		res.ResourceType, res.ResourceName = kmsg.ConfigResourceTypeTopic, p.Topic
		c := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
		value := "7200000"
		c.Name, c.Op, c.Value = "retention.ms", kmsg.IncrementalAlterConfigOpSet, &value
		res.Configs = append(res.Configs, c)
		req.Resources = append(req.Resources, res)
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			return nil, err
		}
		altered := "?"
		if len(resp.Resources) == 1 {
			altered = errName(resp.Resources[0].ErrorCode)
		}
		var after map[string]result
		err = retry(ctx, func() error {
			var err error
			after, err = describeTopicConfigs(ctx, cl, p.Topic)
			if err == nil && *after["retention.ms"]["value"].(*string) != value {
				err = fmt.Errorf("retention.ms not altered yet")
			}
			return err
		})
		if err != nil {
			return nil, err
		}
		undocumented := 0
		for _, c := range before {
			if !c["documented"].(bool) {
				undocumented++
			}
		}
		return result{"retention_ms": before["retention.ms"], "segment_bytes": before["segment.bytes"], "altered": altered,
			"retention_ms_after": after["retention.ms"], "undocumented": undocumented}, nil
	})
}

func createPartitions(ctx context.Context, cl *kgo.Client, topic string, count int32, replicas ...[]int32) (string, error) {
	req := kmsg.NewPtrCreatePartitionsRequest()
	req.TimeoutMillis = 10000
	t := kmsg.NewCreatePartitionsRequestTopic()
	t.Topic, t.Count = topic, count
	for _, r := range replicas {
		a := kmsg.NewCreatePartitionsRequestTopicAssignment()
		a.Replicas = r
		t.Assignment = append(t.Assignment, a)
	}
	req.Topics = append(req.Topics, t)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return "", err
	}
	if len(resp.Topics) != 1 {
		return "", fmt.Errorf("CreatePartitions answered %d topics", len(resp.Topics))
	}
	return errName(resp.Topics[0].ErrorCode), nil
}

func adminPartitions(ctx context.Context, p *params) (result, error) {
	return withClient(p, func(cl *kgo.Client) (result, error) {
		node, err := nodeID(ctx, cl)
		if err != nil {
			return nil, err
		}
		assigned, err := createPartitions(ctx, cl, p.Topic, 3, []int32{node}, []int32{node})
		if err != nil {
			return nil, err
		}
		unknown, err := createPartitions(ctx, cl, p.Topic, 4, []int32{999})
		if err != nil {
			return nil, err
		}
		return result{"assigned": assigned, "unknown_broker": unknown}, nil
	})
}

func alterReplicaLogDir(ctx context.Context, cl *kgo.Client, topic, dir string) (string, error) {
	req := kmsg.NewPtrAlterReplicaLogDirsRequest()
	d := kmsg.NewAlterReplicaLogDirsRequestDir()
	t := kmsg.NewAlterReplicaLogDirsRequestDirTopic()
	t.Topic, t.Partitions = topic, []int32{0}
	d.Dir, d.Topics = dir, append(d.Topics, t)
	req.Dirs = append(req.Dirs, d)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return "", err
	}
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		return "", fmt.Errorf("AlterReplicaLogDirs answered %v", resp.Topics)
	}
	return errName(resp.Topics[0].Partitions[0].ErrorCode), nil
}

func adminLogDirs(ctx context.Context, p *params) (result, error) {
	return withClient(p, func(cl *kgo.Client) (result, error) {
		req := kmsg.NewPtrDescribeLogDirsRequest()
		t := kmsg.NewDescribeLogDirsRequestTopic()
		t.Topic, t.Partitions = p.Topic, []int32{0}
		req.Topics = append(req.Topics, t)
		var dir string
		found := false
		err := retry(ctx, func() error {
			resp, err := req.RequestWith(ctx, cl)
			if err != nil {
				return err
			}
			for _, d := range resp.Dirs {
				for _, dt := range d.Topics {
					if dt.Topic == p.Topic && len(dt.Partitions) == 1 {
						dir, found = d.Dir, true
					}
				}
			}
			if !found {
				return fmt.Errorf("%s-0 in no log dir", p.Topic)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		own, err := alterReplicaLogDir(ctx, cl, p.Topic, dir)
		if err != nil {
			return nil, err
		}
		unknown, err := alterReplicaLogDir(ctx, cl, p.Topic, "/nonexistent-franzcheck-dir")
		if err != nil {
			return nil, err
		}
		return result{"has_partition": found, "move_to_own_dir": own, "move_to_unknown_dir": unknown}, nil
	})
}

func adminReplicas(ctx context.Context, p *params) (result, error) {
	return withClient(p, func(cl *kgo.Client) (result, error) {
		node, err := nodeID(ctx, cl)
		if err != nil {
			return nil, err
		}
		elect := kmsg.NewPtrElectLeadersRequest()
		et := kmsg.NewElectLeadersRequestTopic()
		et.Topic, et.Partitions = p.Topic, []int32{0}
		elect.Topics, elect.TimeoutMillis = append(elect.Topics, et), 10000
		elected, err := elect.RequestWith(ctx, cl)
		if err != nil {
			return nil, err
		}
		election := "?"
		if len(elected.Topics) == 1 && len(elected.Topics[0].Partitions) == 1 {
			election = errName(elected.Topics[0].Partitions[0].ErrorCode)
		}
		listed, err := kmsg.NewPtrListPartitionReassignmentsRequest().RequestWith(ctx, cl)
		if err != nil {
			return nil, err
		}
		alter := kmsg.NewPtrAlterPartitionAssignmentsRequest()
		at := kmsg.NewAlterPartitionAssignmentsRequestTopic()
		ap := kmsg.NewAlterPartitionAssignmentsRequestTopicPartition()
		ap.Partition, ap.Replicas = 0, []int32{node}
		at.Topic, at.Partitions = p.Topic, append(at.Partitions, ap)
		alter.Topics, alter.TimeoutMillis = append(alter.Topics, at), 10000
		altered, err := alter.RequestWith(ctx, cl)
		if err != nil {
			return nil, err
		}
		reassigned := "?"
		if len(altered.Topics) == 1 && len(altered.Topics[0].Partitions) == 1 {
			reassigned = errName(altered.Topics[0].Partitions[0].ErrorCode)
		}
		return result{"election": election, "reassignments_in_progress": len(listed.Topics),
			"reassign_to_own_node": reassigned}, nil
	})
}

func alterQuota(ctx context.Context, cl *kgo.Client, clientID, key string, value float64, remove, validate bool) (string, error) {
	req := kmsg.NewPtrAlterClientQuotasRequest()
	e := kmsg.NewAlterClientQuotasRequestEntry()
	ent := kmsg.NewAlterClientQuotasRequestEntryEntity()
	ent.Type, ent.Name = "client-id", &clientID
	op := kmsg.NewAlterClientQuotasRequestEntryOp()
	op.Key, op.Value, op.Remove = key, value, remove
	e.Entity, e.Ops = append(e.Entity, ent), append(e.Ops, op)
	req.Entries, req.ValidateOnly = append(req.Entries, e), validate
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return "", err
	}
	if len(resp.Entries) != 1 {
		return "", fmt.Errorf("AlterClientQuotas answered %d entries", len(resp.Entries))
	}
	return errName(resp.Entries[0].ErrorCode), nil
}

func describeQuotas(ctx context.Context, cl *kgo.Client, clientID string) (map[string]float64, error) {
	req := kmsg.NewPtrDescribeClientQuotasRequest()
	c := kmsg.NewDescribeClientQuotasRequestComponent()
	c.EntityType, c.MatchType, c.Match = "client-id", kmsg.QuotasMatchTypeExact, &clientID
	req.Components, req.Strict = append(req.Components, c), true
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return nil, err
	}
	if resp.ErrorCode != 0 {
		return nil, fmt.Errorf("DescribeClientQuotas: %s", errName(resp.ErrorCode))
	}
	out := map[string]float64{}
	for _, e := range resp.Entries {
		for _, v := range e.Values {
			out[v.Key] = v.Value
		}
	}
	return out, nil
}

func clientQuotas(ctx context.Context, p *params) (result, error) {
	return withClient(p, func(cl *kgo.Client) (result, error) {
		invalid, err := alterQuota(ctx, cl, p.ClientID, "no_such_quota", 1, false, true)
		if err != nil {
			return nil, err
		}
		set, err := alterQuota(ctx, cl, p.ClientID, "producer_byte_rate", p.Rate, false, false)
		if err != nil {
			return nil, err
		}
		var described map[string]float64
		err = retry(ctx, func() error {
			var err error
			described, err = describeQuotas(ctx, cl, p.ClientID)
			if err == nil && len(described) == 0 {
				err = fmt.Errorf("the quota is not described yet")
			}
			return err
		})
		if err != nil {
			return nil, err
		}
		removed, err := alterQuota(ctx, cl, p.ClientID, "producer_byte_rate", 0, true, false)
		if err != nil {
			return nil, err
		}
		var after map[string]float64
		err = retry(ctx, func() error {
			var err error
			after, err = describeQuotas(ctx, cl, p.ClientID)
			if err == nil && len(after) != 0 {
				err = fmt.Errorf("the quota is still described")
			}
			return err
		})
		if err != nil {
			return nil, err
		}
		return result{"invalid_key": invalid, "set": set, "described": described, "removed": removed,
			"after_removal": len(after)}, nil
	})
}
