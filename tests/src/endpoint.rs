//! Where a client connects: PostgreSQL directly or a proxy in front of it, with credentials.

use std::time::Duration;

/// A host, port and login: everything a client needs to connect somewhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Host name or IP address.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Role to log in as.
    pub user: String,
    /// Password, when the server asks for one.
    pub password: Option<String>,
    /// Database.
    pub dbname: String,
}

impl Endpoint {
    /// The same login on another host and port (the proxy in front of a server).
    pub fn at(&self, host: &str, port: u16) -> Self {
        Self { host: host.into(), port, ..self.clone() }
    }

    /// The same endpoint with another password.
    pub fn with_password(&self, password: &str) -> Self {
        Self { password: Some(password.into()), ..self.clone() }
    }

    /// The same endpoint with another database.
    pub fn with_dbname(&self, dbname: &str) -> Self {
        Self { dbname: dbname.into(), ..self.clone() }
    }

    /// `host:port`, as the proxy names its upstream in messages.
    pub fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// A tokio-postgres configuration for this endpoint (sslmode prefer, as libpq).
    pub fn config(&self) -> tokio_postgres::Config {
        let mut config = tokio_postgres::Config::new();
        config.host(&self.host).port(self.port).user(&self.user).dbname(&self.dbname);
        config.connect_timeout(Duration::from_secs(10));
        if let Some(password) = &self.password {
            config.password(password);
        }
        config
    }

    /// The libpq environment (`PGHOST`, `PGPASSWORD`...) that points psql or pgbench here.
    pub fn libpq_env(&self) -> Vec<(&'static str, String)> {
        let mut env = vec![
            ("PGHOST", self.host.clone()),
            ("PGPORT", self.port.to_string()),
            ("PGUSER", self.user.clone()),
            ("PGDATABASE", self.dbname.clone()),
            ("PGCONNECT_TIMEOUT", "10".into()),
        ];
        if let Some(password) = &self.password {
            env.push(("PGPASSWORD", password.clone()));
        }
        env
    }
}
