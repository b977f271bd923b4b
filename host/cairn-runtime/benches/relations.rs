//! Relations at the host's scale: how long a databag write takes to reach the remote
//! unit's handler, and what a host holding many related units costs in memory.
//!
//! `cargo bench -p cairn-runtime --bench relations` runs, in this process, a real `Host`
//! on a state directory on disk with the `relator` test guest:
//!
//! - **hop**: `a` and `b` (one unit each) related, in relay mode: a config change makes
//!   `a/0` write `hop=<round>:0`, and each `relation-changed` answers `k` with `k+1` until
//!   `HOPS`, so one round is `HOPS + 1` hops, each a remote unit's handler running on the
//!   other's committed write (snapshot, dispatch, commit with fsync, the next unit's queue).
//!   Per round: the time from the config-changed's end to the last handler's end (from the
//!   units' history), divided by the hops. Median and p90 over `ROUNDS` rounds. Run with
//!   the state on disk, then (where `/dev/shm` is) on tmpfs, to show what the fsyncs of
//!   each hop's two atomic writes (the relation record, the next unit's queue) cost.
//! - **memory**: 100 units in 50 relations (apps `p<i>` and `q<i>`, one unit each, `p<i>:out`
//!   related to `q<i>:in`; each app also has its peer relation): the process's resident
//!   memory before and after, and the time for everything to settle.

use std::time::{Duration, Instant};

use cairn_runtime::{DeployOptions, Host, HostConfig};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Hops after the first write, per round.
const HOPS: u32 = 20;
/// Measured rounds (after `WARMUP`).
const ROUNDS: u32 = 30;
/// Rounds run first and not measured.
const WARMUP: u32 = 3;
/// Related pairs of apps for the memory figure.
const PAIRS: u32 = 50;

/// The relator charm directory under `dir`.
fn charm_dir(dir: &std::path::Path) -> std::path::PathBuf {
    let c = dir.join("relator");
    std::fs::create_dir_all(&c).unwrap();
    std::fs::write(
        c.join("charmcraft.yaml"),
        include_str!("../../../tests/programs/relator/charmcraft.yaml"),
    )
    .unwrap();
    std::fs::copy(cairn_test_programs::RELATOR_WASM, c.join("charm.wasm")).unwrap();
    c
}

/// The process's resident memory, in KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

async fn deploy(host: &Host, charm: &std::path::Path, name: &str, settings: &[(&str, &str)]) {
    let opts = DeployOptions {
        name: Some(name.into()),
        settings: settings
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..DeployOptions::default()
    };
    host.deploy_with(charm, &opts).await.unwrap();
}

/// Waits until no unit has anything queued.
async fn settled(host: &Host) {
    loop {
        let st = host.status().await;
        if st.apps.iter().flat_map(|a| &a.units).all(|u| u.queued == 0) {
            return;
        }
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
}

fn parse(t: &str) -> OffsetDateTime {
    OffsetDateTime::parse(t, &Rfc3339).unwrap()
}

/// The history entries of `unit` named `*-relation-changed` or `config-changed` that
/// ended after `since`, as (end, name).
async fn ended_since(
    host: &Host,
    unit: &str,
    since: OffsetDateTime,
) -> Vec<(OffsetDateTime, String)> {
    host.events(unit, Some(64))
        .await
        .unwrap()
        .into_iter()
        .map(|e| (parse(&e.time), e.event))
        .filter(|(t, _)| *t >= since)
        .collect()
}

async fn hops(dir: &std::path::Path, label: &str) {
    let host = Host::open(HostConfig::new(dir.join("hop-state")))
        .await
        .unwrap();
    let charm = charm_dir(dir);
    let relay = HOPS.to_string();
    deploy(&host, &charm, "a", &[("relay", &relay)]).await;
    deploy(&host, &charm, "b", &[("relay", &relay)]).await;
    host.integrate("a:out", "b:in").await.unwrap();
    settled(&host).await;
    let mut per_hop = Vec::new();
    for round in 0..WARMUP + ROUNDS {
        let since = OffsetDateTime::now_utc();
        let key = format!("r{round}");
        host.set_config("a", &[("key".into(), key)], &[])
            .await
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        let (start, end) = loop {
            let mut seen = ended_since(&host, "a/0", since).await;
            seen.extend(ended_since(&host, "b/0", since).await);
            let changed: Vec<OffsetDateTime> = seen
                .iter()
                .filter(|(_, n)| n.ends_with("-relation-changed"))
                .map(|(t, _)| *t)
                .collect();
            let config = seen
                .iter()
                .find(|(_, n)| n == "config-changed")
                .map(|(t, _)| *t);
            if let Some(c) = config
                && changed.len() as u32 == HOPS + 1
            {
                break (c, changed.into_iter().max().unwrap());
            }
            assert!(
                Instant::now() < deadline,
                "round {round} never ended: {seen:?}"
            );
            tokio::time::sleep(Duration::from_micros(500)).await;
        };
        settled(&host).await;
        if round >= WARMUP {
            let total = (end - start).as_seconds_f64();
            per_hop.push(total / f64::from(HOPS + 1));
        }
    }
    per_hop.sort_by(f64::total_cmp);
    let at = |q: f64| per_hop[((per_hop.len() - 1) as f64 * q).round() as usize] * 1e3;
    println!(
        "relation-changed hop ({label}; write committed -> remote handler done), {} hops x {ROUNDS} rounds: median {:.2} ms, p90 {:.2} ms, best {:.2} ms",
        HOPS + 1,
        at(0.5),
        at(0.9),
        at(0.0)
    );
    host.shutdown().await;
}

async fn memory(dir: &std::path::Path) {
    let before = rss_kib();
    let host = Host::open(HostConfig::new(dir.join("mem-state")))
        .await
        .unwrap();
    let charm = charm_dir(dir);
    let opened = rss_kib();
    let started = Instant::now();
    for i in 0..PAIRS {
        deploy(&host, &charm, &format!("p{i}"), &[]).await;
        deploy(&host, &charm, &format!("q{i}"), &[]).await;
        host.integrate(&format!("p{i}:out"), &format!("q{i}:in"))
            .await
            .unwrap();
    }
    settled(&host).await;
    let took = started.elapsed();
    let after = rss_kib();
    let relations = host.relations().await;
    let regular = relations.iter().filter(|r| r.kind == "regular").count();
    let units: usize = host.status().await.apps.iter().map(|a| a.units.len()).sum();
    println!(
        "{units} units in {regular} relations (+{} peer relations): RSS {:.1} MiB after, {:.1} MiB more than the opened host ({:.0} KiB per unit; the process held {:.1} MiB before the host); deployed, related and settled in {:.2} s",
        relations.len() - regular,
        after as f64 / 1024.0,
        after.saturating_sub(opened) as f64 / 1024.0,
        after.saturating_sub(opened) as f64 / units as f64,
        before as f64 / 1024.0,
        took.as_secs_f64()
    );
    host.shutdown().await;
}

fn main() {
    let dir = cairn_testutil::TempDir::new("bench-relations");
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    tokio.block_on(hops(dir.path(), "state on disk"));
    if std::path::Path::new("/dev/shm").is_dir() {
        let shm = std::path::Path::new("/dev/shm")
            .join(format!("cairn-bench-relations-{}", std::process::id()));
        std::fs::create_dir_all(&shm).unwrap();
        tokio.block_on(hops(&shm, "state on tmpfs"));
        let _ = std::fs::remove_dir_all(&shm);
    }
    tokio.block_on(memory(dir.path()));
}
