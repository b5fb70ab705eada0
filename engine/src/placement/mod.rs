//! Placement: which HDDs of a pool hold each chunk.
//!
//! Owns the choice of devices only (no I/O). Chunks of one object go round-robin over the pool
//! starting at a device picked by hashing the object ID (xxh3), so objects spread evenly and a
//! large object streams from every drive at once. Devices that are missing, poisoned or full are
//! skipped. Protection (replicas on distinct devices, Reed–Solomon shards) builds on this.

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

#[cfg(test)]
mod tests {
    use super::*;

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
