//! The order Nango requires of the `nango` calls made inside `exec` of an entry file.
//!
//! Nango compares lines, not positions: two calls on one line are in no order. Each rule reports a line
//! (the first or the last call of a kind, as Nango does); here it is the first such call on that line.

use rustc_hash::FxHashMap;

/// The offsets of the source's line breaks, to give many calls their line cheaply.
pub(super) struct Lines(Vec<u32>);

impl Lines {
    pub(super) fn new(source: &str) -> Self {
        Lines(
            source
                .bytes()
                .enumerate()
                .filter(|&(_, b)| b == b'\n')
                .map(|(i, _)| i as u32)
                .collect(),
        )
    }

    /// The 1-based line of `offset`, counted as `compile::line_and_column` counts it.
    pub(super) fn line(&self, offset: u32) -> usize {
        self.0.partition_point(|&nl| nl < offset) + 1
    }
}

/// A call's offset in the source and its line.
#[derive(Clone, Copy)]
pub(super) struct At {
    pub(super) offset: u32,
    pub(super) line: usize,
}

/// The calls of one kind: where the first one on the smallest line and on the largest line are.
#[derive(Default)]
struct Calls {
    count: usize,
    first: Option<At>,
    last: Option<At>,
}

impl Calls {
    fn push(&mut self, at: At) {
        self.count += 1;
        if self.first.is_none_or(|first| at.line < first.line) {
            self.first = Some(at);
        }
        if self.last.is_none_or(|last| at.line > last.line) {
            self.last = Some(at);
        }
    }

    /// Whether some call is on a line after `line`.
    fn any_after(&self, line: usize) -> bool {
        self.last.is_some_and(|last| last.line > line)
    }

    /// Whether some call is on a line before `line`.
    fn any_before(&self, line: usize) -> bool {
        self.first.is_some_and(|first| first.line < line)
    }
}

const PROXY_CALLS: [&str; 6] = ["proxy", "get", "post", "put", "patch", "delete"];
const BATCHING_CALLS: [&str; 3] = ["batchSave", "batchDelete", "batchUpdate"];

/// The calls made inside `exec` of an entry file.
#[derive(Default)]
pub(super) struct Order {
    proxy: Calls,
    batching: Calls,
    merging: Calls,
    delete_previous: Calls,
    /// Per model named by a string literal, in the order the models first appear: its `trackDeletesStart`
    /// and `trackDeletesEnd` calls.
    track_deletes: Vec<(String, Calls, Calls)>,
    models: FxHashMap<String, usize>,
}

impl Order {
    /// Notes a call of `nango.<method>`; `model` is its first argument when that is a string literal.
    pub(super) fn record(&mut self, method: &str, model: Option<&str>, at: At) {
        if PROXY_CALLS.contains(&method) {
            self.proxy.push(at);
        }
        if BATCHING_CALLS.contains(&method) {
            self.batching.push(at);
        }
        match (method, model) {
            ("setMergingStrategy", _) => self.merging.push(at),
            ("deleteRecordsFromPreviousExecutions", _) => self.delete_previous.push(at),
            ("trackDeletesStart" | "trackDeletesEnd", Some(model)) => {
                let index = *self.models.entry(model.to_string()).or_insert_with(|| {
                    self.track_deletes.push((
                        model.to_string(),
                        Calls::default(),
                        Calls::default(),
                    ));
                    self.track_deletes.len() - 1
                });
                let (_, starts, ends) = &mut self.track_deletes[index];
                if method == "trackDeletesStart" {
                    starts.push(at);
                } else {
                    ends.push(at);
                }
            }
            _ => {}
        }
    }

    /// The first rule the calls break, checked in Nango's order: where to report it and Nango's message.
    pub(super) fn error(&self) -> Option<(u32, String)> {
        let batching = &self.batching;
        if let (Some(merging), Some(batch)) = (self.merging.first, batching.first)
            && self.merging.any_after(batch.line)
        {
            return Some((
                merging.offset,
                "setMergingStrategy should be called before any batching records function".into(),
            ));
        }
        if let (Some(merging), Some(proxy)) = (self.merging.first, self.proxy.first)
            && self.merging.any_after(proxy.line)
        {
            return Some((
                merging.offset,
                "setMergingStrategy should be called before any proxy function".into(),
            ));
        }
        if let (Some(last), true) = (self.delete_previous.last, self.delete_previous.count > 1) {
            return Some((
                last.offset,
                "deleteRecordsFromPreviousExecutions should be called only once per sync".into(),
            ));
        }
        if let Some(delete) = self.delete_previous.first
            && batching.any_after(delete.line)
        {
            return Some((
                delete.offset,
                "deleteRecordsFromPreviousExecutions should be called after any batching records function"
                    .into(),
            ));
        }
        const START: &str = "trackDeletesStart";
        const END: &str = "trackDeletesEnd";
        const ONCE: &str = "should be called only once per sync";
        for (model, starts, ends) in &self.track_deletes {
            let says = |at: At, subject: &str, rest: &str| {
                Some((at.offset, format!("{subject} for model '{model}' {rest}")))
            };
            // At most one call of a kind from the third arm on: its first is its last.
            let found = match (starts.first, starts.last, ends.first, ends.last) {
                (_, Some(last), _, _) if starts.count > 1 => says(last, START, ONCE),
                (_, _, _, Some(last)) if ends.count > 1 => says(last, END, ONCE),
                (None, _, Some(end), _) => {
                    says(end, END, "is called but trackDeletesStart is never called")
                }
                (Some(start), _, None, _) => says(
                    start,
                    START,
                    "is called but trackDeletesEnd is never called",
                ),
                (Some(start), _, Some(end), _) if starts.any_after(end.line) => {
                    says(start, START, "should be called before trackDeletesEnd")
                }
                (Some(start), _, _, _) if batching.any_before(start.line) => says(
                    start,
                    START,
                    "should be called before any batching records function",
                ),
                (_, _, Some(end), _) if batching.any_after(end.line) => says(
                    end,
                    END,
                    "should be called after any batching records function",
                ),
                _ => None,
            };
            if found.is_some() {
                return found;
            }
        }
        None
    }
}
