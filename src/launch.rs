//! The process's start: the launch sequence `main` runs, kept in the library
//! so that the binary is one line and the library's surface stays narrow.
//!
//! Order matters here and is the reason this file exists: secrets from files
//! are read into the environment while the process has one thread; signals
//! and the PID-1 reaper are ours before the API announces that it listens;
//! the API answers `/status` before anything slow; the socket's directory is
//! private before postgres opens its socket there; and no postgres we started
//! outlives us.

use crate::auth::{Authenticator, Gate};
use crate::cli::{socket, Cli, Command};
use crate::connect::Connector;
use crate::driver::Driver;
use crate::http::{self, Api};
use crate::{control_plane, logging, monitor, process, signals};
use anyhow::{Context, Result};
use clap::Parser;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// How long compute_ctl's exit waits for a spare PGDATA still being made.
const SPARE_AT_EXIT: Duration = Duration::from_secs(1);

/// Runs compute_ctl as the binary does: parses the command line (and the
/// environment), runs the subcommand or the compute, and returns the exit code.
pub fn main() -> ExitCode {
    // COMPUTE_CTL_*_FILE: values (secrets) from files, set before clap reads
    // the environment, while the process has a single thread.
    match crate::cli::vars_from_files(std::env::vars_os()) {
        Ok(vars) => vars
            .into_iter()
            .for_each(|(name, value)| std::env::set_var(name, value)),
        Err(e) => {
            eprintln!("compute_ctl: {e:#}");
            return ExitCode::FAILURE;
        }
    }
    let cli = Cli::parse();
    if let Some(Command::Diagram) = cli.command {
        print!("{}", compute_states::mermaid());
        return ExitCode::SUCCESS;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("compute_ctl: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(Command::Probe { url, port, timeout }) = &cli.command {
        let timeout = Duration::from_secs(*timeout);
        return match runtime.block_on(http::probes::probe(url, *port, timeout)) {
            Ok(body) => {
                println!("{}", body.trim());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("compute_ctl probe: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    // Held to the end of main: its drop writes out the queued lines.
    let _log = match logging::init(cli.log_format) {
        Ok(guard) => guard,
        Err(e) => {
            eprintln!("compute_ctl: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(Command::Plan {
        connstr,
        spec_path,
        privileged_role_name,
    }) = &cli.command
    {
        let plan = crate::cli::print_plan(connstr, spec_path, privileged_role_name);
        return match runtime.block_on(plan) {
            Ok(_) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!("{e:#}");
                ExitCode::FAILURE
            }
        };
    }
    if let Some(Command::Template) = &cli.command {
        return match runtime.block_on(crate::cli::make_template(&cli)) {
            Ok(dir) => {
                println!("{}", dir.display());
                ExitCode::SUCCESS
            }
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
    let gate = Arc::new(if cli.control_plane_uri.is_some() {
        Gate::waiting(control_plane::PULLING)
    } else {
        Gate::new(auth)
    });
    let mut params = cli.params().await?;
    params.refresh = cli
        .spec_source()
        .map(|source| crate::driver::RefreshSource {
            source,
            gate: gate.clone(),
            compute_id: cli.compute_id.clone(),
        });
    let mut edge = crate::edge::Edge::from_compute_ctl_config(compute_ctl_config.as_ref())?;
    edge.pgbouncer = cli.edge.pgbouncer(&params);
    edge.audit_endpoint = crate::edge::ship::AuditEnv::from_env()?;
    params.edge = Arc::new(edge);
    let edge = (params.edge.clone(), params.pgdata.clone());
    // The superuser's door: made private before postgres can open it.
    let socket_group = cli.socket_group.as_deref().map(socket::group_id);
    socket::ensure(
        &params.socket_dir,
        params.run_as.as_ref(),
        socket_group.transpose()?,
    )?;
    let stop_timeout = params.stop_timeout;
    let cli_interval = params.installed_extensions_interval;
    let api_parts = (params.pgbin.tool("pg_dump"), params.pgbin.version.clone());
    let remote_extensions = params.remote_extensions.clone();
    let connector = Connector::new(params.connstr.clone());
    let (driver, handle) = Driver::new(params);

    // Signals are ours before anything announces that we are up (the API's
    // "listening" line): a SIGTERM sent the moment it is seen must reach the
    // driver, not the default action that kills us and leaves children behind.
    signals::forward_to(handle.clone())?;
    process::spawn_reaper()?;

    // The API answers /status from the first milliseconds, before anything slow.
    let api = Api {
        handle: handle.clone(),
        auth: gate.clone(),
        compute_id: cli.compute_id.clone(),
        build_tag: crate::metrics::BUILD_TAG.to_string(),
        pg_dump: api_parts.0,
        pg_version: api_parts.1,
        connector: connector.clone(),
        remote_extensions,
        limits: http::Limits {
            header_timeout: cli.http_header_timeout,
            idle_timeout: cli.http_idle_timeout,
            max_connections: cli.http_max_connections,
        },
    };
    let servers = http::serve(
        api,
        SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), cli.external_http_port),
        SocketAddr::new(cli.internal_http_address, cli.internal_http_port),
    )
    .await?;
    if let Some(source @ control_plane::SpecSource::ControlPlane { .. }) = cli.spec_source() {
        tokio::spawn(control_plane::pull_and_configure(
            source,
            handle.clone(),
            gate,
            edge.0.clone(),
        ));
    }
    crate::collector::spawn(handle.clone(), cli_interval);
    crate::edge::watch::spawn(edge.0.clone(), edge.1.clone(), handle.clone());
    crate::edge::audit::spawn(handle.clone());
    crate::edge::export::spawn(handle.clone());
    crate::edge::ship::spawn(edge.0.clone(), edge.1.clone(), handle.clone());
    let pgbouncer = crate::edge::pgbouncer::spawn(edge.0, edge.1, handle.clone(), stop_timeout);
    monitor::spawn(handle, connector, cli.suspend_when_idle);

    let exited = driver.run(spec.map(Arc::new)).await;
    pgbouncer.stop(stop_timeout).await;
    // No postgres we started outlives us.
    crate::postgres::wait_abandoned(stop_timeout).await;
    // A compute stopped soon after its start still leaves a spare.
    tokio::task::spawn_blocking(|| crate::pgdata::spare::finish_before_exit(SPARE_AT_EXIT))
        .await
        .ok();
    servers.shutdown(Duration::from_secs(2)).await;
    tracing::info!(code = exited.code(), "compute_ctl exits");
    Ok(exited.code())
}
