//! Placement: which HDDs of a pool hold each chunk.
//!
//! Owns the choice of devices only (no I/O). Chunks of one object go round-robin over the pool
//! starting at a device picked by hashing the object ID (xxh3), so objects spread evenly and a
//! large object streams from every drive at once. Devices that are missing, poisoned or full are
//! skipped. The copies or shards of one chunk go to distinct devices, and at most
//! `max_per_group` of them to one failure group (bays that fail together: a backplane, an
//! expander), so losing a whole group loses no more than the protection tolerates
//! ([`StripePlacer`]).
//!
//! Must not import anything of this crate but `error`: it computes where a stripe goes from the
//! pool's state it is handed, and touches no device.

/// Failure groups of a pool's data slots: `group_of[slot]` is the slot's group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FailureGroups {
    /// The group of each data slot.
    pub group_of: Vec<u32>,
}

impl FailureGroups {
    /// Every slot of `slots` its own group (no shared failure known).
    pub fn singletons(slots: usize) -> Self {
        FailureGroups {
            group_of: (0..slots as u32).collect(),
        }
    }

    /// How many of one chunk's `width` pieces fit when at most `max_per_group` go to one group
    /// and one to a slot, counting only `usable` slots.
    pub fn capacity(&self, usable: &[bool], max_per_group: u32) -> u32 {
        let mut per_group = std::collections::BTreeMap::<u32, u32>::new();
        for (slot, &ok) in usable.iter().enumerate() {
            if ok {
                *per_group.entry(self.group_of[slot]).or_default() += 1;
            }
        }
        per_group.values().map(|&n| n.min(max_per_group)).sum()
    }
}

/// The device for chunk `index` of `object_id`, among `usable[slot]`; `None` if no device is usable.
pub fn place_chunk(object_id: u128, index: u32, usable: &[bool]) -> Option<u32> {
    let n = usable.len();
    if n == 0 {
        return None;
    }
    let start = xxhash_rust::xxh3::xxh3_64(&object_id.to_le_bytes()) as usize % n;
    (0..n)
        .map(|step| (start + index as usize + step) % n)
        .find(|&slot| usable[slot])
        .map(|s| s as u32)
}

/// Picks the devices of one chunk's copies or shards, visiting failure groups in turn: the
/// first group is found by hashing the object ID and adding the chunk index (so consecutive
/// chunks start one group further on, as [`place_chunk`] spreads chunks), each visit takes one
/// piece, a group holding `max_per_group` is passed over, and within a group the piece goes to
/// the first usable device from an offset hashed from the object, chunk and group. So a stripe
/// spans distinct devices, at most `max_per_group` per group, and devices fill evenly. With
/// every device its own group this is [`place_chunk`]'s round robin.
pub struct StripePlacer {
    object_id: u128,
    index: u32,
    /// Devices that may take a piece at all (present, not failed).
    usable: Vec<bool>,
    /// Devices already picked (or left out for want of room) for this chunk.
    taken: Vec<bool>,
    max_per_group: u32,
    /// Slots of each group, in slot order, and pieces placed in it.
    groups: Vec<(Vec<u32>, u32)>,
    /// The group of each slot, as an index into `groups`.
    group_index: Vec<usize>,
    /// Group visits so far.
    visits: usize,
    first_group: usize,
}

impl StripePlacer {
    /// A placer for chunk `index` of `object_id` over the devices `usable[slot]`, at most
    /// `max_per_group` pieces per failure group of `groups`.
    pub fn new(
        object_id: u128,
        index: u32,
        usable: Vec<bool>,
        groups: &FailureGroups,
        max_per_group: u32,
    ) -> Self {
        assert_eq!(
            usable.len(),
            groups.group_of.len(),
            "every slot has a failure group"
        );
        assert!(max_per_group >= 1, "a group takes at least one piece");
        let mut ids: Vec<u32> = groups.group_of.clone();
        ids.sort_unstable();
        ids.dedup();
        let group_index: Vec<usize> = groups
            .group_of
            .iter()
            .map(|g| ids.binary_search(g).expect("listed"))
            .collect();
        let mut members: Vec<(Vec<u32>, u32)> = vec![(Vec::new(), 0); ids.len()];
        for (slot, &g) in group_index.iter().enumerate() {
            members[g].0.push(slot as u32);
        }
        let n = members.len().max(1);
        let hash = xxhash_rust::xxh3::xxh3_64(&object_id.to_le_bytes()) as usize;
        StripePlacer {
            object_id,
            index,
            taken: vec![false; usable.len()],
            usable,
            max_per_group,
            groups: members,
            group_index,
            visits: 0,
            first_group: (hash % n + index as usize) % n,
        }
    }

    /// The next device: usable, never one picked before for this chunk, in a group holding
    /// fewer than `max_per_group` picks; `None` when none is left. A pick that had no room is
    /// given back with [`Self::skip`].
    pub fn next_slot(&mut self) -> Option<u32> {
        let n = self.groups.len();
        for _ in 0..n {
            let g = (self.first_group + self.visits) % n;
            self.visits += 1;
            let (slots, placed) = &self.groups[g];
            if *placed >= self.max_per_group {
                continue;
            }
            let seed = [
                self.object_id.to_le_bytes().as_slice(),
                &self.index.to_le_bytes(),
                &(g as u64).to_le_bytes(),
            ]
            .concat();
            let offset = xxhash_rust::xxh3::xxh3_64(&seed) as usize;
            let found = (0..slots.len())
                .map(|k| slots[(offset + k) % slots.len()])
                .find(|&s| self.usable[s as usize] && !self.taken[s as usize]);
            if let Some(slot) = found {
                self.taken[slot as usize] = true;
                self.groups[g].1 += 1;
                return Some(slot);
            }
        }
        None
    }

    /// Gives back the last pick, `slot`, which had no room: its group may take another piece;
    /// the device itself is not picked again.
    pub fn skip(&mut self, slot: u32) {
        let placed = &mut self.groups[self.group_index[slot as usize]].1;
        assert!(*placed > 0, "a slot given back was picked");
        *placed -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// No stripe puts two copies or shards on one device, any on an unusable one, or more
        /// than `max_per_group` in one failure group; it fails only when no more can fit.
        #[test]
        fn stripes_use_distinct_usable_devices_within_group_limits(
            object_id in any::<u128>(),
            index in 0u32..1 << 20,
            usable in proptest::collection::vec(any::<bool>(), 1..64),
            width in 1usize..20,
            group_bays in 1u32..16,
            max_per_group in 1u32..4,
        ) {
            let groups = FailureGroups {
                group_of: (0..usable.len() as u32).map(|s| s / group_bays).collect(),
            };
            let mut placer = StripePlacer::new(object_id, index, usable.clone(), &groups, max_per_group);
            let mut seen = vec![false; usable.len()];
            let mut per_group = std::collections::BTreeMap::<u32, u32>::new();
            let available = groups.capacity(&usable, max_per_group) as usize;
            for pick in 0..width {
                match placer.next_slot() {
                    Some(slot) => {
                        prop_assert!(usable[slot as usize]);
                        prop_assert!(!seen[slot as usize]);
                        seen[slot as usize] = true;
                        let n = per_group.entry(groups.group_of[slot as usize]).or_default();
                        *n += 1;
                        prop_assert!(*n <= max_per_group);
                    }
                    None => {
                        prop_assert_eq!(pick, available);
                        break;
                    }
                }
            }
        }
    }

    /// Devices fill evenly: 10,000 objects of mixed sizes (1 to 64 chunks) striped 8+2 over
    /// 60 drives in 5 failure groups of 12 (at most 2 shards per group) leave the fullest
    /// within 5% of the emptiest.
    #[test]
    fn drives_fill_evenly() {
        // (failure groups, shards per group at most): 5 rows of 12, and every drive alone.
        let rows = FailureGroups {
            group_of: (0..60).map(|s| s / 12).collect(),
        };
        for (groups, max_per_group) in [(rows, 2), (FailureGroups::singletons(60), 2)] {
            let mut chunks_per_slot = [0u64; 60];
            let mut seed = 0x9E37_79B9_7F4A_7C15u64;
            for object in 0..10_000u128 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let chunks = 1 + (seed % 64) as u32;
                let object_id = object.wrapping_mul(0x2545_F491_4F6C_DD1D_u128) ^ seed as u128;
                for index in 0..chunks {
                    let mut placer =
                        StripePlacer::new(object_id, index, vec![true; 60], &groups, max_per_group);
                    let mut per_group = std::collections::BTreeMap::<u32, u32>::new();
                    for _ in 0..10 {
                        let slot = placer.next_slot().unwrap() as usize;
                        chunks_per_slot[slot] += 1;
                        *per_group.entry(groups.group_of[slot]).or_default() += 1;
                    }
                    assert!(per_group.values().all(|&n| n <= max_per_group));
                }
            }
            let max = *chunks_per_slot.iter().max().unwrap() as f64;
            let min = *chunks_per_slot.iter().min().unwrap() as f64;
            assert!(max / min < 1.05, "max {max} min {min}");
        }
    }

    #[test]
    fn spreads_and_skips_unusable() {
        let usable = [true, true, false, true];
        let mut counts = [0u32; 4];
        for id in 0..1000u128 {
            for i in 0..4 {
                counts[place_chunk(id, i, &usable).unwrap() as usize] += 1;
            }
        }
        assert_eq!(counts[2], 0);
        assert!(counts
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != 2)
            .all(|(_, &c)| c > 800));
        assert_eq!(place_chunk(1, 0, &[false, false]), None);
    }
}
