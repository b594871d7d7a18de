//! Simulated time. The sandbox's controllers think in "estate seconds" (a pod takes 2 s to
//! pull its image, a build step 5 s); the time scale maps them to wall time so a demo runs
//! in seconds and a test in milliseconds.

use std::time::Duration;

#[derive(Debug, Clone, Copy)]
pub struct Clock {
    /// Wall seconds per simulated second: 1.0 is real time, 0.01 is a hundred times faster.
    pub scale: f64,
}

impl Default for Clock {
    fn default() -> Self {
        Self { scale: 1.0 }
    }
}

impl Clock {
    pub fn new(scale: f64) -> Self {
        let scale = if scale.is_finite() && scale > 0.0 {
            scale
        } else {
            1.0
        };
        Self { scale }
    }

    /// The wall-clock duration of `sim` simulated time, at least 1 ms.
    pub fn wall(&self, sim: Duration) -> Duration {
        Duration::from_secs_f64((sim.as_secs_f64() * self.scale).max(0.001))
    }

    pub async fn sleep(&self, sim: Duration) {
        tokio::time::sleep(self.wall(sim)).await;
    }

    /// An interval ticking every `sim` of simulated time, skipping missed ticks.
    pub fn interval(&self, sim: Duration) -> tokio::time::Interval {
        let mut i = tokio::time::interval(self.wall(sim));
        i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        i
    }
}
