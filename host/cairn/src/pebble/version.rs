//! `version`: the client's version and the server's.

use anyhow::Result;
use cairn_api::Client;
use clap::Args;

use super::Io;
use crate::args::ListFormatArgs;
use crate::table::{render, row};

/// Arguments of `version`.
#[derive(Args)]
pub struct VersionArgs {
    /// Only display the client version.
    #[arg(long)]
    client: bool,
    #[command(flatten)]
    format: ListFormatArgs,
}

/// `version`: `client  vX` and `server  vY` (`-` when the server cannot be reached).
pub async fn version(client: &Client, args: VersionArgs, io: &mut Io<'_>) -> Result<i32> {
    let mine = format!("v{}", env!("CARGO_PKG_VERSION"));
    if args.client {
        if args.format.text() {
            writeln!(io.out, "{mine}")?;
        } else {
            let v = serde_json::json!({ "client": mine });
            args.format.write(io.out, &v.to_string())?;
        }
        return Ok(0);
    }
    let server = client.system_info().await;
    if args.format.text() {
        let sv = server
            .as_ref()
            .map(|s| s.version.clone())
            .unwrap_or_else(|_| "-".into());
        let table = render(&[row(["client", &mine]), row(["server", &sv])]);
        io.out.write_all(table.as_bytes())?;
    } else {
        let sv = server?.version;
        let v = serde_json::json!({ "client": mine, "server": sv });
        args.format.write(io.out, &v.to_string())?;
    }
    Ok(0)
}
