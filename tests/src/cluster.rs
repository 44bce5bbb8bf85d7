//! Throwaway PostgreSQL clusters: one shared by every test of a test binary, started on first
//! use and stopped by PID when the binary exits, and dedicated ones a test may stop and restart.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use pgvisor::config::UpstreamAddr;
use pgvisor::embedded::{EmbeddedOptions, EmbeddedPostgres};

use crate::endpoint::Endpoint;

/// The superuser every test cluster has.
pub const SUPERUSER: &str = "postgres";

/// A running throwaway cluster with a SCRAM-SHA-256 password superuser and TLS on.
pub struct Cluster {
    pg: EmbeddedPostgres,
    password: String,
}

static SHARED: OnceLock<Cluster> = OnceLock::new();

/// The cluster shared by all tests in this test binary, started on first use.
///
/// Statics are never dropped, so an `atexit` handler stops it and removes its data directory.
pub fn shared_cluster() -> &'static Cluster {
    SHARED.get_or_init(|| {
        let cluster = Cluster::start().unwrap_or_else(|e| panic!("cannot start the test cluster: {e}"));
        // The one unsafe call in the workspace: the standard library has no atexit, and a static
        // is never dropped, so without it every test binary would leave a postmaster running.
        // SAFETY: registers a plain `extern "C" fn()` that touches only the initialised static.
        #[allow(unsafe_code)]
        let registered = unsafe { libc::atexit(stop_shared_cluster) };
        assert_eq!(registered, 0, "cannot register the cluster clean-up handler");
        cluster
    })
}

extern "C" fn stop_shared_cluster() {
    let Some(cluster) = SHARED.get() else { return };
    if let Some(pid) = cluster.pg.pid() {
        stop_postmaster(Pid::from_raw(pid as i32));
    }
    if let Some(dir) = cluster.pg.data_dir().parent() {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// Fast shutdown (SIGINT), escalating to SIGKILL when the postmaster lingers.
fn stop_postmaster(pid: Pid) {
    let _ = kill(pid, Signal::SIGINT);
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => std::thread::sleep(Duration::from_millis(20)),
            _ => return,
        }
    }
    let _ = kill(pid, Signal::SIGKILL);
    let _ = waitpid(pid, None);
}

impl Cluster {
    /// Starts a new cluster of its own, stopped and removed when dropped. Blocks for initdb and
    /// start-up (a second or two); call it through `tokio::task::block_in_place` in async tests.
    pub fn start() -> Result<Self, pgvisor::embedded::EmbeddedError> {
        let password = generate_password();
        let pg = EmbeddedPostgres::start(EmbeddedOptions {
            superuser: SUPERUSER.into(),
            password: Some(password.clone()),
            tls: true,
            settings: vec![
                ("fsync".into(), "off".into()),
                ("synchronous_commit".into(), "off".into()),
                ("full_page_writes".into(), "off".into()),
                // PostgreSQL notices a vanished client only when it writes, or by this check.
                ("client_connection_check_interval".into(), "200ms".into()),
            ],
        })?;
        Ok(Self { pg, password })
    }

    /// The superuser's login, directly to the server, database `postgres`.
    pub fn endpoint(&self) -> Endpoint {
        Endpoint {
            host: "127.0.0.1".into(),
            port: self.pg.port(),
            user: SUPERUSER.into(),
            password: Some(self.password.clone()),
            dbname: "postgres".into(),
        }
    }

    /// The server's address, as a proxy's upstream.
    pub fn upstream(&self) -> UpstreamAddr {
        UpstreamAddr { host: "127.0.0.1".into(), port: self.pg.port() }
    }

    /// The superuser's password.
    pub fn password(&self) -> &str {
        &self.password
    }

    /// The server's TLS certificate and key (PEM files).
    pub fn tls_files(&self) -> (PathBuf, PathBuf) {
        self.pg.tls_files().expect("the test cluster runs with TLS")
    }

    /// The data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.pg.data_dir()
    }

    /// A login role that needs no password over TCP, for tests about something other than
    /// authentication that open many connections: SCRAM's key derivation costs ~80 ms of client
    /// CPU per login in a debug build.
    pub async fn trusted_role(&self, role: &str) -> Endpoint {
        static HBA: Mutex<()> = Mutex::new(());
        {
            let _edit = HBA.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            let hba = self.data_dir().join("pg_hba.conf");
            let current = std::fs::read_to_string(&hba).expect("read pg_hba.conf");
            // Rules match top down: the role's rule goes before the scram-sha-256 ones.
            let rule = format!("host all {role} 127.0.0.1/32 trust\n");
            if !current.contains(&rule) {
                std::fs::write(&hba, format!("{rule}{current}")).expect("write pg_hba.conf");
            }
        }
        let admin = crate::client::connect(&self.endpoint()).await.expect("connect as the superuser");
        admin
            .batch_execute(&format!(
                "do $$ begin create role {role} login; exception when duplicate_object then null; end $$; \
                 select pg_reload_conf()"
            ))
            .await
            .expect("create the role and reload pg_hba.conf");
        let endpoint = Endpoint { user: role.into(), password: None, ..self.endpoint() };
        // The postmaster reloads on SIGHUP, a moment after pg_reload_conf() returns.
        let ready = crate::wait::eventually(Duration::from_secs(10), || async {
            crate::client::connect(&endpoint).await.ok().map(|_| ())
        })
        .await;
        assert!(ready.is_some(), "{role} cannot log in without a password after the reload");
        endpoint
    }

    /// Stops the server (fast shutdown), keeping its data and port.
    pub fn stop(&mut self) {
        self.pg.stop();
    }

    /// Starts the server again on the same port.
    pub fn restart(&mut self) -> Result<(), pgvisor::embedded::EmbeddedError> {
        self.pg.restart()
    }
}

fn generate_password() -> String {
    let state = RandomState::new();
    let a = state.hash_one(1u8);
    let b = state.hash_one(2u8);
    format!("pw{a:016x}{b:016x}")
}
