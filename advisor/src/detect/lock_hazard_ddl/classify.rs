//! Reading a normalised DDL statement: which table it locks, how strongly, and which of the
//! well-known migration hazards it contains (the ones squawk lints for before a migration runs).

use crate::sql_shape;

/// A way a DDL statement holds a strong lock for longer than a catalog update, or breaks the
/// queries of the application running beside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Hazard {
    /// `CREATE INDEX` without `CONCURRENTLY`: writes wait for the whole index build.
    IndexWithoutConcurrently,
    /// `ADD CONSTRAINT ... UNIQUE | PRIMARY KEY` without `USING INDEX`: an index build under
    /// ACCESS EXCLUSIVE.
    UniqueConstraintIndex,
    /// `ADD COLUMN ... DEFAULT` with a volatile value (or serial, identity, stored generated): the
    /// table is rewritten under ACCESS EXCLUSIVE.
    VolatileDefault,
    /// `ALTER COLUMN ... TYPE`: usually a rewrite (and index rebuilds) under ACCESS EXCLUSIVE.
    ColumnType,
    /// `ALTER COLUMN ... SET NOT NULL`: a full scan under ACCESS EXCLUSIVE.
    SetNotNull,
    /// `ADD ... FOREIGN KEY` without `NOT VALID`: a validating scan while writes to both tables wait.
    ForeignKeyValidated,
    /// `ADD ... CHECK` without `NOT VALID`: a validating scan under ACCESS EXCLUSIVE.
    CheckValidated,
    /// `DROP COLUMN`: quick, but queries naming the column start failing.
    DropColumn,
    /// `RENAME COLUMN`: quick, but queries using the old name start failing.
    RenameColumn,
    /// A strong lock requested without `lock_timeout`: behind one long transaction it queues,
    /// and every query on the table queues behind it.
    NoLockTimeout,
}

impl Hazard {
    /// Stable identifier used in evidence.
    pub fn as_str(self) -> &'static str {
        match self {
            Hazard::IndexWithoutConcurrently => "index_without_concurrently",
            Hazard::UniqueConstraintIndex => "unique_constraint_builds_index",
            Hazard::VolatileDefault => "volatile_default_rewrites_table",
            Hazard::ColumnType => "column_type_change",
            Hazard::SetNotNull => "set_not_null_scans_table",
            Hazard::ForeignKeyValidated => "foreign_key_without_not_valid",
            Hazard::CheckValidated => "check_without_not_valid",
            Hazard::DropColumn => "drop_column",
            Hazard::RenameColumn => "rename_column",
            Hazard::NoLockTimeout => "no_lock_timeout",
        }
    }
}

/// The lock a DDL statement takes on its table (PostgreSQL docs, "Explicit Locking", 13.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TableLock {
    /// SHARE UPDATE EXCLUSIVE: reads and writes go on (VALIDATE CONSTRAINT, SET STATISTICS).
    ShareUpdateExclusive,
    /// SHARE: reads go on, writes wait (CREATE INDEX).
    Share,
    /// SHARE ROW EXCLUSIVE: reads go on, writes wait (ADD FOREIGN KEY).
    ShareRowExclusive,
    /// ACCESS EXCLUSIVE: everything waits, plain SELECTs included (most ALTER TABLE forms).
    AccessExclusive,
}

impl TableLock {
    /// The lock mode as PostgreSQL names it.
    pub fn as_str(self) -> &'static str {
        match self {
            TableLock::ShareUpdateExclusive => "SHARE UPDATE EXCLUSIVE",
            TableLock::Share => "SHARE",
            TableLock::ShareRowExclusive => "SHARE ROW EXCLUSIVE",
            TableLock::AccessExclusive => "ACCESS EXCLUSIVE",
        }
    }

    /// True when it blocks writes (and so is worth a lock_timeout).
    pub fn is_strong(self) -> bool {
        self > TableLock::ShareUpdateExclusive
    }
}

/// A DDL statement on one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ddl {
    /// The table, unquoted, without schema (as [`sql_shape::tables`] names it).
    pub table: String,
    /// The strongest lock its clauses take.
    pub lock: TableLock,
    /// Hazards of its clauses, in order, without duplicates ([`Hazard::NoLockTimeout`] is the
    /// caller's to add: it depends on the session).
    pub hazards: Vec<Hazard>,
}

/// Functions whose value differs per row, so a column default using them is computed for every
/// existing row. `now()`, `current_timestamp` and friends are STABLE: since PostgreSQL 11 such a
/// default is evaluated once and stored in the catalog, without a rewrite.
const VOLATILE_FUNCTIONS: [&str; 9] = [
    "RANDOM(",
    "GEN_RANDOM_UUID(",
    "UUID_GENERATE_V1(",
    "UUID_GENERATE_V4(",
    "UUIDV7(",
    "CLOCK_TIMESTAMP(",
    "TIMEOFDAY(",
    "NEXTVAL(",
    "TXID_CURRENT(",
];

/// The DDL statement `text` (normalised SQL) is, when it locks a table strongly enough to matter;
/// `None` for anything else, `CREATE INDEX CONCURRENTLY` included.
pub fn classify(text: &str) -> Option<Ddl> {
    // Runs for every statement: the verb alone rules out almost all of them.
    let verb = sql_shape::verb(text);
    if !verb.eq_ignore_ascii_case("CREATE") && !verb.eq_ignore_ascii_case("ALTER") {
        return None;
    }
    let upper = text.to_ascii_uppercase();
    let words: Vec<&str> = upper.split_whitespace().collect();
    match words.as_slice() {
        ["CREATE", "INDEX", ..] | ["CREATE", "UNIQUE", "INDEX", ..] => create_index(text, &words),
        ["ALTER", "TABLE", ..] => alter_table(text, &upper),
        _ => None,
    }
}

fn create_index(text: &str, words: &[&str]) -> Option<Ddl> {
    if words.contains(&"CONCURRENTLY") {
        return None;
    }
    let on = words.iter().position(|w| *w == "ON")?;
    let original: Vec<&str> = text.split_whitespace().collect();
    let skip_only = usize::from(words.get(on + 1) == Some(&"ONLY"));
    let table = sql_shape::bare_name(original.get(on + 1 + skip_only)?);
    (!table.is_empty()).then(|| Ddl { table, lock: TableLock::Share, hazards: vec![Hazard::IndexWithoutConcurrently] })
}

fn alter_table(text: &str, upper: &str) -> Option<Ddl> {
    // ALTER TABLE [IF EXISTS] [ONLY] name [*] action [, ...]
    // Upper-casing keeps every byte offset, so the words of `upper` locate those of `text`.
    let words: Vec<(usize, &str)> = words_at(upper).collect();
    let mut at = 2;
    if matches!(words.get(at..at + 2), Some([(_, "IF"), (_, "EXISTS")])) {
        at += 2;
    }
    if matches!(words.get(at), Some((_, "ONLY"))) {
        at += 1;
    }
    let &(name_start, name) = words.get(at)?;
    let name_end = name_start + name.len();
    let table = sql_shape::bare_name(text.get(name_start..name_end)?);
    let actions = text.get(name_end..)?.trim_start().trim_start_matches('*');
    if table.is_empty() || actions.trim().is_empty() {
        return None;
    }
    let mut lock = TableLock::ShareUpdateExclusive;
    let mut hazards = Vec::new();
    for clause in split_clauses(&actions.to_ascii_uppercase()) {
        let (clause_lock, hazard) = alter_clause(&clause);
        lock = lock.max(clause_lock);
        if let Some(h) = hazard.filter(|h| !hazards.contains(h)) {
            hazards.push(h);
        }
    }
    Some(Ddl { table, lock, hazards })
}

/// The whitespace-separated words of `text` (as `split_whitespace` finds them) with their byte
/// offsets.
fn words_at(text: &str) -> impl Iterator<Item = (usize, &str)> {
    let mut from = 0;
    std::iter::from_fn(move || {
        let rest = text.get(from..)?;
        let start = from + rest.find(|c: char| !c.is_whitespace())?;
        let word = text.get(start..)?;
        let word = word.split(char::is_whitespace).next().unwrap_or(word);
        from = start + word.len();
        Some((start, word))
    })
}

/// The lock and hazard of one ALTER TABLE action (upper-cased).
fn alter_clause(clause: &str) -> (TableLock, Option<Hazard>) {
    use TableLock::*;
    let words: Vec<&str> = clause.split_whitespace().collect();
    let has = |w: &str| words.contains(&w);
    let not_valid = clause.contains("NOT VALID");
    match words.as_slice() {
        ["ADD", ..] if has("FOREIGN") || (has("CONSTRAINT") && has("REFERENCES")) => {
            (ShareRowExclusive, (!not_valid).then_some(Hazard::ForeignKeyValidated))
        }
        ["ADD", "CHECK", ..] | ["ADD", "CONSTRAINT", _, "CHECK", ..] => {
            (AccessExclusive, (!not_valid).then_some(Hazard::CheckValidated))
        }
        ["ADD", "CONSTRAINT", _, "UNIQUE" | "PRIMARY", ..] | ["ADD", "UNIQUE" | "PRIMARY", ..] => {
            (AccessExclusive, (!clause.contains("USING INDEX")).then_some(Hazard::UniqueConstraintIndex))
        }
        ["ADD", ..] => (AccessExclusive, rewrites_new_column(clause).then_some(Hazard::VolatileDefault)),
        ["VALIDATE", "CONSTRAINT", ..] => (ShareUpdateExclusive, None),
        ["ALTER", ..] if has("STATISTICS") => (ShareUpdateExclusive, None),
        ["ALTER", ..] if has("TYPE") => (AccessExclusive, Some(Hazard::ColumnType)),
        ["ALTER", ..] if clause.contains("SET NOT NULL") => (AccessExclusive, Some(Hazard::SetNotNull)),
        ["DROP", "CONSTRAINT", ..] => (AccessExclusive, None),
        ["DROP", ..] => (AccessExclusive, Some(Hazard::DropColumn)),
        ["RENAME", "TO", ..] | ["RENAME", "CONSTRAINT", ..] => (AccessExclusive, None),
        ["RENAME", ..] => (AccessExclusive, Some(Hazard::RenameColumn)),
        ["CLUSTER", "ON", ..] | ["SET", "WITHOUT", "CLUSTER"] => (ShareUpdateExclusive, None),
        _ => (AccessExclusive, None),
    }
}

/// An added column whose value must be computed for every existing row.
fn rewrites_new_column(clause: &str) -> bool {
    let default = clause.find(" DEFAULT ").map(|i| &clause[i..]);
    let volatile_default = default.is_some_and(|d| {
        let compact: String = d.chars().filter(|c| !c.is_whitespace()).collect();
        VOLATILE_FUNCTIONS.iter().any(|f| compact.contains(f))
    });
    let words: Vec<&str> = clause.split_whitespace().collect();
    let serial = words.iter().any(|w| matches!(*w, "SERIAL" | "BIGSERIAL" | "SMALLSERIAL"));
    let generated = clause.contains(" GENERATED ") && (clause.contains(" STORED") || clause.contains(" IDENTITY"));
    volatile_default || serial || generated
}

/// ALTER TABLE actions, split on the commas outside parentheses.
fn split_clauses(actions: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut current = String::new();
    for c in actions.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(std::mem::take(&mut current).trim().to_string());
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    out.push(current.trim().to_string());
    out.retain(|c| !c.is_empty());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(sql: &str) -> String {
        crate::fingerprint(sql.as_bytes()).text
    }

    fn hazards(sql: &str) -> Vec<Hazard> {
        classify(&norm(sql)).unwrap_or_else(|| panic!("not DDL: {sql}")).hazards
    }

    #[test]
    fn index_builds() {
        let d = classify(&norm("create index idx_a on public.Orders (a)")).unwrap();
        assert_eq!(
            (d.table.as_str(), d.lock, d.hazards),
            ("orders", TableLock::Share, vec![Hazard::IndexWithoutConcurrently])
        );
        assert_eq!(classify(&norm("CREATE UNIQUE INDEX i ON ONLY \"T\" USING btree (a)")).unwrap().table, "T");
        assert_eq!(classify(&norm("create index concurrently i on t (a)")), None);
        assert_eq!(classify(&norm("create unique index concurrently if not exists i on t (a)")), None);
    }

    #[test]
    fn alter_table_hazards() {
        use Hazard::*;
        assert_eq!(hazards("alter table t add column c uuid default gen_random_uuid()"), vec![VolatileDefault]);
        assert_eq!(hazards("alter table t add c float8 default random ()"), vec![VolatileDefault]);
        assert_eq!(hazards("alter table t add column id bigserial"), vec![VolatileDefault]);
        // STABLE and constant defaults are stored in the catalog: no rewrite, only the lock.
        assert_eq!(hazards("alter table t add column c timestamptz default now()"), vec![]);
        assert_eq!(hazards("alter table only t add column c int not null default 0"), vec![]);
        assert_eq!(hazards("alter table t alter column c type bigint"), vec![ColumnType]);
        assert_eq!(hazards("alter table t alter c set data type text"), vec![ColumnType]);
        assert_eq!(hazards("alter table t alter column c set not null"), vec![SetNotNull]);
        assert_eq!(
            hazards("alter table t add constraint fk foreign key (u) references users(id)"),
            vec![ForeignKeyValidated]
        );
        assert_eq!(hazards("alter table t add foreign key (u) references users(id) not valid"), vec![]);
        assert_eq!(hazards("alter table t add constraint c check (a > 0)"), vec![CheckValidated]);
        assert_eq!(hazards("alter table t add constraint c check (a > 0) not valid"), vec![]);
        assert_eq!(hazards("alter table t add constraint u unique (a, b)"), vec![UniqueConstraintIndex]);
        assert_eq!(hazards("alter table t add constraint u unique using index t_a"), vec![]);
        assert_eq!(hazards("alter table t drop column c"), vec![DropColumn]);
        assert_eq!(hazards("alter table if exists t drop c"), vec![DropColumn]);
        assert_eq!(hazards("alter table t drop constraint c"), vec![]);
        assert_eq!(hazards("alter table t rename column a to b"), vec![RenameColumn]);
        assert_eq!(
            hazards(
                "alter table t alter column a type int, add constraint k check (a in (1, 2)), alter b set not null"
            ),
            vec![ColumnType, CheckValidated, SetNotNull]
        );
    }

    #[test]
    fn any_whitespace_between_words() {
        // Unicode spaces separate words for `split_whitespace`: the table is found after them.
        let d = classify("ALTER\u{a0}\u{3000}\u{a0}TABLE t ADD x int").unwrap();
        assert_eq!((d.table.as_str(), d.lock), ("t", TableLock::AccessExclusive));
        let d = classify("  ALTER TABLE\u{2003}IF EXISTS\u{3000}ONLY  w€ ADD x int").unwrap();
        assert_eq!(d.table, "w€");
        assert_eq!(classify("ALTER TABLE only_users DROP c").unwrap().table, "only_users");
        assert_eq!(classify("ALTER\u{3000}TABLE"), None);
    }

    #[test]
    fn lock_modes() {
        let lock = |sql: &str| classify(&norm(sql)).unwrap().lock;
        assert_eq!(lock("alter table t validate constraint c"), TableLock::ShareUpdateExclusive);
        assert!(!lock("alter table t alter column a set statistics 500").is_strong());
        assert_eq!(
            lock("alter table t add foreign key (u) references users(id) not valid"),
            TableLock::ShareRowExclusive
        );
        assert_eq!(lock("alter table t add column c int"), TableLock::AccessExclusive);
        assert_eq!(classify(&norm("select * from t")), None);
        assert_eq!(classify(&norm("create table t (a int)")), None);
    }
}
