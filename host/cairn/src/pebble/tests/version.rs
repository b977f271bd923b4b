//! `version`.

use super::{Container, Outcome};

#[tokio::test(flavor = "multi_thread")]
async fn version_shows_client_and_server() {
    let c = Container::start("version").await;
    let v = format!("v{}", env!("CARGO_PKG_VERSION"));
    assert_eq!(
        c.run(&["version"]).await,
        Outcome::ok(&format!("client  {v}\nserver  {v}\n"))
    );
    assert_eq!(
        c.run(&["version", "--client"]).await,
        Outcome::ok(&format!("{v}\n"))
    );
    assert_eq!(
        c.run(&["version", "--format", "json"]).await,
        Outcome::ok(&format!("{{\"client\":\"{v}\",\"server\":\"{v}\"}}\n"))
    );
    c.close().await;
}
