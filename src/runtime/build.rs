//! Building a plugin from its source before it is loaded: cargo for a Rust crate or
//! workspace, or the plugin's own shell command for any other toolchain. A failed
//! build is an error that ends with the tail of the compiler's output.

use std::path::{Path, PathBuf};

use super::PluginError;

/// How a plugin is built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Build {
    /// The folder the build runs in (a cargo crate or workspace for [`BuildCommand::Cargo`]);
    /// `wasmcalls dev` watches it for source changes.
    pub dir: PathBuf,
    pub command: BuildCommand,
}

/// The command a [`Build`] runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildCommand {
    /// `cargo build --release --target wasm32-wasip2`.
    Cargo,
    /// A shell command (`sh -c`), e.g. `componentize-py … -o bot.wasm`.
    Shell(String),
}

impl std::fmt::Display for Build {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.command {
            BuildCommand::Cargo => write!(f, "cargo build --release --target wasm32-wasip2 in {}", self.dir.display()),
            BuildCommand::Shell(c) => write!(f, "`{c}` in {}", self.dir.display()),
        }
    }
}

/// Runs `build` for `plugin`.
pub async fn build(plugin: &str, build: &Build) -> Result<(), PluginError> {
    tracing::info!(plugin, "building: {build}");
    let out = match &build.command {
        BuildCommand::Shell(cmd) => tokio::process::Command::new("sh")
            .arg("-c")
            .arg(cmd)
            .current_dir(&build.dir)
            .output()
            .await
            .map_err(|e| format!("cannot run `{cmd}`: {e}")),
        BuildCommand::Cargo => {
            let manifest = build.dir.join("Cargo.toml");
            if !manifest.exists() {
                return Err(failed(plugin, &build.dir, "no Cargo.toml there to build".into()));
            }
            tokio::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
                .args(["build", "--release", "--target", "wasm32-wasip2", "--manifest-path"])
                .arg(&manifest)
                // The config names the .wasm where cargo puts it by default (the crate's
                // or workspace's `target/`); a CARGO_TARGET_DIR in the host's environment
                // would send it elsewhere and leave the plugin missing.
                .env_remove("CARGO_TARGET_DIR")
                .output()
                .await
                .map_err(|e| format!("cannot run cargo: {e}"))
        }
    };
    let out = out.map_err(|reason| failed(plugin, &build.dir, reason))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<&str> = stderr.lines().collect();
        let tail = lines[lines.len().saturating_sub(30)..].join("\n");
        return Err(failed(plugin, &build.dir, format!("the build failed:\n{tail}")));
    }
    Ok(())
}

fn failed(plugin: &str, dir: &Path, reason: String) -> PluginError {
    PluginError::Build { name: plugin.to_owned(), path: dir.to_path_buf(), reason }
}
