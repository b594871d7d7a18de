//! (stub, to be written) `shipdeck sandbox`: serve until SIGINT/SIGTERM.

use super::SandboxOptions;

pub async fn run(_opts: SandboxOptions) -> anyhow::Result<()> {
    anyhow::bail!("shipdeck sandbox: not built yet")
}
