//! An embedded throwaway PostgreSQL: local server binaries, a temporary data directory on a free
//! port, removed when dropped. Used when no upstream is given, and by the test harness.

use std::fs;
use std::io::Write;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::{Pid, User};

/// The Debian/Ubuntu command that installs the server binaries.
pub const INSTALL_HINT: &str = "sudo apt-get install -y postgresql";

/// Why the embedded PostgreSQL could not start.
#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    /// No `initdb`/`postgres` binaries were found.
    #[error("no PostgreSQL server binaries found (looked on PATH, in `pg_config --bindir` and under /usr/lib/postgresql/*/bin). Install them with: {INSTALL_HINT}  (or pass --upstream HOST:PORT to use an existing server)")]
    NoBinaries,
    /// pgvisor runs as root but there is no `postgres` user to run the server as.
    #[error("running as root, but there is no `postgres` user to run PostgreSQL as (PostgreSQL refuses to run as root); create one with: useradd -r postgres")]
    NoPostgresUser,
    /// A file-system step failed.
    #[error("{what}: {source}")]
    Io {
        /// The step.
        what: String,
        /// Why.
        source: std::io::Error,
    },
    /// `initdb` failed.
    #[error("initdb failed:\n{0}")]
    Initdb(String),
    /// The server did not become ready.
    #[error("PostgreSQL did not start: {reason}\n{log}")]
    Start {
        /// Why.
        reason: String,
        /// The end of the server log.
        log: String,
    },
}

fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> EmbeddedError {
    let what = what.into();
    move |source| EmbeddedError::Io { what, source }
}

/// How to set up the embedded server.
#[derive(Debug, Clone)]
pub struct EmbeddedOptions {
    /// Superuser name.
    pub superuser: String,
    /// Superuser password; when set, TCP connections must authenticate with SCRAM-SHA-256.
    pub password: Option<String>,
    /// Turn on TLS with a generated self-signed certificate.
    pub tls: bool,
    /// Extra `-c name=value` server settings.
    pub settings: Vec<(String, String)>,
}

impl Default for EmbeddedOptions {
    fn default() -> Self {
        Self {
            superuser: "postgres".into(),
            password: None,
            tls: false,
            settings: vec![("fsync".into(), "off".into())],
        }
    }
}

/// A running throwaway PostgreSQL.
pub struct EmbeddedPostgres {
    bindir: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
    run_as: Option<User>,
    options: EmbeddedOptions,
}

impl EmbeddedPostgres {
    /// Creates a cluster in a new temporary directory and starts it on a free loopback port.
    pub fn start(options: EmbeddedOptions) -> Result<Self, EmbeddedError> {
        let bindir = find_bindir().ok_or(EmbeddedError::NoBinaries)?;
        let run_as = if nix::unistd::geteuid().is_root() {
            Some(User::from_name("postgres").ok().flatten().ok_or(EmbeddedError::NoPostgresUser)?)
        } else {
            None
        };
        let dir = tempfile::Builder::new()
            .prefix("pgvisor-pg-")
            .tempdir()
            .map_err(io_err("cannot create a temporary directory"))?;
        let mut pg = Self { bindir, dir, port: 0, child: None, run_as, options };
        pg.chown(pg.dir.path())?;
        pg.initdb()?;
        pg.start_server()?;
        Ok(pg)
    }

    /// The TCP port the server listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The superuser name.
    pub fn superuser(&self) -> &str {
        &self.options.superuser
    }

    /// The directory holding the server binaries used.
    pub fn bindir(&self) -> &Path {
        &self.bindir
    }

    /// The postmaster's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The server's TLS certificate and key files (PEM), when TLS is on.
    pub fn tls_files(&self) -> Option<(PathBuf, PathBuf)> {
        self.options.tls.then(|| (self.dir.path().join("server.crt"), self.dir.path().join("server.key")))
    }

    /// The data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// A libpq connection string for the superuser, directly to the server.
    pub fn conninfo(&self, database: &str) -> String {
        let mut s = format!("host=127.0.0.1 port={} user={} dbname={database}", self.port, self.options.superuser);
        if let Some(pw) = &self.options.password {
            s.push_str(&format!(" password={pw}"));
        }
        s
    }

    /// Stops the server (fast shutdown), keeping the data directory.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        let pid = Pid::from_raw(child.id() as i32);
        let _ = kill(pid, Signal::SIGINT);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = kill(pid, Signal::SIGQUIT);
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Starts the server again on the same port after [`EmbeddedPostgres::stop`].
    pub fn restart(&mut self) -> Result<(), EmbeddedError> {
        self.stop();
        self.start_server()
    }

    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(self.bindir.join(program));
        if let Some(user) = &self.run_as {
            cmd.uid(user.uid.as_raw()).gid(user.gid.as_raw());
            cmd.env("HOME", self.dir.path());
        }
        cmd.env_remove("PGDATA").env("LC_ALL", "C");
        cmd
    }

    fn chown(&self, path: &Path) -> Result<(), EmbeddedError> {
        if let Some(user) = &self.run_as {
            std::os::unix::fs::chown(path, Some(user.uid.as_raw()), Some(user.gid.as_raw()))
                .map_err(io_err(format!("cannot hand {} to the postgres user", path.display())))?;
        }
        Ok(())
    }

    fn write_private(&self, name: &str, contents: &str) -> Result<PathBuf, EmbeddedError> {
        let path = self.dir.path().join(name);
        let mut f = fs::File::create(&path).map_err(io_err(format!("cannot write {}", path.display())))?;
        f.write_all(contents.as_bytes()).map_err(io_err(format!("cannot write {}", path.display())))?;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).map_err(io_err("cannot set permissions"))?;
        self.chown(&path)?;
        Ok(path)
    }

    fn initdb(&self) -> Result<(), EmbeddedError> {
        let mut cmd = self.command("initdb");
        cmd.arg("-D").arg(self.data_dir()).args([
            "-U",
            &self.options.superuser,
            "-E",
            "UTF8",
            "--no-locale",
            "--no-sync",
        ]);
        match &self.options.password {
            Some(pw) => {
                let pwfile = self.write_private("pwfile", pw)?;
                cmd.arg("--pwfile").arg(pwfile).args(["--auth-local=trust", "--auth-host=scram-sha-256"]);
            }
            None => {
                cmd.args(["--auth=trust"]);
            }
        }
        let out = cmd.output().map_err(io_err("cannot run initdb"))?;
        if !out.status.success() {
            return Err(EmbeddedError::Initdb(format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        Ok(())
    }

    fn start_server(&mut self) -> Result<(), EmbeddedError> {
        if self.port == 0 {
            self.port = free_port().map_err(io_err("cannot find a free port"))?;
        }
        let mut settings: Vec<(String, String)> = vec![
            ("listen_addresses".into(), "127.0.0.1".into()),
            ("port".into(), self.port.to_string()),
            ("unix_socket_directories".into(), self.dir.path().display().to_string()),
            ("max_connections".into(), "300".into()),
            ("shared_buffers".into(), "32MB".into()),
        ];
        if self.options.tls {
            let (cert, key) = crate::net::tls::CertifiedKey::self_signed_pem()
                .map_err(|e| EmbeddedError::Start { reason: e.to_string(), log: String::new() })?;
            let cert = self.write_private("server.crt", &cert)?;
            let key = self.write_private("server.key", &key)?;
            settings.push(("ssl".into(), "on".into()));
            settings.push(("ssl_cert_file".into(), cert.display().to_string()));
            settings.push(("ssl_key_file".into(), key.display().to_string()));
        }
        settings.extend(self.options.settings.iter().cloned());
        let log_path = self.dir.path().join("postgres.log");
        let log = fs::File::create(&log_path).map_err(io_err("cannot create the server log"))?;
        self.chown(&log_path)?;
        let mut cmd = self.command("postgres");
        cmd.arg("-D").arg(self.data_dir());
        for (k, v) in &settings {
            cmd.arg("-c").arg(format!("{k}={v}"));
        }
        let err_log = log.try_clone().map_err(io_err("cannot open the server log"))?;
        cmd.stdin(Stdio::null()).stdout(log).stderr(err_log);
        // Own process group: a Ctrl-C in the terminal reaches pgvisor, which then stops the
        // server in order, instead of reaching both at once.
        cmd.process_group(0);
        let child = cmd.spawn().map_err(io_err("cannot start postgres"))?;
        self.child = Some(child);
        self.wait_ready(&log_path)
    }

    fn wait_ready(&mut self, log_path: &Path) -> Result<(), EmbeddedError> {
        let deadline = Instant::now() + Duration::from_secs(60);
        let pidfile = self.data_dir().join("postmaster.pid");
        loop {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                self.child = None;
                return Err(EmbeddedError::Start {
                    reason: format!("postgres exited with {status}"),
                    log: log_tail(log_path),
                });
            }
            // postmaster.pid's last line reads "ready" once the server accepts connections.
            if fs::read_to_string(&pidfile).is_ok_and(|s| s.lines().nth(7).is_some_and(|l| l.trim() == "ready")) {
                return Ok(());
            }
            if Instant::now() > deadline {
                self.stop();
                return Err(EmbeddedError::Start { reason: "not ready after 60 s".into(), log: log_tail(log_path) });
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }
}

impl Drop for EmbeddedPostgres {
    fn drop(&mut self) {
        self.stop();
    }
}

fn log_tail(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Finds a directory holding both `initdb` and `postgres`.
pub fn find_bindir() -> Option<PathBuf> {
    let has_both = |dir: &Path| dir.join("initdb").is_file() && dir.join("postgres").is_file();
    // PATH entries may be symlinks into the real bindir; resolve them so sibling tools match.
    let from_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .find_map(|dir| {
            let initdb = fs::canonicalize(dir.join("initdb")).ok()?;
            let real = initdb.parent()?.to_path_buf();
            has_both(&real).then_some(real)
        });
    from_path
        .or_else(|| {
            let out = Command::new("pg_config").arg("--bindir").output().ok()?;
            let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
            has_both(&dir).then_some(dir)
        })
        .or_else(|| {
            let mut versions: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
                .ok()?
                .filter_map(|e| {
                    let e = e.ok()?;
                    let v = e.file_name().to_string_lossy().parse().ok()?;
                    Some((v, e.path().join("bin")))
                })
                .filter(|(_, dir)| has_both(dir))
                .collect();
            versions.sort();
            versions.pop().map(|(_, dir)| dir)
        })
}
