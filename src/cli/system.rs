//! `bulwark backup -o FILE` and `bulwark restore FILE` against a running
//! gateway (`POST /api/v1/system/backup|restore`).
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use reqwest::Method;
use serde_json::Value;

use super::client::{CliError, Client, Remote};

/// Writes the gateway's backup to `out` (mode 0600: it holds key hashes
/// and sealed secrets).
pub async fn backup(remote: &Remote, out: &Path) -> Result<(), CliError> {
    let document = Client::new(remote)?
        .call(Method::POST, "system/backup", None)
        .await?;
    let failed =
        |err: std::io::Error| CliError::Usage(format!("cannot write {}: {err}", out.display()));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(out)
        .map_err(failed)?;
    let text = serde_json::to_string_pretty(&document).unwrap_or_default();
    file.write_all(text.as_bytes()).map_err(failed)?;
    file.sync_all().map_err(failed)?;
    eprintln!("Backup written to {}.", out.display());
    Ok(())
}

/// Sends `file` to the gateway to restore; prints what was applied.
pub async fn restore(remote: &Remote, file: &Path) -> Result<(), CliError> {
    let text = std::fs::read(file)
        .map_err(|err| CliError::Usage(format!("cannot read {}: {err}", file.display())))?;
    let document: Value = serde_json::from_slice(&text).map_err(|err| {
        CliError::Usage(format!(
            "{} is not JSON ({err}); nothing was changed",
            file.display()
        ))
    })?;
    let answer = Client::new(remote)?
        .call(Method::POST, "system/restore", Some(&document))
        .await?;
    let applied = &answer["applied"];
    eprintln!(
        "Restored from {}: upstreams added {}, removed {}, updated {}.",
        file.display(),
        applied["added"],
        applied["removed"],
        applied["updated"]
    );
    Ok(())
}
