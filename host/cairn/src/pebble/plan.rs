//! `plan`, `add` and `replan`: the container's layers and making the services match them.

use std::path::PathBuf;

use anyhow::{Context, Result};
use cairn_api::Client;
use clap::Args;

use super::Io;
use super::changes::services_action;
use crate::args::WaitArgs;

/// Arguments of `add`.
#[derive(Args)]
pub struct AddArgs {
    /// Combine the new layer with an existing layer that has the given label (default is
    /// to append).
    #[arg(long)]
    combine: bool,
    /// Allow appending a new layer inside an existing subdirectory.
    #[arg(long)]
    inner: bool,
    /// The layer's label.
    label: String,
    /// Path of the layer YAML.
    layer_path: PathBuf,
}

/// Arguments of `replan`.
#[derive(Args)]
pub struct ReplanArgs {
    #[command(flatten)]
    wait: WaitArgs,
    /// Arguments, ignored as Pebble ignores them.
    #[arg(hide = true)]
    _ignored: Vec<String>,
}

/// `plan`: the combined plan as YAML.
pub async fn plan(client: &Client, io: &mut Io<'_>) -> Result<i32> {
    io.out.write_all(client.plan().await?.as_bytes())?;
    Ok(0)
}

/// `add`: adds (or combines) a layer read from a local file.
pub async fn add(client: &Client, args: AddArgs, io: &mut Io<'_>) -> Result<i32> {
    let AddArgs {
        combine,
        inner,
        label,
        layer_path,
    } = args;
    let data = std::fs::read_to_string(&layer_path)
        .with_context(|| format!("cannot read {}", layer_path.display()))?;
    client.add_layer(&label, &data, combine, inner).await?;
    writeln!(
        io.out,
        "Layer {label:?} added successfully from {:?}",
        layer_path.display().to_string()
    )?;
    Ok(0)
}

/// `replan`: restarts what the plan changed and starts what should run.
pub async fn replan(client: &Client, args: ReplanArgs, io: &mut Io<'_>) -> Result<i32> {
    services_action(client, "replan", &[], args.wait, io).await
}
