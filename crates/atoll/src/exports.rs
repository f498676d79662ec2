//! A plugin's exported functions, found from the component's type: for dynamic calls
//! (`Val` and WAVE), for `atoll call --list`, and for the errors that list them.

use std::fmt;

use wasmtime::component::types::{ComponentFunc, ComponentItem, Type};
use wasmtime::component::wasm_wave::wasm::DisplayType;
use wasmtime::component::{Instance, InstancePre, Val};
use wasmtime::{Engine, Store};

use atoll_engine::InstanceState;

use crate::Error;
use crate::plugin::ExportIndex;

/// One exported function.
#[derive(Clone)]
pub struct Function {
    interface: Option<String>,
    name: String,
    ty: ComponentFunc,
    index: ExportIndex,
}

impl fmt::Debug for Function {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Function")
            .field("name", &self.qualified_name())
            .field("signature", &self.signature())
            .finish()
    }
}

impl fmt::Display for Function {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.qualified_name(), self.signature())
    }
}

/// An argument did not fit its parameter; raised inside a call, reported as
/// [`Error::InvalidInput`].
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct BadArguments(pub(crate) String);

impl Function {
    /// The interface it is in (`acme:x/api@1.0.0`), or `None` for a top-level export.
    pub fn interface(&self) -> Option<&str> {
        self.interface.as_deref()
    }

    /// Its own name (`count-vowels`, `[method]accumulator.add`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `interface#name`, or just the name at top level.
    pub fn qualified_name(&self) -> String {
        match &self.interface {
            Some(i) => format!("{i}#{}", self.name),
            None => self.name.clone(),
        }
    }

    /// Its WIT signature, `func(s: string) -> u32`.
    pub fn signature(&self) -> String {
        let params: Vec<String> = self
            .ty
            .params()
            .map(|(n, t)| format!("{n}: {}", DisplayType(&t)))
            .collect();
        let results: Vec<String> = self
            .ty
            .results()
            .map(|t| DisplayType(&t).to_string())
            .collect();
        match results.as_slice() {
            [] => format!("func({})", params.join(", ")),
            [one] => format!("func({}) -> {one}", params.join(", ")),
            many => format!("func({}) -> ({})", params.join(", "), many.join(", ")),
        }
    }

    /// Its parameters, names and types.
    pub fn params(&self) -> Vec<(String, Type)> {
        self.ty.params().map(|(n, t)| (n.to_string(), t)).collect()
    }

    /// Its result types.
    pub fn results(&self) -> Vec<Type> {
        self.ty.results().collect()
    }

    /// Parse one WAVE text per parameter.
    pub(crate) fn parse_args(&self, args: &[&str]) -> Result<Vec<Val>, Error> {
        let params = self.params();
        self.check_count(args.len(), &params)?;
        params
            .iter()
            .zip(args)
            .enumerate()
            .map(|(i, ((name, ty), text))| {
                Val::from_wave(ty, text).map_err(|e| Error::InvalidInput {
                    message: format!(
                        "argument {} (`{name}`) of {}: expected {}, got {text:?}: {e}",
                        i + 1,
                        self.qualified_name(),
                        DisplayType(ty)
                    ),
                })
            })
            .collect()
    }

    /// Check values against the parameter types.
    pub(crate) fn check_args(&self, args: &[Val]) -> Result<(), Error> {
        let params = self.params();
        self.check_count(args.len(), &params)?;
        for (i, ((name, ty), v)) in params.iter().zip(args).enumerate() {
            if !fits(ty, v) {
                return Err(Error::InvalidInput {
                    message: format!(
                        "argument {} (`{name}`) of {}: expected {}, got {v:?}",
                        i + 1,
                        self.qualified_name(),
                        DisplayType(ty)
                    ),
                });
            }
        }
        Ok(())
    }

    fn check_count(&self, given: usize, params: &[(String, Type)]) -> Result<(), Error> {
        if given == params.len() {
            return Ok(());
        }
        Err(Error::InvalidInput {
            message: format!(
                "{} takes {} argument{} ({}), got {given}",
                self.qualified_name(),
                params.len(),
                if params.len() == 1 { "" } else { "s" },
                self.signature()
            ),
        })
    }

    /// Call it on `instance`.
    pub(crate) async fn invoke(
        &self,
        store: &mut Store<InstanceState>,
        instance: &Instance,
        args: &[Val],
    ) -> wasmtime::Result<Vec<Val>> {
        let func = instance.get_func(&mut *store, self.index).ok_or_else(|| {
            wasmtime::Error::new(BadArguments(format!(
                "{} is not a function of this instance",
                self.qualified_name()
            )))
        })?;
        let mut results = vec![Val::Bool(false); self.ty.results().len()];
        func.call_async(&mut *store, args, &mut results).await?;
        Ok(results)
    }
}

/// Every function the component exports, at top level and one level down in its
/// exported instances (interfaces).
pub(crate) fn list_functions(pre: &InstancePre<InstanceState>, engine: &Engine) -> Vec<Function> {
    let component = pre.component();
    let ty = component.component_type();
    let mut out = Vec::new();
    for (name, item) in ty.exports(engine) {
        match item.ty {
            ComponentItem::ComponentFunc(f) => {
                if let Some(index) = component.get_export_index(None, name) {
                    out.push(Function {
                        interface: None,
                        name: name.to_string(),
                        ty: f,
                        index,
                    });
                }
            }
            ComponentItem::ComponentInstance(inst) => {
                let Some(parent) = component.get_export_index(None, name) else {
                    continue;
                };
                for (fname, fitem) in inst.exports(engine) {
                    if let ComponentItem::ComponentFunc(f) = fitem.ty
                        && let Some(index) = component.get_export_index(Some(&parent), fname)
                    {
                        out.push(Function {
                            interface: Some(name.to_string()),
                            name: fname.to_string(),
                            ty: f,
                            index,
                        });
                    }
                }
            }
            _ => {}
        }
    }
    out
}

/// The function `name` names: a qualified `interface#func`, or a plain name only one
/// export has.
pub(crate) fn find<'a>(functions: &'a [Function], name: &str) -> Result<&'a Function, Error> {
    let listing = || {
        functions
            .iter()
            .map(|f| format!("  {f}"))
            .collect::<Vec<_>>()
    };
    if let Some((iface, func)) = name.rsplit_once('#') {
        return functions
            .iter()
            .find(|f| f.interface.as_deref() == Some(iface) && f.name == func)
            .ok_or_else(|| Error::NoSuchFunction {
                message: format!("the plugin exports no function `{name}`"),
                available: listing(),
            });
    }
    let matching: Vec<&Function> = functions.iter().filter(|f| f.name == name).collect();
    match matching.as_slice() {
        [one] => Ok(one),
        [] => Err(Error::NoSuchFunction {
            message: format!("the plugin exports no function `{name}`"),
            available: listing(),
        }),
        many => Err(Error::NoSuchFunction {
            message: format!(
                "`{name}` is exported by {} interfaces; name one: {}",
                many.len(),
                many.iter()
                    .map(|f| f.qualified_name())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            available: listing(),
        }),
    }
}

/// Results as WAVE, joined by `, `.
pub(crate) fn to_wave(vals: &[Val]) -> Result<String, Error> {
    let texts: Result<Vec<String>, Error> = vals
        .iter()
        .map(|v| {
            v.to_wave().map_err(|e| Error::InvalidInput {
                message: format!("the result cannot be written as WAVE: {e}"),
            })
        })
        .collect();
    Ok(texts?.join(", "))
}

/// Whether `v` has type `ty` (checked deeply for lists, records, tuples, options,
/// results and variants; resources by kind only).
fn fits(ty: &Type, v: &Val) -> bool {
    match (ty, v) {
        (Type::Bool, Val::Bool(_))
        | (Type::S8, Val::S8(_))
        | (Type::U8, Val::U8(_))
        | (Type::S16, Val::S16(_))
        | (Type::U16, Val::U16(_))
        | (Type::S32, Val::S32(_))
        | (Type::U32, Val::U32(_))
        | (Type::S64, Val::S64(_))
        | (Type::U64, Val::U64(_))
        | (Type::Float32, Val::Float32(_))
        | (Type::Float64, Val::Float64(_))
        | (Type::Char, Val::Char(_))
        | (Type::String, Val::String(_))
        | (Type::Own(_) | Type::Borrow(_), Val::Resource(_)) => true,
        (Type::List(l), Val::List(items)) => {
            let elem = l.ty();
            items.iter().all(|i| fits(&elem, i))
        }
        (Type::Record(r), Val::Record(fields)) => {
            let want: Vec<_> = r.fields().collect();
            want.len() == fields.len()
                && want
                    .iter()
                    .zip(fields)
                    .all(|(w, (n, v))| w.name == n && fits(&w.ty, v))
        }
        (Type::Tuple(t), Val::Tuple(items)) => {
            let want: Vec<_> = t.types().collect();
            want.len() == items.len() && want.iter().zip(items).all(|(w, v)| fits(w, v))
        }
        (Type::Option(o), Val::Option(inner)) => inner.as_deref().is_none_or(|v| fits(&o.ty(), v)),
        (Type::Result(r), Val::Result(res)) => match res {
            Ok(v) => match (r.ok(), v.as_deref()) {
                (Some(t), Some(v)) => fits(&t, v),
                (None, None) => true,
                _ => false,
            },
            Err(v) => match (r.err(), v.as_deref()) {
                (Some(t), Some(v)) => fits(&t, v),
                (None, None) => true,
                _ => false,
            },
        },
        (Type::Variant(t), Val::Variant(name, payload)) => t.cases().any(|c| {
            c.name == name
                && match (c.ty, payload.as_deref()) {
                    (Some(t), Some(v)) => fits(&t, v),
                    (None, None) => true,
                    _ => false,
                }
        }),
        (Type::Enum(t), Val::Enum(name)) => t.names().any(|n| n == name),
        (Type::Flags(t), Val::Flags(set)) => {
            let names: Vec<_> = t.names().collect();
            set.iter().all(|s| names.contains(&s.as_str()))
        }
        _ => false,
    }
}
