//! `shipdeck sandbox`: start the sandbox, announce it on stdout, serve until SIGINT or
//! SIGTERM, then stop cleanly. The ready line is the one thing scripts wait for, so it is
//! printed exactly once and flushed; everything else goes to stderr.

use super::{Sandbox, SandboxOptions};
use anyhow::Context;
use std::io::Write;
use tokio::signal::unix::{SignalKind, signal};

pub async fn run(opts: SandboxOptions) -> anyhow::Result<()> {
    let temporary = opts.state_dir.is_none();
    let mut term = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
    let sandbox = Sandbox::start(opts)
        .await
        .context("cannot start the sandbox")?;
    let dir = sandbox.state_dir.display().to_string();
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "sandbox ready: {}", sandbox.url)?;
        out.flush()?;
    }
    eprintln!(
        "state dir: {dir}{}",
        if temporary {
            " (temporary: removed on exit)"
        } else {
            ""
        }
    );
    eprintln!("point clients at it with: source {dir}/env");
    eprintln!("stop with Ctrl-C (SIGINT) or SIGTERM");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    eprintln!("sandbox stopping");
    sandbox.stop().await;
    Ok(())
}
