//! The Kubernetes manifests in `deploy/kubernetes/`, checked offline: every document
//! parses, the cross-references between them hold (selectors, ports, probe paths, NATS
//! routes, the control-plane URL, shutdown timings), and `kubernetes-validate` accepts
//! them against the Kubernetes OpenAPI schemas. Nothing here talks to a cluster.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;
use serde_json::{Map, Value};

/// The kubernetes-validate release `.ci/run` installs into `.venv` (its wheel ships the
/// schemas of every Kubernetes minor version up to 1.37, `.0` patches only).
const KUBERNETES_VALIDATE: &str = "1.37.0";
/// The Kubernetes version the manifests are validated against.
const KUBERNETES_VERSION: &str = "1.33.0";

/// `atoll node --shutdown-grace`'s default (crates/atoll-cli/src/commands/fleet.rs).
const NODE_SHUTDOWN_GRACE: u64 = 30;
/// `atoll node --drain-delay`'s default.
const NODE_DRAIN_DELAY: u64 = 0;
/// The paths `atoll node` answers its probes on (atoll-http).
const READY_PATH: &str = "/.atoll/ready";
const LIVE_PATH: &str = "/.atoll/live";

/// Which workload each Service fronts: (Service, workload kind, workload name).
const FRONTS: &[(&str, &str, &str)] = &[
    ("atoll", "Deployment", "atoll-node"),
    ("nats", "StatefulSet", "nats"),
    ("nats-headless", "StatefulSet", "nats"),
];
/// The atoll node Deployment, and the NATS StatefulSet and its client Service.
const NODE: &str = "atoll-node";
const NATS: &str = "nats";

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn manifest_files() -> Vec<PathBuf> {
    let dir = workspace().join("deploy/kubernetes");
    vec![dir.join("nats.yaml"), dir.join("atoll-node.yaml")]
}

/// Every non-empty document of one YAML file.
fn load(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let mut docs = Vec::new();
    for (i, de) in serde_yaml_ng::Deserializer::from_str(&text).enumerate() {
        let doc = Value::deserialize(de)
            .unwrap_or_else(|e| panic!("{} document {i} does not parse: {e}", path.display()));
        match doc {
            Value::Null => {}
            Value::Object(_) => docs.push(doc),
            other => panic!("{} document {i} is not a mapping: {other}", path.display()),
        }
    }
    docs
}

fn load_all() -> Vec<Value> {
    manifest_files().iter().flat_map(|p| load(p)).collect()
}

// ---------------------------------------------------------------------------------------
// The cross-check.

fn kind(doc: &Value) -> &str {
    doc["kind"].as_str().unwrap_or("")
}

fn name(doc: &Value) -> &str {
    doc["metadata"]["name"].as_str().unwrap_or("")
}

fn find<'a>(docs: &'a [Value], kind_: &str, name_: &str) -> Option<&'a Value> {
    docs.iter().find(|d| kind(d) == kind_ && name(d) == name_)
}

fn is_workload(doc: &Value) -> bool {
    matches!(kind(doc), "Deployment" | "StatefulSet")
}

fn pod_labels(workload: &Value) -> Option<&Map<String, Value>> {
    workload["spec"]["template"]["metadata"]["labels"].as_object()
}

fn pod_spec(workload: &Value) -> &Value {
    &workload["spec"]["template"]["spec"]
}

fn containers(workload: &Value) -> &[Value] {
    pod_spec(workload)["containers"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// Whether a non-empty equality selector picks pods with these labels.
fn selects(selector: Option<&Map<String, Value>>, labels: Option<&Map<String, Value>>) -> bool {
    match (selector, labels) {
        (Some(sel), Some(labels)) => {
            !sel.is_empty() && sel.iter().all(|(k, v)| labels.get(k) == Some(v))
        }
        _ => false,
    }
}

/// A port (a number, or the name of a container port) resolved to a container port
/// number of one of the containers, if it is one.
fn resolve_port(containers: &[Value], port: &Value) -> Option<u64> {
    let ports = containers
        .iter()
        .flat_map(|c| c["ports"].as_array().into_iter().flatten());
    match port {
        Value::Number(n) => {
            let n = n.as_u64()?;
            ports
                .filter_map(|p| p["containerPort"].as_u64())
                .find(|&p| p == n)
        }
        Value::String(s) => ports
            .filter(|p| p["name"].as_str() == Some(s))
            .find_map(|p| p["containerPort"].as_u64()),
        _ => None,
    }
}

fn args(container: &Value) -> Vec<&str> {
    container["args"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect()
}

/// The value of `--flag VALUE` or `--flag=VALUE`.
fn flag<'a>(args: &[&'a str], flag: &str) -> Option<&'a str> {
    let eq = format!("{flag}=");
    args.iter().enumerate().find_map(|(i, a)| {
        if *a == flag {
            args.get(i + 1).copied()
        } else {
            a.strip_prefix(eq.as_str())
        }
    })
}

fn env_value<'a>(container: &'a Value, var: &str) -> Option<&'a str> {
    container["env"]
        .as_array()?
        .iter()
        .find(|e| e["name"].as_str() == Some(var))?["value"]
        .as_str()
}

/// `host:port` (after an optional `scheme://`) split; the host's first DNS label.
fn host_port(url: &str) -> Option<(&str, u64)> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let (host, port) = rest.rsplit_once(':')?;
    let host = host.split('.').next()?;
    Some((host, port.trim_end_matches('/').parse().ok()?))
}

/// Seconds of a NATS duration such as `30s` or `2m`.
fn seconds(duration: &str) -> Option<u64> {
    let d = duration.trim().trim_matches('"');
    if let Some(m) = d.strip_suffix('m') {
        return m.parse::<u64>().ok().map(|m| m * 60);
    }
    d.strip_suffix('s').unwrap_or(d).parse().ok()
}

/// The items of one line of a NATS list (commas or spaces between them) added to
/// `items`; whether the line closes the list (`]`).
fn list_items(items: &mut Vec<String>, line: &str) -> bool {
    let (body, done) = match line.split_once(']') {
        Some((body, _)) => (body, true),
        None => (line, false),
    };
    items.extend(
        body.split([',', ' '])
            .map(|s| s.trim().trim_matches('"'))
            .filter(|s| !s.is_empty())
            .map(String::from),
    );
    done
}

/// The keys of a NATS config (`a.b` for `b` in block `a`) with their values; a list
/// (`[ ... ]`, one or several lines) becomes its items joined by single spaces. Enough of
/// the format for nats.yaml's file: no includes, no quoted braces.
fn nats_conf(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut path: Vec<String> = Vec::new();
    let mut list: Option<(String, Vec<String>)> = None;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with("//") {
            continue;
        }
        if let Some((key, items)) = &mut list {
            if list_items(items, line) {
                out.insert(key.clone(), items.join(" "));
                list = None;
            }
            continue;
        }
        if line == "}" {
            path.pop();
            continue;
        }
        if let Some(block) = line.strip_suffix('{') {
            path.push(block.trim().trim_end_matches([':', '=']).trim().to_string());
            continue;
        }
        let (key, value) = match line.find([':', '=', ' ']) {
            Some(i) => (&line[..i], line[i + 1..].trim()),
            None => (line, ""),
        };
        let value = value.trim_start_matches([':', '=']).trim();
        let full = path
            .iter()
            .map(String::as_str)
            .chain([key.trim()])
            .collect::<Vec<_>>()
            .join(".");
        if let Some(rest) = value.strip_prefix('[') {
            let mut items = Vec::new();
            if list_items(&mut items, rest) {
                out.insert(full, items.join(" "));
            } else {
                list = Some((full, items));
            }
        } else {
            out.insert(full, value.trim_matches('"').to_string());
        }
    }
    out
}

/// Every broken cross-reference between the documents, as a sentence each (empty: all
/// hold).
fn check(docs: &[Value]) -> Vec<String> {
    let mut errors = Vec::new();
    check_services(docs, &mut errors);
    check_budgets(docs, &mut errors);
    check_node(docs, &mut errors);
    check_nats(docs, &mut errors);
    errors
}

/// Each Service selects the pods of the workload it fronts, and only those; its target
/// ports are container ports of those pods. Each workload's own selector matches its
/// pod template.
fn check_services(docs: &[Value], errors: &mut Vec<String>) {
    for doc in docs.iter().filter(|d| kind(d) == "Service") {
        if !FRONTS.iter().any(|(s, _, _)| *s == name(doc)) {
            errors.push(format!(
                "Service `{}` is not in FRONTS: say which workload it fronts",
                name(doc)
            ));
        }
    }
    for &(service, wkind, wname) in FRONTS {
        let Some(svc) = find(docs, "Service", service) else {
            errors.push(format!("no Service `{service}`"));
            continue;
        };
        let Some(workload) = find(docs, wkind, wname) else {
            errors.push(format!(
                "Service `{service}` fronts {wkind} `{wname}`, which is missing"
            ));
            continue;
        };
        let selector = svc["spec"]["selector"].as_object();
        if !selects(selector, pod_labels(workload)) {
            errors.push(format!(
                "Service `{service}` selector {} does not match the pod labels {} of {wkind} `{wname}`",
                svc["spec"]["selector"],
                workload["spec"]["template"]["metadata"]["labels"]
            ));
        }
        for other in docs.iter().filter(|d| is_workload(d) && name(d) != wname) {
            if selects(selector, pod_labels(other)) {
                errors.push(format!(
                    "Service `{service}` also selects the pods of {} `{}`",
                    kind(other),
                    name(other)
                ));
            }
        }
        let ports = svc["spec"]["ports"]
            .as_array()
            .map_or(&[][..], Vec::as_slice);
        if ports.is_empty() {
            errors.push(format!("Service `{service}` has no ports"));
        }
        for port in ports {
            let target = match &port["targetPort"] {
                Value::Null => &port["port"],
                t => t,
            };
            if resolve_port(containers(workload), target).is_none() {
                errors.push(format!(
                    "Service `{service}` port {} targets {target}, which is no container port of {wkind} `{wname}`",
                    port["port"]
                ));
            }
        }
    }
    for workload in docs.iter().filter(|d| is_workload(d)) {
        if !selects(
            workload["spec"]["selector"]["matchLabels"].as_object(),
            pod_labels(workload),
        ) {
            errors.push(format!(
                "{} `{}` selector does not match its own pod template's labels",
                kind(workload),
                name(workload)
            ));
        }
    }
}

/// Each PodDisruptionBudget selects exactly one workload's pods, with maxUnavailable 1;
/// each workload has one.
fn check_budgets(docs: &[Value], errors: &mut Vec<String>) {
    let workloads: Vec<&Value> = docs.iter().filter(|d| is_workload(d)).collect();
    let mut covered = Vec::new();
    for pdb in docs.iter().filter(|d| kind(d) == "PodDisruptionBudget") {
        let selector = pdb["spec"]["selector"]["matchLabels"].as_object();
        let selected: Vec<&&Value> = workloads
            .iter()
            .filter(|w| selects(selector, pod_labels(w)))
            .collect();
        match selected.as_slice() {
            [w] => covered.push(name(w)),
            [] => errors.push(format!(
                "PodDisruptionBudget `{}` selector {} matches no workload's pod labels",
                name(pdb),
                pdb["spec"]["selector"]
            )),
            _ => errors.push(format!(
                "PodDisruptionBudget `{}` selects the pods of several workloads",
                name(pdb)
            )),
        }
        if pdb["spec"]["maxUnavailable"].as_u64() != Some(1) {
            errors.push(format!(
                "PodDisruptionBudget `{}` maxUnavailable is {}, not 1",
                name(pdb),
                pdb["spec"]["maxUnavailable"]
            ));
        }
    }
    for w in &workloads {
        if covered.iter().filter(|n| **n == name(w)).count() != 1 {
            errors.push(format!(
                "{} `{}` is not covered by exactly one PodDisruptionBudget",
                kind(w),
                name(w)
            ));
        }
    }
}

/// The atoll node Deployment: `--listen` on the container port the Service and both
/// probes use, the probe paths the node answers, `ATOLL_NATS_URL` at the `nats` Service's
/// client port, and a termination grace longer than preStop plus the node's drain.
fn check_node(docs: &[Value], errors: &mut Vec<String>) {
    let Some(node) = find(docs, "Deployment", NODE) else {
        errors.push(format!("no Deployment `{NODE}`"));
        return;
    };
    let cs = containers(node);
    let [container] = cs else {
        errors.push(format!("Deployment `{NODE}` should have one container"));
        return;
    };
    let args = args(container);
    if args.first() != Some(&"node") {
        errors.push(format!(
            "Deployment `{NODE}` args should start with `node`: {args:?}"
        ));
    }
    let listen = flag(&args, "--listen").and_then(|l| l.rsplit_once(':')?.1.parse::<u64>().ok());
    let Some(listen) = listen else {
        errors.push(format!(
            "Deployment `{NODE}` args have no `--listen HOST:PORT`: {args:?}"
        ));
        return;
    };
    if resolve_port(cs, &Value::from(listen)).is_none() {
        errors.push(format!(
            "Deployment `{NODE}` listens on {listen}, which is no containerPort"
        ));
    }
    // The admin server (if any): on a container port, the one the scrape annotation names.
    if let Some(admin) = flag(&args, "--admin") {
        let port = admin
            .rsplit_once(':')
            .map_or(admin, |(_, p)| p)
            .parse::<u64>()
            .ok();
        match port {
            None => errors.push(format!(
                "Deployment `{NODE}` --admin `{admin}` is not HOST:PORT"
            )),
            Some(p) => {
                if resolve_port(cs, &Value::from(p)).is_none() {
                    errors.push(format!(
                        "Deployment `{NODE}` serves --admin on {p}, which is no containerPort"
                    ));
                }
                let annotations = &node["spec"]["template"]["metadata"]["annotations"];
                let scraped = annotations["prometheus.io/port"]
                    .as_str()
                    .and_then(|s| s.parse::<u64>().ok());
                if !annotations.is_null() && scraped != Some(p) {
                    errors.push(format!(
                        "Deployment `{NODE}` prometheus.io/port {} is not the --admin port {p}",
                        annotations["prometheus.io/port"]
                    ));
                }
            }
        }
    }
    for (probe, path) in [("readinessProbe", READY_PATH), ("livenessProbe", LIVE_PATH)] {
        let get = &container[probe]["httpGet"];
        if get["path"].as_str() != Some(path) {
            errors.push(format!(
                "Deployment `{NODE}` {probe} path is {}, not {path}",
                get["path"]
            ));
        }
        let port = resolve_port(cs, &get["port"]);
        if port != Some(listen) {
            errors.push(format!(
                "Deployment `{NODE}` {probe} port {} is not the --listen port {listen}",
                get["port"]
            ));
        }
    }
    for &(service, _, wname) in FRONTS {
        if wname != NODE {
            continue;
        }
        let Some(svc) = find(docs, "Service", service) else {
            continue;
        };
        for port in svc["spec"]["ports"].as_array().into_iter().flatten() {
            let target = match &port["targetPort"] {
                Value::Null => &port["port"],
                t => t,
            };
            if resolve_port(cs, target) != Some(listen) {
                errors.push(format!(
                    "Service `{service}` targets {target}, not the --listen port {listen}"
                ));
            }
        }
    }

    // The control plane: every URL of ATOLL_NATS_URL is the client port of a Service
    // fronting the NATS StatefulSet, and that port reaches the servers' `port`.
    let url = env_value(container, "ATOLL_NATS_URL").or_else(|| flag(&args, "--nats"));
    match url {
        None => errors.push(format!(
            "Deployment `{NODE}` sets neither ATOLL_NATS_URL nor --nats"
        )),
        Some(urls) => {
            let client_port = find(docs, "StatefulSet", NATS)
                .and_then(|sts| nats_config(docs, sts).ok())
                .and_then(|conf| conf.get("port").and_then(|p| p.parse::<u64>().ok()))
                .unwrap_or(4222);
            for url in urls.split(',') {
                check_nats_url(docs, url.trim(), client_port, errors);
            }
        }
    }

    // Shutdown: preStop, then SIGTERM: --drain-delay, then up to --shutdown-grace for
    // in-flight requests; all before Kubernetes' SIGKILL.
    let pre_stop = &container["lifecycle"]["preStop"];
    let sleep = match (&pre_stop["exec"]["command"], &pre_stop["sleep"]["seconds"]) {
        (Value::Array(cmd), _) => match cmd.as_slice() {
            [s, n] if s.as_str() == Some("sleep") => n.as_str().and_then(|n| n.parse().ok()),
            _ => None,
        },
        (_, Value::Number(n)) => n.as_u64(),
        _ => None,
    };
    let Some(sleep) = sleep else {
        errors.push(format!(
            "Deployment `{NODE}` has no preStop `sleep N`: {pre_stop}"
        ));
        return;
    };
    let number = |f: &str, default: u64| match flag(&args, f) {
        Some(v) => v.parse::<u64>().ok(),
        None => Some(default),
    };
    let (Some(drain), Some(grace)) = (
        number("--drain-delay", NODE_DRAIN_DELAY),
        number("--shutdown-grace", NODE_SHUTDOWN_GRACE),
    ) else {
        errors.push(format!(
            "Deployment `{NODE}`: --drain-delay or --shutdown-grace is not a number"
        ));
        return;
    };
    let termination = pod_spec(node)["terminationGracePeriodSeconds"]
        .as_u64()
        .unwrap_or(30);
    if sleep + drain + grace >= termination {
        errors.push(format!(
            "Deployment `{NODE}`: preStop {sleep}s + drain delay {drain}s + shutdown grace {grace}s \
             is not under terminationGracePeriodSeconds {termination}"
        ));
    }
}

fn check_nats_url(docs: &[Value], url: &str, client_port: u64, errors: &mut Vec<String>) {
    let Some((host, port)) = host_port(url) else {
        errors.push(format!("ATOLL_NATS_URL `{url}` is not nats://HOST:PORT"));
        return;
    };
    let Some(&(_, wkind, wname)) = FRONTS.iter().find(|(s, _, _)| *s == host) else {
        errors.push(format!(
            "ATOLL_NATS_URL `{url}` names `{host}`, which is no Service here"
        ));
        return;
    };
    if (wkind, wname) != ("StatefulSet", NATS) {
        errors.push(format!(
            "ATOLL_NATS_URL `{url}`: Service `{host}` does not front the NATS StatefulSet"
        ));
        return;
    }
    let (Some(svc), Some(sts)) = (find(docs, "Service", host), find(docs, "StatefulSet", NATS))
    else {
        return;
    };
    let Some(svc_port) = svc["spec"]["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["port"].as_u64() == Some(port))
    else {
        errors.push(format!(
            "ATOLL_NATS_URL `{url}`: Service `{host}` has no port {port}"
        ));
        return;
    };
    let target = match &svc_port["targetPort"] {
        Value::Null => &svc_port["port"],
        t => t,
    };
    if resolve_port(containers(sts), target) != Some(client_port) {
        errors.push(format!(
            "ATOLL_NATS_URL `{url}`: Service `{host}` port {port} does not reach the NATS client port {client_port}"
        ));
    }
}

/// The NATS config the StatefulSet's server reads: `--config PATH` in its args, through
/// the volume mounted over PATH's directory, to the ConfigMap key.
fn nats_config(docs: &[Value], sts: &Value) -> Result<BTreeMap<String, String>, String> {
    let [container] = containers(sts) else {
        return Err(format!(
            "StatefulSet `{}` should have one container",
            name(sts)
        ));
    };
    let args = args(container);
    let config = flag(&args, "--config")
        .or_else(|| flag(&args, "-c"))
        .ok_or_else(|| {
            format!(
                "StatefulSet `{}` args have no --config: {args:?}",
                name(sts)
            )
        })?;
    let (dir, file) = config
        .rsplit_once('/')
        .ok_or_else(|| format!("--config `{config}` is not an absolute path"))?;
    let mount = container["volumeMounts"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|m| m["mountPath"].as_str().map(|p| p.trim_end_matches('/')) == Some(dir))
        .ok_or_else(|| format!("no volume is mounted at {dir} for --config {config}"))?;
    let volume = pod_spec(sts)["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|v| v["name"] == mount["name"])
        .ok_or_else(|| format!("no pod volume {}", mount["name"]))?;
    let map_name = volume["configMap"]["name"]
        .as_str()
        .ok_or_else(|| format!("volume {} is not a ConfigMap", mount["name"]))?;
    let map = find(docs, "ConfigMap", map_name)
        .ok_or_else(|| format!("no ConfigMap `{map_name}` (mounted at {dir})"))?;
    let text = map["data"][file]
        .as_str()
        .ok_or_else(|| format!("ConfigMap `{map_name}` has no key `{file}` (--config {config})"))?;
    Ok(nats_conf(text))
}

/// The NATS StatefulSet: its config's routes name exactly its pods through its headless
/// Service, and its ports, store and lame duck fit the pod spec.
fn check_nats(docs: &[Value], errors: &mut Vec<String>) {
    let Some(sts) = find(docs, "StatefulSet", NATS) else {
        errors.push(format!("no StatefulSet `{NATS}`"));
        return;
    };
    let spec = &sts["spec"];
    let replicas = spec["replicas"].as_u64().unwrap_or(1);
    if spec["podManagementPolicy"].as_str() != Some("Parallel") {
        errors.push(format!(
            "StatefulSet `{NATS}` podManagementPolicy should be Parallel (the servers wait for each other)"
        ));
    }
    let service = spec["serviceName"].as_str().unwrap_or("");
    match find(docs, "Service", service) {
        None => errors.push(format!(
            "StatefulSet `{NATS}` serviceName `{service}` is no Service here"
        )),
        Some(headless) => {
            if headless["spec"]["clusterIP"].as_str() != Some("None") {
                errors.push(format!(
                    "Service `{service}` is not headless (clusterIP: None)"
                ));
            }
            if headless["spec"]["publishNotReadyAddresses"] != Value::Bool(true) {
                errors.push(format!(
                    "Service `{service}` needs publishNotReadyAddresses: true (servers find each other before ready)"
                ));
            }
        }
    }
    let conf = match nats_config(docs, sts) {
        Ok(conf) => conf,
        Err(e) => {
            errors.push(e);
            return;
        }
    };
    let cs = containers(sts);
    let number = |key: &str| conf.get(key).and_then(|v| v.parse::<u64>().ok());

    // Routes: nats://<sts>-<i>.<serviceName>:<cluster port> for every replica, no more.
    let cluster_port = number("cluster.port");
    match cluster_port {
        None => errors.push("nats.conf has no cluster.port".into()),
        Some(p) if resolve_port(cs, &Value::from(p)).is_none() => errors.push(format!(
            "nats.conf cluster.port {p} is no containerPort of StatefulSet `{NATS}`"
        )),
        Some(_) => {}
    }
    let port = cluster_port.unwrap_or(0);
    let mut expected: Vec<String> = (0..replicas)
        .map(|i| format!("nats://{NATS}-{i}.{service}:{port}"))
        .collect();
    let mut routes: Vec<String> = conf
        .get("cluster.routes")
        .map(|r| r.split(' ').map(String::from).collect())
        .unwrap_or_default();
    expected.sort();
    routes.sort();
    if routes != expected {
        errors.push(format!(
            "nats.conf cluster.routes {routes:?} are not the StatefulSet's {replicas} pods through `{service}`: {expected:?}"
        ));
    }
    if conf.get("cluster.no_advertise").map(String::as_str) != Some("true") {
        errors.push("nats.conf cluster.no_advertise should be true".into());
    }
    if let Some(headless) = find(docs, "Service", service) {
        let has = headless["spec"]["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|p| p["port"].as_u64() == Some(port));
        if !has {
            errors.push(format!(
                "Service `{service}` has no port {port} for the routes"
            ));
        }
    }

    // server_name from the pod's name.
    if conf.get("server_name").map(String::as_str) != Some("$POD_NAME") {
        errors.push("nats.conf server_name should be $POD_NAME".into());
    }
    let [container] = cs else {
        return;
    };
    let pod_name = container["env"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| e["name"].as_str() == Some("POD_NAME"));
    if pod_name.map(|e| &e["valueFrom"]["fieldRef"]["fieldPath"])
        != Some(&Value::from("metadata.name"))
    {
        errors.push(format!(
            "StatefulSet `{NATS}` should set POD_NAME from metadata.name"
        ));
    }

    // The monitoring port: every probe asks it.
    let http = number("http");
    for probe in ["startupProbe", "readinessProbe", "livenessProbe"] {
        let get = &container[probe]["httpGet"];
        if http.is_none() || resolve_port(cs, &get["port"]) != http {
            errors.push(format!(
                "StatefulSet `{NATS}` {probe} port {} is not nats.conf http {http:?}",
                get["port"]
            ));
        }
    }

    // The store on the claimed volume.
    let store = conf.get("jetstream.store_dir").map(String::as_str);
    let claims: Vec<&str> = spec["volumeClaimTemplates"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["metadata"]["name"].as_str())
        .collect();
    let on_claim = container["volumeMounts"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|m| {
            m["mountPath"].as_str() == store
                && m["name"].as_str().is_some_and(|n| claims.contains(&n))
        });
    if !on_claim {
        errors.push(format!(
            "nats.conf jetstream.store_dir {store:?} is not a volumeClaimTemplates mount"
        ));
    }

    // Lame duck: the preStop signals the server whose pid_file the config names, and
    // the lame duck period ends before SIGKILL.
    let pid_file = conf.get("pid_file").map(String::as_str).unwrap_or("");
    let pre_stop: Vec<&str> = container["lifecycle"]["preStop"]["exec"]["command"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    if pid_file.is_empty() || !pre_stop.contains(&format!("-sl=ldm={pid_file}").as_str()) {
        errors.push(format!(
            "StatefulSet `{NATS}` preStop {pre_stop:?} does not signal lame duck to pid_file {pid_file:?}"
        ));
    }
    let lame_duck = conf.get("lame_duck_duration").and_then(|d| seconds(d));
    let termination = pod_spec(sts)["terminationGracePeriodSeconds"]
        .as_u64()
        .unwrap_or(30);
    match lame_duck {
        Some(d) if d < termination => {}
        _ => errors.push(format!(
            "nats.conf lame_duck_duration {lame_duck:?}s is not under terminationGracePeriodSeconds {termination}"
        )),
    }
}

// ---------------------------------------------------------------------------------------
// The tests.

#[test]
fn every_document_parses() {
    let mut kinds = Vec::new();
    for path in manifest_files() {
        let docs = load(&path);
        assert!(!docs.is_empty(), "{} holds no document", path.display());
        for doc in &docs {
            assert!(
                doc["apiVersion"].is_string() && !kind(doc).is_empty() && !name(doc).is_empty(),
                "{}: a document without apiVersion, kind or metadata.name: {doc}",
                path.display()
            );
            kinds.push(format!("{}/{}", kind(doc), name(doc)));
        }
    }
    kinds.sort();
    assert_eq!(
        kinds,
        [
            "ConfigMap/nats-config",
            "Deployment/atoll-node",
            "PodDisruptionBudget/atoll-node",
            "PodDisruptionBudget/nats",
            "Service/atoll",
            "Service/nats",
            "Service/nats-headless",
            "StatefulSet/nats",
        ]
    );
}

#[test]
fn cross_references_hold() {
    let docs = load_all();
    let errors = check(&docs);
    assert!(
        errors.is_empty(),
        "broken cross-references:\n{}",
        errors.join("\n")
    );
}

fn doc_mut<'a>(docs: &'a mut [Value], kind_: &str, name_: &str) -> &'a mut Value {
    docs.iter_mut()
        .find(|d| kind(d) == kind_ && name(d) == name_)
        .unwrap_or_else(|| panic!("no {kind_} `{name_}`"))
}

fn set(docs: &mut [Value], kind_: &str, name_: &str, pointer: &str, value: Value) {
    let doc = doc_mut(docs, kind_, name_);
    *doc.pointer_mut(pointer)
        .unwrap_or_else(|| panic!("{kind_} `{name_}` has no {pointer}")) = value;
}

/// The checker can fail: each broken copy of the manifests makes it report the break.
#[test]
fn the_check_catches_broken_references() {
    let docs = load_all();
    assert!(
        check(&docs).is_empty(),
        "the manifests themselves must pass first"
    );
    type Break = fn(&mut Vec<Value>);
    let breaks: &[(&str, &str, Break)] = &[
        (
            "Service `atoll` selector",
            "Service `atoll` selector",
            |d| {
                set(
                    d,
                    "Service",
                    "atoll",
                    "/spec/selector/app.kubernetes.io~1name",
                    "atoll-nodes".into(),
                )
            },
        ),
        (
            "the client Service selector",
            "Service `nats` selector",
            |d| {
                set(
                    d,
                    "Service",
                    "nats",
                    "/spec/selector",
                    serde_json::json!({"app": "nats"}),
                )
            },
        ),
        ("a PDB selector", "PodDisruptionBudget `atoll-node`", |d| {
            set(
                d,
                "PodDisruptionBudget",
                "atoll-node",
                "/spec/selector/matchLabels/app.kubernetes.io~1name",
                "atoll".into(),
            )
        }),
        ("the Service targetPort", "targets", |d| {
            set(
                d,
                "Service",
                "atoll",
                "/spec/ports/0/targetPort",
                "web".into(),
            )
        }),
        ("the readiness path", "readinessProbe path", |d| {
            set(
                d,
                "Deployment",
                NODE,
                "/spec/template/spec/containers/0/readinessProbe/httpGet/path",
                "/healthz".into(),
            )
        }),
        ("the liveness port", "livenessProbe port", |d| {
            set(
                d,
                "Deployment",
                NODE,
                "/spec/template/spec/containers/0/livenessProbe/httpGet/port",
                9090.into(),
            )
        }),
        ("the --listen port", "listens on 9000", |d| {
            set(
                d,
                "Deployment",
                NODE,
                "/spec/template/spec/containers/0/args/2",
                "0.0.0.0:9000".into(),
            )
        }),
        ("the --admin port", "serves --admin on 9191", |d| {
            set(
                d,
                "Deployment",
                NODE,
                "/spec/template/spec/containers/0/args/8",
                "0.0.0.0:9191".into(),
            )
        }),
        (
            "the scrape annotation",
            "prometheus.io/port \"9191\"",
            |d| {
                set(
                    d,
                    "Deployment",
                    NODE,
                    "/spec/template/metadata/annotations/prometheus.io~1port",
                    "9191".into(),
                )
            },
        ),
        ("ATOLL_NATS_URL's port", "has no port 4223", |d| {
            set(
                d,
                "Deployment",
                NODE,
                "/spec/template/spec/containers/0/env/0/value",
                "nats://nats:4223".into(),
            )
        }),
        ("ATOLL_NATS_URL's host", "no Service here", |d| {
            set(
                d,
                "Deployment",
                NODE,
                "/spec/template/spec/containers/0/env/0/value",
                "nats://nats-client:4222".into(),
            )
        }),
        (
            "the termination grace",
            "terminationGracePeriodSeconds 35",
            |d| {
                set(
                    d,
                    "Deployment",
                    NODE,
                    "/spec/template/spec/terminationGracePeriodSeconds",
                    35.into(),
                )
            },
        ),
        ("a longer shutdown grace", "shutdown grace 40s", |d| {
            let args = doc_mut(d, "Deployment", NODE)
                .pointer_mut("/spec/template/spec/containers/0/args")
                .and_then(Value::as_array_mut)
                .expect("the node's args");
            args.extend(["--shutdown-grace".into(), "40".into()]);
        }),
        ("the StatefulSet's replicas", "cluster.routes", |d| {
            set(d, "StatefulSet", NATS, "/spec/replicas", 4.into())
        }),
        ("the StatefulSet's serviceName", "cluster.routes", |d| {
            let doc = doc_mut(d, "Service", "nats-headless");
            doc["metadata"]["name"] = "nats-cluster".into();
            set(
                d,
                "StatefulSet",
                NATS,
                "/spec/serviceName",
                "nats-cluster".into(),
            )
        }),
        ("a route", "cluster.routes", |d| {
            let conf = doc_mut(d, "ConfigMap", "nats-config")["data"]["nats.conf"]
                .as_str()
                .expect("nats.conf")
                .replace("nats-2.nats-headless", "nats-3.nats-headless");
            set(
                d,
                "ConfigMap",
                "nats-config",
                "/data/nats.conf",
                conf.into(),
            )
        }),
        (
            "publishNotReadyAddresses",
            "publishNotReadyAddresses",
            |d| {
                set(
                    d,
                    "Service",
                    "nats-headless",
                    "/spec/publishNotReadyAddresses",
                    false.into(),
                )
            },
        ),
    ];
    for (what, expect, break_it) in breaks {
        let mut broken = docs.clone();
        break_it(&mut broken);
        let errors = check(&broken);
        assert!(
            errors.iter().any(|e| e.contains(expect)),
            "breaking {what}: expected an error mentioning `{expect}`, got {errors:#?}"
        );
    }
}

#[test]
fn nats_conf_parses() {
    let conf = nats_conf(
        "a: 1\nb = \"x\"\n# c: 2\nblock {\n  port: 6222\n  routes: [\n    nats://h-0:1\n    nats://h-1:1, nats://h-2:1\n  ]\n}\none: [x, y]\n",
    );
    assert_eq!(conf.get("a").map(String::as_str), Some("1"));
    assert_eq!(conf.get("b").map(String::as_str), Some("x"));
    assert_eq!(conf.get("c"), None);
    assert_eq!(conf.get("block.port").map(String::as_str), Some("6222"));
    assert_eq!(
        conf.get("block.routes").map(String::as_str),
        Some("nats://h-0:1 nats://h-1:1 nats://h-2:1")
    );
    assert_eq!(conf.get("one").map(String::as_str), Some("x y"));
}

#[test]
fn manifests_validate_against_the_kubernetes_schemas() {
    let root = workspace();
    let tool = root.join(".venv/bin/kubernetes-validate");
    let install = format!(
        "run `.venv/bin/pip install kubernetes-validate=={KUBERNETES_VALIDATE}` in {} \
         (after `python3 -m venv .venv`; `.ci/run` does both)",
        root.display()
    );
    assert!(
        tool.is_file(),
        "{} is missing, and the Kubernetes manifest test needs it: {install}",
        tool.display()
    );
    let version = Command::new(&tool)
        .arg("--version")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}; {install}", tool.display()));
    let version = String::from_utf8_lossy(&version.stdout);
    assert_eq!(
        version.trim(),
        KUBERNETES_VALIDATE,
        "{} is another version: {install}",
        tool.display()
    );
    let files = manifest_files();
    let out = Command::new(&tool)
        .args(["-k", KUBERNETES_VERSION, "--strict"])
        .args(&files)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", tool.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "kubernetes-validate -k {KUBERNETES_VERSION} --strict rejects the manifests ({}):\n{stdout}{stderr}",
        out.status
    );
    // Every document was checked (none skipped as an unknown kind).
    let passed = stdout
        .lines()
        .filter(|l| l.contains(" passed for resource "))
        .count();
    let documents: usize = files.iter().map(|f| load(f).len()).sum();
    assert_eq!(
        passed, documents,
        "kubernetes-validate passed {passed} resources, the files hold {documents}:\n{stdout}{stderr}"
    );
}
