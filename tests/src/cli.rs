//! psql and pgbench as child processes, pointed at an endpoint through the libpq environment.

use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use crate::endpoint::Endpoint;

/// How long one psql or pgbench run may take before the test fails.
const RUN_TIMEOUT: Duration = Duration::from_secs(120);

/// libpq settings every run starts from; a conninfo argument overrides them.
///
/// `sslmode=require`: with libpq's default `prefer`, a login that fails over TLS is silently
/// retried in plain text, which would hide TLS problems on the client leg. `channel_binding=
/// disable`: SCRAM channel binding cannot cross a TLS-terminating proxy, and libpq's default
/// (`prefer`) fails when TLS is on both legs; `tls_client.rs` covers that case on its own.
pub const LIBPQ_DEFAULTS: [(&str, &str); 2] = [("PGSSLMODE", "require"), ("PGCHANNELBINDING", "disable")];

/// What a command-line client printed and how it exited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CliOutput {
    /// Exit status.
    pub status: ExitStatus,
    /// Standard output.
    pub stdout: String,
    /// Standard error (psql's errors and notices).
    pub stderr: String,
}

impl CliOutput {
    /// The exit code (`-1` when killed by a signal).
    pub fn code(&self) -> i32 {
        self.status.code().unwrap_or(-1)
    }
}

/// Runs `psql -X -q <args>` against `endpoint`, feeding `stdin` as the script (or nothing), in
/// the directory `cwd` so `\copy` file names can be relative.
pub async fn psql(endpoint: &Endpoint, args: &[&str], stdin: Option<&str>, cwd: &Path) -> CliOutput {
    let mut all = vec!["-X", "-q"];
    all.extend_from_slice(args);
    run("psql", endpoint, &all, stdin, cwd, &[]).await
}

/// Runs `pgbench <args>` against `endpoint`.
pub async fn pgbench(endpoint: &Endpoint, args: &[&str]) -> CliOutput {
    run("pgbench", endpoint, args, None, &std::env::temp_dir(), &[]).await
}

/// Runs `program` with the libpq environment of `endpoint` plus `extra_env`.
pub async fn run(
    program: &str,
    endpoint: &Endpoint,
    args: &[&str],
    stdin: Option<&str>,
    cwd: &Path,
    extra_env: &[(&str, &str)],
) -> CliOutput {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .current_dir(cwd)
        .env("LC_ALL", "C")
        .env_remove("PGSERVICE")
        .envs(LIBPQ_DEFAULTS)
        .env_remove("PGOPTIONS")
        .env_remove("PSQLRC")
        .envs(endpoint.libpq_env())
        .envs(extra_env.iter().copied())
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot run {program} (is it on PATH?): {e}"));
    if let Some(script) = stdin {
        let mut pipe = child.stdin.take().expect("stdin is piped");
        pipe.write_all(script.as_bytes()).await.expect("write the script to stdin");
        drop(pipe);
    }
    let output = tokio::time::timeout(RUN_TIMEOUT, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("{program} {args:?} did not finish within {RUN_TIMEOUT:?}"))
        .unwrap_or_else(|e| panic!("{program} {args:?}: {e}"));
    CliOutput {
        status: output.status,
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}
