//! A Kafka-protocol broker for the tests, and a small client around rdkafka.
//!
//! Each test starts its own broker (so that one test can restart it without disturbing
//! another): the binary named by `FLOWLET_KAFKA_BROKER_BIN`, else the one `scripts/kafka-broker
//! env` installs (cached). With `FLOWLET_KAFKA_BROKERS` set (e.g. a real Apache Kafka) every
//! test uses that cluster instead, with unique topic names.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};

/// What the environment gives: an external cluster, or a broker binary.
enum Setup {
    External(String),
    Binary { bin: PathBuf, transactions: bool },
}

fn setup() -> &'static Setup {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    SETUP.get_or_init(|| {
        if let Ok(b) = std::env::var("FLOWLET_KAFKA_BROKERS") {
            return Setup::External(b);
        }
        let (bin, tx) = match std::env::var("FLOWLET_KAFKA_BROKER_BIN") {
            Ok(bin) => (bin, std::env::var("FLOWLET_KAFKA_TRANSACTIONS").ok()),
            Err(_) => {
                let out = Command::new(crate::root().join("scripts/kafka-broker"))
                    .arg("env")
                    .stderr(Stdio::inherit())
                    .output()
                    .expect("run scripts/kafka-broker env");
                assert!(out.status.success(), "scripts/kafka-broker env failed");
                let text = String::from_utf8_lossy(&out.stdout).into_owned();
                let get = |k: &str| {
                    text.lines()
                        .find_map(|l| l.strip_prefix(&format!("{k}=")).map(str::to_owned))
                };
                (
                    get("FLOWLET_KAFKA_BROKER_BIN").expect("a broker binary"),
                    get("FLOWLET_KAFKA_TRANSACTIONS"),
                )
            }
        };
        Setup::Binary {
            bin: bin.into(),
            transactions: tx.as_deref() != Some("0"),
        }
    })
}

/// Whether the broker supports transactions (tansu does not: transactional tests say so and
/// return).
pub fn transactions() -> bool {
    match setup() {
        Setup::External(_) => true,
        Setup::Binary { transactions, .. } => *transactions,
    }
}

/// Whether the broker hides aborted transactions from `read_committed` readers (a real Kafka;
/// the test broker nisshi does not).
pub fn hides_aborted() -> bool {
    matches!(setup(), Setup::External(_))
}

pub struct Broker {
    pub brokers: String,
    child: Option<Child>,
    dir: Option<tempfile::TempDir>,
    port: u16,
    /// The port clients are told to use (a proxy's, see [`Broker::behind_proxy`]).
    advertised: u16,
}

/// A port nothing listens on, never handed out twice in this process: a test whose broker is
/// down (or restarting) must not see another test's broker appear on its port.
fn free_port() -> u16 {
    static TAKEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut taken = TAKEN.lock().unwrap();
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if !taken.contains(&port) {
            taken.push(port);
            return port;
        }
    }
}

impl Broker {
    pub fn start() -> Self {
        match setup() {
            Setup::External(b) => Self {
                brokers: b.clone(),
                child: None,
                dir: None,
                port: 0,
                advertised: 0,
            },
            Setup::Binary { .. } => {
                let port = free_port();
                let mut b = Self {
                    brokers: format!("127.0.0.1:{port}"),
                    child: None,
                    dir: Some(tempfile::tempdir().unwrap()),
                    port,
                    advertised: port,
                };
                b.spawn();
                b
            }
        }
    }

    /// A broker whose address is chosen but which is not started yet (tests of a broker that
    /// is down); `None` with an external cluster.
    pub fn not_started() -> Option<Self> {
        match setup() {
            Setup::External(_) => None,
            Setup::Binary { .. } => {
                let port = free_port();
                Some(Self {
                    brokers: format!("127.0.0.1:{port}"),
                    child: None,
                    dir: Some(tempfile::tempdir().unwrap()),
                    port,
                    advertised: port,
                })
            }
        }
    }

    /// A broker that clients reach through a fault-injecting TCP proxy (it advertises the
    /// proxy's port, so that every connection goes through it); `None` with an external
    /// cluster.
    pub fn behind_proxy() -> Option<(Self, crate::proxy::Proxy)> {
        let Setup::Binary { .. } = setup() else {
            return None;
        };
        let (port, advertised) = (free_port(), free_port());
        let proxy = crate::proxy::Proxy::start(advertised, port);
        let mut b = Self {
            brokers: format!("127.0.0.1:{advertised}"),
            child: None,
            dir: Some(tempfile::tempdir().unwrap()),
            port,
            advertised,
        };
        b.spawn();
        Some((b, proxy))
    }

    /// Start a broker made by [`Broker::not_started`].
    pub fn launch(&mut self) {
        self.spawn();
    }

    /// Whether this test owns its broker (and may stop it).
    pub fn owned(&self) -> bool {
        self.dir.is_some()
    }

    fn spawn(&mut self) {
        let Setup::Binary { bin, .. } = setup() else {
            return;
        };
        let dir = self.dir.as_ref().unwrap().path();
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let advertised = format!("tcp://127.0.0.1:{}", self.advertised);
        let child = Command::new(bin)
            .current_dir(dir)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &advertised,
            ])
            .args(["--storage-engine", "sqlite://broker.db"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("broker.log")).unwrap())
            .spawn()
            .expect("start the test broker");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "the test broker did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Start it again on the same port, with the same storage.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// A topic with a unique name.
    pub fn topic(&self, name: &str, partitions: i32) -> String {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.topic_named(&format!("{name}-{}-{n}", std::process::id()), partitions)
    }

    /// Create `topic`.
    pub fn topic_named(&self, topic: &str, partitions: i32) -> String {
        let topic = topic.to_owned();
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", &self.brokers)
            .create()
            .unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let result = rt
            .block_on(admin.create_topics(
                &[NewTopic::new(
                    &topic,
                    partitions,
                    TopicReplication::Fixed(1),
                )],
                &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
            ))
            .unwrap();
        for r in result {
            r.unwrap_or_else(|(t, e)| panic!("create topic {t}: {e}"));
        }
        topic
    }

    /// Produce `(key, value)` records (partitioned by key), and wait until they are stored.
    pub fn produce(&self, topic: &str, records: &[(String, String)]) {
        let p: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
            .set("bootstrap.servers", &self.brokers)
            .set("linger.ms", "5")
            .create()
            .unwrap();
        for (k, v) in records {
            let mut rec = BaseRecord::to(topic)
                .key(k.as_bytes())
                .payload(v.as_bytes());
            loop {
                match p.send(rec) {
                    Ok(()) => break,
                    Err((_, r)) => {
                        rec = r;
                        std::thread::sleep(Duration::from_millis(2));
                    }
                }
            }
        }
        p.flush(Duration::from_secs(60)).unwrap();
    }

    /// The offsets `group` has committed for `topic`, summed over its partitions.
    pub fn committed_offsets(&self, group: &str, topic: &str) -> i64 {
        let c: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.brokers)
            .set("group.id", group)
            .create()
            .unwrap();
        let md = c
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .unwrap();
        let mut tpl = TopicPartitionList::new();
        for p in md.topics()[0].partitions() {
            tpl.add_partition(topic, p.id());
        }
        c.committed_offsets(tpl, Duration::from_secs(10))
            .unwrap()
            .elements()
            .iter()
            .map(|e| match e.offset() {
                Offset::Offset(o) => o,
                _ => 0,
            })
            .sum()
    }

    /// Every record of `topic`, partition by partition, up to the end offsets at the call.
    pub fn read_all(&self, topic: &str, read_committed: bool) -> Vec<Record> {
        let c: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.brokers)
            .set("group.id", "flowlet-tests-reader")
            .set("enable.auto.commit", "false")
            .set(
                "isolation.level",
                if read_committed {
                    "read_committed"
                } else {
                    "read_uncommitted"
                },
            )
            .create()
            .unwrap();
        let md = c
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .unwrap();
        let parts: Vec<i32> = md.topics()[0].partitions().iter().map(|p| p.id()).collect();
        let mut tpl = TopicPartitionList::new();
        let mut ends = BTreeMap::new();
        let mut lows = BTreeMap::new();
        for p in &parts {
            let (low, high) = c
                .fetch_watermarks(topic, *p, Duration::from_secs(10))
                .unwrap();
            ends.insert(*p, high);
            lows.insert(*p, low);
            tpl.add_partition_offset(topic, *p, Offset::Beginning)
                .unwrap();
        }
        c.assign(&tpl).unwrap();
        let mut out = Vec::new();
        let mut done: BTreeMap<i32, bool> = ends.iter().map(|(p, e)| (*p, *e == 0)).collect();
        let deadline = Instant::now() + Duration::from_secs(60);
        while done.values().any(|d| !d) {
            assert!(Instant::now() < deadline, "reading {topic} timed out");
            match c.poll(Duration::from_millis(200)) {
                Some(Ok(m)) => {
                    let mut headers = BTreeMap::new();
                    if let Some(h) = m.headers() {
                        for i in 0..h.count() {
                            let hd = h.get(i);
                            headers.insert(
                                hd.key.to_owned(),
                                String::from_utf8_lossy(hd.value.unwrap_or_default()).into_owned(),
                            );
                        }
                    }
                    if m.offset() + 1 >= ends[&m.partition()] {
                        done.insert(m.partition(), true);
                    }
                    out.push(Record {
                        key: m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
                        value: String::from_utf8_lossy(m.payload().unwrap_or_default())
                            .into_owned(),
                        headers,
                        partition: m.partition(),
                        offset: m.offset(),
                    });
                }
                Some(Err(e)) => panic!("reading {topic}: {e}"),
                None => {
                    // Transaction markers end a partition without a message.
                    if let Ok(pos) = c.position() {
                        for e in pos.elements() {
                            if let Offset::Offset(o) = e.offset()
                                && o >= ends[&e.partition()]
                            {
                                done.insert(e.partition(), true);
                            }
                        }
                    }
                }
            }
        }
        let gaps = gaps(&out);
        if !gaps.is_empty() || lows.values().any(|l| *l != 0) {
            eprintln!(
                "reading {topic}: log start offsets {lows:?}, end offsets {ends:?}; offsets skipped (partition, after, next): {gaps:?}"
            );
        }
        out
    }
}

/// Where the offsets read from each partition jump by more than one transaction marker
/// (`(partition, offset, next offset)`, a first offset above 1 included): records the broker
/// did not return. Diagnostics for the crash tests.
fn gaps(records: &[Record]) -> Vec<(i32, i64, i64)> {
    let mut last: BTreeMap<i32, i64> = BTreeMap::new();
    let mut out = Vec::new();
    for r in records {
        let prev = last.insert(r.partition, r.offset).unwrap_or(-1);
        if r.offset - prev > 2 {
            out.push((r.partition, prev, r.offset));
        }
    }
    out
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
        if let (Ok(keep), Some(dir)) = (std::env::var("FLOWLET_KEEP"), &self.dir) {
            let to = std::path::Path::new(&keep).join(format!("broker-{}", self.port));
            let _ = std::fs::create_dir_all(&to);
            for f in std::fs::read_dir(dir.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                let _ = std::fs::copy(f.path(), to.join(f.file_name()));
            }
        }
    }
}

/// A record read back.
#[derive(Debug, Clone)]
pub struct Record {
    pub key: Option<String>,
    pub value: String,
    pub headers: BTreeMap<String, String>,
    pub partition: i32,
    pub offset: i64,
}

/// The records of committed transactions, told from aborted attempts by the headers flowlet
/// writes (`flowlet-run`, `flowlet-checkpoint`, `flowlet-lineage`) — for brokers that show
/// aborted records to `read_committed` readers. A record of run `r` in checkpoint `c` is
/// committed when a later record's lineage says run `r` committed checkpoint `c` or later, or
/// when `r` is `final_run` (the run that ended cleanly: its last transaction committed).
pub fn committed_by_headers(records: &[Record], final_run: Option<u64>) -> Vec<Record> {
    let mut committed: BTreeMap<u64, u64> = BTreeMap::new();
    for r in records {
        if let Some(l) = r.headers.get("flowlet-lineage") {
            for part in l.split(',').filter(|p| !p.is_empty()) {
                let (run, ck) = part.split_once(':').expect("run:checkpoint");
                let (run, ck): (u64, u64) = (run.parse().unwrap(), ck.parse().unwrap());
                let e = committed.entry(run).or_default();
                *e = (*e).max(ck);
            }
        }
    }
    let final_run = final_run.or_else(|| {
        records
            .iter()
            .filter_map(|r| r.headers.get("flowlet-run")?.parse().ok())
            .max()
    });
    records
        .iter()
        .filter(|r| {
            let run: u64 = r.headers["flowlet-run"].parse().unwrap();
            let ck: u64 = r.headers["flowlet-checkpoint"].parse().unwrap();
            Some(run) == final_run || committed.get(&run).is_some_and(|c| *c >= ck)
        })
        .cloned()
        .collect()
}

/// A summary of the attempts in `records`: per run, per checkpoint, how many records and
/// whether they were kept (printed by the tests, for when a comparison fails).
pub fn attempts(records: &[Record], kept: &[Record]) -> String {
    let key = |r: &Record| (r.partition, r.offset);
    let kept: std::collections::HashSet<_> = kept.iter().map(key).collect();
    let mut runs: BTreeMap<(String, u64), (usize, usize, String)> = BTreeMap::new();
    for r in records {
        let e = runs
            .entry((
                r.headers.get("flowlet-run").cloned().unwrap_or_default(),
                r.headers
                    .get("flowlet-checkpoint")
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(0),
            ))
            .or_default();
        e.0 += 1;
        e.1 += usize::from(kept.contains(&key(r)));
        e.2 = r
            .headers
            .get("flowlet-lineage")
            .cloned()
            .unwrap_or_default();
    }
    let mut out = String::from("run checkpoint records kept lineage\n");
    for ((run, ck), (n, k, l)) in runs {
        out.push_str(&format!("{run} {ck} {n} {k} {l}\n"));
    }
    out
}
