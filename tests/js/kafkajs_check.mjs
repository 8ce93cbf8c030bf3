// kafkajs against a broker: node tests/js/kafkajs_check.mjs BOOTSTRAP TOPIC
// Plain produce, then a committed and an aborted transaction, then a read_committed group consumer
// and a read_uncommitted one; prints one JSON line with what each consumer saw.
import { createRequire } from "node:module";

const require = createRequire(process.env.KAFKAJS_MODULES + "/");
const { Kafka, logLevel } = require("kafkajs");

const [bootstrap, topic] = process.argv.slice(2);
const kafka = new Kafka({ clientId: "pykbroker-kafkajs", brokers: [bootstrap], logLevel: logLevel.NOTHING });

async function consume(readUncommitted, expected) {
  const consumer = kafka.consumer({ groupId: `kafkajs-${readUncommitted}-${Date.now()}`, readUncommitted });
  const got = [];
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  await consumer.run({ eachMessage: async ({ message }) => { got.push(message.value.toString()); } });
  const deadline = Date.now() + 20000;
  while (got.length < expected && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  await new Promise((r) => setTimeout(r, 500)); // nothing beyond `expected` may arrive
  await consumer.disconnect();
  return got;
}

const admin = kafka.admin();
await admin.connect();
await admin.createTopics({ topics: [{ topic, numPartitions: 1 }], waitForLeaders: true });
await admin.disconnect();

const plain = kafka.producer();
await plain.connect();
await plain.send({ topic, messages: [{ value: "plain" }] });
await plain.disconnect();

const producer = kafka.producer({ transactionalId: `kafkajs-${topic}`, idempotent: true, maxInFlightRequests: 1 });
await producer.connect();
let txn = await producer.transaction();
await txn.send({ topic, messages: [{ value: "c0" }, { value: "c1" }] });
await txn.commit();
txn = await producer.transaction();
await txn.send({ topic, messages: [{ value: "a0" }] });
await txn.abort();
await producer.disconnect();

const committed = await consume(false, 3);
const uncommitted = await consume(true, 4);
console.log(JSON.stringify({ committed, uncommitted }));
