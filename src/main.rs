//! compute_ctl: the entrypoint of a PostgreSQL compute node.

use anyhow::Result;
use clap::Parser;
use compute_ctl::cli::{Cli, Command};
use compute_ctl::driver::Driver;
use compute_ctl::{process, signals};
use std::process::ExitCode;
use std::sync::Arc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::Diagram) = cli.command {
        print!("{}", compute_states::mermaid());
        return ExitCode::SUCCESS;
    }
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<u8> {
    let spec = cli.load_spec()?;
    let params = cli.params().await?;
    let (driver, handle) = Driver::new(params);
    signals::forward_to(handle)?;
    process::spawn_reaper()?;
    let exited = driver.run(spec.map(Arc::new)).await;
    tracing::info!(code = exited.code(), "compute_ctl exits");
    Ok(exited.code())
}
