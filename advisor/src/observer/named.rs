//! What a session holds made from statements, within a count and a budget of statement text:
//! prepared statements and portals by name (as PostgreSQL names them), and fingerprinted texts.

use std::borrow::Borrow;
use std::hash::Hash;
use std::sync::Arc;

use foldhash::{HashMap, HashMapExt};

use super::{Parsed, Portal, MAX_NAMED, MAX_NAMED_TEXT_BYTES};
use crate::events::Statement;

/// Bytes of a prepared statement's or portal's name that PostgreSQL reads (NAMEDATALEN - 1).
const NAME_BYTES: usize = 63;

/// The part of a statement's or portal's name that names it: PostgreSQL keys both by their
/// first [`NAME_BYTES`] bytes, so longer names that start alike are one name to it, and a
/// session's names cost at most that much each here.
fn name_key(name: &[u8]) -> &[u8] {
    name.get(..NAME_BYTES).unwrap_or(name)
}

/// Things made from statements, by key, within a count and a budget of the statements' text:
/// taking one more past either forgets them all at once.
pub(super) struct Held<K, T> {
    pub(super) entries: HashMap<K, T>,
    /// The text bytes of the statements held (a statement held twice counts twice).
    pub(super) text_bytes: usize,
    max_entries: usize,
    max_text_bytes: usize,
}

/// Prepared statements or portals by name ([`name_key`]), at most [`MAX_NAMED`] of them holding
/// at most [`MAX_NAMED_TEXT_BYTES`] of statement text.
pub(super) struct Named<T> {
    pub(super) held: Held<Vec<u8>, T>,
}

impl<T> Default for Named<T> {
    fn default() -> Self {
        Self { held: Held::new(MAX_NAMED, MAX_NAMED_TEXT_BYTES) }
    }
}

/// What [`Held`] keeps: something made from a statement.
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

impl Prepared for Parsed {
    fn statement(&self) -> &Statement {
        &self.statement
    }
}

/// The bytes of a statement's texts.
fn text_bytes(statement: &Statement) -> usize {
    statement.text.len().saturating_add(statement.display.len())
}

impl<T: Prepared> Named<T> {
    pub(super) fn get(&self, name: &[u8]) -> Option<&T> {
        self.held.get(name_key(name))
    }

    /// Keeps `value` under `name`; true when that meant forgetting all the others first.
    pub(super) fn remember(&mut self, name: &[u8], value: T) -> bool {
        self.held.remember(name_key(name).to_vec(), value)
    }

    pub(super) fn forget(&mut self, name: &[u8]) {
        self.held.forget(name_key(name));
    }
}

impl<K, T> Held<K, T> {
    /// At most `max_entries`, holding at most `max_text_bytes` of statement text.
    pub(super) fn new(max_entries: usize, max_text_bytes: usize) -> Self {
        Self { entries: HashMap::new(), text_bytes: 0, max_entries, max_text_bytes }
    }
}

impl<K: Hash + Eq, T: Prepared> Held<K, T> {
    pub(super) fn get<Q: Hash + Eq + ?Sized>(&self, key: &Q) -> Option<&T>
    where
        K: Borrow<Q>,
    {
        self.entries.get(key)
    }

    /// Keeps `value` under `key`; true when that meant forgetting all the others first (the
    /// count or the text budget was reached).
    pub(super) fn remember(&mut self, key: K, value: T) -> bool {
        let bytes = text_bytes(value.statement());
        // A key held already is replaced (a client may Parse a name again, even if the server
        // then refuses): its old text's bytes go, the new text's come.
        let replaced = self.entries.get(&key).map(|old| text_bytes(old.statement()));
        let after = self.text_bytes.saturating_sub(replaced.unwrap_or(0)).saturating_add(bytes);
        let forget_all = (replaced.is_none() && self.entries.len() >= self.max_entries) || after > self.max_text_bytes;
        if forget_all {
            // Unbounded churn: forget them all rather than grow without end.
            self.entries.clear();
            self.text_bytes = 0;
        }
        if let Some(old) = self.entries.insert(key, value) {
            self.text_bytes = self.text_bytes.saturating_sub(text_bytes(old.statement()));
        }
        self.text_bytes = self.text_bytes.saturating_add(bytes);
        forget_all
    }

    pub(super) fn forget<Q: Hash + Eq + ?Sized>(&mut self, key: &Q)
    where
        K: Borrow<Q>,
    {
        if let Some(old) = self.entries.remove(key) {
            self.text_bytes = self.text_bytes.saturating_sub(text_bytes(old.statement()));
        }
    }
}
