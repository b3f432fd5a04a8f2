//! Which log index a conf change applied by the apply side belongs to.
//!
//! The apply side applies conf-change entries through
//! [`RaftHandle::apply_conf_change`](crate::RaftHandle::apply_conf_change), which
//! carries only the change. The loop needs the entry's index to record the
//! resulting conf state in the storage's history. Conf-change entries are handed
//! to the apply side in log order and applied in the same order, so the loop keeps
//! the delivered ones in a queue and matches each applied change to the oldest
//! delivered entry with equal content; older unmatched entries were skipped by the
//! apply side (it had them already) and are dropped.

use std::collections::VecDeque;

use raft::eraftpb::{ConfChange, ConfChangeSingle, ConfChangeV2, Entry, EntryType};

use crate::Result;

/// Delivered conf-change entries kept for matching; raft allows one pending
/// conf change at a time, so more than this means the apply side skips them.
const MAX_DELIVERED_CONF_CHANGES: usize = 64;

/// Decodes a conf-change entry of either version as a `ConfChangeV2`.
pub fn decode_conf_change(entry: &Entry) -> Result<ConfChangeV2> {
    use protobuf::Message as _;
    Ok(match entry.get_entry_type() {
        EntryType::EntryConfChange => {
            let v1 = ConfChange::parse_from_bytes(&entry.data)?;
            let mut single = ConfChangeSingle::default();
            single.set_change_type(v1.get_change_type());
            single.node_id = v1.node_id;
            let mut cc = ConfChangeV2::default();
            cc.mut_changes().push(single);
            cc.context = v1.context;
            cc
        }
        _ => ConfChangeV2::parse_from_bytes(&entry.data)?,
    })
}

/// Conf-change entries handed to the apply side and not yet applied to raft.
#[derive(Default)]
pub(crate) struct DeliveredConfChanges {
    /// `(index, change)` in log order.
    queue: VecDeque<(u64, ConfChangeV2)>,
}

impl DeliveredConfChanges {
    /// Notes a conf-change entry handed to the apply side.
    pub(crate) fn delivered(&mut self, entry: &Entry) {
        match decode_conf_change(entry) {
            Ok(cc) => {
                if self.queue.len() == MAX_DELIVERED_CONF_CHANGES {
                    self.queue.pop_front();
                }
                self.queue.push_back((entry.index, cc));
            }
            Err(e) => tracing::warn!(index = entry.index, "undecodable conf change entry: {e}"),
        }
    }

    /// The index of the oldest delivered entry carrying `cc`, dropping it and
    /// everything before it; `None` if no delivered entry carries it.
    pub(crate) fn take_index(&mut self, cc: &ConfChangeV2) -> Option<u64> {
        let pos = self.queue.iter().position(|(_, queued)| queued == cc)?;
        let (index, _) = self.queue.drain(..=pos).next_back()?;
        Some(index)
    }

    /// Forgets everything delivered (a snapshot replaced the log).
    pub(crate) fn clear(&mut self) {
        self.queue.clear();
    }
}

#[cfg(test)]
mod tests {
    use protobuf::Message as _;
    use raft::eraftpb::ConfChangeType;

    use super::*;

    fn entry(index: u64, node_id: u64) -> Entry {
        let mut cc = ConfChange::default();
        cc.set_change_type(ConfChangeType::AddNode);
        cc.node_id = node_id;
        let mut e = Entry::default();
        e.set_entry_type(EntryType::EntryConfChange);
        e.index = index;
        e.data = cc.write_to_bytes().unwrap().into();
        e
    }

    #[test]
    fn matches_oldest_equal_change_and_drops_skipped_ones() {
        let mut delivered = DeliveredConfChanges::default();
        for (index, node) in [(5, 2), (7, 3), (9, 3)] {
            delivered.delivered(&entry(index, node));
        }
        let add3 = decode_conf_change(&entry(0, 3)).unwrap();
        assert_eq!(delivered.take_index(&add3), Some(7));
        assert_eq!(delivered.take_index(&add3), Some(9));
        assert_eq!(delivered.take_index(&add3), None);
        let add2 = decode_conf_change(&entry(0, 2)).unwrap();
        assert_eq!(
            delivered.take_index(&add2),
            None,
            "skipped entry 5 was dropped"
        );
    }

    #[test]
    fn v1_decodes_to_single_change_v2() {
        let cc = decode_conf_change(&entry(1, 4)).unwrap();
        assert_eq!(cc.changes.len(), 1);
        assert_eq!(cc.changes[0].node_id, 4);
        assert_eq!(cc.changes[0].get_change_type(), ConfChangeType::AddNode);
    }
}
