//! The demo's workload: five small programs, each making one classic mistake through pgvisor.
//!
//! Each scenario uses its own connections, named with `application_name` so the advice says
//! which "part of the app" did it, and closes them when done.

use std::time::Duration;

use tokio_postgres::{Client, Config, NoTls};

/// Users the N+1 page loads.
const USERS: i32 = 20;
/// How long the lock scenario's first session holds its row lock.
pub const LOCK_HOLD: Duration = Duration::from_millis(1500);

/// The detector thresholds the proxy runs with; the scenarios go past them.
#[derive(Debug, Clone, Copy)]
pub struct Thresholds {
    /// `--idle-in-transaction`.
    pub idle_in_transaction: Duration,
    /// `--long-transaction`.
    pub long_transaction: Duration,
}

impl Thresholds {
    /// How long the idle scenario sits in its open transaction: a second past the threshold.
    fn idle_for(&self) -> Duration {
        self.idle_in_transaction + Duration::from_secs(1)
    }

    /// How long the batch job keeps its transaction open: a second past the threshold.
    fn open_for(&self) -> Duration {
        self.long_transaction + Duration::from_secs(1)
    }

    /// The batch job's pause between statements: never long enough to count as idle.
    fn step(&self) -> Duration {
        (self.idle_in_transaction / 2).min(Duration::from_millis(800))
    }
}

/// One scenario of the workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// A page lists users, then loads each user's orders with its own query.
    NPlusOne,
    /// A transaction holds a row lock while another session wants the row.
    LockContention,
    /// Two transactions update the same two rows in opposite orders.
    Deadlock,
    /// A transaction waits for the application with nothing to do.
    IdleInTransaction,
    /// A batch job keeps one transaction open across slow work.
    LongTransaction,
}

impl Scenario {
    /// Every scenario, in the order the demo runs them.
    pub const ALL: [Scenario; 5] = [
        Scenario::NPlusOne,
        Scenario::LockContention,
        Scenario::Deadlock,
        Scenario::IdleInTransaction,
        Scenario::LongTransaction,
    ];

    /// The advice kind it should produce.
    pub fn kind(self) -> &'static str {
        match self {
            Scenario::NPlusOne => "n_plus_one",
            Scenario::LockContention => "lock_contention",
            Scenario::Deadlock => "deadlock",
            Scenario::IdleInTransaction => "idle_in_transaction",
            Scenario::LongTransaction => "long_transaction",
        }
    }

    /// What the scenario does, for the line printed before it runs.
    pub fn describe(self, t: &Thresholds) -> String {
        match self {
            Scenario::NPlusOne => format!(
                "N+1: the users page loads {USERS} users, then each user's orders with one prepared query per user"
            ),
            Scenario::LockContention => format!(
                "lock contention: checkout updates an account and holds the row lock {:.1} s; a payout waits for it",
                LOCK_HOLD.as_secs_f64()
            ),
            Scenario::Deadlock => "deadlock: two transfers update accounts 1 and 2 in opposite orders".into(),
            Scenario::IdleInTransaction => format!(
                "idle in transaction: a request opens a transaction, runs one UPDATE, then waits {:.1} s before COMMIT",
                t.idle_for().as_secs_f64()
            ),
            Scenario::LongTransaction => format!(
                "long transaction: a batch job keeps one transaction open over {:.1} s of slow work",
                t.open_for().as_secs_f64()
            ),
        }
    }

    /// Runs the scenario against `config` (pgvisor's address and login).
    pub async fn run(self, config: &Config, t: &Thresholds) -> Result<(), tokio_postgres::Error> {
        match self {
            Scenario::NPlusOne => n_plus_one(config).await,
            Scenario::LockContention => lock_contention(config).await,
            Scenario::Deadlock => deadlock(config).await,
            Scenario::IdleInTransaction => idle_in_transaction(config, t.idle_for()).await,
            Scenario::LongTransaction => long_transaction(config, t).await,
        }
    }
}

/// Connects as `application_name`, driving the connection on a background task.
async fn connect(config: &Config, application_name: &str) -> Result<Client, tokio_postgres::Error> {
    let mut config = config.clone();
    config.application_name(application_name);
    let (client, connection) = config.connect(NoTls).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// Creates the demo tables (users with orders, two accounts), replacing earlier ones.
pub async fn set_up(config: &Config) -> Result<(), tokio_postgres::Error> {
    let client = connect(config, "pgvisor-demo setup").await?;
    client
        .batch_execute(&format!(
            "DROP TABLE IF EXISTS demo_orders, demo_users, demo_accounts;
             CREATE TABLE demo_users (id int PRIMARY KEY, name text NOT NULL);
             CREATE TABLE demo_orders (id serial PRIMARY KEY, user_id int NOT NULL REFERENCES demo_users,
                                       total numeric(10,2) NOT NULL);
             CREATE INDEX ON demo_orders (user_id);
             CREATE TABLE demo_accounts (id int PRIMARY KEY, balance int NOT NULL);
             INSERT INTO demo_users SELECT i, 'user ' || i FROM generate_series(1, {USERS}) i;
             INSERT INTO demo_orders (user_id, total) SELECT 1 + i % {USERS}, i * 1.5 FROM generate_series(1, 60) i;
             INSERT INTO demo_accounts VALUES (1, 100), (2, 100);"
        ))
        .await
}

async fn n_plus_one(config: &Config) -> Result<(), tokio_postgres::Error> {
    let client = connect(config, "users page").await?;
    let users = client.query("SELECT id, name FROM demo_users ORDER BY id", &[]).await?;
    let orders = client.prepare("SELECT id, total FROM demo_orders WHERE user_id = $1").await?;
    for user in &users {
        let id: i32 = user.get(0);
        client.query(&orders, &[&id]).await?;
    }
    Ok(())
}

async fn lock_contention(config: &Config) -> Result<(), tokio_postgres::Error> {
    let checkout = connect(config, "checkout").await?;
    let payout = connect(config, "payout").await?;
    checkout.batch_execute("BEGIN").await?;
    checkout.execute("UPDATE demo_accounts SET balance = balance - $1 WHERE id = $2", &[&10i32, &1i32]).await?;
    let hold = async {
        tokio::time::sleep(LOCK_HOLD).await;
        checkout.batch_execute("COMMIT").await
    };
    let wait = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        payout.execute("UPDATE demo_accounts SET balance = balance + $1 WHERE id = $2", &[&10i32, &1i32]).await
    };
    let (held, waited) = tokio::join!(hold, wait);
    held?;
    waited?;
    Ok(())
}

async fn deadlock(config: &Config) -> Result<(), tokio_postgres::Error> {
    let a = connect(config, "transfer 1->2").await?;
    let b = connect(config, "transfer 2->1").await?;
    let update = "UPDATE demo_accounts SET balance = balance + $1 WHERE id = $2";
    a.batch_execute("BEGIN").await?;
    b.batch_execute("BEGIN").await?;
    a.execute(update, &[&-5i32, &1i32]).await?;
    b.execute(update, &[&-5i32, &2i32]).await?;
    let (ra, rb) =
        tokio::join!(finish_transfer(&a, 2, Duration::ZERO), finish_transfer(&b, 1, Duration::from_millis(100)));
    ra?;
    rb?;
    // Connections go back to the pool rather than closing at once. pgvisor names a deadlock's
    // sides from the sessions still open when it handles the error.
    tokio::time::sleep(Duration::from_millis(500)).await;
    Ok(())
}

/// The second UPDATE of a transfer, then COMMIT, or ROLLBACK for the one PostgreSQL aborts (40P01).
async fn finish_transfer(client: &Client, id: i32, after: Duration) -> Result<(), tokio_postgres::Error> {
    tokio::time::sleep(after).await;
    let outcome = client.execute("UPDATE demo_accounts SET balance = balance + $1 WHERE id = $2", &[&5i32, &id]).await;
    client.batch_execute(if outcome.is_ok() { "COMMIT" } else { "ROLLBACK" }).await
}

async fn idle_in_transaction(config: &Config, idle_for: Duration) -> Result<(), tokio_postgres::Error> {
    let client = connect(config, "profile form").await?;
    client.batch_execute("BEGIN").await?;
    client.execute("UPDATE demo_users SET name = $1 WHERE id = $2", &[&"Ada", &1i32]).await?;
    tokio::time::sleep(idle_for).await;
    client.batch_execute("COMMIT").await
}

async fn long_transaction(config: &Config, t: &Thresholds) -> Result<(), tokio_postgres::Error> {
    let client = connect(config, "nightly batch").await?;
    client.batch_execute("BEGIN").await?;
    let (open_for, step) = (t.open_for(), t.step());
    let started = tokio::time::Instant::now();
    let mut order = 1i32;
    while started.elapsed() < open_for {
        client.execute("UPDATE demo_orders SET total = total * 1.01 WHERE id = $1", &[&order]).await?;
        order += 1;
        // "Slow work" between statements.
        tokio::time::sleep(step).await;
    }
    client.batch_execute("COMMIT").await
}
