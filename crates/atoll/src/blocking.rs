//! The blocking facade: the same calls for a program without an async runtime. Each
//! thread that uses it gets a small current-thread tokio runtime of its own, made on
//! first use.

use std::future::Future;
use std::path::PathBuf;

use wasmtime::component::Val;

use crate::{Error, Limits, Plugin, Policy, Pool, Runtime};

thread_local! {
    static LOCAL: Result<tokio::runtime::Runtime, String> = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string());
}

/// Run `f` to completion on this thread's runtime.
pub(crate) fn block_on<F: Future>(f: F) -> Result<F::Output, Error> {
    if tokio::runtime::Handle::try_current().is_ok() {
        return Err(Error::Runtime(
            "a blocking atoll call was made inside an async runtime, where it would stall the runtime's thread; use the async method (without `_blocking`) and `.await` it".into(),
        ));
    }
    LOCAL.with(|rt| match rt {
        Ok(rt) => Ok(rt.block_on(f)),
        Err(e) => Err(Error::Runtime(format!(
            "cannot start a tokio runtime for a blocking call: {e}"
        ))),
    })
}

impl Runtime {
    /// [`Runtime::load`], blocking. Not inside an async runtime (that is an error, not a
    /// deadlock).
    pub fn load_blocking(
        &self,
        bytes: impl Into<Vec<u8>>,
        policy: &Policy,
        limits: &Limits,
    ) -> Result<Plugin, Error> {
        block_on(self.load(bytes, policy, limits))?
    }

    /// [`Runtime::load_file`], blocking.
    pub fn load_file_blocking(
        &self,
        path: impl Into<PathBuf>,
        policy: &Policy,
        limits: &Limits,
    ) -> Result<Plugin, Error> {
        block_on(self.load_file(path, policy, limits))?
    }
}

impl crate::PluginBuilder {
    /// [`PluginBuilder::load`](crate::PluginBuilder::load), blocking.
    pub fn load_blocking(self) -> Result<Plugin, Error> {
        block_on(self.load())?
    }
}

impl Plugin {
    /// [`Plugin::call`], blocking.
    pub fn call_blocking(&self, function: &str, args: &[Val]) -> Result<Vec<Val>, Error> {
        block_on(self.call(function, args))?
    }

    /// [`Plugin::call_wave`], blocking.
    pub fn call_wave_blocking(&self, function: &str, args: &[&str]) -> Result<String, Error> {
        block_on(self.call_wave(function, args))?
    }

    /// [`Plugin::with_instance`], blocking.
    pub fn with_instance_blocking<R>(
        &self,
        f: impl AsyncFnOnce(
            &mut wasmtime::Store<crate::Ctx>,
            &wasmtime::component::Instance,
        ) -> wasmtime::Result<R>,
    ) -> Result<R, Error> {
        block_on(self.with_instance(f))?
    }
}

impl Pool {
    /// [`Pool::call`], blocking.
    pub fn call_blocking(&self, function: &str, args: &[Val]) -> Result<Vec<Val>, Error> {
        block_on(self.call(function, args))?
    }

    /// [`Pool::call_wave`], blocking.
    pub fn call_wave_blocking(&self, function: &str, args: &[&str]) -> Result<String, Error> {
        block_on(self.call_wave(function, args))?
    }

    /// [`Pool::with_instance`], blocking.
    pub fn with_instance_blocking<R>(
        &self,
        f: impl AsyncFnOnce(
            &mut wasmtime::Store<crate::Ctx>,
            &wasmtime::component::Instance,
        ) -> wasmtime::Result<R>,
    ) -> Result<R, Error> {
        block_on(self.with_instance(f))?
    }
}
