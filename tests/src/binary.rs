//! The `pgvisor` binary as a child process, for tests that need a process (signals, exit).

use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

/// The `pgvisor` executable of the profile these tests were built with.
///
/// `cargo test --workspace` builds it; `cargo test -p pgvisor-tests` alone does not (a test
/// crate cannot depend on another package's binary on stable Cargo), so run
/// `cargo build -p pgvisor` first in that case.
pub fn pgvisor_binary() -> PathBuf {
    // Test executables live in target/<profile>/deps; binaries in target/<profile>.
    let exe = std::env::current_exe().expect("the test executable's path");
    let profile_dir = exe.parent().and_then(|deps| deps.parent()).expect("target/<profile>/deps layout");
    let bin = profile_dir.join("pgvisor");
    assert!(
        bin.is_file(),
        "{} does not exist: build it first with `cargo build -p pgvisor` (or run `cargo test --workspace`)",
        bin.display()
    );
    bin
}

/// A running `pgvisor` process logging JSON lines; stopped with SIGTERM (then SIGKILL) when
/// dropped, so a failing test does not leave it, or its embedded PostgreSQL, behind.
pub struct PgvisorProcess {
    child: Child,
    log: mpsc::UnboundedReceiver<serde_json::Value>,
}

impl PgvisorProcess {
    /// Starts `pgvisor --log-format json <args>`, without any `PGVISOR_*` settings inherited.
    pub fn spawn(args: &[&str]) -> Self {
        let mut cmd = Command::new(pgvisor_binary());
        cmd.args(["--log-format", "json"]).args(args).env("RUST_LOG", "info");
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("PGVISOR_") {
                cmd.env_remove(name);
            }
        }
        cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("start pgvisor");
        let stderr = child.stderr.take().expect("stderr is piped");
        let (tx, log) = mpsc::unbounded_channel();
        // Keep draining stderr so the process never blocks on a full pipe.
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let event = serde_json::from_str(&line).unwrap_or_else(|_| serde_json::json!({ "message": line }));
                let _ = tx.send(event);
            }
        });
        Self { child, log }
    }

    /// Waits for the first log event in which `pick` finds something, and returns it.
    pub async fn wait_for_log<T>(
        &mut self,
        timeout: Duration,
        mut pick: impl FnMut(&serde_json::Value) -> Option<T>,
    ) -> T {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, self.log.recv()).await {
                Ok(Some(event)) => {
                    if let Some(found) = pick(&event) {
                        return found;
                    }
                }
                Ok(None) => {
                    panic!("pgvisor closed its log (exited: {:?}) before the expected line", self.child.try_wait())
                }
                Err(_) => panic!("pgvisor did not log the expected line within {timeout:?}"),
            }
        }
    }

    /// The process id.
    pub fn pid(&self) -> Pid {
        Pid::from_raw(self.child.id().expect("pgvisor is running") as i32)
    }

    /// Sends `signal` to the process.
    pub fn signal(&self, signal: Signal) {
        kill(self.pid(), signal).expect("signal pgvisor");
    }

    /// The exit status, if it has exited.
    pub fn try_exit_status(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().expect("poll pgvisor")
    }

    /// Waits up to `timeout` for the process to exit.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        tokio::time::timeout(timeout, self.child.wait()).await.ok().map(|s| s.expect("wait for pgvisor"))
    }
}

impl Drop for PgvisorProcess {
    fn drop(&mut self) {
        if !matches!(self.child.try_wait(), Ok(None)) {
            return;
        }
        if let Some(pid) = self.child.id() {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.start_kill();
    }
}
