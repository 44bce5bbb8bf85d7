//! The extended protocol's requests: Parse, Bind, Execute and Describe, tracked by statement and
//! portal name so each Execute is timed against the statement it runs.

use std::sync::Arc;
use std::time::Instant;

use protocol::frontend::{Bind, Execute, Parse, Target};

use super::{Pending, Portal, Run, SessionObserver};
use crate::capture::{bind_param_texts, bind_params, chain_hash, Params, ResultFormats};
use crate::events::Statement;
use crate::limits::Limit;

impl SessionObserver {
    /// The statement prepared under `name` (empty: the unnamed statement).
    fn statement_named(&self, name: &[u8]) -> Option<Arc<Statement>> {
        if name.is_empty() {
            self.unnamed_statement.clone()
        } else {
            self.statements.get(name).cloned()
        }
    }

    /// Keeps `portal` under `name` (empty: the unnamed portal).
    fn bind_portal(&mut self, name: &[u8], portal: Portal) {
        if name.is_empty() {
            self.unnamed_portal = Some(portal);
        } else {
            if self.portals.remember(name, portal) {
                self.reached(Limit::Portals);
            }
        }
    }

    pub(super) fn on_parse(&mut self, body: &[u8]) {
        // A Parse larger than the observed prefix: its name and the start of its text.
        let head = Parse::parse(body).map(|p| (p.name, p.sql)).or_else(|_| Parse::head(body));
        let statement = head.ok().map(|(name, sql)| {
            let statement = self.parse(sql).statement;
            if name.is_empty() {
                self.unnamed_statement = Some(statement.clone());
            } else if self.statements.remember(name, statement.clone()) {
                self.reached(Limit::PreparedStatements);
            }
            statement
        });
        self.await_response(Pending::Parse(statement));
    }

    pub(super) fn on_bind(&mut self, body: &[u8]) {
        let statement = match Bind::parse(body) {
            Ok(b) => self.statement_named(b.statement).inspect(|statement| {
                let read = statement.shape.read;
                let params = if read { bind_params(&b) } else { Params::default() };
                let param_texts = (read && self.log_params).then(|| bind_param_texts(&b).into());
                let params_hash = (read && b.param_count() > 0).then(|| chain_hash(b.params().map(|(_, v)| v)));
                let portal = Portal {
                    statement: statement.clone(),
                    params,
                    param_texts,
                    result_formats: ResultFormats::from_codes(b.result_formats),
                    params_hash,
                };
                self.bind_portal(b.portal, portal);
            }),
            // A Bind larger than the observed prefix: its names still lead the body, so the
            // portal runs the right statement (without parameter values).
            Err(_) => Bind::names(body).ok().and_then(|(portal_name, statement_name)| {
                let statement = self.statement_named(statement_name)?;
                let portal = Portal {
                    statement: statement.clone(),
                    params: Params::default(),
                    param_texts: None,
                    result_formats: ResultFormats::TEXT,
                    params_hash: None,
                };
                self.bind_portal(portal_name, portal);
                Some(statement)
            }),
        };
        if statement.is_none() && Bind::names(body).is_ok_and(|(portal, _)| portal.is_empty()) {
            // Unknown statement: the unnamed portal no longer runs the previous one.
            self.unnamed_portal = None;
        }
        self.await_response(Pending::Bind(statement));
    }

    pub(super) fn on_execute(&mut self, body: &[u8], now: Instant) {
        let portal = Execute::parse(body).ok().and_then(|e| {
            if e.portal.is_empty() {
                self.unnamed_portal.as_ref()
            } else {
                self.portals.get(e.portal)
            }
        });
        // Shared, not copied: a portal may be executed again (fetching in chunks).
        let mut run = Run::new(portal.map(|p| p.statement.clone()), now);
        if let Some(p) = portal {
            run.params = p.params;
            run.param_texts = p.param_texts.clone();
            run.result_formats = p.result_formats;
            run.params_hash = p.params_hash;
        }
        self.set_active(run.statement.as_ref());
        self.await_response(Pending::Execute(run));
    }

    pub(super) fn on_describe(&mut self, body: &[u8]) {
        let statement = match Target::parse(body, "Describe") {
            Ok(Target::Statement(name)) => self.statement_named(name),
            Ok(Target::Portal(b"")) => self.unnamed_portal.as_ref().map(|p| p.statement.clone()),
            Ok(Target::Portal(name)) => self.portals.get(name).map(|p| p.statement.clone()),
            Err(_) => None,
        };
        self.await_response(Pending::Describe(statement));
    }
}
