//! The demo's workload: thirteen small programs, each making one classic mistake through pgvisor.
//!
//! Each scenario uses its own connections, named with `application_name` so the advice says
//! which "part of the app" did it, and closes them when done.

use std::time::Duration;

use tokio_postgres::{Client, Config, NoTls};

/// Users the N+1 page loads.
const USERS: i32 = 20;
/// How long the lock scenario's first session holds its row lock.
pub const LOCK_HOLD: Duration = Duration::from_millis(1500);
/// Rows of `demo_events`: large enough for missing_index at its defaults (10,000 analysed rows,
/// and a scan of 10 ms or more: about 30 ms here, so a machine a few times faster still gets
/// there), and a third of them, the purchases, for unbounded_result (10,000 rows).
pub const EVENTS: i32 = 600_000;
/// Distinct customers in `demo_events`: one customer's events are a small share of the table.
const CUSTOMERS: i32 = 3_000;
/// Products of `demo_products`, the wide table `SELECT *` reads.
const PRODUCTS: i32 = 10;
/// Customers the missing-index scenario looks up: fewer than an N+1 burst needs.
const LOOKUPS: i32 = 3;
/// How long a scenario's advice may take to arrive before the demo moves on without it.
const ADVICE_WAIT: Duration = Duration::from_secs(5);
/// The same for missing_index: the Inspector explains one statement a second, and the set-up's
/// and earlier scenarios' slow statements may be queued before the dashboard's.
const EXPLAIN_WAIT: Duration = Duration::from_secs(12);
/// How much longer than `--slow` each run of the slow report takes.
const SLOW_MARGIN: Duration = Duration::from_millis(50);

/// The detector thresholds the proxy runs with; the scenarios go past them.
#[derive(Debug, Clone, Copy)]
pub struct Thresholds {
    /// `--idle-in-transaction`.
    pub idle_in_transaction: Duration,
    /// `--long-transaction`.
    pub long_transaction: Duration,
    /// `--slow`.
    pub slow: Duration,
    /// `--slow-min-calls`.
    pub slow_min_calls: u64,
    /// `--repeated-query-min`.
    pub repeated_query_min: usize,
    /// `--select-star-row-bytes`.
    pub select_star_row_bytes: u64,
    /// `--unparameterized-min`.
    pub unparameterized_min: usize,
    /// `--error-spike-min`.
    pub error_spike_min: usize,
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

    /// How long each run of the slow report takes.
    fn report_takes(&self) -> Duration {
        self.slow + SLOW_MARGIN
    }

    /// Runs of the slow report: the calls slow_query needs.
    fn report_runs(&self) -> u64 {
        self.slow_min_calls.max(1)
    }

    /// Times the header loads the signed-in user: two more than a streak needs.
    fn header_loads(&self) -> usize {
        self.repeated_query_min + 2
    }

    /// Bytes of each product's description: a row well past the select_star threshold.
    fn description_bytes(&self) -> usize {
        usize::try_from(self.select_star_row_bytes).unwrap_or(usize::MAX / 4).saturating_mul(2).max(2048)
    }

    /// Audit entries written with their values in the SQL: ten more distinct texts than needed.
    fn audit_entries(&self) -> usize {
        self.unparameterized_min + 10
    }

    /// Sign-up attempts that hit the unique key: two more errors than a spike needs.
    fn signup_attempts(&self) -> usize {
        self.error_spike_min + 2
    }
}

/// One scenario of the workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// A page lists users, then loads each user's orders with its own query.
    NPlusOne,
    /// Every widget of a page loads the signed-in user again, with the same id.
    RepeatedQuery,
    /// A product page reads every column of a wide table.
    SelectStar,
    /// An export reads a whole table without LIMIT.
    UnboundedResult,
    /// An audit log writes its values into the SQL text.
    Unparameterized,
    /// A report takes longer than `--slow` every time it runs.
    SlowQuery,
    /// A dashboard filters a large table on a column without an index.
    MissingIndex,
    /// A migration creates that index without CONCURRENTLY while the table is in use.
    LockHazardDdl,
    /// A sign-up form retries an INSERT that violates a unique key.
    ErrorSpike,
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
    pub const ALL: [Scenario; 13] = [
        Scenario::NPlusOne,
        Scenario::RepeatedQuery,
        Scenario::SelectStar,
        Scenario::UnboundedResult,
        Scenario::Unparameterized,
        Scenario::SlowQuery,
        Scenario::MissingIndex,
        Scenario::LockHazardDdl,
        Scenario::ErrorSpike,
        Scenario::LockContention,
        Scenario::Deadlock,
        Scenario::IdleInTransaction,
        Scenario::LongTransaction,
    ];

    /// The advice kind it should produce.
    pub fn kind(self) -> &'static str {
        match self {
            Scenario::NPlusOne => "n_plus_one",
            Scenario::RepeatedQuery => "repeated_query",
            Scenario::SelectStar => "select_star",
            Scenario::UnboundedResult => "unbounded_result",
            Scenario::Unparameterized => "unparameterized",
            Scenario::SlowQuery => "slow_query",
            Scenario::MissingIndex => "missing_index",
            Scenario::LockHazardDdl => "lock_hazard_ddl",
            Scenario::ErrorSpike => "error_spike",
            Scenario::LockContention => "lock_contention",
            Scenario::Deadlock => "deadlock",
            Scenario::IdleInTransaction => "idle_in_transaction",
            Scenario::LongTransaction => "long_transaction",
        }
    }

    /// How long its advice may take to arrive before the demo moves on without it.
    pub fn advice_wait(self) -> Duration {
        match self {
            Scenario::MissingIndex => EXPLAIN_WAIT,
            _ => ADVICE_WAIT,
        }
    }

    /// What the scenario does, for the line printed before it runs.
    pub fn describe(self, t: &Thresholds) -> String {
        match self {
            Scenario::NPlusOne => format!(
                "N+1: the users page loads {USERS} users, then each user's orders with one prepared query per user"
            ),
            Scenario::RepeatedQuery => format!(
                "repeated query: {} widgets of a page each load the signed-in user again, same id, same session",
                t.header_loads()
            ),
            Scenario::SelectStar => format!(
                "SELECT *: the product page reads every column of demo_products, a {} kB description included, \
                 to show a name and a price",
                t.description_bytes() / 1024
            ),
            Scenario::UnboundedResult => {
                format!("unbounded result: an export reads all {} purchases from demo_events at once, with no LIMIT", EVENTS / 3)
            }
            Scenario::Unparameterized => format!(
                "unparameterized: an audit log writes {} entries with their values pasted into the SQL text",
                t.audit_entries()
            ),
            Scenario::SlowQuery => format!(
                "slow query: the revenue report runs {} times and takes {} ms each time (pg_sleep stands in for heavy work)",
                t.report_runs(),
                t.report_takes().as_millis()
            ),
            Scenario::MissingIndex => format!(
                "missing index: the dashboard totals {LOOKUPS} customers' events, filtering {EVENTS} rows on \
                 customer_id, which has no index"
            ),
            Scenario::LockHazardDdl => "DDL lock hazard: a migration creates that index without CONCURRENTLY or a \
                                        lock_timeout while the app uses the table"
                .into(),
            Scenario::ErrorSpike => format!(
                "error spike: a sign-up form retries {} times an INSERT whose id already exists (23505)",
                t.signup_attempts()
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
            Scenario::RepeatedQuery => repeated_query(config, t.header_loads()).await,
            Scenario::SelectStar => select_star(config).await,
            Scenario::UnboundedResult => unbounded_result(config).await,
            Scenario::Unparameterized => unparameterized(config, t.audit_entries()).await,
            Scenario::SlowQuery => slow_query(config, t).await,
            Scenario::MissingIndex => missing_index(config).await,
            Scenario::LockHazardDdl => lock_hazard_ddl(config).await,
            Scenario::ErrorSpike => error_spike(config, t.signup_attempts()).await,
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

/// Creates the demo tables, replacing earlier ones: users with orders, two accounts, a large
/// table of events (analysed, so the planner knows its size), wide products and an audit log.
pub async fn set_up(config: &Config, t: &Thresholds) -> Result<(), tokio_postgres::Error> {
    let client = connect(config, "pgvisor-demo setup").await?;
    let description = t.description_bytes();
    client
        .batch_execute(&format!(
            "DROP TABLE IF EXISTS demo_orders, demo_users, demo_accounts, demo_events, demo_products, demo_audit;
             CREATE TABLE demo_users (id int PRIMARY KEY, name text NOT NULL);
             CREATE TABLE demo_orders (id serial PRIMARY KEY, user_id int NOT NULL REFERENCES demo_users,
                                       total numeric(10,2) NOT NULL);
             CREATE INDEX ON demo_orders (user_id);
             CREATE TABLE demo_accounts (id int PRIMARY KEY, balance int NOT NULL);
             CREATE TABLE demo_events (id int PRIMARY KEY, customer_id int NOT NULL, kind text NOT NULL,
                                       amount numeric(10,2) NOT NULL);
             CREATE TABLE demo_products (id int PRIMARY KEY, name text NOT NULL, price numeric(10,2) NOT NULL,
                                         description text NOT NULL);
             CREATE TABLE demo_audit (id serial PRIMARY KEY, user_id int NOT NULL, detail text NOT NULL,
                                      at timestamptz NOT NULL DEFAULT now());
             INSERT INTO demo_users SELECT i, 'user ' || i FROM generate_series(1, {USERS}) i;
             INSERT INTO demo_orders (user_id, total) SELECT 1 + i % {USERS}, i * 1.5 FROM generate_series(1, 60) i;
             INSERT INTO demo_accounts VALUES (1, 100), (2, 100);
             INSERT INTO demo_events
                  SELECT i, 1 + i % {CUSTOMERS}, (ARRAY['view', 'click', 'purchase'])[1 + i % 3], (i % 500) * 0.25
                  FROM generate_series(1, {EVENTS}) i;
             INSERT INTO demo_products
                  SELECT i, 'product ' || i, 9.99 * i, left(repeat('A sturdy, well-made product. ', {description}), {description})
                  FROM generate_series(1, {PRODUCTS}) i;
             ANALYZE demo_users, demo_orders, demo_accounts, demo_events, demo_products;"
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

async fn repeated_query(config: &Config, loads: usize) -> Result<(), tokio_postgres::Error> {
    let client = connect(config, "account page").await?;
    let user = client.prepare("SELECT id, name FROM demo_users WHERE id = $1").await?;
    for _ in 0..loads {
        client.query(&user, &[&1i32]).await?;
    }
    Ok(())
}

async fn select_star(config: &Config) -> Result<(), tokio_postgres::Error> {
    let client = connect(config, "product page").await?;
    client.query("SELECT * FROM demo_products WHERE id = $1", &[&1i32]).await?;
    Ok(())
}

async fn unbounded_result(config: &Config) -> Result<(), tokio_postgres::Error> {
    let client = connect(config, "events export").await?;
    let purchases = "SELECT id, customer_id, amount FROM demo_events WHERE kind = $1 ORDER BY id";
    client.query(purchases, &[&"purchase"]).await?;
    Ok(())
}

async fn unparameterized(config: &Config, entries: usize) -> Result<(), tokio_postgres::Error> {
    let client = connect(config, "audit log").await?;
    for n in 0..entries {
        let user = 1 + n % USERS as usize;
        client
            .batch_execute(&format!(
                "INSERT INTO demo_audit (user_id, detail) VALUES ({user}, 'viewed order {}')",
                1000 + n
            ))
            .await?;
    }
    Ok(())
}

async fn slow_query(config: &Config, t: &Thresholds) -> Result<(), tokio_postgres::Error> {
    let client = connect(config, "revenue report").await?;
    let report = format!(
        "SELECT u.name, sum(o.total) FROM demo_users u JOIN demo_orders o ON o.user_id = u.id, pg_sleep({:.3}) \
         GROUP BY u.name ORDER BY sum(o.total) DESC",
        t.report_takes().as_secs_f64()
    );
    for _ in 0..t.report_runs() {
        client.query(report.as_str(), &[]).await?;
    }
    Ok(())
}

async fn missing_index(config: &Config) -> Result<(), tokio_postgres::Error> {
    let client = connect(config, "customer dashboard").await?;
    let totals = client.prepare("SELECT count(*), sum(amount) FROM demo_events WHERE customer_id = $1").await?;
    for customer in 1..=LOOKUPS {
        client.query(&totals, &[&(customer * 7)]).await?;
    }
    Ok(())
}

async fn lock_hazard_ddl(config: &Config) -> Result<(), tokio_postgres::Error> {
    let client = connect(config, "migration").await?;
    client.batch_execute("CREATE INDEX demo_events_customer_id_idx ON demo_events (customer_id)").await
}

async fn error_spike(config: &Config, attempts: usize) -> Result<(), tokio_postgres::Error> {
    let client = connect(config, "sign-up form").await?;
    let insert = client.prepare("INSERT INTO demo_users (id, name) VALUES ($1, $2)").await?;
    for _ in 0..attempts {
        // Id 1 exists: every attempt fails with 23505, and the form tries again.
        if let Err(e) = client.execute(&insert, &[&1i32, &"Grace"]).await {
            if e.code() != Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) {
                return Err(e);
            }
        }
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
