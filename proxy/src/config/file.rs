//! The configuration file (`--config PATH`, TOML): a key per flag, plus the `[advice]` table.
//!
//! The file is read before the flags are parsed for good and turned into `PGVISOR_*` variables
//! for the keys whose variable is not set, so clap applies the usual order: command line, then
//! environment, then the file, then the defaults. Every key and value is checked here first, so
//! a mistake is reported with the file and the key rather than as a flag the user never typed.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::{Arg, ArgAction, Command};

/// Keys of the `[advice]` table and the flags they stand for.
const ADVICE_KEYS: [(&str, &str); 2] = [("disabled", "disable-advice"), ("ignore_fingerprints", "ignore-fingerprints")];

/// A configuration file that cannot be used; pgvisor does not start.
#[derive(Debug, thiserror::Error)]
pub enum ConfigFileError {
    /// The file could not be read (a file named explicitly must exist).
    #[error("cannot read the config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Not valid TOML.
    #[error("{path}: not valid TOML: {message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The parser's message (with line and column).
        message: String,
    },
    /// A key that is no flag, or a value that does not fit its key.
    #[error("{path}: {key}: {message}")]
    Key {
        /// The file.
        path: PathBuf,
        /// The key, `[advice].disabled` style for tables.
        key: String,
        /// What is wrong.
        message: String,
    },
}

/// Reads `path` and sets `PGVISOR_*` for each key whose variable is not set yet.
///
/// Call it while the process is still single-threaded (before any runtime starts): it changes
/// the environment.
pub fn export(path: &Path, command: &Command) -> Result<(), ConfigFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigFileError::Read { path: path.into(), source })?;
    for (var, value) in variables(path, &text, command)? {
        if std::env::var_os(&var).is_none() {
            // Allowed: callers run this before any thread starts (see above).
            #[allow(clippy::disallowed_methods)]
            std::env::set_var(var, value);
        }
    }
    Ok(())
}

/// The environment variables the file `text` stands for, checked against `command`'s flags.
pub fn variables(path: &Path, text: &str, command: &Command) -> Result<Vec<(String, String)>, ConfigFileError> {
    let key_error = |key: &str, message: String| ConfigFileError::Key { path: path.into(), key: key.into(), message };
    let table: toml::Table =
        text.parse().map_err(|e: toml::de::Error| match e.span().and_then(|span| unquoted_text(text, span.start)) {
            Some((key, value)) => key_error(key, format!("text must be quoted: {key} = \"{value}\"")),
            None => ConfigFileError::Syntax { path: path.into(), message: e.to_string() },
        })?;
    let mut out = BTreeMap::new();
    for (key, value) in &table {
        if key == "advice" {
            let toml::Value::Table(advice) = value else {
                return Err(key_error("advice", "must be a table: [advice]".into()));
            };
            for (sub, value) in advice {
                let name = format!("[advice].{sub}");
                let Some((_, flag)) = ADVICE_KEYS.iter().find(|(k, _)| k == sub) else {
                    return Err(key_error(
                        &name,
                        "unknown key; the [advice] table takes disabled and ignore_fingerprints".into(),
                    ));
                };
                let arg =
                    flag_arg(command, flag).ok_or_else(|| key_error(&name, "not supported by this pgvisor".into()))?;
                insert(&mut out, arg, value, &name).map_err(|m| key_error(&name, m))?;
            }
            continue;
        }
        let flag = key.replace('_', "-");
        let Some(arg) = flag_arg(command, &flag) else {
            let message = if flag == "config" {
                "a config file cannot name another one".to_string()
            } else {
                "unknown key; keys are the long flag names (`pgvisor --help`), e.g. lock_wait or lock-wait".to_string()
            };
            return Err(key_error(key, message));
        };
        insert(&mut out, arg, value, key).map_err(|m| key_error(key, m))?;
    }
    Ok(out.into_iter().map(|(var, (value, _))| (var, value)).collect())
}

/// The `key = value` line holding byte `at` of `text`, when its value is text written without
/// quotes (`upstream = 127.0.0.1:5432`, `lock_wait = 500ms`): TOML reads it as a broken number.
fn unquoted_text(text: &str, at: usize) -> Option<(&str, &str)> {
    let start = text.get(..at)?.rfind('\n').map_or(0, |i| i + 1);
    let line = text.get(start..)?.lines().next()?;
    let (key, value) = line.split_once('=')?;
    let (key, value) = (key.trim(), value.split('#').next()?.trim());
    let bare_key = !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    let quoted_or_structured = value.is_empty() || value.contains(['"', '\'', '[', ']', '{', '}']);
    // Only when the value alone is what TOML refuses, not something elsewhere on the line.
    let refused = format!("v = {value}").parse::<toml::Table>().is_err();
    (bare_key && !quoted_or_structured && refused).then_some((key, value))
}

/// The flag `--{long}` that has an environment variable (the proxy's flags; subcommand options
/// and `--config` itself have none a file could set).
fn flag_arg<'c>(command: &'c Command, long: &str) -> Option<&'c Arg> {
    command.get_arguments().find(|a| a.get_long() == Some(long) && a.get_env().is_some() && long != "config")
}

/// Checks `value` for `arg` and records its variable; a flag given twice (`lock_wait` and
/// `lock-wait`, or `disable_advice` and `[advice].disabled`) is an error.
fn insert(
    out: &mut BTreeMap<String, (String, String)>,
    arg: &Arg,
    value: &toml::Value,
    key: &str,
) -> Result<(), String> {
    let var = arg.get_env().and_then(|v| v.to_str()).unwrap_or_default().to_string();
    let text = flag_value(arg, value)?;
    if let Some((_, first)) = out.get(&var) {
        return Err(format!("sets the same option as {first}"));
    }
    // An empty list is the default: no variable (clap would read an empty one as one empty value).
    if !(text.is_empty() && arg.get_value_delimiter().is_some()) {
        out.insert(var, (text, key.to_string()));
    }
    Ok(())
}

/// `value` as the flag's text, validated by the flag's own parser.
fn flag_value(arg: &Arg, value: &toml::Value) -> Result<String, String> {
    let scalar = |v: &toml::Value| match v {
        toml::Value::String(s) => Ok(s.clone()),
        toml::Value::Integer(i) => Ok(i.to_string()),
        toml::Value::Float(f) => Ok(f.to_string()),
        toml::Value::Boolean(b) => Ok(b.to_string()),
        _ => Err("expected a string, a number or a boolean".to_string()),
    };
    if matches!(arg.get_action(), ArgAction::SetTrue) {
        return match value {
            toml::Value::Boolean(b) => Ok(b.to_string()),
            toml::Value::String(s) if s == "true" || s == "false" => Ok(s.clone()),
            other => Err(format!("expected true or false, got {other}")),
        };
    }
    let text = match (value, arg.get_value_delimiter()) {
        (toml::Value::Array(items), Some(d)) => {
            let items: Vec<String> = items.iter().map(scalar).collect::<Result<_, _>>()?;
            if let Some(bad) = items.iter().find(|i| i.contains(d)) {
                return Err(format!("{bad:?} contains {d:?}; give one value per array element"));
            }
            items.join(&d.to_string())
        }
        (toml::Value::Array(_), None) => return Err("expected a single value, not an array".into()),
        (v, _) => scalar(v)?,
    };
    // The flag's own parser, on a one-flag command (the real one has requires/conflicts that
    // have nothing to do with this value).
    let mut check = Arg::new("value").long("value").value_name("VALUE").value_parser(arg.get_value_parser().clone());
    if let Some(d) = arg.get_value_delimiter() {
        check = check.value_delimiter(d).action(ArgAction::Append);
    }
    if text.is_empty() && arg.get_value_delimiter().is_some() {
        return Ok(text);
    }
    // `--value=TEXT`, so that a negative number reaches the parser rather than reading as a flag.
    let argv: Vec<OsString> = vec!["pgvisor".into(), format!("--value={text}").into()];
    Command::new("pgvisor").arg(check).try_get_matches_from(argv).map_err(|e| clap_reason(&e))?;
    Ok(text)
}

/// The reason in a clap error: the flag's own parser's words, else clap's first line without its
/// "error:" prefix.
fn clap_reason(e: &clap::Error) -> String {
    crate::config::value_error_reason(e).unwrap_or_else(|| {
        let text = e.to_string();
        let first = text.lines().next().unwrap_or_default();
        first.strip_prefix("error: ").unwrap_or(first).replace(" for '--value <VALUE>'", "")
    })
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;
    use crate::cli::Cli;

    fn vars(text: &str) -> Result<Vec<(String, String)>, String> {
        variables(Path::new("pgvisor.toml"), text, &Cli::command()).map_err(|e| e.to_string())
    }

    fn var(all: &[(String, String)], name: &str) -> Option<String> {
        all.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }

    #[test]
    fn keys_are_flag_names_with_dashes_or_underscores() {
        let all = vars(
            r#"
            listen = "127.0.0.1:7432"
            lock-wait = "500ms"
            n_plus_one_min = 8
            log_params = true
            idle_in_transaction = 3
            [advice]
            disabled = ["select_star", "unparameterized"]
            ignore_fingerprints = ["52867f37ae911b51"]
            "#,
        )
        .unwrap();
        assert_eq!(var(&all, "PGVISOR_LISTEN").as_deref(), Some("127.0.0.1:7432"));
        assert_eq!(var(&all, "PGVISOR_LOCK_WAIT").as_deref(), Some("500ms"));
        assert_eq!(var(&all, "PGVISOR_N_PLUS_ONE_MIN").as_deref(), Some("8"));
        assert_eq!(var(&all, "PGVISOR_LOG_PARAMS").as_deref(), Some("true"));
        assert_eq!(var(&all, "PGVISOR_IDLE_IN_TRANSACTION").as_deref(), Some("3"));
        assert_eq!(var(&all, "PGVISOR_DISABLE_ADVICE").as_deref(), Some("select_star,unparameterized"));
        assert_eq!(var(&all, "PGVISOR_IGNORE_FINGERPRINTS").as_deref(), Some("52867f37ae911b51"));
        assert_eq!(vars("").unwrap(), vec![]);
        assert_eq!(vars("[advice]\ndisabled = []").unwrap(), vec![], "an empty list is the default");
    }

    #[test]
    fn mistakes_name_the_file_and_the_key() {
        let err = |text: &str| vars(text).unwrap_err();
        assert_eq!(
            err("lock_wiat = \"1s\""),
            "pgvisor.toml: lock_wiat: unknown key; keys are the long flag names (`pgvisor --help`), e.g. lock_wait or lock-wait"
        );
        assert_eq!(
            err("lock_wait = \"soon\""),
            "pgvisor.toml: lock_wait: expected a duration such as 100ms, 2s or 1.5s, got \"soon\""
        );
        assert_eq!(
            err("n_plus_one_min = 1"),
            "pgvisor.toml: n_plus_one_min: must be at least 2 (an N+1 needs a parent and several children), got 1"
        );
        assert_eq!(err("n_plus_one_min = -3"), "pgvisor.toml: n_plus_one_min: must be a positive whole number, got -3");
        assert_eq!(err("connect_timeout = 0"), "pgvisor.toml: connect_timeout: must be at least 1ms, got 0");
        assert_eq!(err("lock_wait = \"-1s\""), "pgvisor.toml: lock_wait: must not be negative, got \"-1s\"");
        assert!(err("listen = \"nowhere\"").starts_with("pgvisor.toml: listen: expected IP:PORT"));
        assert_eq!(
            err("upstream_tls = \"sometimes\""),
            "pgvisor.toml: upstream_tls: expected one of disable, prefer, require, verify-full, got \"sometimes\""
        );
        assert_eq!(err("no_tls = \"yes\""), "pgvisor.toml: no_tls: expected true or false, got \"yes\"");
        assert_eq!(err("lock_wait = [1]"), "pgvisor.toml: lock_wait: expected a single value, not an array");
        assert!(err("lock_wait = { a = 1 }").contains("lock_wait: expected a string, a number or a boolean"));
        assert!(err("config = \"other.toml\"").contains("config: a config file cannot name another one"));
        assert!(err("lock_wait = \"1s\"\nlock-wait = \"2s\"").contains("lock_wait: sets the same option as lock-wait"));
        assert!(err("lock_wait = ").starts_with("pgvisor.toml: not valid TOML"));
        let e = err("[advice]\ndisabled = [\"select_stars\"]");
        assert!(e.starts_with("pgvisor.toml: [advice].disabled: expected an advice kind, one of n_plus_one"), "{e}");
        assert!(e.ends_with(", got \"select_stars\""), "{e}");
        assert_eq!(
            err("[advice]\nignore_fingerprints = [\"xyz\"]"),
            "pgvisor.toml: [advice].ignore_fingerprints: expected a fingerprint of 16 hex digits such as \
             52867f37ae911b51, got \"xyz\""
        );
        assert!(err("[advice]\nmuted = []").contains("[advice].muted: unknown key"));
        assert!(err("advice = 1").contains("advice: must be a table"));
        assert!(err("disable_advice = [\"deadlock\"]\n[advice]\ndisabled = [\"deadlock\"]")
            .contains("sets the same option"));
    }

    #[test]
    fn unquoted_text_is_told_to_be_quoted() {
        let err = |text: &str| vars(text).unwrap_err();
        assert_eq!(
            err("upstream = 127.0.0.1:5432"),
            "pgvisor.toml: upstream: text must be quoted: upstream = \"127.0.0.1:5432\""
        );
        assert_eq!(
            err("n_plus_one_min = 8\nlock_wait = 500ms   # half a second\n"),
            "pgvisor.toml: lock_wait: text must be quoted: lock_wait = \"500ms\""
        );
        // Other syntax errors keep the TOML parser's message, with line and column.
        assert!(err("lock_wait = \"1s").starts_with("pgvisor.toml: not valid TOML"));
        assert!(err("lock_wait = [1,").starts_with("pgvisor.toml: not valid TOML"));
    }

    #[test]
    fn a_missing_file_is_an_error() {
        let e = export(Path::new("/nonexistent/pgvisor.toml"), &Cli::command()).unwrap_err();
        assert!(e.to_string().starts_with("cannot read the config file /nonexistent/pgvisor.toml"), "{e}");
    }

    #[test]
    fn the_example_file_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../pgvisor.example.toml");
        let text = std::fs::read_to_string(&path).expect("pgvisor.example.toml at the repository root");
        let all = variables(&path, &text, &Cli::command()).unwrap_or_else(|e| panic!("{e}"));
        assert!(var(&all, "PGVISOR_LOCK_WAIT").is_some());
    }
}
