//! `wasmcalls bench …`: figures for the media plane.

use anyhow::Result;
use clap::Subcommand;

#[derive(Subcommand)]
pub enum BenchCommand {}

pub async fn run(cmd: BenchCommand) -> Result<()> {
    match cmd {}
}
