//! compute_ctl: the entrypoint of a PostgreSQL compute node.

use anyhow::{Context, Result};
use clap::Parser;
use compute_ctl::catalog::Connector;
use compute_ctl::cli::{Cli, Command};
use compute_ctl::driver::Driver;
use compute_ctl::http::auth::{Authenticator, Gate};
use compute_ctl::http::{self, Api};
use compute_ctl::{control_plane, monitor, process, signals};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

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
    if let Some(Command::Plan {
        connstr,
        spec_path,
        privileged_role_name,
    }) = &cli.command
    {
        let plan = compute_ctl::cli::print_plan(connstr, spec_path, privileged_role_name);
        return match runtime.block_on(plan) {
            Ok(_) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!("{e:#}");
                ExitCode::FAILURE
            }
        };
    }
    match runtime.block_on(run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<u8> {
    let (spec, compute_ctl_config) = cli.load_spec()?;
    let auth = Authenticator::from_config(compute_ctl_config.as_ref(), cli.compute_id.as_deref())
        .context("compute_ctl_config.jwks")?;
    // With a control plane, nothing that needs authentication is served
    // before its keys are known.
    let gate = if cli.control_plane_uri.is_some() {
        Gate::waiting(control_plane::PULLING)
    } else {
        Gate::new(auth)
    };
    let params = cli.params().await?;
    let cli_interval = params.installed_extensions_interval;
    let api_parts = (params.pgbin.tool("pg_dump"), params.pgbin.version.clone());
    let connector = Connector::new(params.connstr.clone());
    let (driver, handle) = Driver::new(params);

    // The API answers /status from the first milliseconds, before anything slow.
    let gate = Arc::new(gate);
    let api = Api {
        handle: handle.clone(),
        auth: gate.clone(),
        compute_id: cli.compute_id.clone(),
        build_tag: compute_ctl::metrics::BUILD_TAG.to_string(),
        pg_dump: api_parts.0,
        pg_version: api_parts.1,
        spec_source: cli.spec_source().map(Arc::new),
    };
    let servers = http::serve(
        api,
        SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), cli.external_http_port),
        SocketAddr::new(cli.internal_http_address, cli.internal_http_port),
    )
    .await?;
    signals::forward_to(handle.clone())?;
    process::spawn_reaper()?;
    if let (Some(uri), Some(id)) = (&cli.control_plane_uri, &cli.compute_id) {
        tokio::spawn(control_plane::pull_and_configure(
            uri.clone(),
            id.clone(),
            control_plane::TokenSource {
                file: cli.control_plane_token_file.clone(),
            },
            handle.clone(),
            gate,
        ));
    }
    compute_ctl::catalog::extensions::spawn_collector(handle.clone(), cli_interval);
    monitor::spawn(handle, connector);

    let exited = driver.run(spec.map(Arc::new)).await;
    servers.shutdown(Duration::from_secs(2)).await;
    tracing::info!(code = exited.code(), "compute_ctl exits");
    Ok(exited.code())
}
