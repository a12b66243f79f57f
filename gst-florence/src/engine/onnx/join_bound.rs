//! How much joining the decode batch may slow its requests down.
//!
//! A batched decoder run takes longer the more rows (hypotheses) it holds:
//! on the base-shaped model 20.8 ms for one row, 24.4 ms for two, 30.9 ms
//! for four (docs: performance.md, "Batched decoder steps"), close to a
//! line: a fixed part (reading the weights once) and a part per row. A
//! waiting request joins the batch only if the run with its rows would take
//! at most its own bound times the run it would have alone, and the same
//! for every member already in the batch (each with its own bound); else it
//! waits for a later step, when members have left.
//!
//! The line is fitted to the runs of the model's batches, each row count
//! with its fastest run: the cores are shared (other requests' encoders run
//! on the same threads), and other work only ever makes a run slower. A row
//! count not run for a while is forgotten, so a run slowed that way cannot
//! keep batches small for ever (the sizes it keeps out are never run again
//! to correct it). Until runs of two row counts are known the line is not,
//! and a row is taken to cost a hundredth of the fixed part (a join is
//! nearly free), so batches form and get measured.

use std::collections::BTreeMap;
use std::time::Duration;

/// The bound a request accepts unless its user says otherwise: a decoder
/// run at most this many times as long as its run alone.
pub const DEFAULT_DECODE_SLOWDOWN: f64 = 2.0;

/// Runs after which a row count's fastest run is forgotten if it did not
/// run again: a few seconds of decoding on the base-shaped model.
const FORGET_AFTER_RUNS: u64 = 256;

/// The least a row costs, as a share of the fixed part: every row is some
/// work, so a line fitted to noisy runs must not make rows free (batches
/// without bound, a bound of 1 admitting joins).
const LEAST_ROW_SHARE: f64 = 0.01;

/// A decoder run's time against its rows: `fixed + per_row * rows`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Line {
    fixed: f64,
    per_row: f64,
}

impl Line {
    /// Before any runs of two row counts: nearly free rows.
    const UNKNOWN: Line = Line {
        fixed: 1.0,
        per_row: LEAST_ROW_SHARE,
    };

    fn at(&self, rows: usize) -> f64 {
        self.fixed + self.per_row * rows as f64
    }
}

/// The decoder runs' times so far, by rows.
#[derive(Debug, Default)]
pub(crate) struct RunTimes {
    /// By rows: the fastest run's seconds, and the number of the last run.
    by_rows: BTreeMap<usize, (f64, u64)>,
    runs: u64,
}

impl RunTimes {
    pub(crate) fn record(&mut self, rows: usize, took: Duration) {
        self.runs += 1;
        let (took, now) = (took.as_secs_f64(), self.runs);
        let fastest = self.by_rows.entry(rows).or_insert((took, now));
        *fastest = (fastest.0.min(took), now);
        self.by_rows
            .retain(|_, (_, last)| now - *last < FORGET_AFTER_RUNS);
    }

    /// Seconds of a run of `rows` alone: on the line once two row counts
    /// ran, the one row count's fastest run before; `None` before any run.
    fn alone(&self, rows: usize) -> Option<f64> {
        match self.by_rows.len() {
            0 => None,
            1 => self.by_rows.values().next().map(|v| v.0),
            _ => Some(self.line().at(rows)),
        }
    }

    /// The least-squares line through each row count's fastest run (each
    /// count weighs the same, however often it ran).
    pub(crate) fn line(&self) -> Line {
        let n = self.by_rows.len() as f64;
        if self.by_rows.len() < 2 {
            return Line::UNKNOWN;
        }
        let mean_r = self.by_rows.keys().map(|&r| r as f64).sum::<f64>() / n;
        let mean_t = self.by_rows.values().map(|v| v.0).sum::<f64>() / n;
        let (mut cov, mut var) = (0.0, 0.0);
        for (&r, &(t, _)) in &self.by_rows {
            let dr = r as f64 - mean_r;
            cov += dr * (t - mean_t);
            var += dr * dr;
        }
        let slope = cov / var;
        let fixed = (mean_t - slope * mean_r).max(0.0);
        let per_row = slope.max(LEAST_ROW_SHARE * fixed).max(f64::MIN_POSITIVE);
        Line { fixed, per_row }
    }
}

/// A request's part of a run: its rows and the slowdown it accepts, and
/// for [`hold_left`] its longest answer and how long it was held so far.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Load {
    pub(crate) rows: usize,
    pub(crate) slowdown: f64,
    pub(crate) max_new_tokens: usize,
    pub(crate) held: Duration,
}

/// How much longer the batch may wait before its next step for requests on
/// their way to it (encoding their image and prompt), so that they join it
/// sooner: each member accepts its decoding taking up to its bound times
/// its decoding alone, so it may be held for the spare part, `slowdown - 1`
/// times its runs alone for its longest answer, less what it was held
/// already; the least of the members'. Nothing before any run was timed
/// (nor for a member with a bound of 1).
pub(crate) fn hold_left(runs: &RunTimes, members: &[Load]) -> Duration {
    let Some(least) = members
        .iter()
        .map(|m| {
            let alone = runs.alone(m.rows).unwrap_or(0.0) * m.max_new_tokens as f64;
            ((m.slowdown - 1.0) * alone - m.held.as_secs_f64()).max(0.0)
        })
        .reduce(f64::min)
    else {
        return Duration::ZERO;
    };
    Duration::from_secs_f64(least)
}

/// Whether `joiner` may join a batch of `members`: the run with its rows
/// takes at most each one's bound times its run alone (the joiner's too).
/// An empty batch takes anyone.
pub(crate) fn admits(line: Line, members: &[Load], joiner: Load) -> bool {
    if members.is_empty() {
        return true;
    }
    let rows: usize = members.iter().map(|m| m.rows).sum::<usize>() + joiner.rows;
    let together = line.at(rows);
    members
        .iter()
        .chain(std::iter::once(&joiner))
        .all(|m| together <= m.slowdown * line.at(m.rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn greedy(slowdown: f64) -> Load {
        Load {
            rows: 1,
            slowdown,
            max_new_tokens: 100,
            held: Duration::ZERO,
        }
    }

    fn ms(v: f64) -> Duration {
        Duration::from_secs_f64(v / 1000.0)
    }

    /// The base-shaped model's runs (performance.md).
    fn base() -> RunTimes {
        let mut t = RunTimes::default();
        for (rows, took) in [(1, 20.77), (2, 24.41), (4, 30.92)] {
            t.record(rows, ms(took));
        }
        t
    }

    #[test]
    fn the_line_fits_the_base_models_runs() {
        let line = base().line();
        assert!((line.fixed * 1e3 - 17.51).abs() < 0.05, "{line:?}");
        assert!((line.per_row * 1e3 - 3.37).abs() < 0.05, "{line:?}");
    }

    #[test]
    fn a_bound_of_two_admits_up_to_the_row_that_would_double_a_run() {
        let line = base().line();
        // One row alone: 20.8 ms; doubled 41.7 ms, reached past 7 rows.
        let mut members = vec![greedy(2.0)];
        while admits(line, &members, greedy(2.0)) {
            members.push(greedy(2.0));
        }
        assert_eq!(members.len(), 7);
        // A request of three beams runs 27.6 ms alone: it accepts 55 ms, but
        // its single-row neighbours accept 41.7 ms.
        let beams = Load {
            rows: 3,
            ..greedy(2.0)
        };
        assert!(admits(line, &members[..4], beams));
        assert!(!admits(line, &members[..5], beams));
    }

    #[test]
    fn each_member_has_its_own_bound() {
        let line = base().line();
        let patient = greedy(10.0);
        // The impatient joiner would take 1.16x its run alone.
        assert!(admits(line, &[patient], greedy(1.2)));
        assert!(!admits(line, &[patient], greedy(1.1)));
        // An impatient member keeps a patient joiner out.
        assert!(!admits(line, &[greedy(1.1)], patient));
    }

    #[test]
    fn a_bound_of_one_never_batches_even_before_any_run() {
        for line in [Line::UNKNOWN, base().line()] {
            assert!(!admits(line, &[greedy(1.0)], greedy(1.0)));
            assert!(admits(line, &[], greedy(1.0)));
        }
    }

    #[test]
    fn until_two_row_counts_ran_a_join_is_nearly_free() {
        let mut t = RunTimes::default();
        assert_eq!(t.line(), Line::UNKNOWN);
        t.record(1, ms(20.0));
        t.record(1, ms(22.0));
        assert_eq!(t.line(), Line::UNKNOWN);
        let four = [greedy(2.0); 4];
        assert!(admits(t.line(), &four, greedy(1.1)));
    }

    #[test]
    fn noisy_runs_never_make_rows_free() {
        let mut t = RunTimes::default();
        // A busy moment made one row slower than two.
        t.record(1, ms(30.0));
        t.record(2, ms(25.0));
        let line = t.line();
        assert!(line.per_row > 0.0, "{line:?}");
        assert!(!admits(line, &[greedy(1.0)], greedy(1.0)));
        // A row count's fastest run counts.
        t.record(1, ms(20.0));
        t.record(1, ms(24.0));
        assert_eq!(t.by_rows[&1].0, 20.0e-3);
    }

    #[test]
    fn a_slowed_run_keeps_batches_small_only_until_it_is_forgotten() {
        let mut t = RunTimes::default();
        t.record(1, ms(20.77));
        t.record(2, ms(24.41));
        // Four rows, run once, while another request's encoder had the cores.
        t.record(4, ms(80.0));
        let three = [greedy(2.0); 3];
        assert!(!admits(t.line(), &three, greedy(2.0)));
        for _ in 1..FORGET_AFTER_RUNS {
            t.record(1, ms(20.77));
            t.record(2, ms(24.41));
        }
        assert!(admits(t.line(), &three, greedy(2.0)), "{:?}", t.line());
    }
    #[test]
    fn a_member_is_held_for_at_most_the_spare_part_of_its_bound() {
        let mut runs = RunTimes::default();
        // Nothing timed yet: no hold.
        assert_eq!(hold_left(&runs, &[greedy(2.0)]), Duration::ZERO);
        runs.record(1, ms(20.0));
        // One row count timed: 100 tokens alone take 2 s; a bound of 2
        // spares 2 s, of 1.5 one second.
        let left = hold_left(&runs, &[greedy(2.0)]).as_secs_f64();
        assert!((left - 2.0).abs() < 1e-9, "{left}");
        let both = hold_left(&runs, &[greedy(2.0), greedy(1.5)]).as_secs_f64();
        assert!((both - 1.0).abs() < 1e-9, "{both}");
        // What it was held already counts, and never below nothing.
        let held = Load {
            held: Duration::from_millis(1500),
            ..greedy(2.0)
        };
        let left = hold_left(&runs, &[held]).as_secs_f64();
        assert!((left - 0.5).abs() < 1e-9, "{left}");
        let spent = Load {
            held: Duration::from_secs(3),
            ..greedy(2.0)
        };
        assert_eq!(hold_left(&runs, &[spent, greedy(2.0)]), Duration::ZERO);
        // A bound of 1 is never held; an empty batch neither.
        assert_eq!(hold_left(&runs, &[greedy(1.0)]), Duration::ZERO);
        assert_eq!(hold_left(&runs, &[]), Duration::ZERO);
    }

    #[test]
    fn once_the_line_is_known_a_members_runs_alone_are_on_it() {
        let beams = Load {
            rows: 4,
            max_new_tokens: 10,
            ..greedy(2.0)
        };
        // 10 runs of 4 rows on the base-shaped model's line: 10 x 30.99 ms.
        let left = hold_left(&base(), &[beams]).as_secs_f64();
        assert!((left - 0.3099).abs() < 1e-3, "{left}");
    }
}
