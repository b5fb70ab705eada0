//! Protection: the arithmetic of a stripe. An erasure-coded chunk (`ec:K+M`) is split into
//! K data shards of one even size and M parity shards computed from them (Reed–Solomon over
//! GF(2^16), the `reed-solomon-simd` crate: Leopard-RS, Lin, Han and Chung, "Novel Polynomial
//! Basis and Its Application to Reed-Solomon Erasure Codes", FOCS 2014); any K of the K+M
//! shards restore the chunk. A replicated chunk (`replicas:N`) is N equal copies.
//!
//! Owns: splitting and encoding a stripe ([`split_stripe`], [`add_parity`]), restoring the data shards of a
//! degraded read ([`restore_data_shards`]), and recomputing the bad locations of a chunk for
//! rebuild and scrub ([`reconstruct`]). Where shards live (placement), how they are framed
//! (segment needles) and which are bad (repair's reads) are decided elsewhere.
//!
//! Must not import anything of this crate: it is pure computation on byte buffers, with no
//! I/O, so that the store's writes, its degraded reads and repair share one stripe code.

/// Splits `data` into `k` data shards of `shard_len` bytes (the last zero-padded), copied out
/// so the caller may release `data`'s buffer before [`add_parity`] computes the rest.
///
/// `shard_len` must be even, non-zero and at least `data.len() / k` (see
/// `schema::shard_bytes`). Panics otherwise: that is a bug of the caller, never outside input.
pub fn split_stripe(data: &[u8], k: usize, shard_len: usize) -> Vec<Vec<u8>> {
    assert!(
        shard_len > 0 && shard_len % 2 == 0 && shard_len * k >= data.len(),
        "shards of {shard_len} bytes cannot hold {} bytes in {k}",
        data.len()
    );
    let n = data.len();
    (0..k)
        .map(|s| {
            let mut shard = vec![0u8; shard_len];
            let from = (s * shard_len).min(n);
            let to = (from + shard_len).min(n);
            shard[..to - from].copy_from_slice(&data[from..to]);
            shard
        })
        .collect()
}

/// Appends the `m` parity shards of the `k` data shards in `shards`: `k + m` shards in stripe
/// order.
///
/// `k` and `m` must be a shard count the bucket's protection allows (checked at bucket
/// creation), the shards those of [`split_stripe`]. Panics otherwise.
pub fn add_parity(shards: &mut Vec<Vec<u8>>, m: usize) {
    let k = shards.len();
    // Shard counts are checked at bucket creation and shard sizes are even and non-zero,
    // the coder's only conditions.
    let parity = reed_solomon_simd::encode(k, m, &*shards)
        .expect("a supported shard count and an even, non-zero shard size");
    shards.extend(parity);
    debug_assert_eq!(shards.len(), k + m);
}

/// Fills the missing data shards (`good[..k]`) of a stripe of `k + m` shards from the good
/// ones (at least `k` of them), in place; parity shards are left as they are.
///
/// Errors: the coder's message when the good shards cannot restore the data (fewer than `k`,
/// or of unequal sizes).
pub fn restore_data_shards(
    k: usize,
    m: usize,
    good: &mut [Option<Vec<u8>>],
) -> std::result::Result<(), String> {
    debug_assert_eq!(good.len(), k + m);
    if good[..k].iter().all(Option::is_some) {
        return Ok(());
    }
    let originals = (0..k).filter_map(|s| good[s].as_deref().map(|p| (s, p)));
    let recovery = (k..k + m).filter_map(|s| good[s].as_deref().map(|p| (s - k, p)));
    let restored =
        reed_solomon_simd::decode(k, m, originals, recovery).map_err(|e| e.to_string())?;
    for (s, shard) in restored {
        good[s] = Some(shard);
    }
    Ok(())
}

/// The payloads of the bad locations of a chunk, from its good ones: a good copy for
/// `replicas:N`; for `ec:K+M` the data shards (decoded from K good shards when any is missing)
/// and the parity re-encoded from them. Returns (location, payload) per bad location.
pub fn reconstruct(
    data_shards: u8,
    payload: &[Option<Vec<u8>>],
    bad: &[bool],
) -> std::result::Result<Vec<(usize, Vec<u8>)>, String> {
    let good = payload.iter().filter(|p| p.is_some()).count();
    let bad_at = || bad.iter().enumerate().filter(|(_, b)| **b).map(|(l, _)| l);
    // A needle moved by garbage collection was read good: it is its own payload.
    if bad_at().all(|l| payload[l].is_some()) {
        return Ok(bad_at()
            .map(|l| (l, payload[l].clone().expect("read good")))
            .collect());
    }
    if data_shards == 0 {
        let copy = payload
            .iter()
            .flatten()
            .next()
            .ok_or_else(|| format!("none of its {} copies is good", payload.len()))?;
        return Ok(bad_at().map(|l| (l, copy.clone())).collect());
    }
    let k = data_shards as usize;
    let m = payload.len() - k;
    if good < k {
        return Err(format!(
            "{good} of its {} shards are good and it needs {k}",
            k + m
        ));
    }
    // Missing data shards are decoded from any K good ones (the coder numbers originals 0..K
    // and recovery shards 0..M); the good payloads are only borrowed.
    let restored = if payload[..k].iter().any(Option::is_none) {
        let originals = (0..k).filter_map(|s| payload[s].as_deref().map(|p| (s, p)));
        let recovery = (k..k + m).filter_map(|s| payload[s].as_deref().map(|p| (s - k, p)));
        reed_solomon_simd::decode(k, m, originals, recovery)
            .map_err(|e| format!("reconstruction failed: {e}"))?
    } else {
        Default::default()
    };
    let data = |s: usize| -> &[u8] {
        payload[s]
            .as_deref()
            .or_else(|| restored.get(&s).map(Vec::as_slice))
            .expect("every data shard is good or restored")
    };
    let parity = if bad[k..].iter().any(|b| *b) {
        reed_solomon_simd::encode(k, m, (0..k).map(data))
            .map_err(|e| format!("re-encoding parity failed: {e}"))?
    } else {
        Vec::new()
    };
    Ok(bad_at()
        .map(|l| {
            let shard = if l < k {
                data(l).to_vec()
            } else {
                parity[l - k].clone()
            };
            (l, shard)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_k_shards_restore_the_data_and_reconstruct_rebuilds_the_rest() {
        let data: Vec<u8> = (0..1001u32).map(|i| (i * 7 % 251) as u8).collect();
        let (k, m) = (4, 2);
        let shard_len = (data.len().div_ceil(k) + 1) & !1;
        let mut shards = split_stripe(&data, k, shard_len);
        add_parity(&mut shards, m);
        assert_eq!(shards.len(), k + m);
        for lost in [[0, 1], [0, 5], [3, 4], [4, 5]] {
            let mut good: Vec<Option<Vec<u8>>> = shards.iter().cloned().map(Some).collect();
            for l in lost {
                good[l] = None;
            }
            restore_data_shards(k, m, &mut good).unwrap();
            let joined: Vec<u8> = good[..k].iter().flatten().flatten().copied().collect();
            assert_eq!(&joined[..data.len()], &data[..], "lost {lost:?}");
            let mut payload: Vec<Option<Vec<u8>>> = shards.iter().cloned().map(Some).collect();
            let mut bad = vec![false; k + m];
            for l in lost {
                payload[l] = None;
                bad[l] = true;
            }
            let rebuilt = reconstruct(k as u8, &payload, &bad).unwrap();
            for (l, shard) in rebuilt {
                assert_eq!(shard, shards[l], "location {l}");
            }
        }
        let mut too_few: Vec<Option<Vec<u8>>> = shards.iter().cloned().map(Some).collect();
        for l in [0, 1, 2] {
            too_few[l] = None;
        }
        assert!(reconstruct(k as u8, &too_few, &[true, true, true, false, false, false]).is_err());
        // Replicas: any good copy is every bad one.
        let copies = vec![None, Some(b"abc".to_vec()), None];
        let rebuilt = reconstruct(0, &copies, &[true, false, true]).unwrap();
        assert_eq!(rebuilt, vec![(0, b"abc".to_vec()), (2, b"abc".to_vec())]);
    }
}
