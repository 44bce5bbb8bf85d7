//! What the fingerprint hashes: the normalised text, with a few parts of it left out, replaced or
//! reordered where pg_query ignores them but the detectors still read them (a role or temporary
//! table name, a schema, a limit clause of constants, the order of an INSERT's column list). Statements without
//! such parts hash their normalised text as it is.

/// How one range of the normalised text enters the hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Edit {
    /// Not at all.
    Omit,
    /// As these bytes instead.
    Replace(&'static [u8]),
    /// As `LIMIT $n`: a limit clause of constants written another way (`OFFSET 5`, `LIMIT ALL`,
    /// `FETCH FIRST 5 ROWS ONLY`, `LIMIT 5 OFFSET 10`), numbered as its first constant.
    Limit(u32),
    /// Without its runs of two or more digits (a relation name: `events_2024_01`, partitions).
    DigitRuns,
    /// As the set of its comma-separated items: order and repeats do not count (column lists,
    /// a SELECT's target list).
    Unordered,
    /// A GROUP BY clause: items that are a lone constant do not count, nor does the clause when
    /// only those are left (`GROUP BY 1`).
    GroupBy,
}

/// An [`Edit`] of the output range `start..end`.
#[derive(Debug, Clone, Copy)]
pub(super) struct KeyEdit {
    pub(super) start: usize,
    pub(super) end: usize,
    pub(super) edit: Edit,
}

/// Hashes `out` with `edits` applied. Edits may nest (a schema left out inside a target list
/// that is reordered); one that crosses the end of an enclosing one is ignored.
pub(super) fn hash(out: &[u8], edits: &mut [KeyEdit], key: &mut Vec<u8>) -> u64 {
    if edits.is_empty() {
        return xxhash_rust::xxh3::xxh3_64(out);
    }
    // Enclosing edits first: by start, then the longest.
    edits.sort_by(|a, b| a.start.cmp(&b.start).then(b.end.cmp(&a.end)));
    key.clear();
    if omissions_only(out, edits, key) {
        // The common case (`INNER JOIN`, a schema): the text without some ranges.
        return xxhash_rust::xxh3::xxh3_64(key);
    }
    key.clear();
    let mut next = 0;
    render(out, edits, &mut next, 0, out.len(), key, 0);
    xxhash_rust::xxh3::xxh3_64(key)
}

/// When `edits` (sorted) are all [`Edit::Omit`], in range and apart, writes `out` without them
/// to `key` and says so; otherwise [`render`] handles them.
fn omissions_only(out: &[u8], edits: &[KeyEdit], key: &mut Vec<u8>) -> bool {
    let mut pos = 0;
    for e in edits {
        if e.edit != Edit::Omit || e.start < pos || e.end < e.start || e.end > out.len() {
            return false;
        }
        key.extend_from_slice(&out[pos..e.start]);
        pos = e.end;
    }
    key.extend_from_slice(&out[pos..]);
    true
}

/// Edits nested deeper than this are not applied (their text counts as written): each level
/// copies what it encloses, so unbounded nesting (`GROUP BY (SELECT ... GROUP BY (...), 1), 1`
/// a thousand deep) would cost the square of the statement's length.
pub(super) const MAX_NESTED: usize = 8;

/// Writes `out[from..to]` to `dst` with the edits from `edits[*next..]` that start before `to`.
fn render(out: &[u8], edits: &[KeyEdit], next: &mut usize, from: usize, to: usize, dst: &mut Vec<u8>, depth: usize) {
    let mut pos = from;
    while let Some(&e) = edits.get(*next) {
        if e.start >= to {
            break;
        }
        *next += 1;
        if e.start < pos || e.end > to || e.end < e.start {
            continue;
        }
        dst.extend_from_slice(&out[pos..e.start]);
        if matches!(e.edit, Edit::Omit | Edit::Replace(_) | Edit::Limit(_)) {
            // What is inside does not count: skip the edits inside too.
            while edits.get(*next).is_some_and(|inner| inner.start < e.end) {
                *next += 1;
            }
            apply(e.edit, &[], dst);
        } else if depth >= MAX_NESTED {
            while edits.get(*next).is_some_and(|inner| inner.start < e.end) {
                *next += 1;
            }
            dst.extend_from_slice(&out[e.start..e.end]);
        } else {
            let mut inner = Vec::new();
            render(out, edits, next, e.start, e.end, &mut inner, depth + 1);
            apply(e.edit, &inner, dst);
        }
        pos = e.end;
    }
    dst.extend_from_slice(&out[pos..to]);
}

/// Writes `range` (already edited inside) to `dst` as `edit` says.
fn apply(edit: Edit, range: &[u8], dst: &mut Vec<u8>) {
    match edit {
        Edit::Omit => {}
        Edit::Replace(bytes) => dst.extend_from_slice(bytes),
        Edit::Limit(n) => {
            dst.extend_from_slice(b"LIMIT ");
            super::writer::push_param(dst, n);
        }
        Edit::DigitRuns => {
            let (mut k, mut segment) = (0, 0);
            while k < range.len() {
                let run = range[k..].iter().take_while(|b| b.is_ascii_digit()).count();
                if run >= 2 {
                    dst.extend_from_slice(&range[segment..k]);
                    segment = k + run;
                }
                k += run.max(1);
            }
            dst.extend_from_slice(&range[segment..]);
        }
        Edit::Unordered => {
            let mut items = items(range);
            items.sort_unstable();
            items.dedup();
            join(dst, &items);
        }
        Edit::GroupBy => match range.strip_prefix(GROUP_BY) {
            Some(list) => {
                let mut items = items(list);
                items.retain(|item| !is_placeholder(item));
                if !items.is_empty() {
                    dst.extend_from_slice(GROUP_BY);
                    join(dst, &items);
                }
            }
            None => dst.extend_from_slice(range),
        },
    }
}

/// How a GROUP BY clause starts in the normalised text (never first in a statement).
pub(super) const GROUP_BY: &[u8] = b" GROUP BY ";

/// The top-level comma-separated items of a list in the normalised text, trimmed: commas inside
/// brackets or a quoted identifier do not split.
pub(super) fn items(list: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let (mut depth, mut quoted, mut from) = (0usize, false, 0);
    for (k, &b) in list.iter().enumerate() {
        match b {
            b'"' => quoted = !quoted,
            b'(' | b'[' if !quoted => depth += 1,
            b')' | b']' if !quoted => depth = depth.saturating_sub(1),
            b',' if !quoted && depth == 0 => {
                out.push(list[from..k].trim_ascii());
                from = k + 1;
            }
            _ => {}
        }
    }
    out.push(list[from..].trim_ascii());
    out
}

/// Writes `items` as the normalised text writes a list: `a, b`.
fn join(dst: &mut Vec<u8>, items: &[&[u8]]) {
    for (k, item) in items.iter().enumerate() {
        if k > 0 {
            dst.extend_from_slice(b", ");
        }
        dst.extend_from_slice(item);
    }
}

/// True for a lone placeholder item (`$3`).
pub(super) fn is_placeholder(item: &[u8]) -> bool {
    item.len() > 1 && item[0] == b'$' && item[1..].iter().all(u8::is_ascii_digit)
}

/// True when `name` holds two or more digits in a row.
pub(super) fn has_digit_run(name: &[u8]) -> bool {
    name.windows(2).any(|w| w[0].is_ascii_digit() && w[1].is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edit(start: usize, end: usize, edit: Edit) -> KeyEdit {
        KeyEdit { start, end, edit }
    }

    #[test]
    fn edits_change_only_their_range() {
        let plain = hash(b"INSERT INTO t(a, b)", &mut [], &mut Vec::new());
        let unordered = hash(b"INSERT INTO t(b, a)", &mut [edit(14, 18, Edit::Unordered)], &mut Vec::new());
        assert_eq!(unordered, plain, "an ordered list hashes as written");
        let twice = hash(b"INSERT INTO t(b, a, b)", &mut [edit(14, 21, Edit::Unordered)], &mut Vec::new());
        assert_eq!(twice, plain, "repeats do not count");
        assert_eq!(items(b"f(a, b), \"x,y\", c"), vec![&b"f(a, b)"[..], b"\"x,y\"", b"c"]);
        let group = |s: &[u8]| hash(s, &mut [edit(8, s.len(), Edit::GroupBy)], &mut Vec::new());
        assert_eq!(group(b"SELECT x GROUP BY x, $1"), hash(b"SELECT x GROUP BY x", &mut [], &mut Vec::new()));
        assert_eq!(group(b"SELECT x GROUP BY $1, $2"), hash(b"SELECT x", &mut [], &mut Vec::new()));
        assert_eq!(
            hash(b"FROM public.t", &mut [edit(5, 12, Edit::Omit)], &mut Vec::new()),
            hash(b"FROM t", &mut [], &mut Vec::new())
        );
        assert_eq!(
            hash(b"FROM e_2024", &mut [edit(5, 11, Edit::DigitRuns)], &mut Vec::new()),
            hash(b"FROM e_", &mut [], &mut Vec::new())
        );
        assert_eq!(
            hash(b"LIMIT ALL", &mut [edit(6, 9, Edit::Replace(b"$1"))], &mut Vec::new()),
            hash(b"LIMIT $1", &mut [], &mut Vec::new())
        );
        // Nested edits apply inside their enclosing one.
        let nested =
            hash(b"SELECT b, s.a", &mut [edit(7, 13, Edit::Unordered), edit(10, 12, Edit::Omit)], &mut Vec::new());
        assert_eq!(nested, hash(b"SELECT a, b", &mut [], &mut Vec::new()));
        // Out of range or crossing edits are ignored rather than trusted.
        assert_eq!(
            hash(b"abc", &mut [edit(2, 9, Edit::Omit)], &mut Vec::new()),
            hash(b"abc", &mut [], &mut Vec::new())
        );
        assert_eq!(
            hash(b"abcd", &mut [edit(0, 2, Edit::Omit), edit(1, 3, Edit::Omit)], &mut Vec::new()),
            hash(b"cd", &mut [], &mut Vec::new())
        );
    }
}
