//! Prepared statements and portals by name, as PostgreSQL names them, within a count and a
//! budget of statement text per session.

use std::sync::Arc;

use foldhash::{HashMap, HashMapExt};

use super::{Portal, MAX_NAMED, MAX_NAMED_TEXT_BYTES};
use crate::events::Statement;

/// Bytes of a prepared statement's or portal's name that PostgreSQL reads (NAMEDATALEN - 1).
const NAME_BYTES: usize = 63;

/// The part of a statement's or portal's name that names it: PostgreSQL keys both by their
/// first [`NAME_BYTES`] bytes, so longer names that start alike are one name to it, and a
/// session's names cost at most that much each here.
fn name_key(name: &[u8]) -> &[u8] {
    name.get(..NAME_BYTES).unwrap_or(name)
}

/// Prepared statements or portals by name ([`name_key`]), at most [`MAX_NAMED`] of them holding
/// at most [`MAX_NAMED_TEXT_BYTES`] of statement text.
pub(super) struct Named<T> {
    pub(super) by_name: HashMap<Vec<u8>, T>,
    /// The text bytes of the statements held (a statement held twice counts twice).
    pub(super) text_bytes: usize,
}

impl<T> Default for Named<T> {
    fn default() -> Self {
        Self { by_name: HashMap::new(), text_bytes: 0 }
    }
}

/// What [`Named`] keeps: something prepared from a statement.
pub(super) trait Prepared {
    fn statement(&self) -> &Statement;
}

impl Prepared for Arc<Statement> {
    fn statement(&self) -> &Statement {
        self
    }
}

impl Prepared for Portal {
    fn statement(&self) -> &Statement {
        &self.statement
    }
}

/// The bytes of a statement's texts.
pub(super) fn text_bytes(statement: &Statement) -> usize {
    statement.text.len().saturating_add(statement.display.len())
}

impl<T: Prepared> Named<T> {
    pub(super) fn get(&self, name: &[u8]) -> Option<&T> {
        self.by_name.get(name_key(name))
    }

    /// Keeps `value` under `name`; true when that meant forgetting all the others first (the
    /// count or the text budget was reached).
    pub(super) fn remember(&mut self, name: &[u8], value: T) -> bool {
        let key = name_key(name);
        let bytes = text_bytes(value.statement());
        // A name held already is replaced (a client may Parse it again, even if the server then
        // refuses): its old text's bytes go, the new text's come.
        let replaced = self.by_name.get(key).map(|old| text_bytes(old.statement()));
        let after = self.text_bytes.saturating_sub(replaced.unwrap_or(0)).saturating_add(bytes);
        let forget_all = (replaced.is_none() && self.by_name.len() >= MAX_NAMED) || after > MAX_NAMED_TEXT_BYTES;
        if forget_all {
            // Unbounded prepared-statement churn: forget them all rather than grow without end.
            self.by_name.clear();
            self.text_bytes = 0;
        }
        if let Some(old) = self.by_name.insert(key.to_vec(), value) {
            self.text_bytes = self.text_bytes.saturating_sub(text_bytes(old.statement()));
        }
        self.text_bytes = self.text_bytes.saturating_add(bytes);
        forget_all
    }

    pub(super) fn forget(&mut self, name: &[u8]) {
        if let Some(old) = self.by_name.remove(name_key(name)) {
            self.text_bytes = self.text_bytes.saturating_sub(text_bytes(old.statement()));
        }
    }
}
