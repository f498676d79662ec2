//! `wasi:config/store`: the config keys a component's `variables` render to, read-only.
//! Two versions of the same interface are linked, so guests built for either work:
//! `0.2.0-rc.1` (wasmtime's wasi-config, wasmCloud) and `0.2.0-draft-2024-09-27`
//! (Spin 3). A component without `variables` sees no keys; asking for a key it does not
//! have answers `None` and logs a `capability denied` line with `kind=config`.
//!
//! Cost: nothing per instance; each call clones the asked value.

use std::collections::HashMap;

use wasmtime::component::{HasData, Linker};

use crate::record::{Answer, Call};
use crate::{CapabilityView, InstanceCapabilities};

mod rc1 {
    wasmtime::component::bindgen!({
        path: "wit/config-rc1",
        world: "wasi:config/imports",
    });
}

mod draft {
    wasmtime::component::bindgen!({
        path: "wit/config-2024-09-27",
        world: "wasi:config/imports",
    });
}

/// The rendered config keys of one component.
pub(crate) type ConfigValues = HashMap<String, String>;

struct HasConfig;

impl HasData for HasConfig {
    type Data<'a> = &'a mut InstanceCapabilities;
}

pub(crate) fn add_to_linker<T: CapabilityView>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    fn view<T: CapabilityView>(t: &mut T) -> &mut InstanceCapabilities {
        t.capabilities().0
    }
    rc1::wasi::config::store::add_to_linker::<T, HasConfig>(linker, view::<T>)?;
    draft::wasi::config::store::add_to_linker::<T, HasConfig>(linker, view::<T>)?;
    Ok(())
}

fn sorted(values: &ConfigValues) -> Vec<(String, String)> {
    let mut all: Vec<(String, String)> =
        values.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    all.sort();
    all
}

/// The value of `key`, or `None` with a `capability denied` line when the component has
/// no such key (its `variables` do not render it).
fn lookup(caps: &mut InstanceCapabilities, key: &str) -> Result<Option<String>, String> {
    let Some(tape) = caps.tape().cloned() else {
        return Ok(lookup_live(caps, key));
    };
    let call = Call::Config {
        key: Some(key.to_owned()),
        value: None,
        all: None,
    };
    match tape.answer(&call.key()) {
        Answer::Live => {
            let value = lookup_live(caps, key);
            tape.push(Call::Config {
                key: Some(key.to_owned()),
                value: value.clone(),
                all: None,
            });
            Ok(value)
        }
        Answer::Replayed(Call::Config { value, .. }) => Ok(value),
        Answer::Replayed(_) => Err("replay: a recorded call of another kind".into()),
        Answer::Missing(why) => Err(why),
    }
}

/// Every key and value, sorted; recorded or replayed like [`lookup`].
fn lookup_all(caps: &InstanceCapabilities) -> Result<Vec<(String, String)>, String> {
    let Some(tape) = caps.tape() else {
        return Ok(sorted(&caps.grants.config));
    };
    let call = Call::Config {
        key: None,
        value: None,
        all: None,
    };
    match tape.answer(&call.key()) {
        Answer::Live => {
            let all = sorted(&caps.grants.config);
            tape.push(Call::Config {
                key: None,
                value: None,
                all: Some(all.clone()),
            });
            Ok(all)
        }
        Answer::Replayed(Call::Config { all, .. }) => Ok(all.unwrap_or_default()),
        Answer::Replayed(_) => Err("replay: a recorded call of another kind".into()),
        Answer::Missing(why) => Err(why),
    }
}

fn lookup_live(caps: &mut InstanceCapabilities, key: &str) -> Option<String> {
    if let Some(v) = caps.grants.config.get(key) {
        return Some(v.clone());
    }
    let key = caps.grants.target.quote(key);
    caps.deny(
        "config",
        &format!("config key `{key}`"),
        &format!(
            "the component asked for config key `{key}`, which is not one of its variables; add it to the component's variables"
        ),
    );
    None
}

impl rc1::wasi::config::store::Host for &mut InstanceCapabilities {
    fn get(&mut self, key: String) -> Result<Option<String>, rc1::wasi::config::store::Error> {
        lookup(self, &key).map_err(rc1::wasi::config::store::Error::Io)
    }

    fn get_all(&mut self) -> Result<Vec<(String, String)>, rc1::wasi::config::store::Error> {
        lookup_all(self).map_err(rc1::wasi::config::store::Error::Io)
    }
}

impl draft::wasi::config::store::Host for &mut InstanceCapabilities {
    fn get(&mut self, key: String) -> Result<Option<String>, draft::wasi::config::store::Error> {
        lookup(self, &key).map_err(draft::wasi::config::store::Error::Io)
    }

    fn get_all(&mut self) -> Result<Vec<(String, String)>, draft::wasi::config::store::Error> {
        lookup_all(self).map_err(draft::wasi::config::store::Error::Io)
    }
}
