//! (stub, to be written) The console's entry point.

use crate::cli::ConsoleArgs;

pub async fn run(_args: ConsoleArgs) -> anyhow::Result<()> {
    anyhow::bail!("the console is not built yet")
}

/// `shipdeck demo`: start the sandbox in-process and open the console against it.
pub async fn demo(
    _args: ConsoleArgs,
    _sandbox: crate::sandbox::SandboxOptions,
) -> anyhow::Result<()> {
    anyhow::bail!("shipdeck demo: not built yet")
}
