//! The runtime's environment (SPEC §3).

use std::collections::BTreeMap;

use interop::Init;

use crate::lambda::config::LambdaConfig;

/// Keys rapid sets for the runtime, overriding the caller's values.
const OWNED: &[&str] = &[
    "AWS_LAMBDA_RUNTIME_API",
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_INITIALIZATION_TYPE",
    "AWS_LAMBDA_MAX_CONCURRENCY",
];

/// The runtime's complete environment: the caller's, plus the Lambda variables.
/// Variables the caller set for the function (region, TZ, task root, log group)
/// are kept; the ones that describe this sandbox are rapid's. The function's
/// name, version, memory and handler are the init's (the configured ones, or a
/// control-API Init's). `log_stream` is the default log stream name (the
/// sandbox's `instanceId`). The configured logging controls override the
/// caller's `AWS_LAMBDA_LOG_FORMAT` / `AWS_LAMBDA_LOG_LEVEL`.
pub fn runtime_env(
    cfg: &LambdaConfig,
    init: &Init,
    log_stream: &str,
    caller: impl Iterator<Item = (String, String)>,
) -> Vec<(String, String)> {
    let mut env: BTreeMap<String, String> = caller.collect();
    for k in OWNED {
        env.remove(*k);
    }
    let mut set_default = |k: &str, v: String| {
        env.entry(k.to_owned()).or_insert(v);
    };
    set_default("AWS_REGION", cfg.function.region.clone());
    set_default("AWS_DEFAULT_REGION", cfg.function.region.clone());
    set_default(
        "AWS_LAMBDA_LOG_GROUP_NAME",
        format!("/aws/lambda/{}", init.function_name),
    );
    set_default("AWS_LAMBDA_LOG_STREAM_NAME", log_stream.to_owned());
    set_default("LAMBDA_TASK_ROOT", "/var/task".into());
    set_default("LAMBDA_RUNTIME_DIR", "/var/runtime".into());
    set_default("TZ", ":UTC".into());
    if let Some(h) = &init.handler {
        env.insert("_HANDLER".into(), h.clone());
    }
    if let Some(dir) = &cfg.scratch_dir {
        // The sandbox's own scratch space.
        env.insert("TMPDIR".into(), dir.display().to_string());
    }
    env.insert(
        "AWS_LAMBDA_RUNTIME_API".into(),
        cfg.runtime_api_address.to_string(),
    );
    env.insert(
        "AWS_LAMBDA_FUNCTION_NAME".into(),
        init.function_name.clone(),
    );
    env.insert(
        "AWS_LAMBDA_FUNCTION_VERSION".into(),
        init.function_version.clone(),
    );
    env.insert(
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE".into(),
        init.memory_size_mb.to_string(),
    );
    let credentials = cfg
        .init_caching
        .as_ref()
        .and_then(|c| c.credentials.as_ref());
    if let Some(c) = credentials {
        env.insert(
            "AWS_CONTAINER_CREDENTIALS_FULL_URI".into(),
            format!("http://{}/2021-04-23/credentials", cfg.runtime_api_address),
        );
        env.insert(
            "AWS_CONTAINER_AUTHORIZATION_TOKEN".into(),
            c.authorization_token.clone(),
        );
    }
    let init_type = if let Some(n) = cfg.sandbox_concurrency {
        // Lambda Managed Instances: the runtime starts N workers; LMI supports
        // only the JSON log format (runtimes-custom.html#runtimes-custom-managed-instances).
        env.insert("AWS_LAMBDA_MAX_CONCURRENCY".into(), n.to_string());
        env.entry("AWS_LAMBDA_LOG_FORMAT".into())
            .or_insert_with(|| "JSON".into());
        "lambda-managed-instances"
    } else if cfg.init_caching.is_some() {
        "snap-start"
    } else {
        "on-demand"
    };
    env.insert("AWS_LAMBDA_INITIALIZATION_TYPE".into(), init_type.into());
    for (k, v) in cfg.log_controls.env() {
        env.insert(k.into(), v.into());
    }
    env.into_iter().collect()
}

/// A fresh log stream name, as Lambda names them
/// (`YYYY/MM/DD/[VERSION]<32 hex>`): also the sandbox's `instanceId` in the
/// 2025-01-29 `platform.initStart` (they are equal in Lambda's logs).
pub fn log_stream_name(version: &str) -> String {
    let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let day = now.get(..10).unwrap_or("1970-01-01").replace('-', "/");
    format!("{day}/[{version}]{}", uuid::Uuid::new_v4().simple())
}

/// Keys an extension does not get (SPEC §3): they describe the function's code and logs.
fn extension_excluded(key: &str) -> bool {
    matches!(
        key,
        "_HANDLER"
            | "LAMBDA_TASK_ROOT"
            | "LAMBDA_RUNTIME_DIR"
            | "AWS_LAMBDA_LOG_GROUP_NAME"
            | "AWS_LAMBDA_LOG_STREAM_NAME"
            | "AWS_LAMBDA_MAX_CONCURRENCY"
    ) || key.starts_with("AWS_XRAY_")
        || key.starts_with('_')
}

/// An extension's environment: the runtime's, minus the function-only keys.
pub fn extension_env(runtime_env: &[(String, String)]) -> Vec<(String, String)> {
    runtime_env
        .iter()
        .filter(|(k, _)| !extension_excluded(k))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> LambdaConfig {
        LambdaConfig {
            function: crate::sandbox::FunctionId {
                name: "f".into(),
                version: "$LATEST".into(),
                region: "us-east-1".into(),
                account: "012345678912".into(),
            },
            memory_size_mb: 3008,
            handler: Some("h.x".into()),
            timeout: std::time::Duration::from_secs(3),
            init_timeout: std::time::Duration::from_secs(10),
            max_queue: 4,
            runtime_api_address: "127.0.0.1:9555".parse().unwrap(),
            extensions_dir: "/nonexistent".into(),
            bootstrap: crate::lambda::config::Bootstrap::Missing("none".into()),
            environment: Vec::new(),
            shares_network: false,
            stream_cap_bytes: 1,
            stream_shaping: false,
            init_caching: None,
            one_shot: None,
            scratch_dir: None,
            lifecycle: crate::lambda::config::Lifecycle::Eager,
            log_controls: crate::log_controls::LogControls::default(),
            sandbox_concurrency: None,
        }
    }

    fn init(cfg: &LambdaConfig) -> Init {
        Init {
            function_name: cfg.function.name.clone(),
            function_version: cfg.function.version.clone(),
            memory_size_mb: cfg.memory_size_mb,
            handler: cfg.handler.clone(),
            ..Init::default()
        }
    }

    #[test]
    fn lambda_variables_and_caller_values() {
        let cfg = config();
        let caller = vec![
            ("KEEP".to_owned(), "a=b=c".to_owned()),
            ("AWS_LAMBDA_RUNTIME_API".to_owned(), "evil:1".to_owned()),
            ("TZ".to_owned(), "Europe/Paris".to_owned()),
        ];
        let env: BTreeMap<_, _> = runtime_env(&cfg, &init(&cfg), "s", caller.into_iter())
            .into_iter()
            .collect();
        assert_eq!(env["KEEP"], "a=b=c");
        assert_eq!(env["AWS_LAMBDA_RUNTIME_API"], "127.0.0.1:9555");
        assert_eq!(env["TZ"], "Europe/Paris");
        assert_eq!(env["_HANDLER"], "h.x");
        assert_eq!(env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"], "3008");
        assert_eq!(env["AWS_LAMBDA_INITIALIZATION_TYPE"], "on-demand");
        assert!(env.contains_key("AWS_REGION"));
        assert!(env.contains_key("LAMBDA_TASK_ROOT"));
    }

    #[test]
    fn the_init_decides_the_function_variables() {
        let cfg = config();
        let init = Init {
            function_name: "other".into(),
            function_version: "7".into(),
            memory_size_mb: 512,
            handler: Some("h".into()),
            ..Init::default()
        };
        let env: BTreeMap<_, _> = runtime_env(&cfg, &init, "s", std::iter::empty())
            .into_iter()
            .collect();
        assert_eq!(env["AWS_LAMBDA_FUNCTION_NAME"], "other");
        assert_eq!(env["AWS_LAMBDA_FUNCTION_VERSION"], "7");
        assert_eq!(env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"], "512");
        assert_eq!(env["_HANDLER"], "h");
        assert_eq!(env["AWS_LAMBDA_LOG_GROUP_NAME"], "/aws/lambda/other");
    }

    #[test]
    fn extensions_do_not_get_function_only_keys() {
        let runtime: Vec<(String, String)> = [
            ("_HANDLER", "h"),
            ("LAMBDA_TASK_ROOT", "/var/task"),
            ("LAMBDA_RUNTIME_DIR", "/var/runtime"),
            ("AWS_LAMBDA_LOG_GROUP_NAME", "g"),
            ("AWS_LAMBDA_LOG_STREAM_NAME", "s"),
            ("_X_AMZN_TRACE_ID", "t"),
            ("AWS_XRAY_DAEMON_ADDRESS", "x"),
            ("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001"),
            ("AWS_REGION", "us-east-1"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let keys: Vec<String> = extension_env(&runtime)
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(keys, vec!["AWS_LAMBDA_RUNTIME_API", "AWS_REGION"]);
    }
}
