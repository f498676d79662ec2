//! `atoll deploy`, `atoll rollback` and `atoll status`: the writers and readers of the
//! desired state.
//!
//! A deploy uploads the blobs (content-addressed, skipped when there) and the version
//! record (create only), then runs two phases on the app's desired state, each one
//! compare-and-swap write: **stage** (`staged = id`; every live node fetches, verifies,
//! compiles and reports it staged, while serving `current`) and **commit** (`current =
//! id`, `previous = old`, `epoch + 1`; nodes swap the version they already compiled). A
//! node failing to stage clears the stage and leaves `current` untouched. Two deploys of
//! one app: the second compare-and-swap fails, and that deploy is told to retry.

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::FleetError;
use crate::bundle::Bundle;
use crate::control::Control;
use crate::records::{AppState, NodeReport, now_ms, short};

/// How often a waiting deploy reads the node reports.
const POLL: Duration = Duration::from_millis(20);

/// One node's part in a deploy.
#[derive(Debug, Clone, Serialize)]
pub struct DeployReport {
    /// The node.
    pub node: String,
    /// Its address.
    pub addr: String,
    /// What it serves of the app at the end.
    pub serving: Option<String>,
    /// Milliseconds it took to fetch the version's blobs (0: all cached).
    pub fetch_ms: u64,
    /// Milliseconds it took to compile (or load from its compile cache).
    pub compile_ms: u64,
    /// Milliseconds from the commit to its swap, by its clock.
    pub swap_after_commit_ms: Option<i64>,
    /// Its error, if it failed.
    pub error: Option<String>,
}

/// What a deploy (or rollback) did.
#[derive(Debug, Clone, Serialize)]
pub struct DeployOutcome {
    /// The app.
    pub app: String,
    /// The version now current.
    pub version: String,
    /// The version it replaced.
    pub previous: Option<String>,
    /// The epoch of the commit.
    pub epoch: u64,
    /// Blobs uploaded (the others were there).
    pub uploaded: usize,
    /// The version was already current (nothing was committed).
    pub already_current: bool,
    /// Milliseconds from the stage write until every live node had staged it.
    pub stage_ms: u64,
    /// Milliseconds from the commit until every live node reported serving it, as seen
    /// by the deploy.
    pub convergence_ms: u64,
    /// Per node.
    pub nodes: Vec<DeployReport>,
}

/// Upload `bundle` and make it the app's current version on every live node.
pub async fn deploy(
    control: &Control,
    bundle: &Bundle,
    timeout: Duration,
    by: &str,
) -> Result<DeployOutcome, FleetError> {
    let mut uploaded = 0;
    for (sha, bytes) in &bundle.blobs {
        if control.put_blob(sha, bytes).await? {
            uploaded += 1;
        }
    }
    let id = control.put_version(&bundle.record).await?;
    let mut outcome = promote(control, &bundle.record.app, &id, timeout, by).await?;
    outcome.uploaded = uploaded;
    Ok(outcome)
}

/// Make the app's previous version current again (two phases, as a deploy).
pub async fn rollback(
    control: &Control,
    app: &str,
    timeout: Duration,
    by: &str,
) -> Result<DeployOutcome, FleetError> {
    let entry = control.app(app).await?.ok_or_else(|| {
        FleetError::Deploy(format!(
            "app `{app}` was never deployed to this fleet; `atoll status` lists the apps"
        ))
    })?;
    let previous = entry.state.previous.clone().ok_or_else(|| {
        FleetError::Deploy(format!(
            "app `{app}` has no previous version to roll back to (it was deployed once)"
        ))
    })?;
    control.version(app, &previous).await?;
    promote(control, app, &previous, timeout, by).await
}

/// Stage version `id` of `app` on every live node, then commit it and wait until they
/// serve it.
pub async fn promote(
    control: &Control,
    app: &str,
    id: &str,
    timeout: Duration,
    by: &str,
) -> Result<DeployOutcome, FleetError> {
    let deadline = Instant::now() + timeout;
    let entry = control.app(app).await?;
    let (state, revision) = entry.map_or((AppState::default(), 0), |e| (e.state, e.revision));
    if state.current.as_deref() == Some(id) {
        let (convergence_ms, nodes) = wait_serving(control, app, id, deadline, now_ms()).await?;
        return Ok(DeployOutcome {
            app: app.to_string(),
            version: id.to_string(),
            previous: state.previous.clone(),
            epoch: state.epoch,
            uploaded: 0,
            already_current: true,
            stage_ms: 0,
            convergence_ms,
            nodes,
        });
    }
    if let Some(other) = &state.staged
        && other != id
        && now_ms().saturating_sub(state.staged_at_ms)
            < u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX)
    {
        return Err(FleetError::Conflict {
            app: app.to_string(),
            detail: format!("version {} is being staged", short(other)),
        });
    }
    // Phase 1: stage.
    let staged = AppState {
        staged: Some(id.to_string()),
        staged_at_ms: now_ms(),
        ..state.clone()
    };
    let attempt = staged.staged_at_ms;
    let stage_started = Instant::now();
    let Some(stage_rev) = control.swap_app(app, &staged, revision).await? else {
        return Err(FleetError::Conflict {
            app: app.to_string(),
            detail: "its desired state changed while this deploy read it".into(),
        });
    };
    let failures = loop {
        let nodes = match live(control).await {
            Ok(n) => n,
            Err(e) => {
                abandon_stage(control, app, id, attempt).await;
                return Err(e);
            }
        };
        let failures: Vec<&NodeReport> = nodes
            .iter()
            .filter(|n| {
                n.errors
                    .get(app)
                    .is_some_and(|e| e.version == id && e.attempt == attempt)
            })
            .collect();
        let pending = nodes.iter().any(|n| {
            !(n.staged.get(app).is_some_and(|v| v == id)
                || n.apps.get(app).is_some_and(|s| s.version == id)
                || n.errors
                    .get(app)
                    .is_some_and(|e| e.version == id && e.attempt == attempt))
        });
        if !pending {
            if failures.is_empty() {
                break None;
            }
            break Some(rows(&nodes, app, id, 0));
        }
        if Instant::now() >= deadline {
            let mut rows = rows(&nodes, app, id, 0);
            for r in &mut rows {
                if r.error.is_none()
                    && !nodes
                        .iter()
                        .any(|n| n.name == r.node && n.staged.get(app).is_some_and(|v| v == id))
                {
                    r.error = Some(format!("did not stage within {timeout:?}"));
                }
            }
            break Some(rows);
        }
        tokio::time::sleep(POLL).await;
    };
    if let Some(rows) = failures {
        // Clear our stage; `current` was never touched.
        let cleared = AppState {
            staged: None,
            ..state.clone()
        };
        let _ = control.swap_app(app, &cleared, stage_rev).await;
        let mut message = format!(
            "version {} of app `{app}` was not deployed: it failed to stage on {} node(s); every node still serves {}:",
            short(id),
            rows.iter().filter(|r| r.error.is_some()).count(),
            state
                .current
                .as_deref()
                .map_or("nothing (first deploy)".to_string(), |c| short(c)
                    .to_string()),
        );
        for r in rows.iter().filter(|r| r.error.is_some()) {
            message.push_str(&format!(
                "\n  {} ({}): {}",
                r.node,
                r.addr,
                r.error.as_deref().unwrap_or("")
            ));
        }
        return Err(FleetError::Deploy(message));
    }
    let stage_ms = ms(stage_started.elapsed());
    // Phase 2: commit.
    let committed = AppState {
        current: Some(id.to_string()),
        staged: None,
        staged_at_ms: 0,
        previous: state.current.clone().or(state.previous.clone()),
        epoch: state.epoch + 1,
        by: by.to_string(),
        at_ms: now_ms(),
    };
    let commit_ms = now_ms();
    let written = match control.swap_app(app, &committed, stage_rev).await {
        Ok(w) => w,
        Err(e) => {
            // The commit may or may not have been written: say so, and leave a stage
            // that did not commit to be cleared.
            abandon_stage(control, app, id, attempt).await;
            return Err(FleetError::Deploy(format!(
                "control plane: the commit of version {} of app `{app}` got no answer ({e}); it may or may not have been written. `atoll status` shows which; deploying again is safe",
                short(id)
            )));
        }
    };
    if written.is_none() {
        return Err(FleetError::Conflict {
            app: app.to_string(),
            detail: "its desired state changed between stage and commit".into(),
        });
    }
    let (convergence_ms, nodes) = wait_serving(control, app, id, deadline, commit_ms).await?;
    Ok(DeployOutcome {
        app: app.to_string(),
        version: id.to_string(),
        previous: committed.previous,
        epoch: committed.epoch,
        uploaded: 0,
        already_current: false,
        stage_ms,
        convergence_ms,
        nodes,
    })
}

/// Clear this deploy's stage after it failed on the way, if it is still there (best
/// effort: the control plane may be what failed; a later deploy takes over a stage older
/// than its timeout, or of the same version, anyway).
async fn abandon_stage(control: &Control, app: &str, id: &str, attempt: u64) {
    let clear = async {
        let entry = control.app(app).await?;
        if let Some(e) = entry
            && e.state.staged.as_deref() == Some(id)
            && e.state.staged_at_ms == attempt
        {
            let cleared = AppState {
                staged: None,
                ..e.state
            };
            control.swap_app(app, &cleared, e.revision).await?;
        }
        Ok::<_, FleetError>(())
    };
    let _ = tokio::time::timeout(Duration::from_secs(5), clear).await;
}

/// The reports of live nodes that are not draining.
async fn live(control: &Control) -> Result<Vec<NodeReport>, FleetError> {
    Ok(control
        .nodes()
        .await?
        .into_iter()
        .filter(|n| !n.draining)
        .collect())
}

async fn wait_serving(
    control: &Control,
    app: &str,
    id: &str,
    deadline: Instant,
    commit_ms: u64,
) -> Result<(u64, Vec<DeployReport>), FleetError> {
    let t = Instant::now();
    loop {
        let nodes = live(control).await?;
        if nodes
            .iter()
            .all(|n| n.apps.get(app).is_some_and(|s| s.version == id))
        {
            return Ok((ms(t.elapsed()), rows(&nodes, app, id, commit_ms)));
        }
        if Instant::now() >= deadline {
            let behind: Vec<String> = nodes
                .iter()
                .filter(|n| n.apps.get(app).is_none_or(|s| s.version != id))
                .map(|n| {
                    let why = n
                        .errors
                        .get(app)
                        .map_or(String::new(), |e| format!(": {}", e.message));
                    format!("{} ({}){why}", n.name, n.addr)
                })
                .collect();
            return Err(FleetError::Deploy(format!(
                "version {} of app `{app}` is committed, but not every node serves it yet: {}. Nodes keep converging; `atoll status` shows them",
                short(id),
                behind.join("; ")
            )));
        }
        tokio::time::sleep(POLL).await;
    }
}

fn rows(nodes: &[NodeReport], app: &str, id: &str, commit_ms: u64) -> Vec<DeployReport> {
    nodes
        .iter()
        .map(|n| {
            let served = n.apps.get(app);
            DeployReport {
                node: n.name.clone(),
                addr: n.addr.clone(),
                serving: served.map(|s| s.version.clone()),
                fetch_ms: served.filter(|s| s.version == id).map_or(0, |s| s.fetch_ms),
                compile_ms: served
                    .filter(|s| s.version == id)
                    .map_or(0, |s| s.compile_ms),
                swap_after_commit_ms: served.filter(|s| s.version == id && commit_ms > 0).map(
                    |s| {
                        i64::try_from(s.since_ms).unwrap_or(i64::MAX)
                            - i64::try_from(commit_ms).unwrap_or(i64::MAX)
                    },
                ),
                error: n
                    .errors
                    .get(app)
                    .filter(|e| e.version == id)
                    .map(|e| e.message.clone()),
            }
        })
        .collect()
}

/// The fleet as the control plane sees it: each app's desired state, each live node's
/// report.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// Desired state by app.
    pub apps: Vec<(String, AppState)>,
    /// Live nodes (heartbeat not expired).
    pub nodes: Vec<NodeReport>,
}

/// Read the fleet's status.
pub async fn status(control: &Control) -> Result<Status, FleetError> {
    let apps = control
        .all_apps()
        .await?
        .into_iter()
        .map(|(name, e)| (name, e.state))
        .collect();
    Ok(Status {
        apps,
        nodes: control.nodes().await?,
    })
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
