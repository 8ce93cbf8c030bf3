// The admin APIs beyond topics, for `KafkaCheck admin <subcommand>` (issue 12): client quotas, log dirs,
// partitions with explicit assignments, elections and reassignments, configs with documentation.
// Each subcommand returns the facts it observed; the Python side (tests, compat) asserts on them, so the
// same JSON can be compared between pykbroker and Apache Kafka.
//
//   client-quotas --client-id C --rate N   set producer_byte_rate=N for client-id C, describe it, remove it
//   log-dirs T                             describe log dirs; move T-0 to its own dir and to /nonexistent
//   create-partitions T --total N          grow T to N partitions, each assigned to the controller node;
//                                          then try one more on broker 999
//   replicas T                             preferred election of T-0; list reassignments; reassign T-0 to
//                                          its own node
//   describe-configs T                     T's and the node's configs with synonyms and documentation
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AlterClientQuotasOptions;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.DescribeConfigsOptions;
import org.apache.kafka.clients.admin.LogDirDescription;
import org.apache.kafka.clients.admin.NewPartitionReassignment;
import org.apache.kafka.clients.admin.NewPartitions;
import org.apache.kafka.clients.admin.PartitionReassignment;
import org.apache.kafka.common.ElectionType;
import org.apache.kafka.common.KafkaFuture;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.TopicPartitionReplica;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.quota.ClientQuotaAlteration;
import org.apache.kafka.common.quota.ClientQuotaEntity;
import org.apache.kafka.common.quota.ClientQuotaFilter;
import org.apache.kafka.common.quota.ClientQuotaFilterComponent;

final class AdminSurface {
    private AdminSurface() {}

    /** The subcommand's facts, or null when `sub` is not one of these. */
    static Map<String, Object> run(String sub, Admin admin, List<String> positional, Map<String, String> options,
                                   long deadline) throws Exception {
        switch (sub) {
            case "client-quotas": return clientQuotas(admin, options, deadline);
            case "log-dirs": return logDirs(admin, topic(positional, sub), deadline);
            case "create-partitions": return createPartitions(admin, topic(positional, sub), options, deadline);
            case "replicas": return replicas(admin, topic(positional, sub), deadline);
            case "describe-configs": return describeConfigs(admin, topic(positional, sub), deadline);
            default: return null;
        }
    }

    static String topic(List<String> positional, String sub) {
        if (positional.size() < 3) throw new KafkaCheck.UsageError(sub + " needs a topic name");
        return positional.get(2);
    }

    static <T> T get(KafkaFuture<T> f, long deadline) throws Exception {
        return f.get(KafkaCheck.remaining(deadline), TimeUnit.MILLISECONDS);
    }

    /** The simple name of the exception a future fails with, or "ok". */
    static String outcome(KafkaFuture<?> f, long deadline) throws Exception {
        try {
            get(f, deadline);
            return "ok";
        } catch (ExecutionException e) {
            return e.getCause().getClass().getSimpleName();
        }
    }

    static int nodeId(Admin admin, long deadline) throws Exception {
        return get(admin.describeCluster().controller(), deadline).id();
    }

    static Map<String, Object> clientQuotas(Admin admin, Map<String, String> options, long deadline) throws Exception {
        String clientId = options.getOrDefault("--client-id", "kafkacheck-quota");
        double rate = Double.parseDouble(options.getOrDefault("--rate", "1048576"));
        ClientQuotaEntity entity = new ClientQuotaEntity(Collections.singletonMap(ClientQuotaEntity.CLIENT_ID, clientId));
        ClientQuotaFilter only = ClientQuotaFilter.containsOnly(
            Collections.singletonList(ClientQuotaFilterComponent.ofEntity(ClientQuotaEntity.CLIENT_ID, clientId)));
        Map<String, Object> r = new LinkedHashMap<>();
        r.put("invalid_key", outcome(admin.alterClientQuotas(Collections.singletonList(new ClientQuotaAlteration(entity,
            Collections.singletonList(new ClientQuotaAlteration.Op("no_such_quota", 1.0)))),
            new AlterClientQuotasOptions().validateOnly(true)).all(), deadline));
        get(admin.alterClientQuotas(Collections.singletonList(new ClientQuotaAlteration(entity, Arrays.asList(
            new ClientQuotaAlteration.Op("producer_byte_rate", rate),
            new ClientQuotaAlteration.Op("consumer_byte_rate", rate))))).all(), deadline);
        // Kafka applies quota changes through its metadata log: a describe right after may not show them yet.
        r.put("described", until(() -> quotas(get(admin.describeClientQuotas(only).entities(), deadline).get(entity)),
            q -> q != null && q.size() == 2, deadline));
        get(admin.alterClientQuotas(Collections.singletonList(new ClientQuotaAlteration(entity, Arrays.asList(
            new ClientQuotaAlteration.Op("producer_byte_rate", null),
            new ClientQuotaAlteration.Op("consumer_byte_rate", null))))).all(), deadline);
        r.put("after_removal", until(() -> get(admin.describeClientQuotas(only).entities(), deadline).size(),
            n -> n == 0, deadline));
        return r;
    }

    /** f's value once ok accepts it, or its last value at the deadline (System.nanoTime; 10 s at most). */
    static <T> T until(java.util.concurrent.Callable<T> f, java.util.function.Predicate<T> ok, long deadline)
            throws Exception {
        long end = Math.min(deadline, System.nanoTime() + 10_000_000_000L);
        T value = f.call();
        while (!ok.test(value) && System.nanoTime() < end) {
            Thread.sleep(100);
            value = f.call();
        }
        return value;
    }

    static Map<String, Object> quotas(Map<String, Double> values) {
        return values == null ? null : new java.util.TreeMap<>(values);
    }

    static Map<String, Object> logDirs(Admin admin, String topic, long deadline) throws Exception {
        int node = nodeId(admin, deadline);
        Map<String, LogDirDescription> dirs = get(admin.describeLogDirs(Collections.singletonList(node))
            .allDescriptions(), deadline).get(node);
        Map<String, Object> r = new LinkedHashMap<>();
        r.put("dirs", dirs.size());
        String path = dirs.keySet().iterator().next();
        LogDirDescription d = dirs.get(path);
        r.put("has_partition", d.replicaInfos().containsKey(new TopicPartition(topic, 0)));
        r.put("total_bytes_known", d.totalBytes().isPresent());
        TopicPartitionReplica replica = new TopicPartitionReplica(topic, 0, node);
        r.put("move_to_own_dir", outcome(admin.alterReplicaLogDirs(Collections.singletonMap(replica, path)).all(), deadline));
        r.put("move_to_unknown_dir", outcome(admin.alterReplicaLogDirs(
            Collections.singletonMap(replica, "/nonexistent-kafkacheck-dir")).all(), deadline));
        return r;
    }

    static Map<String, Object> createPartitions(Admin admin, String topic, Map<String, String> options,
                                                long deadline) throws Exception {
        int node = nodeId(admin, deadline);
        int total = Integer.parseInt(options.getOrDefault("--total", "3"));
        int current = get(admin.describeTopics(Collections.singletonList(topic)).allTopicNames(), deadline)
            .get(topic).partitions().size();
        List<List<Integer>> assignments = new ArrayList<>();
        for (int i = current; i < total; i++) assignments.add(Collections.singletonList(node));
        Map<String, Object> r = new LinkedHashMap<>();
        r.put("assigned", outcome(admin.createPartitions(Collections.singletonMap(topic,
            NewPartitions.increaseTo(total, assignments))).all(), deadline));
        r.put("unknown_broker", outcome(admin.createPartitions(Collections.singletonMap(topic,
            NewPartitions.increaseTo(total + 1, Collections.singletonList(Collections.singletonList(999))))).all(),
            deadline));
        return r;
    }

    static Map<String, Object> replicas(Admin admin, String topic, long deadline) throws Exception {
        int node = nodeId(admin, deadline);
        TopicPartition tp = new TopicPartition(topic, 0);
        Map<String, Object> r = new LinkedHashMap<>();
        Map<TopicPartition, Optional<Throwable>> elected = get(admin.electLeaders(ElectionType.PREFERRED,
            Collections.singleton(tp)).partitions(), deadline);
        r.put("election", elected.get(tp).map(t -> t.getClass().getSimpleName()).orElse("ok"));
        Map<TopicPartition, PartitionReassignment> ongoing = get(admin.listPartitionReassignments().reassignments(), deadline);
        r.put("reassignments_in_progress", ongoing.size());
        r.put("reassign_to_own_node", outcome(admin.alterPartitionReassignments(Collections.singletonMap(tp,
            Optional.of(new NewPartitionReassignment(Collections.singletonList(node))))).all(), deadline));
        return r;
    }

    static Map<String, Object> describeConfigs(Admin admin, String topic, long deadline) throws Exception {
        int node = nodeId(admin, deadline);
        ConfigResource t = new ConfigResource(ConfigResource.Type.TOPIC, topic);
        ConfigResource b = new ConfigResource(ConfigResource.Type.BROKER, String.valueOf(node));
        Map<ConfigResource, Config> configs = get(admin.describeConfigs(Arrays.asList(t, b),
            new DescribeConfigsOptions().includeDocumentation(true).includeSynonyms(true)).all(), deadline);
        Map<String, Object> r = new LinkedHashMap<>();
        r.put("retention_ms", entry(configs.get(t).get("retention.ms")));
        r.put("cleanup_policy", entry(configs.get(t).get("cleanup.policy")));
        r.put("num_partitions", entry(configs.get(b).get("num.partitions")));
        long undocumented = configs.get(t).entries().stream().filter(e -> e.documentation() == null).count();
        r.put("topic_configs_without_documentation", undocumented);
        return r;
    }

    static Map<String, Object> entry(ConfigEntry e) {
        if (e == null) return null;
        Map<String, Object> r = new LinkedHashMap<>();
        r.put("value", e.value());
        r.put("source", e.source().name());
        r.put("type", e.type().name());
        r.put("documented", e.documentation() != null && !e.documentation().isEmpty());
        r.put("synonyms", e.synonyms().size());
        return r;
    }
}
