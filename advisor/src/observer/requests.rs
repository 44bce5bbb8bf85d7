//! The requests a session sent that still await their responses, in order, and how many
//! statements of simple Queries they hold: kept as they change, so the budget on those
//! ([`super::MAX_QUEUED_RUNS`]) costs no walk of up to [`super::MAX_PENDING`] requests.

use std::collections::VecDeque;

use super::{Pending, Run};

/// Requests awaiting responses. A Query's statements leave only through [`Self::pop_front`],
/// [`Self::pop_run`] and [`Self::fail_query`], which keep the count.
#[derive(Debug, Default)]
pub(super) struct Requests {
    queue: VecDeque<Pending>,
    /// Statements held by the queued Queries.
    query_runs: usize,
}

/// The statements `pending` holds, if it is a Query.
#[inline]
fn runs(pending: &Pending) -> usize {
    match pending {
        Pending::Query { runs, .. } => runs.len(),
        _ => 0,
    }
}

impl Requests {
    #[inline]
    pub(super) fn len(&self) -> usize {
        self.queue.len()
    }

    #[inline]
    pub(super) fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Statements of simple Queries awaiting their results.
    #[inline]
    pub(super) fn query_runs(&self) -> usize {
        self.query_runs
    }

    #[inline]
    pub(super) fn front(&self) -> Option<&Pending> {
        self.queue.front()
    }

    /// The oldest request, to change in place: a Query's statements are not to be removed here.
    #[inline]
    pub(super) fn front_mut(&mut self) -> Option<&mut Pending> {
        self.queue.front_mut()
    }

    #[inline(always)]
    pub(super) fn push_back(&mut self, pending: Pending) {
        self.query_runs += runs(&pending);
        self.queue.push_back(pending);
    }

    #[inline]
    pub(super) fn pop_front(&mut self) -> Option<Pending> {
        let pending = self.queue.pop_front()?;
        self.query_runs = self.query_runs.saturating_sub(runs(&pending));
        Some(pending)
    }

    /// The next statement of the Query at the front, unless that Query failed.
    #[inline]
    pub(super) fn pop_run(&mut self) -> Option<Run> {
        let Some(Pending::Query { runs, failed: false }) = self.queue.front_mut() else { return None };
        let run = runs.pop_front()?;
        self.query_runs = self.query_runs.saturating_sub(1);
        Some(run)
    }

    /// The Query at the front failed: the server runs none of its statements after the one that
    /// failed, which is returned.
    pub(super) fn fail_query(&mut self) -> Option<Run> {
        let Some(Pending::Query { runs, failed }) = self.queue.front_mut() else { return None };
        *failed = true;
        self.query_runs = self.query_runs.saturating_sub(runs.len());
        let run = runs.pop_front();
        runs.clear();
        run
    }

    /// Keeps only the requests `keep` accepts (in order, as [`VecDeque::retain`]).
    pub(super) fn retain(&mut self, mut keep: impl FnMut(&Pending) -> bool) {
        let mut removed = 0;
        self.queue.retain(|p| {
            let kept = keep(p);
            if !kept {
                removed += runs(p);
            }
            kept
        });
        self.query_runs = self.query_runs.saturating_sub(removed);
    }

    /// Statements of Queries counted by walking the queue: the count kept must equal it.
    #[cfg(test)]
    pub(super) fn query_runs_walked(&self) -> usize {
        self.queue.iter().map(runs).sum()
    }
}
