//! The display text, written in the same pass as the normalised text: the statement as written,
//! constants as `$n` numbered after the highest `$n` already in it, comments removed, whitespace
//! runs as one space, and constant lists and repeated VALUES rows collapsed to their first item.

/// What replaces the items after the first of a collapsed list: PostgreSQL 18's
/// pg_stat_statements writes squashed constant lists the same way (`IN ($1 /*, ... */)`), and it
/// stays valid SQL.
pub(super) const COLLAPSED: &[u8] = b" /*, ... */";

/// The display text being written.
#[derive(Debug, Default)]
pub(super) struct DisplayText {
    pub(super) out: Vec<u8>,
    /// The last `$n` number written.
    params: u32,
    /// Source offset where the previous token ended: a gap before the next one is one space.
    prev_end: usize,
    /// Source range still to copy: tokens written as they are, with nothing or one space between
    /// them, are copied as one slice.
    run: (usize, usize),
}

/// A point of the display text to collapse back to.
#[derive(Debug, Clone, Copy)]
pub(super) struct Mark {
    len: usize,
    params: u32,
}

impl DisplayText {
    /// Starts a statement whose own parameters go up to `$max_param`.
    pub(super) fn reset(&mut self, max_param: u32) {
        self.out.clear();
        self.params = max_param;
        self.prev_end = 0;
        self.run = (0, 0);
    }

    /// Copies the pending run of source text.
    #[inline]
    fn flush(&mut self, src: &[u8]) {
        let (start, end) = std::mem::take(&mut self.run);
        if start < end {
            self.out.extend_from_slice(&src[start..end]);
        }
    }

    #[inline]
    fn gap(&mut self, start: usize) {
        if start > self.prev_end && !self.out.is_empty() {
            self.out.push(b' ');
        }
    }

    /// The token at `start..end` of `src`, as written.
    #[inline]
    pub(super) fn token(&mut self, src: &[u8], (start, end): (usize, usize)) {
        let (run_start, run_end) = self.run;
        let joins = run_start < run_end && (start == run_end || (start == run_end + 1 && src[run_end] == b' '));
        if !joins {
            self.flush(src);
            self.gap(start);
            self.run.0 = start;
        }
        self.run.1 = end;
        self.prev_end = end;
    }

    /// A constant at `start..end`, as the next `$n`.
    #[inline]
    pub(super) fn constant(&mut self, src: &[u8], (start, end): (usize, usize)) {
        self.flush(src);
        self.gap(start);
        self.params = self.params.saturating_add(1);
        super::writer::push_param(&mut self.out, self.params);
        self.prev_end = end;
    }

    /// The current point, to collapse back to.
    #[inline]
    pub(super) fn mark(&mut self, src: &[u8]) -> Mark {
        self.flush(src);
        Mark { len: self.out.len(), params: self.params }
    }

    /// Drops what was written after `mark` (list items after the first, rows after the first)
    /// and says so with [`COLLAPSED`]; their numbers are reused.
    pub(super) fn collapse_to(&mut self, src: &[u8], mark: Mark) {
        self.flush(src);
        if mark.len > self.out.len() {
            return;
        }
        self.out.truncate(mark.len);
        self.params = mark.params;
        self.out.extend_from_slice(COLLAPSED);
    }

    /// Drops a trailing `;` and spaces, as the normalised text does.
    pub(super) fn finish(&mut self, src: &[u8]) {
        self.flush(src);
        while matches!(self.out.last(), Some(b';' | b' ')) {
            self.out.pop();
        }
    }
}
