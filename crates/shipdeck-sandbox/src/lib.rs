//! The sandbox: a simulated GitOps estate on loopback. One HTTP server speaks the
//! Kubernetes API (for kubectl and kube-rs), Argo CD's REST API, a GitHub Actions subset and
//! a Jenkins subset, over one shared object store and a real Git repository, with
//! controllers that behave like Argo CD's application controller and Kubernetes' Deployment
//! controller. It is what `shipdeck demo`, every test, and every benchmark run against.
//!
//! It must never be mistaken for production code paths: nothing outside `sandbox` imports it
//! except the CLI (`shipdeck sandbox`, `shipdeck demo`) and tests.

pub mod argo_api;
pub mod auth;
pub mod ci;
pub mod clock;
pub mod controller;
pub mod estate;
pub mod events;
pub mod faults;
pub mod files;
pub mod github_api;
pub mod gitrepo;
pub mod jenkins_api;
pub mod kube_api;
pub mod serve;
pub mod store;
pub mod webhooks;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

pub use clock::Clock;
pub use store::Store;

/// Name of the cluster where Argo CD itself runs (Argo CD calls it `in-cluster`).
pub const IN_CLUSTER: &str = "in-cluster";
/// Namespace of Argo CD's own objects (Applications, AppProjects).
pub const ARGOCD_NAMESPACE: &str = "argocd";

/// How to start a sandbox.
#[derive(Debug, Clone)]
pub struct SandboxOptions {
    /// Where to listen; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Where to write kubeconfig, env and the Git repository; None makes a temp dir that
    /// lives as long as the [`Sandbox`].
    pub state_dir: Option<PathBuf>,
    /// A built-in estate name (`assets/estates/NAME.yaml`) or a path to an estate file.
    pub estate: String,
    /// When set, generate this many apps (spread across environments) instead.
    pub apps: Option<usize>,
    /// Wall seconds per simulated second.
    pub time_scale: f64,
    /// Drives the estate's generated content (names, histories, timings); never a secret.
    pub seed: u64,
    /// Derive the tokens and passwords from this seed, the same on every start (tests that
    /// must know the credentials before the start). None, the default: fresh random secrets
    /// on every start, read them from [`World::users`] or the env file.
    pub secrets_seed: Option<u64>,
}

impl Default for SandboxOptions {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            state_dir: None,
            estate: "default".into(),
            apps: None,
            time_scale: 1.0,
            seed: 1,
            secrets_seed: None,
        }
    }
}

/// Everything the sandbox's servers and controllers share.
pub struct World {
    pub store: Store,
    pub clock: Clock,
    pub users: auth::Users,
    pub faults: faults::Faults,
    pub repo: gitrepo::Repo,
    pub estate: estate::Estate,
    pub ci: ci::Ci,
    /// Base URL of the server, e.g. `http://127.0.0.1:40123` (known once bound).
    pub base_url: String,
    /// Wakes the Argo CD controller at once, as a Git webhook would.
    pub refresh: tokio::sync::Notify,
    /// Images that fail on demand: image reference -> `ImagePullBackOff` or
    /// `CrashLoopBackOff` (the Deployment controller reads it for every new pod).
    pub image_faults: std::sync::Mutex<std::collections::HashMap<String, String>>,
    pub seed: u64,
}

/// A running sandbox. Dropping it stops the server and its controllers.
pub struct Sandbox {
    pub world: Arc<World>,
    pub url: String,
    pub state_dir: PathBuf,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    _temp: Option<tempfile::TempDir>,
}

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot prepare state dir {path}: {source}")]
    StateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("estate: {0}")]
    Estate(String),
    #[error("git: {0}")]
    Git(String),
}

impl Sandbox {
    /// Start the sandbox: load the estate, create the Git repository, seed the store, bind
    /// the server, write kubeconfig and env, start the controllers.
    pub async fn start(opts: SandboxOptions) -> Result<Sandbox, SandboxError> {
        let (state_dir, temp) = match &opts.state_dir {
            Some(p) => {
                std::fs::create_dir_all(p).map_err(|source| SandboxError::StateDir {
                    path: p.clone(),
                    source,
                })?;
                (p.clone(), None)
            }
            None => {
                let t = tempfile::Builder::new()
                    .prefix("shipdeck-sandbox-")
                    .tempdir()
                    .map_err(|source| SandboxError::StateDir {
                        path: std::env::temp_dir(),
                        source,
                    })?;
                (t.path().to_path_buf(), Some(t))
            }
        };
        let listener = tokio::net::TcpListener::bind(opts.listen)
            .await
            .map_err(|source| SandboxError::Listen {
                addr: opts.listen,
                source,
            })?;
        let addr = listener
            .local_addr()
            .map_err(|source| SandboxError::Listen {
                addr: opts.listen,
                source,
            })?;
        let base_url = format!("http://{addr}");

        // `SHIPDECK_SANDBOX_PHASES=1`: where a large start spends its time and memory, on
        // stderr (for the scale benchmark; nothing is printed otherwise).
        let phases = std::time::Instant::now();
        let phase = |what: &str| {
            if std::env::var_os("SHIPDECK_SANDBOX_PHASES").is_some() {
                let rss = std::fs::read_to_string("/proc/self/status")
                    .ok()
                    .and_then(|s| {
                        s.lines()
                            .find(|l| l.starts_with("VmRSS:"))
                            .map(str::to_string)
                    })
                    .unwrap_or_default();
                eprintln!(
                    "phase {what}: {:.2} s {rss}",
                    phases.elapsed().as_secs_f64()
                );
            }
        };
        let estate = estate::Estate::load(&opts.estate, opts.apps, opts.seed)
            .map_err(SandboxError::Estate)?;
        phase("estate");
        let repo =
            gitrepo::Repo::create(&state_dir.join("repo"), &estate).map_err(SandboxError::Git)?;
        phase("repo");
        let world = Arc::new(World {
            store: Store::default(),
            clock: Clock::new(opts.time_scale),
            users: match opts.secrets_seed {
                Some(seed) => auth::Users::generate(seed),
                None => auth::Users::random(),
            },
            faults: faults::Faults::default(),
            repo,
            estate,
            ci: ci::Ci::default(),
            base_url: base_url.clone(),
            refresh: tokio::sync::Notify::new(),
            image_faults: Default::default(),
            seed: opts.seed,
        });
        estate::seed_store(&world).map_err(SandboxError::Estate)?;
        phase("seed_store");
        ci::seed_history(&world);
        phase("ci");
        files::write_state_files(&world, &state_dir).map_err(|source| SandboxError::StateDir {
            path: state_dir.clone(),
            source,
        })?;

        let app = router(world.clone());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let mut tasks = vec![tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async {
                let _ = rx.await;
            });
            if let Err(e) = serve.await {
                tracing::warn!("sandbox server stopped: {e}");
            }
        })];
        tasks.extend(controller::spawn_all(world.clone()));
        tasks.extend(ci::spawn(world.clone()));
        phase("spawned");

        Ok(Sandbox {
            world,
            url: base_url,
            state_dir,
            shutdown: Some(tx),
            tasks,
            _temp: temp,
        })
    }

    pub fn kubeconfig_path(&self) -> PathBuf {
        self.state_dir.join("kubeconfig")
    }

    pub fn env_path(&self) -> PathBuf {
        self.state_dir.join("env")
    }

    /// Stop serving and end the controllers.
    pub async fn stop(mut self) {
        self.shutdown_now();
        // Graceful shutdown waits for open connections, and watches and SSE streams never
        // end on their own: give clients a moment, then cut them.
        let mut tasks = self.tasks.drain(..);
        if let Some(server) = tasks.next() {
            let abort = server.abort_handle();
            if tokio::time::timeout(std::time::Duration::from_secs(2), server)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
        for t in tasks {
            let _ = t.await;
        }
    }

    fn shutdown_now(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        // Controllers loop forever; abort them. The server task ends gracefully.
        for t in self.tasks.iter().skip(1) {
            t.abort();
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.shutdown_now();
        if let Some(server) = self.tasks.first() {
            server.abort();
        }
    }
}

/// The whole HTTP surface: admin and fault layer around the four APIs.
pub fn router(world: Arc<World>) -> axum::Router {
    axum::Router::new()
        .merge(kube_api::router(world.clone()))
        .merge(argo_api::router(world.clone()))
        .merge(github_api::router(world.clone()))
        .merge(jenkins_api::router(world.clone()))
        .merge(faults::admin_router(world.clone()))
        .merge(controller::admin_router(world.clone()))
        .merge(controller::deploy::admin_router(world.clone()))
        .merge(webhooks::router())
        .layer(axum::middleware::from_fn_with_state(
            world,
            faults::fault_layer,
        ))
}
