//! Connections to the outside world: Kubernetes (kube-rs), the Argo CD API server, Git
//! (the system `git`), GitHub Actions and Jenkins. Each system has its own file and its own
//! error type. Sources turn outside data into `model` values; they never import ratatui and
//! never decide policy.
