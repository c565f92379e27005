//! The runtime's environment (SPEC §3).

use std::collections::BTreeMap;

use crate::config::Config;

/// Keys rapid sets for the runtime, overriding the caller's values.
const OWNED: &[&str] = &[
    "AWS_LAMBDA_RUNTIME_API",
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_INITIALIZATION_TYPE",
];

/// The runtime's complete environment: the caller's, plus the Lambda variables.
/// Variables the caller set for the function (region, TZ, task root, log group)
/// are kept; the ones that describe this sandbox are rapid's.
pub fn runtime_env(
    cfg: &Config,
    caller: impl Iterator<Item = (String, String)>,
) -> Vec<(String, String)> {
    let mut env: BTreeMap<String, String> = caller.collect();
    for k in OWNED {
        env.remove(*k);
    }
    let mut set_default = |k: &str, v: String| {
        env.entry(k.to_owned()).or_insert(v);
    };
    set_default("AWS_REGION", cfg.region.clone());
    set_default("AWS_DEFAULT_REGION", cfg.region.clone());
    set_default(
        "AWS_LAMBDA_LOG_GROUP_NAME",
        format!("/aws/lambda/{}", cfg.function_name),
    );
    set_default(
        "AWS_LAMBDA_LOG_STREAM_NAME",
        format!(
            "$LATEST/[{}]{}",
            cfg.function_version,
            uuid::Uuid::new_v4().simple()
        ),
    );
    set_default("LAMBDA_TASK_ROOT", "/var/task".into());
    set_default("LAMBDA_RUNTIME_DIR", "/var/runtime".into());
    set_default("TZ", ":UTC".into());
    if let Some(h) = &cfg.handler {
        env.insert("_HANDLER".into(), h.clone());
    }
    env.insert(
        "AWS_LAMBDA_RUNTIME_API".into(),
        cfg.runtime_api_address.to_string(),
    );
    env.insert("AWS_LAMBDA_FUNCTION_NAME".into(), cfg.function_name.clone());
    env.insert(
        "AWS_LAMBDA_FUNCTION_VERSION".into(),
        cfg.function_version.clone(),
    );
    env.insert(
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE".into(),
        cfg.memory_size_mb.to_string(),
    );
    if let Some(token) = &cfg.credentials_token {
        env.insert(
            "AWS_CONTAINER_CREDENTIALS_FULL_URI".into(),
            format!("http://{}/2021-04-23/credentials", cfg.runtime_api_address),
        );
        env.insert("AWS_CONTAINER_AUTHORIZATION_TOKEN".into(), token.clone());
    }
    let init_type = if cfg.init_caching {
        "snap-start"
    } else {
        "on-demand"
    };
    env.insert("AWS_LAMBDA_INITIALIZATION_TYPE".into(), init_type.into());
    env.into_iter().collect()
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
    use clap::Parser;

    #[test]
    fn lambda_variables_and_caller_values() {
        let cfg = Config::from_args(crate::config::Args::parse_from([
            "rapid",
            "--runtime-api-address",
            "127.0.0.1:9555",
            "--handler",
            "h.x",
        ]));
        let caller = vec![
            ("KEEP".to_owned(), "a=b=c".to_owned()),
            ("AWS_LAMBDA_RUNTIME_API".to_owned(), "evil:1".to_owned()),
            ("TZ".to_owned(), "Europe/Paris".to_owned()),
        ];
        let env: BTreeMap<_, _> = runtime_env(&cfg, caller.into_iter()).into_iter().collect();
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
