//! The fetch queue: assigned partitions' messages are taken in batches from
//! their own queue, never from the consumer's, each once and in order, and
//! pauses and seeks drop nothing and repeat nothing.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use vigil_kafka::fetch::FetchQueue;
use vigil_kafka::source::GroupContext;
use vigil_tests::Broker;

/// What the test keeps of a message: partition, offset, key, payload, time.
type Seen = (i32, i64, Option<Vec<u8>>, Vec<u8>, Option<i64>);

/// Takes batches (and polls the consumer, which must yield no message) until
/// `want` messages are in, or `tries` batches were taken (each waiting up to
/// 20 ms for a message), or 60 s pass.
fn gather(
    consumer: &BaseConsumer<GroupContext>,
    fetch: &mut FetchQueue<'_>,
    want: usize,
    tries: usize,
) -> Vec<Seen> {
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut tried = 0;
    while seen.len() < want && tried < tries && Instant::now() < deadline {
        tried += 1;
        if let Some(Ok(message)) = consumer.poll(Duration::ZERO) {
            panic!("a routed partition's message reached the consumer's queue: {message:?}");
        }
        let batch = fetch.next_batch(64, Duration::from_millis(20));
        for message in batch.iter() {
            let m = message.expect("no consume error");
            seen.push((
                m.partition,
                m.offset,
                m.key.map(<[u8]>::to_vec),
                m.payload.to_vec(),
                m.timestamp,
            ));
        }
    }
    seen
}

fn produce(broker: &Broker, topic: &str, range: std::ops::Range<usize>) {
    let keys: Vec<String> = range.clone().map(|i| format!("k{i}")).collect();
    let payloads: Vec<String> = range.clone().map(|i| format!("p{i}")).collect();
    let messages: Vec<_> = range
        .clone()
        .enumerate()
        .map(|(j, i)| {
            (
                (i % 2) as i32,
                (i % 5 != 0).then_some(keys[j].as_str()),
                payloads[j].as_str(),
                Some(1_000_000 + i as i64),
            )
        })
        .collect();
    broker.produce_timed(topic, &messages);
}

/// Messages `range` as they must be seen: per partition, in offset order.
fn expected(range: std::ops::Range<usize>, first_offset: [i64; 2]) -> BTreeMap<i32, Vec<Seen>> {
    let mut next = first_offset;
    let mut by_partition: BTreeMap<i32, Vec<Seen>> = BTreeMap::new();
    for i in range {
        let p = (i % 2) as i32;
        by_partition.entry(p).or_default().push((
            p,
            next[i % 2],
            (i % 5 != 0).then(|| format!("k{i}").into_bytes()),
            format!("p{i}").into_bytes(),
            Some(1_000_000 + i as i64),
        ));
        next[i % 2] += 1;
    }
    by_partition
}

fn by_partition(seen: Vec<Seen>) -> BTreeMap<i32, Vec<Seen>> {
    let mut map: BTreeMap<i32, Vec<Seen>> = BTreeMap::new();
    for s in seen {
        map.entry(s.0).or_default().push(s);
    }
    map
}

#[test]
fn batches_take_every_routed_message_once_in_order_across_pauses_and_seeks() {
    let broker = Broker::start();
    let topic = "fetch-queue";
    broker.create_topic(topic, 2);
    produce(&broker, topic, 0..300);

    let consumer: BaseConsumer<GroupContext> = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("group.id", "fetch-queue-test")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "6000")
        .set("max.poll.interval.ms", "7000")
        .create_with_context(GroupContext::default())
        .expect("consumer");
    let mut fetch = FetchQueue::new(&consumer).expect("fetch queue");
    consumer.subscribe(&[topic]).expect("subscribe");

    let first = gather(&consumer, &mut fetch, 300, usize::MAX);
    assert_eq!(by_partition(first), expected(0..300, [0, 0]));

    // Paused (as the run loop pauses while its sink catches up), then
    // resumed: what was produced meanwhile comes once, after the rest.
    let assignment = consumer.assignment().expect("assignment");
    assert_eq!(assignment.count(), 2);
    consumer.pause(&assignment).expect("pause");
    produce(&broker, topic, 300..400);
    let while_paused = gather(&consumer, &mut fetch, 100, 10);
    consumer.resume(&assignment).expect("resume");
    let mut after = while_paused;
    after.extend(gather(&consumer, &mut fetch, 100 - after.len(), usize::MAX));
    assert_eq!(by_partition(after), expected(300..400, [150, 150]));

    // A seek back (as a restored checkpoint's offset) reads from there again.
    consumer
        .seek(
            topic,
            0,
            rdkafka::Offset::Offset(190),
            Duration::from_secs(10),
        )
        .expect("seek");
    let again = gather(&consumer, &mut fetch, 10, usize::MAX);
    let want: Vec<Seen> = expected(300..400, [150, 150])[&0][40..].to_vec();
    assert_eq!(again, want);
    // Nothing more comes.
    assert_eq!(gather(&consumer, &mut fetch, 1, 10), Vec::new());
}
