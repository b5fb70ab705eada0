//! Placement: which HDDs of a pool hold each chunk.
//!
//! Owns the choice of devices only (no I/O). Chunks of one object go round-robin over the pool
//! starting at a device picked by hashing the object ID (xxh3), so objects spread evenly and a
//! large object streams from every drive at once. Devices that are missing, poisoned or full are
//! skipped. The copies or shards of one chunk go to distinct devices ([`StripePlacer`]).

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

/// Picks the devices of one chunk's copies or shards: each pick is a device not picked before
/// for this chunk, found as [`place_chunk`] finds one (copy `i` starts `i` devices further
/// on), so a stripe of `width` spans `width` distinct devices, spread like chunks are.
pub struct StripePlacer {
    object_id: u128,
    index: u32,
    usable: Vec<bool>,
    picked: u32,
}

impl StripePlacer {
    /// A placer for chunk `index` of `object_id` over the devices `usable[slot]`.
    pub fn new(object_id: u128, index: u32, usable: Vec<bool>) -> Self {
        StripePlacer {
            object_id,
            index,
            usable,
            picked: 0,
        }
    }

    /// The next device, never one picked before for this chunk; `None` when none is left.
    pub fn next_slot(&mut self) -> Option<u32> {
        let slot = place_chunk(self.object_id, self.index + self.picked, &self.usable)?;
        debug_assert!(self.usable[slot as usize], "placement picks usable devices");
        self.usable[slot as usize] = false;
        self.picked += 1;
        Some(slot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// No stripe puts two copies or shards on one device, or any on an unusable one.
        #[test]
        fn stripes_use_distinct_usable_devices(
            object_id in any::<u128>(),
            index in 0u32..1 << 20,
            usable in proptest::collection::vec(any::<bool>(), 1..64),
            width in 1usize..20,
        ) {
            let mut placer = StripePlacer::new(object_id, index, usable.clone());
            let mut seen = vec![false; usable.len()];
            let available = usable.iter().filter(|u| **u).count();
            for pick in 0..width {
                match placer.next_slot() {
                    Some(slot) => {
                        prop_assert!(usable[slot as usize]);
                        prop_assert!(!seen[slot as usize]);
                        seen[slot as usize] = true;
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
    /// 60 drives leave the fullest within 5% of the emptiest.
    #[test]
    fn drives_fill_evenly() {
        let mut chunks_per_slot = [0u64; 60];
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        for object in 0..10_000u128 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let chunks = 1 + (seed % 64) as u32;
            let object_id = object.wrapping_mul(0x2545_F491_4F6C_DD1D_u128) ^ seed as u128;
            for index in 0..chunks {
                let mut placer = StripePlacer::new(object_id, index, vec![true; 60]);
                for _ in 0..10 {
                    chunks_per_slot[placer.next_slot().unwrap() as usize] += 1;
                }
            }
        }
        let max = *chunks_per_slot.iter().max().unwrap() as f64;
        let min = *chunks_per_slot.iter().min().unwrap() as f64;
        assert!(max / min < 1.05, "max {max} min {min}");
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
