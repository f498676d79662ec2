//! The set of apps a process serves, swapped atomically: [`LiveApps`].
//!
//! Readers take a [`Snapshot`] (`arc-swap`: no lock, and on the fast path no write to a
//! cache line shared by all cores); a change builds a whole new snapshot and stores it
//! in one step, so a reader sees either the old set or the new one, never a mix.
//! Requests in flight keep the `Arc`s of the version they started on. Every change bumps
//! the generation and notifies subscribers, so each trigger rebuilds its own index (HTTP
//! routes, cron schedules) from the new snapshot.
//!
//! Writers are serialized by a mutex (changes are rare: a start, a reload, a deploy);
//! [`LiveApps::update`] lets a writer check the candidate set (route conflicts, a
//! trigger's export) before it goes live, so a bad change never replaces a good one.

use std::sync::Arc;
use std::sync::Mutex;

use arc_swap::ArcSwap;
use tokio::sync::watch;

use crate::app::LoadedApp;

/// One immutable set of loaded apps, in the order they were added.
#[derive(Debug, Default)]
pub struct Snapshot {
    generation: u64,
    apps: Vec<Arc<LoadedApp>>,
}

impl Snapshot {
    /// The apps, in the order they were added (a replaced app keeps its place).
    pub fn apps(&self) -> &[Arc<LoadedApp>] {
        &self.apps
    }

    /// An app by name.
    pub fn get(&self, name: &str) -> Option<&Arc<LoadedApp>> {
        self.apps.iter().find(|a| a.name() == name)
    }

    /// Increases with every change; 0 for the empty set a [`LiveApps`] starts with.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// This set with `app` added, or in place of the app of the same name.
    pub fn with(&self, app: Arc<LoadedApp>) -> Vec<Arc<LoadedApp>> {
        let mut apps = self.apps.clone();
        match apps.iter_mut().find(|a| a.name() == app.name()) {
            Some(slot) => *slot = app,
            None => apps.push(app),
        }
        apps
    }

    /// This set without the app named `name`.
    pub fn without(&self, name: &str) -> Vec<Arc<LoadedApp>> {
        self.apps
            .iter()
            .filter(|a| a.name() != name)
            .cloned()
            .collect()
    }
}

/// The live set of apps, shared by every trigger of a process. Cheap to clone.
#[derive(Clone)]
pub struct LiveApps {
    inner: Arc<Inner>,
}

struct Inner {
    current: ArcSwap<Snapshot>,
    writer: Mutex<()>,
    changed: watch::Sender<u64>,
}

impl Default for LiveApps {
    fn default() -> Self {
        Self::new(Vec::new())
    }
}

impl std::fmt::Debug for LiveApps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveApps")
            .field("snapshot", &self.snapshot())
            .finish()
    }
}

impl LiveApps {
    /// A live set holding `apps` (generation 1 if any, else 0). Names must be unique:
    /// a later app replaces an earlier one of the same name.
    pub fn new(apps: Vec<Arc<LoadedApp>>) -> Self {
        let mut snapshot = Snapshot::default();
        for app in apps {
            snapshot.apps = snapshot.with(app);
        }
        if !snapshot.apps.is_empty() {
            snapshot.generation = 1;
        }
        let generation = snapshot.generation;
        Self {
            inner: Arc::new(Inner {
                current: ArcSwap::from_pointee(snapshot),
                writer: Mutex::new(()),
                changed: watch::Sender::new(generation),
            }),
        }
    }

    /// The current set.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.inner.current.load_full()
    }

    /// The current generation, without taking a snapshot (one atomic load behind the
    /// swap's own).
    pub fn generation(&self) -> u64 {
        self.inner.current.load().generation
    }

    /// A receiver that sees the generation of each change (the latest only, if several
    /// come before it looks). Each trigger rebuilds its index when it changes.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.inner.changed.subscribe()
    }

    /// Add `app`, or replace the app of the same name. Returns the new generation.
    pub fn replace(&self, app: Arc<LoadedApp>) -> u64 {
        match self.update(|s| Ok::<_, std::convert::Infallible>(s.with(app))) {
            Ok(g) => g,
            Err(never) => match never {},
        }
    }

    /// Remove the app named `name`; `None` if there was none.
    pub fn remove(&self, name: &str) -> Option<u64> {
        self.update(|s| {
            if s.get(name).is_some() {
                Ok(s.without(name))
            } else {
                Err(())
            }
        })
        .ok()
    }

    /// Change the set: `change` gets the current snapshot and returns the new list of
    /// apps, or an error that leaves the set as it was (for checks that need the whole
    /// candidate set, such as route conflicts between apps). Serialized with every
    /// other change. Returns the new generation.
    pub fn update<E>(
        &self,
        change: impl FnOnce(&Snapshot) -> Result<Vec<Arc<LoadedApp>>, E>,
    ) -> Result<u64, E> {
        let _writer = self
            .inner
            .writer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let current = self.inner.current.load_full();
        let apps = change(&current)?;
        let generation = current.generation + 1;
        self.inner
            .current
            .store(Arc::new(Snapshot { generation, apps }));
        self.inner.changed.send_replace(generation);
        Ok(generation)
    }

    /// A snapshot of `apps` that is not live (generation 0), for checking a candidate
    /// set inside [`LiveApps::update`] before it is stored (the HTTP route table, the
    /// cron schedules).
    pub fn candidate(apps: Vec<Arc<LoadedApp>>) -> Snapshot {
        Snapshot {
            generation: 0,
            apps,
        }
    }
}
