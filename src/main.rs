//! The `chunkstream` binary: parse the config, start tracing, bind, serve until a signal.

use anyhow::Context;
use chunkstream::{
    api,
    app::Application,
    config::{Cli, Command},
    logging, shutdown,
};
use clap::Parser;

/// jemalloc: with thousands of idle streaming connections glibc's malloc fragments, and an
/// idle connection costs markedly more RSS (BENCHMARKS.md, "Memory per connection").
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Some(Command::Openapi) = cli.command {
        print!("{}", api::document());
        return Ok(());
    }
    let _log = logging::init();
    let addr = cli.config.addr;
    let app = Application::bind(cli.config)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    app.run(shutdown::signal()).await?;
    Ok(())
}
