//! The Git webhook for pushes from outside: operators push to the sandbox's repository (a
//! promotion from shipdeck, or `git push` by hand). A task watches the branch heads (the ref
//! files, no git process) and, when one moves, tells Argo CD's controller to look at Git
//! now, as a GitHub webhook would. Polls in wall time: a webhook does not wait for the
//! simulated clock.

use crate::World;
use std::sync::Arc;
use std::time::Duration;

const EVERY: Duration = Duration::from_millis(500);

pub fn spawn(world: Arc<World>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut last = world.repo.refs_stamp();
        let mut tick = tokio::time::interval(EVERY);
        loop {
            tick.tick().await;
            let now = world.repo.refs_stamp();
            if now != last {
                last = now;
                world.refresh.notify_waiters();
                world.refresh.notify_one();
            }
        }
    })
}
