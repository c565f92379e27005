//! The orchestrator files of `deploy/`, checked offline. The Kubernetes
//! objects validate against Kubernetes' own schemas (`kubernetes-validate
//! --strict`, from PyPI, installed into the repository's `.venv/` on first
//! use); every file is parsed (YAML, HCL) and must carry what rapid needs
//! there: probes on `/_/health` and `/_/ready` where rapid serves them, a
//! termination grace above rapid's drain, SIGTERM, scaling on rapid's own
//! metrics, Knative's `$PORT`. A missing prerequisite fails the test.

#![allow(clippy::unwrap_used)] // tests fail loudly on unexpected values

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use hcl::{Block, Body, Expression};
use serde::Deserialize;
use serde_json::Value;

/// rapid's shutdown deadline with external extensions (SPEC §2): what comes
/// after the drain, before rapid exits.
const SHUTDOWN_DEADLINE_S: f64 = 2.0;
/// Pinned so that a new schema release cannot change the verdict unseen.
const KUBERNETES_VALIDATE: &str = "kubernetes-validate==1.37.0";
/// The metrics the autoscalers read (served with `--metrics-port`).
const METRICS: [&str; 2] = ["rapid_concurrency_in_use", "rapid_queue_depth"];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn read(rel: &str) -> String {
    let p = repo().join(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Every document of a YAML file, as JSON values.
fn yaml_docs(rel: &str) -> Vec<Value> {
    let text = read(rel);
    serde_norway::Deserializer::from_str(&text)
        .map(|d| Value::deserialize(d).unwrap_or_else(|e| panic!("{rel}: {e}")))
        .filter(|v| !v.is_null())
        .collect()
}

fn one_doc(rel: &str) -> Value {
    let mut docs = yaml_docs(rel);
    assert_eq!(docs.len(), 1, "{rel}: one object expected");
    docs.remove(0)
}

fn kind<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} among {docs:?}"))
}

fn str_of<'a>(v: &'a Value, what: &str) -> &'a str {
    v.as_str()
        .unwrap_or_else(|| panic!("{what}: a string expected, found {v}"))
}

/// Seconds in a duration as rapid, OpenFaaS and Nomad write them: `20s`,
/// `1500ms`, `2m`, `1h`, or a bare number of seconds.
fn secs(s: &str) -> f64 {
    let s = s.trim();
    let (n, unit) = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .map_or((s, ""), |i| s.split_at(i));
    let n: f64 = n
        .parse()
        .unwrap_or_else(|_| panic!("not a duration: {s:?}"));
    n * match unit {
        "" | "s" => 1.0,
        "ms" => 0.001,
        "m" => 60.0,
        "h" => 3600.0,
        _ => panic!("not a duration: {s:?}"),
    }
}

/// The value of `--name` in an argument list (`--name=v` or `--name v`).
fn flag(args: &[String], name: &str) -> Option<String> {
    let eq = format!("{name}=");
    args.iter().enumerate().find_map(|(i, a)| {
        a.strip_prefix(&eq)
            .map(str::to_owned)
            .or_else(|| (a == name).then(|| args.get(i + 1).cloned()).flatten())
    })
}

fn port_of(addr: &str) -> u64 {
    addr.rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {addr:?}"))
}

/// Sandboxes per pod: invokes that one rapid runs at once.
fn sandboxes(args: &[String]) -> u64 {
    flag(args, "--concurrency").map_or(1, |n| n.parse().unwrap())
}

/// Bytes in a Kubernetes quantity (`192Mi`, `1Gi`, `128M`).
fn bytes(q: &str) -> f64 {
    let i = q.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(q.len());
    let n: f64 = q[..i].parse().unwrap();
    n * match &q[i..] {
        "" => 1.0,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        "K" | "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        u => panic!("unit {u:?} in {q:?}"),
    }
}

/// The metric selectors of a PromQL query: `(name, {label: value})` for each
/// `name{label="value", ...}` in it.
fn selectors(query: &str) -> Vec<(String, Vec<(String, String)>)> {
    let mut out = Vec::new();
    let b = query.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let start = i;
        while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b':') {
            i += 1;
        }
        if i > start && i < b.len() && b[i] == b'{' {
            let close = query[i..].find('}').map(|c| i + c).expect("unclosed {");
            let labels = query[i + 1..close]
                .split(',')
                .filter(|l| !l.trim().is_empty())
                .map(|l| {
                    let (k, v) = l.split_once('=').expect("label=value");
                    (
                        k.trim().trim_end_matches('!').to_owned(),
                        v.trim().trim_matches('"').to_owned(),
                    )
                })
                .collect();
            out.push((query[start..i].to_owned(), labels));
            i = close;
        }
        i += 1;
    }
    out
}

/// A query that sums rapid's in-use and queued invokes of `function`.
fn assert_scales_on_rapid(query: &str, function: &str, what: &str) {
    let sel = selectors(query);
    for m in METRICS {
        let labels = sel
            .iter()
            .find(|(n, _)| n == m)
            .map(|(_, l)| l)
            .unwrap_or_else(|| panic!("{what}: the query {query:?} does not read {m}"));
        assert!(
            labels.iter().any(|(k, v)| k == "function" && v == function),
            "{what}: {m} is not selected by function=\"{function}\" in {query:?}"
        );
    }
    assert!(
        query.contains("sum("),
        "{what}: {query:?} does not sum over the pods"
    );
}

fn args_of(container: &Value) -> Vec<String> {
    container["args"]
        .as_array()
        .map(|a| a.iter().map(|v| str_of(v, "args").to_owned()).collect())
        .unwrap_or_default()
}

fn env_of(container: &Value, name: &str) -> Option<String> {
    container["env"]
        .as_array()?
        .iter()
        .find(|e| e["name"] == name)
        .and_then(|e| e["value"].as_str())
        .map(str::to_owned)
}

/// The container port a probe or Service target names (by name or number).
fn resolve_port(container: &Value, port: &Value) -> u64 {
    if let Some(n) = port.as_u64() {
        return n;
    }
    let name = str_of(port, "port");
    container["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .and_then(|p| p["containerPort"].as_u64())
        .unwrap_or_else(|| panic!("no container port named {name:?}"))
}

fn function_timeout(container: &Value) -> f64 {
    env_of(container, "AWS_LAMBDA_FUNCTION_TIMEOUT").map_or(300.0, |t| secs(&t))
}

/// `kubernetes-validate`: `$KUBERNETES_VALIDATE`, else the repository's
/// `.venv`, created on first use (python3 -m venv + pip from PyPI).
fn kubernetes_validate() -> PathBuf {
    if let Some(p) = std::env::var_os("KUBERNETES_VALIDATE") {
        return p.into();
    }
    static SETUP: Mutex<()> = Mutex::new(());
    let _one = SETUP.lock().unwrap_or_else(|p| p.into_inner());
    let venv = repo().join(".venv");
    let bin = venv.join("bin/kubernetes-validate");
    if bin.exists() {
        return bin;
    }
    eprintln!(
        "deploy: installing {KUBERNETES_VALIDATE} into {}",
        venv.display()
    );
    let run = |cmd: &mut Command, what: &str| {
        let out = cmd.output().unwrap_or_else(|e| {
            panic!("{what}: cannot run: {e} (python3 with venv and pip is needed)")
        });
        assert!(
            out.status.success(),
            "{what} failed ({}):\n{}{}\n(on Debian: apt-get install python3-venv)",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(
        Command::new("python3").arg("-m").arg("venv").arg(&venv),
        "python3 -m venv .venv",
    );
    run(
        Command::new(venv.join("bin/pip")).args([
            "install",
            "--quiet",
            "--disable-pip-version-check",
            KUBERNETES_VALIDATE,
        ]),
        "pip install kubernetes-validate",
    );
    assert!(bin.exists(), "{} missing after pip install", bin.display());
    bin
}

/// Runs kubernetes-validate --strict on `file`; (success, output).
fn validate(file: &Path) -> (bool, String) {
    let out = Command::new(kubernetes_validate())
        .arg("--strict")
        .arg(file)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn kubernetes_objects_validate_against_the_schemas() {
    let dir = repo().join("deploy/kubernetes");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no manifests in {}", dir.display());
    for f in &files {
        let (ok, out) = validate(f);
        assert!(ok, "{} does not validate:\n{out}", f.display());
        // kubernetes-validate only warns about a kind it has no schema for:
        // every object must have been checked.
        assert!(!out.contains("Couldn't find schema"), "{out}");
        let rel = f.strip_prefix(repo()).unwrap().to_str().unwrap();
        for doc in yaml_docs(rel) {
            let id = format!(
                "{}/{}",
                str_of(&doc["kind"], "kind").to_lowercase(),
                str_of(&doc["metadata"]["name"], "name")
            );
            assert!(
                out.contains(&format!("passed for resource {id} ")),
                "{id} not validated:\n{out}"
            );
        }
    }
    // The validator is not a rubber stamp: a misspelt field fails it.
    let bad = std::env::temp_dir().join(format!("rapid-deploy-bad-{}.yaml", std::process::id()));
    std::fs::write(
        &bad,
        read("deploy/kubernetes/rapid.yaml").replacen("periodSeconds:", "periodSecond:", 1),
    )
    .unwrap();
    let (ok, out) = validate(&bad);
    let _ = std::fs::remove_file(&bad);
    assert!(
        !ok && out.contains("periodSecond"),
        "a broken manifest passed:\n{out}"
    );
}

#[test]
fn kubernetes_deployment_probes_rapid_and_outlasts_its_drain() {
    let docs = yaml_docs("deploy/kubernetes/rapid.yaml");
    let deploy = kind(&docs, "Deployment");
    let pod = &deploy["spec"]["template"];
    let spec = &pod["spec"];
    let containers = spec["containers"].as_array().unwrap();
    assert_eq!(containers.len(), 1, "one container: rapid, PID 1 of it");
    assert_ne!(spec["shareProcessNamespace"], true, "rapid must stay PID 1");
    let c = &containers[0];
    let args = args_of(c);

    // Probes: GET /_/health and /_/ready where the watchdog front listens.
    let front = port_of(
        &flag(&args, "--watchdog-address")
            .expect("lambda mode serves /_/health and /_/ready on --watchdog-address"),
    );
    for (probe, path) in [
        ("livenessProbe", "/_/health"),
        ("readinessProbe", "/_/ready"),
    ] {
        let get = &c[probe]["httpGet"];
        assert_eq!(get["path"], path, "{probe}");
        assert_eq!(resolve_port(c, &get["port"]), front, "{probe}: port");
    }
    let invoke = flag(&args, "--runtime-interface-emulator-address").map_or(8080, |a| port_of(&a));
    let metrics: u64 = flag(&args, "--metrics-port")
        .expect("--metrics-port: the autoscaler's metrics")
        .parse()
        .unwrap();
    let ports: Vec<u64> = c["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["containerPort"].as_u64().unwrap())
        .collect();
    for p in [invoke, front, metrics] {
        assert!(ports.contains(&p), "port {p} not declared: {ports:?}");
    }
    assert_eq!(
        pod["metadata"]["annotations"]["prometheus.io/port"],
        metrics.to_string(),
        "the scrape annotation points at --metrics-port"
    );

    // Termination: no preStop; the grace period covers the drain and the
    // shutdown deadline; the drain covers an invoke that just started.
    assert!(
        c["lifecycle"]["preStop"].is_null(),
        "rapid drains by itself"
    );
    let drain = secs(&flag(&args, "--drain-timeout").expect("--drain-timeout"));
    let grace = spec["terminationGracePeriodSeconds"]
        .as_f64()
        .unwrap_or(30.0);
    assert!(
        grace > drain + SHUTDOWN_DEADLINE_S,
        "terminationGracePeriodSeconds {grace} <= drain {drain} s + {SHUTDOWN_DEADLINE_S} s"
    );
    assert!(
        drain >= function_timeout(c),
        "the drain is shorter than the function timeout"
    );

    // Limits: the memory limit holds the function's memory size per sandbox.
    let size_mb: f64 = env_of(c, "AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
        .expect("AWS_LAMBDA_FUNCTION_MEMORY_SIZE: what REPORT and the runtime see")
        .parse()
        .unwrap();
    let limit = bytes(str_of(&c["resources"]["limits"]["memory"], "memory limit"));
    assert!(
        limit >= size_mb * 1024.0 * 1024.0 * sandboxes(&args) as f64,
        "memory limit below the function's memory size"
    );
    // A read-only root still has a writable /tmp.
    if c["securityContext"]["readOnlyRootFilesystem"] == true {
        assert!(
            c["volumeMounts"]
                .as_array()
                .is_some_and(|m| m.iter().any(|m| m["mountPath"] == "/tmp")),
            "read-only root without a /tmp volume"
        );
    }

    // The Service selects these pods and targets declared ports, the Invoke
    // API among them.
    let svc = kind(&docs, "Service");
    let labels = pod["metadata"]["labels"].as_object().unwrap();
    for (k, v) in svc["spec"]["selector"].as_object().unwrap() {
        assert_eq!(labels.get(k), Some(v), "Service selector {k}");
    }
    for (k, v) in deploy["spec"]["selector"]["matchLabels"]
        .as_object()
        .unwrap()
    {
        assert_eq!(labels.get(k), Some(v), "Deployment selector {k}");
    }
    let targets: Vec<u64> = svc["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| resolve_port(c, &p["targetPort"]))
        .collect();
    assert!(
        targets.contains(&invoke),
        "the Service does not reach the Invoke API"
    );
}

#[test]
fn keda_scales_the_deployment_on_rapids_metrics() {
    let docs = yaml_docs("deploy/kubernetes/rapid.yaml");
    let deploy = kind(&docs, "Deployment");
    let c = &deploy["spec"]["template"]["spec"]["containers"][0];
    let function = env_of(c, "AWS_LAMBDA_FUNCTION_NAME").unwrap_or("test_function".into());

    let so = one_doc("deploy/keda/scaledobject.yaml");
    assert_eq!(so["apiVersion"], "keda.sh/v1alpha1");
    assert_eq!(so["kind"], "ScaledObject");
    let target = &so["spec"]["scaleTargetRef"];
    assert!(target["kind"].is_null() || target["kind"] == "Deployment");
    assert_eq!(target["name"], deploy["metadata"]["name"], "scaleTargetRef");
    let min = so["spec"]["minReplicaCount"].as_u64().unwrap_or(0);
    let max = so["spec"]["maxReplicaCount"].as_u64().unwrap_or(100);
    assert!(min <= max && max >= 1, "replicas {min}..{max}");

    let triggers = so["spec"]["triggers"].as_array().unwrap();
    let prom = triggers
        .iter()
        .find(|t| t["type"] == "prometheus")
        .expect("a prometheus trigger");
    let meta = &prom["metadata"];
    let server = str_of(&meta["serverAddress"], "serverAddress");
    assert!(
        server.starts_with("http://") || server.starts_with("https://"),
        "{server}"
    );
    assert_scales_on_rapid(str_of(&meta["query"], "query"), &function, "KEDA");
    // KEDA's metadata values are strings; the threshold is the load one pod
    // takes: its sandboxes.
    let threshold: f64 = str_of(&meta["threshold"], "threshold").parse().unwrap();
    assert_eq!(
        threshold,
        sandboxes(&args_of(c)) as f64,
        "threshold = sandboxes per pod"
    );
    assert_eq!(prom["metricType"], "AverageValue", "per-pod target");
}

#[test]
fn knative_service_serves_on_port() {
    let ks = one_doc("deploy/knative/service.yaml");
    assert_eq!(ks["apiVersion"], "serving.knative.dev/v1");
    assert_eq!(ks["kind"], "Service");
    let spec = &ks["spec"]["template"]["spec"];
    let containers = spec["containers"].as_array().unwrap();
    assert_eq!(containers.len(), 1);
    let c = &containers[0];
    let args = args_of(c);
    // Knative sets PORT to the one containerPort; rapid listens there unless
    // an explicit address says otherwise. PORT itself is Knative's to set.
    let ports = c["ports"].as_array().unwrap();
    assert_eq!(ports.len(), 1, "Knative routes to one port");
    assert!(ports[0]["containerPort"].as_u64().is_some());
    assert!(env_of(c, "PORT").is_none(), "Knative reserves PORT");
    assert!(
        flag(&args, "--runtime-interface-emulator-address").is_none(),
        "an explicit Invoke API address would ignore $PORT"
    );
    // One pod takes as many requests at once as it has sandboxes.
    assert_eq!(
        spec["containerConcurrency"].as_u64(),
        Some(sandboxes(&args)),
        "containerConcurrency"
    );
    let timeout = spec["timeoutSeconds"].as_f64().expect("timeoutSeconds");
    assert!(
        timeout > function_timeout(c),
        "timeoutSeconds <= function timeout"
    );
    let drain = secs(&flag(&args, "--drain-timeout").expect("--drain-timeout"));
    // Knative gives the pod timeoutSeconds to terminate.
    assert!(
        timeout > drain + SHUTDOWN_DEADLINE_S,
        "timeoutSeconds <= drain + shutdown"
    );
    let ann = &ks["spec"]["template"]["metadata"]["annotations"];
    let target: f64 = str_of(&ann["autoscaling.knative.dev/target"], "target")
        .parse()
        .unwrap();
    assert!(
        target <= sandboxes(&args) as f64,
        "autoscaling target above containerConcurrency"
    );
}

#[test]
fn openfaas_function_uses_rapid_as_its_watchdog() {
    let stack = one_doc("deploy/openfaas/stack.yml");
    assert_eq!(stack["provider"]["name"], "openfaas");
    assert!(str_of(&stack["provider"]["gateway"], "gateway").starts_with("http"));
    let functions = stack["functions"].as_object().unwrap();
    assert!(!functions.is_empty());
    for (name, f) in functions {
        assert!(!str_of(&f["image"], "image").is_empty(), "{name}: image");
        let env = f["environment"].as_object().unwrap();
        let get = |k: &str| {
            env.get(k).map(|v| match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
        };
        let mode = get("mode").unwrap_or_else(|| panic!("{name}: mode"));
        assert!(
            ["http", "streaming", "serializing", "static"].contains(&mode.as_str()),
            "{name}: mode {mode}"
        );
        if mode == "static" {
            assert!(get("static_path").is_some(), "{name}: static_path");
        } else {
            assert!(
                get("fprocess").is_some_and(|p| !p.trim().is_empty()),
                "{name}: fprocess"
            );
        }
        if mode == "http" {
            let up = get("upstream_url").unwrap_or_else(|| panic!("{name}: upstream_url"));
            assert!(up.starts_with("http://127.0.0.1:") || up.starts_with("http://localhost:"));
        }
        let t = |k: &str| get(k).map(|v| secs(&v)).unwrap_or(10.0);
        let (exec, write, hc) = (
            t("exec_timeout"),
            t("write_timeout"),
            t("healthcheck_interval"),
        );
        assert!(exec <= write, "{name}: exec_timeout above write_timeout");
        // faas-netes gives the pod write_timeout (+2 s) to stop: the drain
        // (unready for healthcheck_interval, then in-flight requests) fits.
        assert!(
            hc + exec <= write + 2.0,
            "{name}: drain longer than write_timeout"
        );
        if let Some(n) = get("max_inflight") {
            assert!(n.parse::<u64>().is_ok(), "{name}: max_inflight {n}");
        }
        let labels = &f["labels"];
        let n = |k: &str| labels[k].as_str().map(|v| v.parse::<u64>().unwrap());
        if let (Some(lo), Some(hi)) = (n("com.openfaas.scale.min"), n("com.openfaas.scale.max")) {
            assert!(lo <= hi, "{name}: scale {lo}..{hi}");
        }
    }
}

fn blocks<'a>(body: &'a Body, ident: &str) -> Vec<&'a Block> {
    body.blocks().filter(|b| b.identifier() == ident).collect()
}

fn block<'a>(body: &'a Body, ident: &str) -> &'a Block {
    let b = blocks(body, ident);
    assert_eq!(b.len(), 1, "one {ident} block expected");
    b[0]
}

fn attr<'a>(body: &'a Body, key: &str) -> Option<&'a Expression> {
    body.attributes().find(|a| a.key() == key).map(|a| a.expr())
}

fn hcl_str(e: &Expression) -> String {
    match e {
        Expression::String(s) => s.clone(),
        Expression::TemplateExpr(t) => t.to_string(),
        other => panic!("a string expected, found {other:?}"),
    }
}

fn hcl_strs(e: &Expression) -> Vec<String> {
    match e {
        Expression::Array(a) => a.iter().map(hcl_str).collect(),
        other => panic!("a list expected, found {other:?}"),
    }
}

fn hcl_num(e: &Expression) -> f64 {
    match e {
        Expression::Number(n) => n.as_f64().unwrap(),
        other => panic!("a number expected, found {other:?}"),
    }
}

#[test]
fn nomad_job_stops_rapid_with_sigterm_after_its_drain() {
    let body = hcl::parse(&read("deploy/nomad/rapid.nomad.hcl")).unwrap();
    let job = block(&body, "job");
    assert_eq!(job.labels().len(), 1, "job \"name\"");
    assert_eq!(
        attr(job.body(), "type").map(hcl_str).as_deref(),
        Some("service")
    );
    let groups = blocks(job.body(), "group");
    assert!(!groups.is_empty());
    for g in groups {
        let gb = g.body();
        // network ports: label → port inside the container
        let network = block(gb, "network");
        let ports: Vec<(String, f64)> = blocks(network.body(), "port")
            .into_iter()
            .map(|p| {
                (
                    p.labels()[0].as_str().to_owned(),
                    attr(p.body(), "to").map(hcl_num).expect("port to"),
                )
            })
            .collect();
        let to = |label: &str| {
            ports
                .iter()
                .find(|(l, _)| l == label)
                .map(|(_, t)| *t)
                .unwrap_or_else(|| panic!("no network port {label:?}"))
        };

        let tasks = blocks(gb, "task");
        assert_eq!(tasks.len(), 1, "one task: rapid");
        let t = tasks[0].body();
        assert_eq!(
            attr(t, "kill_signal").map(hcl_str).as_deref(),
            Some("SIGTERM")
        );
        let kill = secs(&attr(t, "kill_timeout").map(hcl_str).expect("kill_timeout"));
        let config = block(t, "config").body();
        let args = attr(config, "args").map(hcl_strs).unwrap_or_default();
        let drain = secs(&flag(&args, "--drain-timeout").expect("--drain-timeout"));
        assert!(
            kill > drain + SHUTDOWN_DEADLINE_S,
            "kill_timeout {kill} s <= drain {drain} s + {SHUTDOWN_DEADLINE_S} s"
        );
        assert!(
            kill <= 30.0,
            "kill_timeout above Nomad's default max_kill_timeout (30 s)"
        );
        let env = block(t, "env").body();
        let timeout = attr(env, "AWS_LAMBDA_FUNCTION_TIMEOUT").map_or(300.0, |e| secs(&hcl_str(e)));
        assert!(
            drain >= timeout,
            "the drain is shorter than the function timeout"
        );
        for p in attr(config, "ports").map(hcl_strs).unwrap_or_default() {
            to(&p);
        }

        // Health checks: /_/ready and /_/health on the watchdog front.
        let front = port_of(&flag(&args, "--watchdog-address").expect("--watchdog-address")) as f64;
        let checks: Vec<&Block> = blocks(gb, "service")
            .into_iter()
            .flat_map(|s| blocks(s.body(), "check"))
            .collect();
        for path in ["/_/ready", "/_/health"] {
            let c = checks
                .iter()
                .find(|c| attr(c.body(), "path").map(hcl_str).as_deref() == Some(path))
                .unwrap_or_else(|| panic!("no check on {path}"));
            assert_eq!(attr(c.body(), "type").map(hcl_str).as_deref(), Some("http"));
            let port = attr(c.body(), "port").map(hcl_str).expect("check port");
            assert_eq!(to(&port), front, "check {path}: port {port}");
        }

        // Scaling (Nomad Autoscaler): on rapid's metrics, per allocation.
        if let Some(scaling) = blocks(gb, "scaling").first() {
            let policy = block(scaling.body(), "policy");
            let check = blocks(policy.body(), "check")
                .into_iter()
                .find(|c| attr(c.body(), "source").map(hcl_str).as_deref() == Some("prometheus"))
                .expect("a prometheus check");
            let query = attr(check.body(), "query").map(hcl_str).expect("query");
            let function = attr(env, "AWS_LAMBDA_FUNCTION_NAME")
                .map(hcl_str)
                .unwrap_or("test_function".into());
            assert_scales_on_rapid(&query, &function, "Nomad");
            let strategy = block(check.body(), "strategy");
            assert_eq!(strategy.labels()[0].as_str(), "target-value");
            let target = attr(strategy.body(), "target")
                .map(hcl_num)
                .expect("target");
            assert_eq!(
                target,
                sandboxes(&args) as f64,
                "target = sandboxes per allocation"
            );
        }
    }
}

#[test]
fn duration_and_query_helpers() {
    assert_eq!(secs("20s"), 20.0);
    assert_eq!(secs("1500ms"), 1.5);
    assert_eq!(secs("2m"), 120.0);
    assert_eq!(secs("15"), 15.0);
    let s = selectors(r#"sum(a_b{function="f", x!="y"}) + sum(c)"#);
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].0, "a_b");
    assert_eq!(s[0].1[0], ("function".into(), "f".into()));
    let args: Vec<String> = ["--x=1", "--y", "2"].map(String::from).to_vec();
    assert_eq!(flag(&args, "--x").as_deref(), Some("1"));
    assert_eq!(flag(&args, "--y").as_deref(), Some("2"));
    assert_eq!(flag(&args, "--z"), None);
}

/// The manifest's arguments with every address moved to a free loopback
/// port (tests bind nothing else), and what the test adds around them.
fn runnable(args: &[String]) -> (Vec<String>, Option<u16>) {
    let free = || rapid_tests::free_port();
    let mut out = Vec::new();
    let mut metrics = None;
    let mut it = args.iter().peekable();
    while let Some(a) = it.next() {
        let (name, value) = match a.split_once('=') {
            Some((n, v)) => (n.to_owned(), Some(v.to_owned())),
            None if a.starts_with("--") && it.peek().is_some_and(|n| !n.starts_with("--")) => {
                (a.clone(), it.next().cloned())
            }
            None => (a.clone(), None),
        };
        let value = if name.ends_with("-address") {
            Some(format!("127.0.0.1:{}", free()))
        } else if name == "--metrics-port" {
            let p = free();
            metrics = Some(p);
            Some(p.to_string())
        } else {
            value
        };
        out.push(name);
        out.extend(value);
    }
    (out, metrics)
}

/// Run rapid as the manifest runs it (its arguments and environment, on
/// loopback, with the tests' Lambda function): it must start, answer an
/// invoke, serve the autoscalers' metrics, and drain and exit 0 on SIGTERM.
fn runs_as_in(rel: &str, container: &Value, port_env: bool) {
    let (mut args, metrics) = runnable(&args_of(container));
    let mut cmd = Command::new(rapid_tests::rapid_bin());
    let invoke = rapid_tests::free_port();
    if port_env {
        cmd.env("PORT", invoke.to_string());
    } else {
        args.push("--runtime-interface-emulator-address".into());
        args.push(format!("127.0.0.1:{invoke}"));
    }
    args.extend([
        "--runtime-api-address".into(),
        format!("127.0.0.1:{}", rapid_tests::free_port()),
        "--extensions-dir".into(),
        "/nonexistent/rapid-test-extensions".into(),
        env!("CARGO_BIN_EXE_fx-lambda").into(),
    ]);
    if let Some(env) = container["env"].as_array() {
        for e in env {
            if let (Some(k), Some(v)) = (e["name"].as_str(), e["value"].as_str()) {
                cmd.env(k, v);
            }
        }
    }
    let mut child = cmd
        .args(&args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{invoke}").parse().unwrap();
    let up = rapid_tests::eventually(std::time::Duration::from_secs(10), || {
        std::net::TcpStream::connect(addr).is_ok()
    });
    let answer = up.then(|| {
        rapid_tests::request(
            addr,
            "POST",
            "/2015-03-31/functions/function/invocations",
            &[],
            br#"{"from":"manifest"}"#,
        )
    });
    let scraped = metrics.map(|p| {
        rapid_tests::request(
            format!("127.0.0.1:{p}").parse().unwrap(),
            "GET",
            "/metrics",
            &[],
            b"",
        )
        .text()
    });
    // SAFETY: signalling the child we started.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        use std::io::Read;
        let _ = e.read_to_string(&mut err);
    }
    let answer = answer.unwrap_or_else(|| panic!("{rel}: rapid {args:?} did not listen: {err}"));
    assert_eq!(answer.status, 200, "{rel}: {}", answer.text());
    assert_eq!(answer.text(), r#"{"from":"manifest"}"#, "{rel}");
    if let Some(m) = scraped {
        for name in METRICS {
            assert!(m.contains(name), "{rel}: /metrics has no {name}:\n{m}");
        }
    }
    assert_eq!(status.code(), Some(0), "{rel}: {err}");
}

#[test]
fn rapid_runs_with_the_kubernetes_and_knative_arguments() {
    let docs = yaml_docs("deploy/kubernetes/rapid.yaml");
    let c = &kind(&docs, "Deployment")["spec"]["template"]["spec"]["containers"][0];
    runs_as_in("deploy/kubernetes/rapid.yaml", c, false);
    let ks = one_doc("deploy/knative/service.yaml");
    let c = &ks["spec"]["template"]["spec"]["containers"][0];
    runs_as_in("deploy/knative/service.yaml", c, true);
}
