//! One simulated pod's life: Pending -> ContainerCreating -> Running -> Ready, or stuck in
//! ErrImagePull/ImagePullBackOff or CrashLoopBackOff with growing restarts, each stage lasting
//! a few simulated seconds. It turns a stage into the pod `status` kubectl shows and into the
//! Events a kubelet would record. It never touches the store: the controller writes what it
//! renders.

use crate::Clock;
use serde_json::{Value, json};
use std::time::Duration;
use tokio::time::Instant;

/// How a pod is made to fail on demand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    ImagePullBackOff,
    CrashLoopBackOff,
}

impl Fault {
    pub fn parse(s: &str) -> Option<Fault> {
        match s {
            "ImagePullBackOff" | "ErrImagePull" => Some(Fault::ImagePullBackOff),
            "CrashLoopBackOff" => Some(Fault::CrashLoopBackOff),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Created, not yet scheduled.
    Pending,
    /// Scheduled; pulling images (ContainerCreating).
    Creating,
    /// Containers started, readiness probe not passed yet.
    Starting,
    Ready,
    /// The faulting container's image failed to pull (ErrImagePull).
    PullError,
    /// Waiting to retry the pull (ImagePullBackOff).
    PullBackOff,
    /// The faulting container exited; waiting to restart it (CrashLoopBackOff).
    Crashed,
    /// Deleted, in its grace period.
    Terminating,
}

/// A kubelet-style event about a pod: (type, reason, message).
pub type PodEvent = (&'static str, &'static str, String);

#[derive(Debug, Clone)]
pub struct PodSim {
    pub name: String,
    /// Set once the pod exists in the store.
    pub uid: Option<String>,
    pub stage: Stage,
    /// When the next stage change is due.
    pub next: Option<Instant>,
    pub ready_since: Option<Instant>,
    pub restarts: u32,
    pub pull_attempts: u32,
    pub started_at: Option<String>,
    pub last_terminated: Option<(String, String)>,
    pub scheduled_at: Option<String>,
    pub created_at: String,
    /// Needs writing to the store.
    pub dirty: bool,
    jitter: f64,
}

fn now_ts() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn fnv(s: &str) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in s.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// Restart/pull back-off in simulated seconds: 10, 20, 40, ... capped at 160.
fn backoff(n: u32) -> f64 {
    (10.0 * 2f64.powi(n.saturating_sub(1).min(4) as i32)).min(160.0)
}

/// The images a pod template runs, in container order.
pub fn images(template: &Value) -> Vec<(String, String)> {
    template["spec"]["containers"]
        .as_array()
        .map(|cs| {
            cs.iter()
                .map(|c| {
                    (
                        c["name"].as_str().unwrap_or("app").to_string(),
                        c["image"].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

impl PodSim {
    pub fn new(name: String, now: Instant, clock: &Clock) -> PodSim {
        let jitter = f64::from(fnv(&name) % 1000) / 1000.0;
        let mut p = PodSim {
            name,
            uid: None,
            stage: Stage::Pending,
            next: None,
            ready_since: None,
            restarts: 0,
            pull_attempts: 0,
            started_at: None,
            last_terminated: None,
            scheduled_at: None,
            created_at: now_ts(),
            dirty: true,
            jitter,
        };
        p.next = Some(now + clock.wall(p.sim(0.5 + 0.5 * jitter)));
        p
    }

    /// A pod that has been running for a while (the estate as it was when the sandbox
    /// started): ready and available at once, or already failing.
    pub fn settled(
        name: String,
        now: Instant,
        min_ready: Duration,
        fault: Option<Fault>,
        clock: &Clock,
    ) -> PodSim {
        let mut p = PodSim::new(name, now, clock);
        p.scheduled_at = Some(now_ts());
        match fault {
            None => {
                p.stage = Stage::Ready;
                p.started_at = Some(now_ts());
                p.ready_since = Some(now.checked_sub(clock.wall(min_ready)).unwrap_or(now));
                p.next = None;
            }
            Some(Fault::ImagePullBackOff) => {
                p.stage = Stage::PullBackOff;
                p.pull_attempts = 1;
                p.next = Some(now + clock.wall(p.sim(backoff(1))));
            }
            Some(Fault::CrashLoopBackOff) => {
                p.stage = Stage::Crashed;
                p.restarts = 1;
                p.last_terminated = Some((now_ts(), now_ts()));
                p.next = Some(now + clock.wall(p.sim(backoff(1))));
            }
        }
        p
    }

    fn sim(&self, secs: f64) -> Duration {
        Duration::from_secs_f64(secs.max(0.0))
    }

    pub fn is_terminating(&self) -> bool {
        self.stage == Stage::Terminating
    }

    pub fn is_ready(&self) -> bool {
        self.stage == Stage::Ready
    }

    pub fn is_available(&self, now: Instant, min_ready: Duration, clock: &Clock) -> bool {
        self.is_ready()
            && self
                .ready_since
                .is_some_and(|t| t + clock.wall(min_ready) <= now)
    }

    /// How eagerly the ReplicaSet controller deletes this pod when scaling down: lower
    /// goes first (unscheduled, then pending, then not ready, then ready).
    pub fn deletion_rank(&self) -> u8 {
        match self.stage {
            Stage::Pending => 0,
            Stage::Creating | Stage::PullError | Stage::PullBackOff => 1,
            Stage::Starting | Stage::Crashed => 2,
            Stage::Ready => 3,
            Stage::Terminating => 4,
        }
    }

    pub fn terminate(&mut self, now: Instant, clock: &Clock) {
        if self.stage != Stage::Terminating {
            self.stage = Stage::Terminating;
            self.next = Some(now + clock.wall(self.sim(1.0)));
            self.ready_since = None;
            self.dirty = true;
        }
    }

    /// Move through every stage change due by `now`. `fault` answers whether the pod's
    /// images fail at this moment (image faults can be set and cleared while it waits).
    pub fn advance(
        &mut self,
        now: Instant,
        clock: &Clock,
        images: &[(String, String)],
        fault: &dyn Fn() -> Option<Fault>,
    ) -> Vec<PodEvent> {
        let mut events = Vec::new();
        let main = images.first().cloned().unwrap_or_default();
        let all_images = || images.iter().map(|(_, i)| i.clone()).collect::<Vec<_>>();
        while let Some(due) = self.next {
            if due > now || self.stage == Stage::Terminating {
                break;
            }
            self.dirty = true;
            let j = self.jitter;
            let after = |secs: f64| Some(due + clock.wall(Duration::from_secs_f64(secs)));
            match self.stage {
                Stage::Pending => {
                    self.stage = Stage::Creating;
                    self.scheduled_at = Some(now_ts());
                    events.push(("Normal", "Scheduled", String::new()));
                    for img in all_images() {
                        events.push(("Normal", "Pulling", format!("Pulling image \"{img}\"")));
                    }
                    self.next = after(1.0 + j);
                }
                Stage::Creating | Stage::PullBackOff => {
                    if fault() == Some(Fault::ImagePullBackOff) {
                        if self.stage == Stage::PullBackOff {
                            events.push((
                                "Normal",
                                "Pulling",
                                format!("Pulling image \"{}\"", main.1),
                            ));
                        }
                        self.stage = Stage::PullError;
                        self.pull_attempts += 1;
                        events.push((
                            "Warning",
                            "Failed",
                            format!(
                                "Failed to pull image \"{0}\": rpc error: code = NotFound desc = failed to pull and unpack image \"{0}\": not found",
                                main.1
                            ),
                        ));
                        events.push(("Warning", "Failed", "Error: ErrImagePull".into()));
                        self.next = after(1.0);
                    } else {
                        self.start_containers(images, &mut events, self.stage == Stage::Creating);
                        self.next = self.after_start(due, clock, fault);
                    }
                }
                Stage::PullError => {
                    self.stage = Stage::PullBackOff;
                    events.push((
                        "Normal",
                        "BackOff",
                        format!("Back-off pulling image \"{}\"", main.1),
                    ));
                    events.push(("Warning", "Failed", "Error: ImagePullBackOff".into()));
                    self.next = after(backoff(self.pull_attempts));
                }
                Stage::Starting => {
                    if fault() == Some(Fault::CrashLoopBackOff) {
                        self.stage = Stage::Crashed;
                        self.restarts += 1;
                        self.last_terminated =
                            Some((self.started_at.clone().unwrap_or_else(now_ts), now_ts()));
                        events.push((
                            "Warning",
                            "BackOff",
                            format!(
                                "Back-off restarting failed container {} in pod {}",
                                main.0, self.name
                            ),
                        ));
                        self.next = after(backoff(self.restarts));
                    } else {
                        self.stage = Stage::Ready;
                        self.ready_since = Some(due);
                        self.next = None;
                    }
                }
                Stage::Crashed => {
                    events.push((
                        "Normal",
                        "Pulled",
                        format!("Container image \"{}\" already present on machine", main.1),
                    ));
                    events.push((
                        "Normal",
                        "Created",
                        format!("Created container: {}", main.0),
                    ));
                    events.push(("Normal", "Started", format!("Started container {}", main.0)));
                    self.stage = Stage::Starting;
                    self.started_at = Some(now_ts());
                    self.next = self.after_start(due, clock, fault);
                }
                Stage::Ready | Stage::Terminating => self.next = None,
            }
        }
        events
    }

    fn start_containers(
        &mut self,
        images: &[(String, String)],
        events: &mut Vec<PodEvent>,
        fresh_pull: bool,
    ) {
        for (name, img) in images {
            let pulled = if fresh_pull {
                let ms = 800 + (fnv(img) % 2400);
                format!(
                    "Successfully pulled image \"{img}\" in {}.{:03}s. Image size: {} bytes.",
                    ms / 1000,
                    ms % 1000,
                    20_000_000 + fnv(img) % 80_000_000
                )
            } else {
                format!("Successfully pulled image \"{img}\"")
            };
            events.push(("Normal", "Pulled", pulled));
            events.push(("Normal", "Created", format!("Created container: {name}")));
            events.push(("Normal", "Started", format!("Started container {name}")));
        }
        self.stage = Stage::Starting;
        self.started_at = Some(now_ts());
    }

    fn after_start(
        &self,
        due: Instant,
        clock: &Clock,
        fault: &dyn Fn() -> Option<Fault>,
    ) -> Option<Instant> {
        let secs = if fault() == Some(Fault::CrashLoopBackOff) {
            1.5
        } else {
            1.0 + self.jitter
        };
        Some(due + clock.wall(self.sim(secs)))
    }

    /// The pod's `status` as the kubelet would report it.
    pub fn status(&self, images: &[(String, String)], ip: &str) -> Value {
        let created = self.created_at.as_str();
        let scheduled = self.stage != Stage::Pending;
        let ready = self.stage == Stage::Ready;
        let phase = match self.stage {
            Stage::Pending | Stage::Creating | Stage::PullError | Stage::PullBackOff => "Pending",
            _ => "Running",
        };
        let sched_ts = self
            .scheduled_at
            .clone()
            .unwrap_or_else(|| created.to_string());
        let names: Vec<&str> = images.iter().map(|(n, _)| n.as_str()).collect();
        let not_ready_msg = format!("containers with unready status: [{}]", names.join(" "));
        let cond = |t: &str, ok: bool| {
            let mut c = json!({"type": t, "status": if ok {"True"} else {"False"},
                "lastProbeTime": null, "lastTransitionTime": sched_ts});
            if !ok {
                c["reason"] = json!("ContainersNotReady");
                c["message"] = json!(not_ready_msg);
            }
            c
        };
        let mut status = json!({"phase": phase, "qosClass": "BestEffort"});
        if !scheduled {
            status["conditions"] = json!([{"type": "PodScheduled", "status": "False",
                "lastProbeTime": null, "lastTransitionTime": created, "reason": "Unschedulable",
                "message": "0/3 nodes are available: waiting for the scheduler."}]);
            return status;
        }
        status["conditions"] = json!([
            {"type": "PodReadyToStartContainers", "status": if self.stage == Stage::Creating {"False"} else {"True"}, "lastProbeTime": null, "lastTransitionTime": sched_ts},
            {"type": "Initialized", "status": "True", "lastProbeTime": null, "lastTransitionTime": sched_ts},
            cond("Ready", ready),
            cond("ContainersReady", ready),
            {"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": sched_ts},
        ]);
        status["hostIP"] = json!(host_ip(&self.name));
        status["podIP"] = json!(ip);
        status["podIPs"] = json!([{"ip": ip}]);
        status["startTime"] = json!(sched_ts);
        let statuses: Vec<Value> = images
            .iter()
            .enumerate()
            .map(|(i, (name, image))| self.container_status(i == 0, name, image))
            .collect();
        status["containerStatuses"] = json!(statuses);
        status
    }

    fn container_status(&self, main: bool, name: &str, image: &str) -> Value {
        let started = self.started_at.clone().unwrap_or_else(now_ts);
        let running = json!({"running": {"startedAt": started}});
        let waiting = |reason: &str, message: Option<String>| match message {
            Some(m) => json!({"waiting": {"reason": reason, "message": m}}),
            None => json!({"waiting": {"reason": reason}}),
        };
        let image_id = if matches!(self.stage, Stage::Pending | Stage::Creating) {
            String::new()
        } else {
            format!(
                "docker.io/library/{image}@sha256:{:08x}{:056x}",
                fnv(image),
                0
            )
        };
        let (state, ready, is_started) = match self.stage {
            Stage::Pending | Stage::Creating => (waiting("ContainerCreating", None), false, false),
            Stage::PullError if main => (
                waiting(
                    "ErrImagePull",
                    Some(format!(
                        "rpc error: code = NotFound desc = failed to pull and unpack image \"{image}\": not found"
                    )),
                ),
                false,
                false,
            ),
            Stage::PullBackOff if main => (
                waiting(
                    "ImagePullBackOff",
                    Some(format!("Back-off pulling image \"{image}\"")),
                ),
                false,
                false,
            ),
            Stage::Crashed if main => (
                waiting(
                    "CrashLoopBackOff",
                    Some(format!(
                        "back-off {}s restarting failed container={name} pod={}",
                        backoff(self.restarts) as u64,
                        self.name
                    )),
                ),
                false,
                false,
            ),
            Stage::Ready => (running, true, true),
            Stage::Terminating => (running, false, true),
            _ => (running, false, true),
        };
        let mut cs = json!({
            "name": name, "image": image, "imageID": image_id, "ready": ready,
            "started": is_started, "restartCount": if main { self.restarts } else { 0 },
            "state": state, "lastState": {},
        });
        if main && let Some((started, finished)) = &self.last_terminated {
            cs["lastState"] = json!({"terminated": {"exitCode": 1, "reason": "Error",
                "startedAt": started, "finishedAt": finished,
                "containerID": format!("containerd://{:08x}", fnv(&self.name))}});
        }
        if !image_id.is_empty() {
            cs["containerID"] = json!(format!(
                "containerd://{:08x}{:08x}",
                fnv(&self.name),
                self.restarts
            ));
        }
        cs
    }
}

/// A stable pod IP in the cluster's pod network.
pub fn pod_ip(name: &str) -> String {
    let h = fnv(name);
    format!("10.244.{}.{}", (h >> 8) % 250 + 1, h % 250 + 2)
}

fn host_ip(name: &str) -> String {
    format!("172.18.0.{}", fnv(name) % 3 + 2)
}

/// The node a pod lands on (three nodes per cluster).
pub fn node_name(cluster: &str, pod: &str) -> String {
    format!("{cluster}-worker-{}", fnv(pod) % 3 + 1)
}

/// A short suffix in Kubernetes' safe alphabet for a new pod name.
pub fn pod_suffix(seed: &str) -> String {
    super::rollout::safe_encode(&format!("{:05}", fnv(seed) % 100_000))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_until_stable(
        p: &mut PodSim,
        clock: &Clock,
        fault: Option<Fault>,
        rounds: usize,
    ) -> Vec<PodEvent> {
        let imgs = vec![("app".to_string(), "web:1".to_string())];
        let mut all = Vec::new();
        let mut now = Instant::now();
        for _ in 0..rounds {
            if let Some(n) = p.next {
                now = now.max(n);
            }
            all.extend(p.advance(now, clock, &imgs, &|| fault));
        }
        all
    }

    #[test]
    fn healthy_pod_becomes_ready() {
        let clock = Clock::new(0.001);
        let mut p = PodSim::new("web-abc-xyz".into(), Instant::now(), &clock);
        let ev = run_until_stable(&mut p, &clock, None, 10);
        assert_eq!(p.stage, Stage::Ready);
        let reasons: Vec<_> = ev.iter().map(|e| e.1).collect();
        assert_eq!(
            reasons,
            ["Scheduled", "Pulling", "Pulled", "Created", "Started"]
        );
        let st = p.status(&[("app".into(), "web:1".into())], "10.0.0.1");
        assert_eq!(st["phase"], "Running");
        assert_eq!(st["containerStatuses"][0]["ready"], true);
    }

    #[test]
    fn crashing_pod_restarts_and_never_readies() {
        let clock = Clock::new(0.001);
        let mut p = PodSim::new("web-abc-xyz".into(), Instant::now(), &clock);
        run_until_stable(&mut p, &clock, Some(Fault::CrashLoopBackOff), 12);
        assert!(p.restarts >= 2);
        assert!(!p.is_ready());
        if p.stage == Stage::Crashed {
            let st = p.status(&[("app".into(), "web:1".into())], "ip");
            let cs = &st["containerStatuses"][0];
            assert_eq!(cs["state"]["waiting"]["reason"], "CrashLoopBackOff");
            assert_eq!(cs["lastState"]["terminated"]["exitCode"], 1);
        }
    }

    #[test]
    fn pull_failure_alternates_and_recovers_when_cleared() {
        let clock = Clock::new(0.001);
        let mut p = PodSim::new("web-abc-xyz".into(), Instant::now(), &clock);
        let ev = run_until_stable(&mut p, &clock, Some(Fault::ImagePullBackOff), 5);
        assert!(matches!(p.stage, Stage::PullError | Stage::PullBackOff));
        assert!(ev.iter().any(|e| e.2 == "Error: ImagePullBackOff"));
        run_until_stable(&mut p, &clock, None, 6);
        assert_eq!(p.stage, Stage::Ready);
    }
}
