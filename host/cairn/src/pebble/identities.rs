//! `identities`, `identity`, `add-identities`, `update-identities` and `remove-identities`,
//! with Pebble's output: identities are read from a YAML file under a top-level
//! `identities` key, and shown as a table or, one at a time, as YAML.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use cairn_api::Client;
use cairn_supervisor::identities::Identity;
use clap::Args;

use super::Io;
use crate::args::ListFormatArgs;
use crate::table::{render, row};

/// Arguments of `identities`.
#[derive(Args)]
pub struct IdentitiesArgs {
    #[command(flatten)]
    format: ListFormatArgs,
}

/// Arguments of `identity`.
#[derive(Args)]
pub struct IdentityArgs {
    #[command(flatten)]
    format: ListFormatArgs,
    /// The identity's name.
    name: String,
}

/// Arguments of `add-identities` and `remove-identities`.
#[derive(Args)]
pub struct FromArgs {
    /// Path of YAML file to read identities from (required).
    #[arg(long)]
    from: PathBuf,
}

/// Arguments of `update-identities`.
#[derive(Args)]
pub struct UpdateArgs {
    /// Path of YAML file to read identities from (required).
    #[arg(long)]
    from: PathBuf,
    /// Replace (add or update) identities; remove null identities.
    #[arg(long)]
    replace: bool,
}

/// The identities of a YAML file (`identities:` at the top; a `null` value is kept as
/// `None`), refused when there are none, with Pebble's texts.
pub(crate) fn read_identities(
    path: &std::path::Path,
) -> Result<BTreeMap<String, Option<Identity>>> {
    #[derive(serde::Deserialize)]
    struct File {
        #[serde(default)]
        identities: Option<BTreeMap<String, Option<Identity>>>,
    }
    let text = std::fs::read_to_string(path).with_context(|| format!("open {}", path.display()))?;
    let file: File = serde_yaml::from_str(&text)
        .map_err(|e| anyhow::anyhow!("cannot unmarshal identities: {e}"))?;
    let ids = file.identities.unwrap_or_default();
    if ids.is_empty() {
        bail!("no identities to add; did you forget the top-level \"identities\" key?");
    }
    Ok(ids)
}

/// "1 identity", "2 identities".
fn count(n: usize, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

/// `identities`: a table of name, access and types.
pub async fn identities(client: &Client, args: IdentitiesArgs, io: &mut Io<'_>) -> Result<i32> {
    let ids = client.identities().await?;
    if !args.format.text() {
        args.format.write(
            io.out,
            &serde_json::json!({ "identities": ids }).to_string(),
        )?;
        return Ok(0);
    }
    if ids.is_empty() {
        writeln!(io.err, "No identities.")?;
        return Ok(0);
    }
    let mut rows = vec![row(["Name", "Access", "Types"])];
    for (name, i) in &ids {
        let mut types = Vec::new();
        if i.basic.is_some() {
            types.push("basic");
        }
        if i.local.is_some() {
            types.push("local");
        }
        if types.is_empty() {
            types.push("unknown");
        }
        rows.push(vec![name.clone(), i.access.clone(), types.join(",")]);
    }
    write!(io.out, "{}", render(&rows))?;
    Ok(0)
}

/// `identity NAME`: one identity as YAML (Pebble's layout: four-space indents).
pub async fn identity(client: &Client, args: IdentityArgs, io: &mut Io<'_>) -> Result<i32> {
    let ids = client.identities().await?;
    let Some(i) = ids.get(&args.name) else {
        bail!("cannot find identity {:?}", args.name);
    };
    if !args.format.text() {
        args.format.write(io.out, &serde_json::to_string(i)?)?;
        return Ok(0);
    }
    writeln!(io.out, "access: {}", i.access)?;
    if let Some(l) = &i.local {
        writeln!(
            io.out,
            "local:\n    user-id: {}",
            l.user_id.unwrap_or_default()
        )?;
    }
    if let Some(b) = &i.basic {
        writeln!(io.out, "basic:\n    password: '{}'", b.password)?;
    }
    if let Some(c) = &i.cert {
        writeln!(io.out, "cert:\n    pem: '{}'", c.pem)?;
    }
    Ok(0)
}

/// `add-identities --from FILE`.
pub async fn add(client: &Client, args: FromArgs, io: &mut Io<'_>) -> Result<i32> {
    let ids = read_identities(&args.from)?;
    client.change_identities("add", &ids).await?;
    writeln!(
        io.out,
        "Added {}.",
        count(ids.len(), "new identity", "new identities")
    )?;
    Ok(0)
}

/// `update-identities --from FILE [--replace]`.
pub async fn update(client: &Client, args: UpdateArgs, io: &mut Io<'_>) -> Result<i32> {
    let ids = read_identities(&args.from)?;
    let n = count(ids.len(), "identity", "identities");
    if args.replace {
        client.change_identities("replace", &ids).await?;
        writeln!(io.out, "Replaced {n}.")?;
    } else {
        client.change_identities("update", &ids).await?;
        writeln!(io.out, "Updated {n}.")?;
    }
    Ok(0)
}

/// `remove-identities --from FILE` (every value must be null).
pub async fn remove(client: &Client, args: FromArgs, io: &mut Io<'_>) -> Result<i32> {
    let ids = read_identities(&args.from)?;
    if let Some((name, _)) = ids.iter().find(|(_, i)| i.is_some()) {
        bail!("identity value for {name:?} must be null for remove operation");
    }
    client.change_identities("remove", &ids).await?;
    writeln!(
        io.out,
        "Removed {}.",
        count(ids.len(), "identity", "identities")
    )?;
    Ok(0)
}
