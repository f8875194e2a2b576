//! Instances joining and leaving the group while data flows: every window comes
//! out right, and in exactly-once mode a read-committed reader sees each once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use vigil_kafka::RunStats;
use vigil_tests::Broker;
use vigil_tests::workload::{PATIENTS, expected, produce, readings, results, topics};

use crate::pipeline::{Mode, config, pipeline, sample, spawn_reporting};

/// A running instance: its stop flag and thread.
struct Member {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<RunStats>,
}

impl Member {
    fn leave(self) -> RunStats {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().expect("run thread")
    }
}

#[test]
fn instances_joining_and_leaving_while_data_flows_lose_nothing_and_exactly_once_repeats_nothing() {
    for mode in [Mode::Checkpoints, Mode::ExactlyOnce] {
        rebalances_while_data_flows(mode);
    }
}

fn rebalances_while_data_flows(mode: Mode) {
    crate::log_if_asked();
    let broker = Broker::start();
    let name = format!("churn-{mode:?}").to_lowercase();
    let (input, output) = topics(&broker, &name);
    let p = Arc::new(pipeline(&input, &output));
    let mut config = config(&broker, &name);
    config.exactly_once = mode == Mode::ExactlyOnce;
    // A member joins once it has partitions (tansu takes a few seconds per
    // join): the data keeps flowing meanwhile.
    let join = || {
        let stop = Arc::new(AtomicBool::new(false));
        let registry = prometheus::Registry::new();
        let handle = spawn_reporting(Arc::clone(&p), config.clone(), Arc::clone(&stop), &registry);
        let deadline = Instant::now() + Duration::from_secs(30);
        while sample(&registry, "vigil_assigned_partitions", &[]) < 1.0 && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(50));
        }
        Member { stop, handle }
    };
    let all = readings();
    // The readings go in 10 s of readings at a time, every 0.7 s, for about 20
    // s, while members join and leave (tansu takes about 3 s per rebalance).
    let feeder = {
        let (broker_at, input, all) = (broker.bootstrap().to_owned(), input.clone(), all.clone());
        std::thread::spawn(move || {
            let broker = Broker::at(broker_at);
            for slice in all.chunks(PATIENTS) {
                produce(&broker, &input, slice);
                std::thread::sleep(Duration::from_millis(700));
            }
        })
    };
    let mut stats = Vec::new();
    let a = join();
    let b = join();
    let c = join();
    stats.push(a.leave());
    stats.push(b.leave());
    let d = join();
    feeder.join().expect("feeder");
    let expected = expected();
    let received = broker.consume(&output, Duration::from_secs(120), |r| {
        results(r).len() >= expected.len()
    });
    // Anything late to arrive would show as a duplicate.
    std::thread::sleep(Duration::from_millis(1500));
    stats.push(c.leave());
    stats.push(d.leave());
    let received_all = broker.consume(&output, Duration::from_secs(10), |r| {
        r.len() >= received.len() + 1000
    });
    assert_eq!(results(&received_all), expected, "{mode:?}");
    let consumed: u64 = stats.iter().map(|s| s.consumed).sum();
    let duplicates = received_all.len() - expected.len();
    eprintln!(
        "{mode:?}: {} results for {} windows ({duplicates} duplicates), {consumed} messages consumed for {}, {} partitions restored",
        received_all.len(),
        expected.len(),
        all.len(),
        stats.iter().map(|s| s.restored).sum::<u64>()
    );
    assert!(
        stats.iter().map(|s| s.revoked).sum::<u64>() >= 6,
        "the partitions moved: {stats:?}"
    );
    if mode == Mode::ExactlyOnce {
        assert_eq!(duplicates, 0, "{stats:?}");
        // Every handover released its partitions: nobody was fenced.
        assert_eq!(stats.iter().map(|s| s.fenced).sum::<u64>(), 0, "{stats:?}");
        assert!(stats.iter().all(|s| s.transactions > 0), "{stats:?}");
    }
}
