//! The server's side: each response is paired with the request it answers (the FIFO of
//! pending requests), its statement timed and emitted, its rows sampled, and the session's
//! published activity kept current (ReadyForQuery, errors, deadlocks).

use std::sync::Arc;
use std::time::Instant;

use foldhash::HashMap;

use protocol::backend::{
    BackendKeyData, CommandComplete, DataRow, ErrorFields, ParameterStatus, ReadyForQuery, RowDescription,
    TransactionStatus,
};
use protocol::{BackendTag, ScannedMessage};

use super::{
    cache, ColumnNames, Pending, Run, SessionObserver, DEADLOCK, EXPLAIN_OFFER_EVERY, MAX_DESCRIPTIONS,
    MAX_EXPLAIN_OFFERS,
};
use crate::capture::{self, ResultFormats, ResultSample};
use crate::detect::n_plus_one::Execution;
use crate::detect::session_checks::FinishedStatement;
use crate::detect::transactions::session_label;
use crate::events::{Caller, Event, ExplainSample, SessionOrigin, SqlState, Statement, StatementEvent};
use crate::fingerprint::Fingerprint;
use crate::sessions::SessionState;
use crate::tags::Tags;

impl SessionObserver {
    /// A message from the server, seen as it is forwarded.
    pub fn backend(&mut self, m: ScannedMessage<'_>) {
        match BackendTag::from_byte(m.tag) {
            BackendTag::DataRow => self.data_row(m.body, m.body_len),
            BackendTag::CommandComplete => {
                // The server left copy-in mode (it may end it itself, on an error too).
                self.copy_in = false;
                let rows = CommandComplete::parse(m.body).ok().and_then(|c| c.rows());
                self.finish_run(rows, None);
            }
            BackendTag::EmptyQueryResponse => self.finish_run(Some(0), None),
            BackendTag::PortalSuspended => self.finish_run(None, None),
            BackendTag::ErrorResponse => {
                self.copy_in = false;
                let fields = ErrorFields::parse(m.body).ok();
                let state = fields.and_then(|e| e.sqlstate()).and_then(SqlState::parse);
                if state == Some(DEADLOCK) {
                    let detail = fields.and_then(|f| f.detail()).map(|d| d.into_owned()).unwrap_or_default();
                    self.deadlock(detail);
                }
                self.fail(state);
            }
            BackendTag::ParseComplete | BackendTag::BindComplete | BackendTag::CloseComplete => {
                if matches!(self.pending.front(), Some(Pending::Parse(_) | Pending::Bind(_) | Pending::Close)) {
                    self.pending.pop_front();
                }
            }
            BackendTag::RowDescription => self.row_description(m.body),
            BackendTag::CopyInResponse => self.copy_in_started(),
            BackendTag::NoData => {
                if matches!(self.pending.front(), Some(Pending::Describe(_))) {
                    self.pending.pop_front();
                }
            }
            BackendTag::ReadyForQuery => {
                self.copy_in = false;
                self.skipping_to_sync = false;
                if let Ok(ready) = ReadyForQuery::parse(m.body) {
                    self.ready(ready.status);
                }
            }
            BackendTag::BackendKeyData => {
                if let Ok(key) = BackendKeyData::parse(m.body) {
                    self.entry.update(&mut self.record, |a| a.backend_pid = Some(key.pid));
                    let label = session_label(&self.record.identity, Some(key.pid));
                    self.origin = Arc::new(SessionOrigin::of(&self.record.identity, Some(key.pid)));
                    self.n_plus_one.set_label(label.clone());
                    self.checks.set_label(label);
                }
            }
            BackendTag::ParameterStatus => {
                if let Ok(p) = ParameterStatus::parse(m.body) {
                    if p.name == b"application_name" {
                        let name = String::from_utf8_lossy(p.value);
                        self.application_name = name.as_ref().into();
                        let pid = self.record.activity.backend_pid;
                        self.entry.update_identity(&mut self.record, |i| i.application_name.replace_range(.., &name));
                        self.origin = Arc::new(SessionOrigin::of(&self.record.identity, pid));
                    }
                }
            }
            _ => {}
        }
    }

    fn row_description(&mut self, body: &[u8]) {
        let Ok(fields) = RowDescription::field_count(body) else { return };
        // Drivers describe the portal on every execution, and a simple query repeats: column
        // names already known for the statement are neither decoded nor built again.
        let known = |descriptions: &HashMap<Fingerprint, ColumnNames>, fp: &Fingerprint| {
            descriptions.get(fp).filter(|names| names.len() == fields.min(capture::MAX_SAMPLED_COLUMNS)).cloned()
        };
        match self.pending.front_mut() {
            Some(Pending::Describe(statement)) => {
                if let Some(s) = statement.take() {
                    if known(&self.descriptions, &s.fingerprint).is_none() {
                        remember_description(&mut self.descriptions, s.fingerprint, body);
                    }
                }
                self.pending.pop_front();
            }
            Some(Pending::Query { runs, failed: false }) => {
                let Some(run) = runs.front_mut() else { return };
                let Some(statement) = &run.statement else { return };
                let names = match known(&self.descriptions, &statement.fingerprint) {
                    Some(names) => names,
                    None => remember_description(&mut self.descriptions, statement.fingerprint, body),
                };
                run.sample = Some(ResultSample::with_names(&names, ResultFormats::TEXT));
            }
            _ => {}
        }
    }

    fn data_row(&mut self, body: &[u8], body_len: usize) {
        let (descriptions, kept_bytes) = (&self.descriptions, &self.kept_bytes);
        let run = match self.pending.front_mut() {
            Some(Pending::Execute(run)) => run,
            Some(Pending::Query { runs, failed: false }) => match runs.front_mut() {
                Some(run) => run,
                None => return,
            },
            _ => return,
        };
        run.rows += 1;
        run.bytes += body_len as u64;
        if run.columns == 0 {
            // The field count leads every DataRow (Int16).
            run.columns = body.get(..2).map_or(0, |n| usize::from(u16::from_be_bytes([n[0], n[1]])));
        }
        let Some(statement) = &run.statement else { return };
        if run.rows > capture::MAX_SAMPLED_ROWS || run.unsampled {
            return;
        }
        if run.sample.is_none() && !statement.shape.read {
            // Asked once per execution, not per row: only reads can be N+1 parents.
            run.unsampled = true;
            return;
        }
        let Ok(row) = DataRow::parse(body) else { return };
        let sample = run.sample.get_or_insert_with(|| match descriptions.get(&statement.fingerprint) {
            Some(names) => ResultSample::with_names(names, run.result_formats),
            None => ResultSample::with_names(&Arc::from([]), run.result_formats),
        });
        if run.rows == 2 {
            if let Some(&bytes) = kept_bytes.get(&statement.fingerprint) {
                sample.expect(bytes as usize);
            }
        }
        sample.add(&row);
    }

    /// A completion for the statement at the front; `rows` from the command tag when it has one.
    fn finish_run(&mut self, rows: Option<u64>, error: Option<SqlState>) {
        let run = match self.pending.front() {
            Some(Pending::Execute(_)) => match self.pending.pop_front() {
                Some(Pending::Execute(run)) => run,
                _ => unreachable!("front was an Execute"),
            },
            Some(Pending::Query { failed: false, .. }) => match self.pending.pop_run() {
                Some(run) => run,
                None => return,
            },
            _ => return,
        };
        let next = match self.pending.front() {
            Some(Pending::Execute(run)) => run.statement.clone(),
            Some(Pending::Query { runs, failed: false }) => runs.front().and_then(|r| r.statement.clone()),
            _ => None,
        };
        if next.is_some() {
            self.set_active(next.as_ref());
        }
        self.emit(run, rows, error);
    }

    fn emit(&mut self, run: Run, rows: Option<u64>, error: Option<SqlState>) {
        let now = self.clock.now();
        let started = run.sent.max(self.last_done);
        self.last_done = now;
        let Some(statement) = run.statement else { return };
        self.entry.update(&mut self.record, |a| a.statement_finished(&statement.text));
        let duration = now.saturating_duration_since(started);
        // A portal suspended at its row limit (a driver fetching in chunks) is one statement still
        // running, not a finished one: only a completion with a row count is checked.
        let completed = rows.is_some();
        let rows = rows.unwrap_or(run.rows);
        let literals = run.params_hash.filter(|_| run.simple);
        let resets = self.events.resets();
        if resets != self.resets_seen {
            // Statistics and advice were reset: what this session reported may be again.
            self.resets_seen = resets;
            self.checks.forget_reported();
            self.explain_offered.clear();
        }
        if error.is_none() && completed {
            let finished = FinishedStatement {
                statement: statement.clone(),
                params: run.params_hash,
                rows,
                bytes: run.bytes,
                columns: run.columns,
                duration,
                at: now,
            };
            for finding in self.checks.observe(&finished) {
                self.events.send(Event::Finding(finding, self.caller(statement.tags.as_ref())));
            }
        }
        if let Some(sample) = run.sample.as_ref().filter(|_| run.rows > 1) {
            let bytes = u32::try_from(sample.kept_bytes()).unwrap_or(u32::MAX);
            cache(&mut self.kept_bytes, statement.fingerprint, bytes, MAX_DESCRIPTIONS);
        }
        let digest = run.sample.map(|s| Arc::new(s.finish()));
        if error.is_none() && (!run.params.is_empty() || digest.is_some()) {
            let execution = Execution {
                statement: statement.clone(),
                style: statement.style,
                params: run.params,
                param_texts: run.param_texts,
                result: digest.clone().unwrap_or_default(),
                rows,
                duration,
                at: now,
            };
            for finding in self.n_plus_one.observe(execution) {
                self.events.send(Event::Finding(finding, self.caller(statement.tags.as_ref())));
            }
        }
        if error.is_none() && duration >= self.explain_min && self.explain_due(statement.text_key, now) {
            if let Some(sql) = self.raw_texts.get(&statement.text_key) {
                let identity = &self.record.identity;
                let (database, user) = (identity.database.as_str().into(), identity.user.as_str().into());
                let sample = ExplainSample { statement: statement.clone(), sql: sql.clone(), database, user };
                self.events.send(Event::ExplainCandidate(sample));
            }
        }
        self.events.send(Event::Statement(StatementEvent {
            session: self.id,
            statement,
            duration,
            rows,
            error,
            finished_at: self.clock.wall(),
            literals,
            application_name: self.application_name.clone(),
            params: run.params,
            result: digest.filter(|d| !d.is_empty() && rows > 0 && self.events.admit_result()),
            origin: self.origin.clone(),
        }));
    }

    /// True (and noted) when `fp` was not offered for an EXPLAIN in the last minute.
    fn explain_due(&mut self, text_key: u64, now: Instant) -> bool {
        if self.explain_offered.get(&text_key).is_some_and(|t| now.saturating_duration_since(*t) < EXPLAIN_OFFER_EVERY)
        {
            return false;
        }
        if self.explain_offered.len() >= MAX_EXPLAIN_OFFERS {
            self.explain_offered.clear();
        }
        self.explain_offered.insert(text_key, now);
        true
    }

    /// The server entered copy-in mode: Syncs the client already sent behind the COPY's Execute
    /// are ignored by the server, so no ReadyForQuery answers them.
    fn copy_in_started(&mut self) {
        self.copy_in = true;
        if matches!(self.pending.front(), Some(Pending::Execute(_))) {
            let mut index = 0;
            self.pending.retain(|p| {
                index += 1;
                index == 1 || !matches!(p, Pending::Sync)
            });
        }
    }

    pub(super) fn caller(&self, tags: Option<&Arc<Tags>>) -> Caller {
        Caller { tags: tags.cloned(), application_name: self.application_name.clone() }
    }

    fn deadlock(&mut self, detail: String) {
        let statement = match self.pending.front() {
            Some(Pending::Execute(run)) => run.statement.clone(),
            Some(Pending::Query { runs, .. }) => runs.front().and_then(|r| r.statement.clone()),
            _ => None,
        };
        let transaction = self.record.activity.transaction_statements.iter().map(|s| s.to_string()).collect();
        self.events.send(Event::Deadlock {
            session: self.id,
            statement: statement.map(|s| s.text.to_string()).unwrap_or_default(),
            detail,
            transaction,
        });
    }

    /// An ErrorResponse: the request at the front failed; in the extended protocol the server
    /// then skips everything up to the next Sync.
    fn fail(&mut self, error: Option<SqlState>) {
        match self.pending.front() {
            None | Some(Pending::Sync) | Some(Pending::FunctionCall) => {}
            Some(Pending::Query { .. }) => {
                if let Some(run) = self.pending.fail_query() {
                    self.emit(run, Some(0), error);
                }
            }
            Some(_) => {
                let failed = self.pending.pop_front();
                while !matches!(self.pending.front(), None | Some(Pending::Sync)) {
                    self.pending.pop_front();
                }
                // No Sync sent yet: what the client sends until it is, the server discards.
                self.skipping_to_sync = self.pending.is_empty();
                let run = match failed {
                    Some(Pending::Execute(run)) => Some(run),
                    Some(Pending::Parse(statement)) | Some(Pending::Bind(statement)) => {
                        Some(Run::new(statement, self.last_done))
                    }
                    _ => None,
                };
                if let Some(run) = run {
                    self.emit(run, Some(0), error);
                }
            }
        }
    }

    /// ReadyForQuery ends a Query, a Sync or a FunctionCall cycle.
    fn ready(&mut self, status: TransactionStatus) {
        while let Some(p) = self.pending.pop_front() {
            if matches!(p, Pending::Sync | Pending::Query { .. } | Pending::FunctionCall) {
                break;
            }
        }
        self.last_done = self.clock.now();
        let previous = std::mem::replace(&mut self.status, status);
        let state = match (status, self.pending.is_empty()) {
            (_, false) => SessionState::Active,
            (TransactionStatus::Idle, true) => SessionState::Idle,
            (TransactionStatus::InTransaction, true) => SessionState::IdleInTransaction,
            (TransactionStatus::Failed, true) => SessionState::IdleInTransactionFailed,
        };
        let (done, now) = (self.pending.is_empty(), self.clock.wall());
        self.entry.update(&mut self.record, |a| a.ready(state, status, previous, done, now));
    }

    pub(super) fn set_active(&mut self, statement: Option<&Arc<Statement>>) {
        let (text, status, now) = (statement.map(|s| &s.text), self.status, self.clock.wall());
        self.entry.update(&mut self.record, |a| a.statement_started(text, status, now));
    }
}

/// Keeps the column names of a RowDescription `body` for a statement (bounded) and returns them
/// (none when the body does not decode).
fn remember_description(
    descriptions: &mut HashMap<Fingerprint, ColumnNames>,
    fingerprint: Fingerprint,
    body: &[u8],
) -> ColumnNames {
    let names: ColumnNames = match RowDescription::parse(body) {
        Ok(description) => capture::column_names(&description).into(),
        Err(_) => return Arc::from([]),
    };
    if descriptions.len() >= MAX_DESCRIPTIONS {
        descriptions.clear();
    }
    descriptions.insert(fingerprint, names.clone());
    names
}
