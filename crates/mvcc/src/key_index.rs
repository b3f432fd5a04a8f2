//! The revision history of one key.
//!
//! A key's life is a sequence of *generations*. A generation starts with the
//! put that creates the key, collects every later put, and ends with the
//! deletion (tombstone) that removes it; the next put starts a new
//! generation. The last generation is the open one: it has no tombstone and
//! is empty while the key is deleted.
//!
//! ```text
//! put@2 put@4 del@6 put@8
//! generations: [2.0 4.0 6.0(tomb)] [8.0]
//! ```
//!
//! Each generation keeps its creation revision and its version (the number of
//! changes it holds, tombstone included), so `create_revision` and `version`
//! of any revision can be computed without reading the backend, even after
//! compaction has dropped the generation's first revisions.
//!
//! Invariants:
//! - revisions across all generations are strictly increasing;
//! - every generation but the last is non-empty and ends with its tombstone;
//! - `version` of a generation counts the changes it has held, so the version
//!   at its i-th remaining revision is `version - (len - 1 - i)`.
//!
//! Compaction at revision `c` keeps, in the first generation still alive at
//! `c`, the newest revision `<= c` (the value a read at `c` returns), and drops
//! everything older, including whole generations that ended at or before `c`.
//! A key left with one empty generation is gone from the index.

use crate::revision::Revision;

/// One life of a key, from its creating put to its tombstone.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Generation {
    /// Changes this generation has held (compaction does not lower it).
    version: i64,
    /// The revision of the put that started the generation.
    created: Revision,
    /// The revisions still held, oldest first; the tombstone ends a closed one.
    revs: Vec<Revision>,
}

/// What a read at some revision sees of a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct KeyState {
    /// The revision that wrote the value visible at the read revision.
    pub modified: Revision,
    /// The revision that created the key's current generation.
    pub created: Revision,
    /// The key's version at the read revision.
    pub version: i64,
}

/// A key's revisions, grouped by generation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct KeyIndex {
    /// Oldest first; never empty; the last one is open.
    generations: Vec<Generation>,
}

impl KeyIndex {
    /// A key created by a put at `rev`.
    pub fn new(rev: Revision) -> Self {
        KeyIndex {
            generations: vec![Generation {
                version: 1,
                created: rev,
                revs: vec![rev],
            }],
        }
    }

    /// A key rebuilt from a backend row whose earlier history may be
    /// compacted away: the row at `rev` belongs to a generation created at
    /// `created` and carries `version`.
    pub fn restored(created: Revision, rev: Revision, version: i64) -> Self {
        KeyIndex {
            generations: vec![Generation {
                version,
                created,
                revs: vec![rev],
            }],
        }
    }

    /// The newest revision held, tombstones included.
    pub fn last_revision(&self) -> Option<Revision> {
        self.generations
            .iter()
            .rev()
            .find_map(|g| g.revs.last().copied())
    }

    /// Records a put at `rev`, starting a generation if the key was deleted.
    pub fn put(&mut self, rev: Revision) {
        debug_assert!(self.last_revision().is_none_or(|last| rev > last));
        let g = self.generations.last_mut().expect("never empty");
        if g.revs.is_empty() {
            g.created = rev;
        }
        g.revs.push(rev);
        g.version += 1;
    }

    /// Records a deletion at `rev`; false (and no change) if the key is
    /// already deleted.
    pub fn tombstone(&mut self, rev: Revision) -> bool {
        if self
            .generations
            .last()
            .expect("never empty")
            .revs
            .is_empty()
        {
            return false;
        }
        self.put(rev);
        self.generations.push(Generation::default());
        true
    }

    /// Reverts the latest [`put`](Self::put); true if the key index is now
    /// empty and must be removed.
    pub fn undo_put(&mut self) -> bool {
        let g = self.generations.last_mut().expect("never empty");
        g.revs.pop().expect("undo of a put that was not made");
        g.version -= 1;
        if g.revs.is_empty() {
            *g = Generation::default();
        }
        self.is_empty()
    }

    /// Reverts the latest [`tombstone`](Self::tombstone).
    pub fn undo_tombstone(&mut self) {
        let open = self.generations.pop().expect("never empty");
        assert!(
            open.revs.is_empty(),
            "undo of a tombstone that was not made"
        );
        let emptied = self.undo_put();
        assert!(!emptied, "a tombstone always follows a put");
    }

    /// Whether the key exists as of its newest revision (its open generation
    /// holds a put).
    pub fn is_alive(&self) -> bool {
        !self
            .generations
            .last()
            .expect("never empty")
            .revs
            .is_empty()
    }

    /// Whether the key has no revision left at all.
    pub fn is_empty(&self) -> bool {
        self.generations.len() == 1 && self.generations[0].revs.is_empty()
    }

    /// What a read at main revision `at` sees, or None if the key did not
    /// exist then.
    pub fn get(&self, at: i64) -> Option<KeyState> {
        let last = self.generations.len() - 1;
        for (i, g) in self.generations.iter().enumerate().rev() {
            let (Some(first), Some(end)) = (g.revs.first(), g.revs.last()) else {
                continue;
            };
            if i != last && end.main <= at {
                // This generation, the newest that started by `at`, was
                // tombstoned by then.
                return None;
            }
            if first.main <= at {
                let n = g.revs.partition_point(|r| r.main <= at);
                return Some(KeyState {
                    modified: g.revs[n - 1],
                    created: g.created,
                    version: g.version - (g.revs.len() - n) as i64,
                });
            }
        }
        None
    }

    /// Whether `rev` is one of the revisions still held.
    pub fn contains(&self, rev: Revision) -> bool {
        self.generations
            .iter()
            .any(|g| g.revs.binary_search(&rev).is_ok())
    }

    /// Calls `f` with the one revision at or below main revision `at` that a
    /// compaction at `at` would keep (etcd's `keep`): the newest revision at
    /// or below `at` in the first generation still alive at `at`, unless that
    /// is the tombstone closing it. Nothing if the key had no value at `at`.
    pub fn kept_at(&self, at: i64, f: impl FnOnce(Revision)) {
        let last = self.generations.len() - 1;
        let i = self
            .generations
            .iter()
            .position(|g| g.revs.last().is_some_and(|end| end.main > at))
            .unwrap_or(last);
        let revs = &self.generations[i].revs;
        let n = revs.partition_point(|r| r.main <= at);
        if n == 0 || (n == revs.len() && i != last) {
            return;
        }
        f(revs[n - 1]);
    }

    /// Drops the history a read at `at` or later can no longer see; true if
    /// nothing is left and the key must be removed from the index.
    pub fn compact(&mut self, at: i64) -> bool {
        let last = self.generations.len() - 1;
        // The first generation a read at `at` could still see: one that was
        // not yet tombstoned at `at`, or the open one.
        let mut keep_from = self
            .generations
            .iter()
            .position(|g| g.revs.last().is_some_and(|end| end.main > at))
            .unwrap_or(last);
        let g = &mut self.generations[keep_from];
        if !g.revs.is_empty() {
            let n = g.revs.partition_point(|r| r.main <= at);
            if n > 0 {
                g.revs.drain(..n - 1);
            }
            // A closed generation reduced to its bare tombstone shows nothing.
            if g.revs.len() == 1 && keep_from != last {
                keep_from += 1;
            }
        }
        self.generations.drain(..keep_from);
        self.is_empty()
    }

    /// One line per generation, for tests and debugging:
    /// `{created version: rev rev ...}`.
    #[cfg(test)]
    pub fn dump(&self) -> String {
        self.generations
            .iter()
            .map(|g| {
                let revs: String = g.revs.iter().map(|r| format!(" {r}")).collect();
                format!("{{c={} v={}:{revs}}}", g.created, g.version)
            })
            .collect::<Vec<_>>()
            .join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{run_file, words};

    fn rev(s: &str) -> Revision {
        let (main, sub) = s.split_once('.').unwrap_or((s, "0"));
        Revision::new(main.parse().unwrap(), sub.parse().unwrap())
    }

    /// Commands: `put R`, `tombstone R`, `undo_put`, `undo_tombstone`,
    /// `get AT`, `compact AT`, `contains R`, `kept AT`, `restore C R V`; each
    /// prints its result and the key's generations.
    #[test]
    fn scenarios() {
        run_file("key_index.txt", |lines| {
            let mut ki: Option<KeyIndex> = None;
            let mut out = Vec::new();
            for line in lines {
                let w = words(line);
                let result = match w[0] {
                    "put" => {
                        match ki.as_mut() {
                            Some(k) => k.put(rev(w[1])),
                            None => ki = Some(KeyIndex::new(rev(w[1]))),
                        }
                        String::new()
                    }
                    "restore" => {
                        ki = Some(KeyIndex::restored(
                            rev(w[1]),
                            rev(w[2]),
                            w[3].parse().unwrap(),
                        ));
                        String::new()
                    }
                    "tombstone" => format!("ok={}", ki.as_mut().unwrap().tombstone(rev(w[1]))),
                    "undo_put" => format!("empty={}", ki.as_mut().unwrap().undo_put()),
                    "undo_tombstone" => {
                        ki.as_mut().unwrap().undo_tombstone();
                        String::new()
                    }
                    "get" => match ki.as_ref().unwrap().get(w[1].parse().unwrap()) {
                        Some(s) => format!(
                            "mod={} created={} version={}",
                            s.modified, s.created, s.version
                        ),
                        None => "not found".to_string(),
                    },
                    "compact" => format!(
                        "empty={}",
                        ki.as_mut().unwrap().compact(w[1].parse().unwrap())
                    ),
                    "contains" => format!("{}", ki.as_ref().unwrap().contains(rev(w[1]))),
                    "kept" => {
                        let mut revs = Vec::new();
                        ki.as_ref()
                            .unwrap()
                            .kept_at(w[1].parse().unwrap(), |r| revs.push(r.to_string()));
                        format!("[{}]", revs.join(" "))
                    }
                    other => panic!("unknown command {other}"),
                };
                if !result.is_empty() {
                    out.push(format!("{line}: {result}"));
                }
            }
            out.push(ki.as_ref().map(KeyIndex::dump).unwrap_or_default());
            out.join("\n")
        });
    }
}
