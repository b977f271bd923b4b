//! What the model's tests share: charm directories of the test guests, a host on a state
//! directory, and waiting for units to go quiet.

use std::path::{Path, PathBuf};
use std::time::Duration;

use cairn_testutil::TempDir;

use super::{Host, HostConfig};

/// A charm directory `name` under `dir`, with `meta` as its `charmcraft.yaml` and the
/// component at `wasm`.
pub(super) fn charm_dir(dir: &TempDir, name: &str, meta: &str, wasm: &str) -> PathBuf {
    let c = dir.path().join(name);
    std::fs::create_dir_all(&c).unwrap();
    std::fs::write(c.join("charmcraft.yaml"), meta).unwrap();
    std::fs::copy(wasm, c.join("charm.wasm")).unwrap();
    c
}

/// A host on `state` (room for a few instances), with or without the pooling allocator.
pub(super) async fn open(state: &Path, pooling: bool) -> Host {
    let mut config = HostConfig::new(state);
    config.runtime.max_instances = 8;
    config.runtime.pooling = pooling;
    Host::open(config).await.unwrap()
}

/// Waits (up to 30 s) until every unit of the host has an empty queue.
pub(super) async fn settled(host: &Host) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let st = host.status().await;
        if st.apps.iter().flat_map(|a| &a.units).all(|u| u.queued == 0) {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "{st:#?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
