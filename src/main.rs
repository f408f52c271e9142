//! The `chunkstream` binary: parse the config, start tracing, bind, serve until a signal.

use anyhow::Context;
use chunkstream::{
    api,
    app::Application,
    config::{Cli, Command},
    shutdown,
};
use clap::Parser;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Some(Command::Openapi) = cli.command {
        print!("{}", api::document());
        return Ok(());
    }
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let addr = cli.config.addr;
    let app = Application::bind(cli.config)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    app.run(shutdown::signal()).await?;
    Ok(())
}
