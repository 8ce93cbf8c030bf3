// KafkaCheck: a small command-line driver for the Apache Kafka Java client (kafka-clients 3.9.1 and 4.4.0),
// used by pykbroker's tests to check wire compatibility with the real Java client.
//
// Build: tests/tools/setup_java_client.sh   (fetches the jars, compiles into .tools/java-classes;
//        tests/tools/setup_java_client_4x.sh compiles it against kafka-clients 4.4.0)
// Run:   java -cp '.tools/java-classes:.tools/java-lib/*' KafkaCheck <command> ...
//
// Commands (each prints exactly one JSON object on stdout, on success and on failure):
//   produce --bootstrap H:P --topic T --count N [--acks all|1|0] [--compression none|gzip|snappy|lz4|zstd]
//           [--idempotence true|false] [--value-size B] [--key-prefix k] [--no-keys] [--partition P]
//   consume --bootstrap H:P --topic T --count N [--group G] [--from-beginning] [--poll-ms M]
//   pattern-consume --bootstrap H:P --group G --pattern RE2J [--count N] [--stop-file F]
//           Kafka 4.x only: KIP-848 broker-side regex subscription, commits after every poll, stops at N
//           records, when F exists, or 2 s before --timeout-ms; reports {first,last,count} per topic:partition
//   admin   --bootstrap H:P create-topic T [--partitions P] [--replication-factor R] [--if-not-exists]
//   admin   --bootstrap H:P list-topics | describe-topic T | delete-topic T | describe-cluster | describe-features
//   admin   --bootstrap H:P client-quotas | log-dirs T | create-partitions T | replicas T | describe-configs T
//           (the admin APIs of AdminSurface.java; see its header)
//   txn     --bootstrap H:P --topic T --transactional-id X [--plan commit:N,abort:N,...] [--fence]
//           transactions on partition 0, records "<commit|abort>-<i>" sent synchronously (so an abort has
//           records to hide); --fence then opens one more, starts a second producer with the same id and
//           reports whether the first one's commit was fenced. Reports the coordinator's producer id and
//           epoch (DescribeTransactions) after initTransactions and after the plan: with transactions v2
//           (KIP-890, Kafka 4 client and broker) every commit/abort bumps the epoch, with v1 it stays
// Common options:
//   --timeout-ms M   bound on the operation (default 30000); exceeded -> exit 3 (a watchdog halts the JVM
//                    3 s later if the client itself is stuck)
//   --prop k=v       extra client property (repeatable), applied last
// Exit codes: 0 ok, 1 operation failed, 2 usage error, 3 timeout.
// Client logging goes to stderr; level from -Dkafkacheck.log=... or $KAFKACHECK_LOG (default warn).

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.HashMap;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import java.util.zip.CRC32;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.CreateTopicsOptions;
import org.apache.kafka.clients.admin.DeleteTopicsOptions;
import org.apache.kafka.clients.admin.DescribeClusterOptions;
import org.apache.kafka.clients.admin.DescribeClusterResult;
import org.apache.kafka.clients.admin.DescribeTopicsOptions;
import org.apache.kafka.clients.admin.FeatureMetadata;
import org.apache.kafka.clients.admin.FinalizedVersionRange;
import org.apache.kafka.clients.admin.SupportedVersionRange;
import org.apache.kafka.clients.admin.ListTopicsOptions;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.Node;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.TopicPartitionInfo;
import org.apache.kafka.common.errors.TopicExistsException;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;

public final class KafkaCheck {
    static final int EXIT_FAILED = 1;
    static final int EXIT_USAGE = 2;
    static final int EXIT_TIMEOUT = 3;

    static final Set<String> FLAGS = Set.of("--from-beginning", "--if-not-exists", "--no-keys", "--help", "--fence");

    /** Thrown for bad command lines. */
    static final class UsageError extends RuntimeException {
        UsageError(String msg) { super(msg); }
    }

    /** Thrown when an operation failed in a way the client reported (not an exception in the client). */
    static final class CheckFailed extends RuntimeException {
        final Map<String, Object> result;
        final int exitCode;
        CheckFailed(String msg, Map<String, Object> result) { this(msg, result, EXIT_FAILED); }
        CheckFailed(String msg, Map<String, Object> result, int exitCode) {
            super(msg);
            this.result = result;
            this.exitCode = exitCode;
        }
    }

    /** Extra time the watchdog allows past --timeout-ms for operations to report their own timeout. */
    static final long WATCHDOG_GRACE_MS = 3000;

    // ------------------------------------------------------------------ argument parsing

    static final class Args {
        final List<String> positional = new ArrayList<>();
        final Map<String, String> options = new HashMap<>();
        final List<String> props = new ArrayList<>();

        static Args parse(String[] argv) {
            Args a = new Args();
            for (int i = 0; i < argv.length; i++) {
                String s = argv[i];
                if (s.startsWith("--")) {
                    if (FLAGS.contains(s)) {
                        a.options.put(s, "true");
                        continue;
                    }
                    String name = s;
                    String value;
                    int eq = s.indexOf('=');
                    if (eq > 0) {
                        name = s.substring(0, eq);
                        value = s.substring(eq + 1);
                    } else {
                        if (i + 1 >= argv.length) throw new UsageError("option " + s + " needs a value");
                        value = argv[++i];
                    }
                    if (name.equals("--prop")) a.props.add(value);
                    else a.options.put(name, value);
                } else {
                    a.positional.add(s);
                }
            }
            return a;
        }

        String get(String name, String dflt) {
            String v = options.get(name);
            return v == null ? dflt : v;
        }

        String required(String name) {
            String v = options.get(name);
            if (v == null) throw new UsageError("missing required option " + name);
            return v;
        }

        int getInt(String name, int dflt) {
            String v = options.get(name);
            if (v == null) return dflt;
            try {
                return Integer.parseInt(v);
            } catch (NumberFormatException e) {
                throw new UsageError(name + " must be an integer, got '" + v + "'");
            }
        }

        boolean flag(String name) { return options.containsKey(name); }

        void applyProps(Properties p) {
            for (String kv : props) {
                int eq = kv.indexOf('=');
                if (eq <= 0) throw new UsageError("--prop expects key=value, got '" + kv + "'");
                p.put(kv.substring(0, eq), kv.substring(eq + 1));
            }
        }
    }

    // ------------------------------------------------------------------ JSON (hand-rolled, output only)

    static String json(Object o) {
        StringBuilder sb = new StringBuilder();
        writeJson(sb, o);
        return sb.toString();
    }

    @SuppressWarnings("unchecked")
    static void writeJson(StringBuilder sb, Object o) {
        if (o == null) {
            sb.append("null");
        } else if (o instanceof String) {
            writeString(sb, (String) o);
        } else if (o instanceof Boolean || o instanceof Integer || o instanceof Long || o instanceof Short) {
            sb.append(o);
        } else if (o instanceof Number) {
            double d = ((Number) o).doubleValue();
            sb.append(Double.isFinite(d) ? String.valueOf(d) : "null");
        } else if (o instanceof Map) {
            sb.append('{');
            boolean first = true;
            for (Map.Entry<Object, Object> e : ((Map<Object, Object>) o).entrySet()) {
                if (!first) sb.append(',');
                first = false;
                writeString(sb, String.valueOf(e.getKey()));
                sb.append(':');
                writeJson(sb, e.getValue());
            }
            sb.append('}');
        } else if (o instanceof Iterable) {
            sb.append('[');
            boolean first = true;
            for (Object x : (Iterable<Object>) o) {
                if (!first) sb.append(',');
                first = false;
                writeJson(sb, x);
            }
            sb.append(']');
        } else {
            writeString(sb, o.toString());
        }
    }

    static void writeString(StringBuilder sb, String s) {
        sb.append('"');
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            switch (c) {
                case '"': sb.append("\\\""); break;
                case '\\': sb.append("\\\\"); break;
                case '\n': sb.append("\\n"); break;
                case '\r': sb.append("\\r"); break;
                case '\t': sb.append("\\t"); break;
                default:
                    if (c < 0x20) sb.append(String.format("\\u%04x", (int) c));
                    else sb.append(c);
            }
        }
        sb.append('"');
    }

    static Map<String, Object> obj(Object... kv) {
        Map<String, Object> m = new LinkedHashMap<>();
        for (int i = 0; i + 1 < kv.length; i += 2) m.put((String) kv[i], kv[i + 1]);
        return m;
    }

    // ------------------------------------------------------------------ output, errors and the watchdog

    static final Object OUT_LOCK = new Object();
    static volatile boolean printed = false;
    static volatile String currentOp = "?";

    /** Prints the single result line; later calls are ignored (the watchdog and main thread may race). */
    static boolean emit(Map<String, Object> result) {
        synchronized (OUT_LOCK) {
            if (printed) return false;
            printed = true;
            System.out.println(json(result));
            System.out.flush();
            return true;
        }
    }

    static void fail(int code, String message, Map<String, Object> partial) {
        Map<String, Object> r = obj("ok", false, "op", currentOp, "error", message);
        if (partial != null) {
            for (Map.Entry<String, Object> e : partial.entrySet()) r.putIfAbsent(e.getKey(), e.getValue());
        }
        if (emit(r)) {
            System.err.println("KafkaCheck " + currentOp + ": " + message);
            System.err.flush();
        }
        Runtime.getRuntime().halt(code);
    }

    /** Progress shared with the watchdog so a timeout can report how far the operation got. */
    static final AtomicReference<Map<String, Object>> progress = new AtomicReference<>();

    static volatile long timeoutMs = 30000;

    static void startWatchdog() {
        Thread t = new Thread(() -> {
            try {
                Thread.sleep(timeoutMs + WATCHDOG_GRACE_MS);
            } catch (InterruptedException e) {
                return;
            }
            fail(EXIT_TIMEOUT, "timed out after " + timeoutMs + " ms (client blocked; stopped by the watchdog)",
                progress.get());
        }, "kafkacheck-watchdog");
        t.setDaemon(true);
        t.start();
    }

    static boolean isTimeout(Throwable t) {
        for (Throwable c = t; c != null; c = c.getCause()) {
            if (c instanceof java.util.concurrent.TimeoutException
                    || c instanceof org.apache.kafka.common.errors.TimeoutException) {
                return true;
            }
            if (c.getCause() == c) break;
        }
        return false;
    }

    static String describe(Throwable t) {
        while ((t instanceof ExecutionException || t instanceof java.util.concurrent.CompletionException)
                && t.getCause() != null) {
            t = t.getCause();
        }
        String msg = t.getMessage();
        return t.getClass().getName() + (msg == null ? "" : ": " + msg);
    }

    // ------------------------------------------------------------------ main

    public static void main(String[] argv) {
        Args a;
        try {
            a = Args.parse(argv);
        } catch (UsageError e) {
            currentOp = "usage";
            fail(EXIT_USAGE, e.getMessage() + "\n" + USAGE, null);
            return;
        }
        if (a.positional.isEmpty() || a.flag("--help")) {
            currentOp = "usage";
            if (a.flag("--help")) {
                System.out.println(USAGE);
                System.exit(0);
            }
            fail(EXIT_USAGE, "no command given\n" + USAGE, null);
        }
        String cmd = a.positional.get(0);
        currentOp = cmd;
        long started = System.nanoTime();
        try {
            timeoutMs = a.getInt("--timeout-ms", 30000);
            startWatchdog();
            Map<String, Object> result;
            switch (cmd) {
                case "produce": result = produce(a, timeoutMs); break;
                case "consume": result = consume(a, timeoutMs); break;
                case "pattern-consume": result = patternConsume(a, timeoutMs); break;
                case "admin": result = admin(a, timeoutMs); break;
                case "txn": result = txn(a, timeoutMs); break;
                default: throw new UsageError("unknown command '" + cmd + "'");
            }
            Map<String, Object> out = obj("ok", true, "op", currentOp);
            out.putAll(result);
            out.put("elapsed_ms", (System.nanoTime() - started) / 1_000_000);
            emit(out);
            Runtime.getRuntime().halt(0);
        } catch (UsageError e) {
            fail(EXIT_USAGE, e.getMessage() + "\n" + USAGE, null);
        } catch (CheckFailed e) {
            fail(e.exitCode, e.getMessage(), e.result);
        } catch (Throwable t) {
            if (isTimeout(t)) fail(EXIT_TIMEOUT, "timed out after " + timeoutMs + " ms: " + describe(t), progress.get());
            fail(EXIT_FAILED, describe(t), progress.get());
        }
    }

    static final String USAGE = String.join("\n",
        "usage: KafkaCheck produce --bootstrap H:P --topic T --count N [--acks all|1|0]",
        "                          [--compression none|gzip|snappy|lz4|zstd] [--idempotence true|false]",
        "                          [--value-size B] [--key-prefix K | --no-keys] [--partition P]",
        "       KafkaCheck consume --bootstrap H:P --topic T --count N [--group G] [--from-beginning]",
        "       KafkaCheck pattern-consume --bootstrap H:P --group G --pattern RE2J [--count N] [--stop-file F]",
        "       KafkaCheck admin --bootstrap H:P create-topic T [--partitions P] [--replication-factor R] [--if-not-exists]",
        "       KafkaCheck admin --bootstrap H:P list-topics | describe-topic T | delete-topic T | describe-cluster",
        "       KafkaCheck admin --bootstrap H:P client-quotas [--client-id C] [--rate N] | log-dirs T",
        "                        | create-partitions T [--total N] | replicas T | describe-configs T",
        "       KafkaCheck txn --bootstrap H:P --topic T --transactional-id X [--plan commit:N,abort:N,...] [--fence]",
        "  common: [--timeout-ms M (default 30000)] [--prop key=value ...]");

    static long remaining(long deadlineNanos) {
        return Math.max(1, (deadlineNanos - System.nanoTime()) / 1_000_000);
    }

    // ------------------------------------------------------------------ checksums

    /** Order-independent digest of a set of values, so producer and consumer output can be compared. */
    static final class Digest {
        long count;
        long valueBytes;
        long crcSum;

        void add(byte[] value) {
            count++;
            if (value != null) {
                valueBytes += value.length;
                CRC32 crc = new CRC32();
                crc.update(value);
                crcSum += crc.getValue();
            }
        }

        void putInto(Map<String, Object> m) {
            m.put("value_bytes", valueBytes);
            m.put("value_crc_sum", crcSum);
        }
    }

    /** Per-partition first/last offset and count, plus the overall range. */
    static final class Offsets {
        final TreeMap<Integer, long[]> byPartition = new TreeMap<>(); // {first, last, count}

        void add(int partition, long offset) {
            long[] r = byPartition.get(partition);
            if (r == null) {
                byPartition.put(partition, new long[] {offset, offset, 1});
            } else {
                r[0] = Math.min(r[0], offset);
                r[1] = Math.max(r[1], offset);
                r[2]++;
            }
        }

        void putInto(Map<String, Object> m) {
            Map<String, Object> parts = new LinkedHashMap<>();
            Long first = null;
            Long last = null;
            for (Map.Entry<Integer, long[]> e : byPartition.entrySet()) {
                long[] r = e.getValue();
                parts.put(String.valueOf(e.getKey()), obj("first", r[0], "last", r[1], "count", r[2]));
                first = first == null ? r[0] : Math.min(first, r[0]);
                last = last == null ? r[1] : Math.max(last, r[1]);
            }
            m.put("first_offset", first);
            m.put("last_offset", last);
            m.put("partitions", parts);
        }
    }

    /** Value i: "v<i>:" followed by a repeating pattern, exactly `size` bytes (or just the prefix if shorter). */
    static byte[] makeValue(int i, int size) {
        byte[] prefix = ("v" + i + ":").getBytes(StandardCharsets.US_ASCII);
        if (size <= prefix.length) return java.util.Arrays.copyOf(prefix, Math.max(size, 0));
        byte[] v = new byte[size];
        System.arraycopy(prefix, 0, v, 0, prefix.length);
        for (int j = prefix.length; j < size; j++) v[j] = (byte) ('a' + (i + j) % 26);
        return v;
    }

    // ------------------------------------------------------------------ produce

    static Map<String, Object> produce(Args a, long timeoutMs) throws Exception {
        long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(timeoutMs);
        String topic = a.required("--topic");
        int count = a.getInt("--count", 1);
        int valueSize = a.getInt("--value-size", 100);
        boolean noKeys = a.flag("--no-keys");
        String keyPrefix = a.get("--key-prefix", "k");
        Integer partition = a.options.containsKey("--partition") ? a.getInt("--partition", 0) : null;

        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, a.required("--bootstrap"));
        p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        p.put(ProducerConfig.CLIENT_ID_CONFIG, "kafkacheck-producer");
        // Everything else stays at the client's defaults unless asked for (3.9: acks=all, idempotence on).
        if (a.options.containsKey("--acks")) p.put(ProducerConfig.ACKS_CONFIG, a.get("--acks", "all"));
        if (a.options.containsKey("--compression")) {
            p.put(ProducerConfig.COMPRESSION_TYPE_CONFIG, a.get("--compression", "none"));
        }
        if (a.options.containsKey("--idempotence")) {
            p.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, a.get("--idempotence", "true"));
        }
        a.applyProps(p);

        Offsets offsets = new Offsets();
        Digest digest = new Digest();
        AtomicReference<Throwable> firstError = new AtomicReference<>();
        final long[] acked = {0};
        final long[] failed = {0};
        progress.set(obj("topic", topic, "requested", count, "stage", "connecting"));

        KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(p);
        try {
            List<Future<RecordMetadata>> futures = new ArrayList<>(count);
            for (int i = 0; i < count; i++) {
                byte[] key = noKeys ? null : (keyPrefix + i).getBytes(StandardCharsets.UTF_8);
                byte[] value = makeValue(i, valueSize);
                digest.add(value);
                ProducerRecord<byte[], byte[]> rec = new ProducerRecord<>(topic, partition, key, value);
                futures.add(producer.send(rec, (md, err) -> {
                    synchronized (offsets) {
                        if (err != null) {
                            failed[0]++;
                            firstError.compareAndSet(null, err);
                        } else {
                            acked[0]++;
                            offsets.add(md.partition(), md.offset());
                        }
                        progress.set(obj("topic", topic, "requested", count, "stage", "sending",
                            "acked", acked[0], "failed", failed[0]));
                    }
                }));
            }
            for (Future<RecordMetadata> f : futures) {
                try {
                    f.get(remaining(deadline), TimeUnit.MILLISECONDS);
                } catch (ExecutionException e) {
                    // counted by the callback
                } catch (java.util.concurrent.TimeoutException e) {
                    Map<String, Object> r = obj("topic", topic, "requested", count);
                    synchronized (offsets) {
                        r.put("acked", acked[0]);
                        r.put("failed", failed[0]);
                    }
                    throw new CheckFailed("timed out after " + timeoutMs + " ms waiting for acks", r, EXIT_TIMEOUT);
                }
            }
        } finally {
            producer.close(Duration.ofMillis(Math.min(2000, remaining(deadline))));
        }

        Map<String, Object> r = new LinkedHashMap<>();
        r.put("topic", topic);
        r.put("requested", count);
        synchronized (offsets) {
            r.put("acked", acked[0]);
            r.put("failed", failed[0]);
            r.put("count", digest.count);
            digest.putInto(r);
            offsets.putInto(r);
        }
        if (firstError.get() != null) {
            throw new CheckFailed(failed[0] + " of " + count + " sends failed; first error: "
                + describe(firstError.get()), r);
        }
        return r;
    }

    // ------------------------------------------------------------------ consume

    static Map<String, Object> consume(Args a, long timeoutMs) {
        long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(timeoutMs);
        String topic = a.required("--topic");
        int count = a.getInt("--count", 1);
        String group = a.get("--group", null);
        long pollMs = a.getInt("--poll-ms", 200);

        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, a.required("--bootstrap"));
        p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        p.put(ConsumerConfig.CLIENT_ID_CONFIG, "kafkacheck-consumer");
        if (group != null) {
            p.put(ConsumerConfig.GROUP_ID_CONFIG, group);
            p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false"); // we commit what we counted
            if (a.flag("--from-beginning")) p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        }
        a.applyProps(p);

        Offsets offsets = new Offsets();
        Digest digest = new Digest();
        long keyBytes = 0;
        Map<TopicPartition, OffsetAndMetadata> toCommit = new HashMap<>();
        Map<String, Object> r = new LinkedHashMap<>();
        r.put("topic", topic);
        r.put("requested", count);
        r.put("group", group);
        progress.set(obj("topic", topic, "requested", count, "group", group, "stage", "connecting"));

        KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(p);
        try {
            if (group == null) {
                List<PartitionInfo> infos = consumer.partitionsFor(topic, Duration.ofMillis(remaining(deadline)));
                if (infos == null || infos.isEmpty()) throw new CheckFailed("topic " + topic + " has no partitions", r);
                List<TopicPartition> tps = new ArrayList<>();
                for (PartitionInfo pi : infos) tps.add(new TopicPartition(topic, pi.partition()));
                consumer.assign(tps);
                consumer.seekToBeginning(tps);
                r.put("assigned", tps.size());
            } else {
                consumer.subscribe(Collections.singletonList(topic));
            }
            int polls = 0;
            while (digest.count < count) {
                if (System.nanoTime() >= deadline) break;
                ConsumerRecords<byte[], byte[]> recs =
                    consumer.poll(Duration.ofMillis(Math.min(pollMs, remaining(deadline))));
                polls++;
                for (ConsumerRecord<byte[], byte[]> rec : recs) {
                    if (digest.count >= count) break;
                    digest.add(rec.value());
                    if (rec.key() != null) keyBytes += rec.key().length;
                    offsets.add(rec.partition(), rec.offset());
                    toCommit.put(new TopicPartition(rec.topic(), rec.partition()),
                        new OffsetAndMetadata(rec.offset() + 1));
                }
                Map<String, Object> prog = obj("topic", topic, "requested", count, "group", group,
                    "stage", "polling", "count", digest.count, "polls", polls);
                progress.set(prog);
            }
            r.put("count", digest.count);
            digest.putInto(r);
            r.put("key_bytes", keyBytes);
            offsets.putInto(r);
            r.put("polls", polls);
            if (digest.count < count) {
                throw new CheckFailed("timed out after " + timeoutMs + " ms: received " + digest.count + " of "
                    + count + " records", r, EXIT_TIMEOUT);
            }
            if (group != null && !toCommit.isEmpty()) {
                consumer.commitSync(toCommit, Duration.ofMillis(remaining(deadline)));
                r.put("committed", true);
            }
        } finally {
            // Bounded: the default close waits up to 30 s (e.g. to leave the group).
            consumer.close(Duration.ofMillis(Math.min(2000, remaining(deadline))));
        }
        return r;
    }

    // ------------------------------------------------------------------ pattern-consume (Kafka 4.x)

    /** consumer.subscribe(new SubscriptionPattern(re)) (KIP-848, kafka-clients 4.0+), found by reflection so
     *  that this file still compiles against 3.9.1; on 3.9.1 it fails with ClassNotFoundException. */
    static Map<String, Object> patternConsume(Args a, long timeoutMs) throws Exception {
        long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(Math.max(1000, timeoutMs - 2000));
        int count = a.getInt("--count", Integer.MAX_VALUE);
        java.io.File stopFile = new java.io.File(a.get("--stop-file", "/nonexistent/kafkacheck-stop"));
        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, a.required("--bootstrap"));
        p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        p.put(ConsumerConfig.CLIENT_ID_CONFIG, "kafkacheck-pattern");
        p.put(ConsumerConfig.GROUP_ID_CONFIG, a.required("--group"));
        p.put("group.protocol", "consumer");
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        a.applyProps(p);
        Class<?> patternClass = Class.forName("org.apache.kafka.clients.consumer.SubscriptionPattern");
        Object pattern = patternClass.getConstructor(String.class).newInstance(a.required("--pattern"));

        Map<String, long[]> seen = new TreeMap<>(); // "topic:partition" -> {first, last, count}
        Set<String> assigned = new TreeSet<>();
        int total = 0;
        KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(p);
        try {
            KafkaConsumer.class.getMethod("subscribe", patternClass).invoke(consumer, pattern);
            while (total < count && !stopFile.exists() && System.nanoTime() < deadline) {
                Map<TopicPartition, OffsetAndMetadata> commit = new HashMap<>();
                for (ConsumerRecord<byte[], byte[]> rec : consumer.poll(Duration.ofMillis(200))) {
                    if (total >= count) break;
                    total++;
                    long[] s = seen.computeIfAbsent(rec.topic() + ":" + rec.partition(),
                        k -> new long[] {rec.offset(), rec.offset(), 0});
                    s[0] = Math.min(s[0], rec.offset());
                    s[1] = Math.max(s[1], rec.offset());
                    s[2]++;
                    commit.put(new TopicPartition(rec.topic(), rec.partition()), new OffsetAndMetadata(rec.offset() + 1));
                }
                if (!commit.isEmpty()) consumer.commitSync(commit, Duration.ofMillis(remaining(deadline)));
                assigned.clear();
                for (TopicPartition tp : consumer.assignment()) assigned.add(tp.topic() + ":" + tp.partition());
                progress.set(obj("stage", "polling", "count", total, "assigned", new ArrayList<>(assigned)));
            }
        } finally {
            consumer.close(Duration.ofMillis(Math.min(2000, remaining(deadline) + 2000)));
        }
        Map<String, Object> parts = new LinkedHashMap<>();
        for (Map.Entry<String, long[]> e : seen.entrySet()) {
            long[] s = e.getValue();
            parts.put(e.getKey(), obj("first", s[0], "last", s[1], "count", s[2]));
        }
        return obj("count", total, "partitions", parts, "assigned", new ArrayList<>(assigned),
            "stopped_by_file", stopFile.exists());
    }

    // ------------------------------------------------------------------ transactions

    static Map<String, Object> txn(Args a, long timeoutMs) throws Exception {
        String topic = a.required("--topic");
        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, a.required("--bootstrap"));
        p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        p.put(ProducerConfig.CLIENT_ID_CONFIG, "kafkacheck-txn");
        p.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, a.required("--transactional-id"));
        p.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, String.valueOf(timeoutMs));
        a.applyProps(p);
        Map<String, Object> r = new LinkedHashMap<>();
        int commits = 0, aborts = 0, sent = 0;
        KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(p);
        try {
            progress.set(obj("stage", "init"));
            producer.initTransactions();
            describeTxn(a, "init", r, timeoutMs);
            for (String step : a.get("--plan", "commit:1").split(",")) {
                String[] kv = step.split(":");
                boolean commit = kv[0].equals("commit");
                producer.beginTransaction();
                for (int i = 0; i < Integer.parseInt(kv[1]); i++) {
                    byte[] value = (kv[0] + "-" + sent++).getBytes(StandardCharsets.UTF_8);
                    producer.send(new ProducerRecord<>(topic, 0, null, value)).get(timeoutMs, TimeUnit.MILLISECONDS);
                }
                if (commit) {
                    producer.commitTransaction();
                    commits++;
                } else {
                    producer.abortTransaction();
                    aborts++;
                }
                progress.set(obj("stage", "transactions", "commits", commits, "aborts", aborts));
            }
            r.put("commits", commits);
            r.put("aborts", aborts);
            describeTxn(a, "after", r, timeoutMs);
            if (a.flag("--fence")) {
                producer.beginTransaction();
                producer.send(new ProducerRecord<>(topic, 0, null, "zombie".getBytes(StandardCharsets.UTF_8)))
                    .get(timeoutMs, TimeUnit.MILLISECONDS);
                try (KafkaProducer<byte[], byte[]> second = new KafkaProducer<>(p)) {
                    second.initTransactions();  // bumps the epoch: the first producer is now a zombie
                    try {
                        producer.commitTransaction();
                        r.put("fenced", false);
                    } catch (org.apache.kafka.common.KafkaException e) {
                        r.put("fenced", true);
                        r.put("fenced_by", e.getClass().getSimpleName());
                    }
                }
            }
        } finally {
            producer.close(Duration.ofSeconds(2));
        }
        return r;
    }

    /** The coordinator's view of the transactional id: puts {stage}_producer_id and {stage}_epoch. */
    static void describeTxn(Args a, String stage, Map<String, Object> r, long timeoutMs) throws Exception {
        Properties p = new Properties();
        p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, a.required("--bootstrap"));
        p.put(AdminClientConfig.CLIENT_ID_CONFIG, "kafkacheck-txn-admin");
        try (Admin admin = Admin.create(p)) {
            String id = a.required("--transactional-id");
            org.apache.kafka.clients.admin.TransactionDescription d = admin.describeTransactions(
                Collections.singletonList(id)).description(id).get(timeoutMs, TimeUnit.MILLISECONDS);
            r.put(stage + "_producer_id", d.producerId());
            r.put(stage + "_epoch", d.producerEpoch());
        }
    }

    // ------------------------------------------------------------------ admin

    static Map<String, Object> admin(Args a, long timeoutMs) throws Exception {
        long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(timeoutMs);
        if (a.positional.size() < 2) throw new UsageError("admin needs a subcommand");
        String sub = a.positional.get(1);
        currentOp = "admin " + sub;
        Properties p = new Properties();
        p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, a.required("--bootstrap"));
        p.put(AdminClientConfig.CLIENT_ID_CONFIG, "kafkacheck-admin");
        a.applyProps(p);
        Map<String, Object> r = new LinkedHashMap<>();
        Admin admin = Admin.create(p);
        try {
            int opTimeout = (int) Math.min(Integer.MAX_VALUE, remaining(deadline));
            switch (sub) {
                case "create-topic": {
                    String topic = topicArg(a);
                    int partitions = a.getInt("--partitions", 1);
                    short rf = (short) a.getInt("--replication-factor", 1);
                    r.put("topic", topic);
                    r.put("partitions", partitions);
                    r.put("replication_factor", (int) rf);
                    try {
                        admin.createTopics(Collections.singletonList(new NewTopic(topic, partitions, rf)),
                                new CreateTopicsOptions().timeoutMs(opTimeout))
                            .all().get(remaining(deadline), TimeUnit.MILLISECONDS);
                        r.put("created", true);
                    } catch (ExecutionException e) {
                        if (e.getCause() instanceof TopicExistsException && a.flag("--if-not-exists")) {
                            r.put("created", false);
                        } else {
                            throw e;
                        }
                    }
                    break;
                }
                case "list-topics": {
                    Set<String> names = admin.listTopics(new ListTopicsOptions().timeoutMs(opTimeout))
                        .names().get(remaining(deadline), TimeUnit.MILLISECONDS);
                    r.put("topics", new TreeSet<>(names));
                    break;
                }
                case "describe-topic": {
                    String topic = topicArg(a);
                    TopicDescription d = admin.describeTopics(Collections.singletonList(topic),
                            new DescribeTopicsOptions().timeoutMs(opTimeout))
                        .allTopicNames().get(remaining(deadline), TimeUnit.MILLISECONDS).get(topic);
                    r.put("topic", d.name());
                    r.put("topic_id", d.topicId() == null ? null : d.topicId().toString());
                    r.put("internal", d.isInternal());
                    List<Object> parts = new ArrayList<>();
                    for (TopicPartitionInfo tpi : d.partitions()) {
                        parts.add(obj("partition", tpi.partition(),
                            "leader", tpi.leader() == null ? null : tpi.leader().id(),
                            "replicas", nodeIds(tpi.replicas()),
                            "isr", nodeIds(tpi.isr())));
                    }
                    r.put("partition_count", parts.size());
                    r.put("partitions", parts);
                    break;
                }
                case "delete-topic": {
                    String topic = topicArg(a);
                    r.put("topic", topic);
                    admin.deleteTopics(Collections.singletonList(topic), new DeleteTopicsOptions().timeoutMs(opTimeout))
                        .all().get(remaining(deadline), TimeUnit.MILLISECONDS);
                    r.put("deleted", true);
                    break;
                }
                case "describe-cluster": {
                    DescribeClusterResult d = admin.describeCluster(new DescribeClusterOptions().timeoutMs(opTimeout));
                    long ms = remaining(deadline);
                    r.put("cluster_id", d.clusterId().get(ms, TimeUnit.MILLISECONDS));
                    Node controller = d.controller().get(remaining(deadline), TimeUnit.MILLISECONDS);
                    r.put("controller", controller == null ? null : controller.id());
                    List<Object> nodes = new ArrayList<>();
                    for (Node n : d.nodes().get(remaining(deadline), TimeUnit.MILLISECONDS)) {
                        nodes.add(obj("id", n.id(), "host", n.host(), "port", n.port(), "rack", n.rack()));
                    }
                    r.put("nodes", nodes);
                    break;
                }
                case "describe-features": {
                    FeatureMetadata f = admin.describeFeatures().featureMetadata()
                        .get(remaining(deadline), TimeUnit.MILLISECONDS);
                    Map<String, Object> supported = new TreeMap<>();
                    for (Map.Entry<String, SupportedVersionRange> e : f.supportedFeatures().entrySet()) {
                        supported.put(e.getKey(), Arrays.asList((int) e.getValue().minVersion(), (int) e.getValue().maxVersion()));
                    }
                    Map<String, Object> finalized = new TreeMap<>();
                    for (Map.Entry<String, FinalizedVersionRange> e : f.finalizedFeatures().entrySet()) {
                        finalized.put(e.getKey(), Arrays.asList((int) e.getValue().minVersionLevel(), (int) e.getValue().maxVersionLevel()));
                    }
                    r.put("supported", supported);
                    r.put("finalized", finalized);
                    r.put("finalized_epoch", f.finalizedFeaturesEpoch().orElse(null));
                    break;
                }
                default: {
                    Map<String, Object> facts = AdminSurface.run(sub, admin, a.positional, a.options, deadline);
                    if (facts == null) throw new UsageError("unknown admin subcommand '" + sub + "'");
                    r.putAll(facts);
                }
            }
        } finally {
            admin.close(Duration.ofMillis(Math.min(2000, remaining(deadline))));
        }
        return r;
    }

    static String topicArg(Args a) {
        if (a.positional.size() < 3) throw new UsageError(a.positional.get(1) + " needs a topic name");
        return a.positional.get(2);
    }

    static List<Object> nodeIds(List<Node> nodes) {
        List<Object> ids = new ArrayList<>();
        if (nodes != null) {
            for (Iterator<Node> it = nodes.iterator(); it.hasNext();) ids.add(it.next().id());
        }
        return ids;
    }
}
