//! The ordered index of metadata keys, behind the [`Index`] trait.
//!
//! The store's index is the LSM ([`super::lsm`]); [`MemIndex`], a `BTreeMap`, is the model the
//! tests compare against. [`Batch`], [`Op`] and [`Scan`] are shared by both.
//!
//! Must not import `schema`, `volume`, `store` or `segment`.

use std::collections::BTreeMap;
use std::ops::Bound;

/// One change to the index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// Set `key` to `value`.
    Put(Vec<u8>, Vec<u8>),
    /// Remove `key` (no error if absent).
    Delete(Vec<u8>),
}

/// Changes applied atomically: after a crash, all of a batch or none of it is present.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Batch {
    /// The changes, applied in order.
    pub ops: Vec<Op>,
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Self {
        Batch::default()
    }
    /// Adds a put.
    pub fn put(&mut self, key: Vec<u8>, value: Vec<u8>) -> &mut Self {
        self.ops.push(Op::Put(key, value));
        self
    }
    /// Adds a delete.
    pub fn delete(&mut self, key: Vec<u8>) -> &mut Self {
        self.ops.push(Op::Delete(key));
        self
    }
    /// Encoded size in bytes (as in a WAL frame).
    pub fn encoded_len(&self) -> usize {
        4 + self
            .ops
            .iter()
            .map(|op| match op {
                Op::Put(k, v) => 1 + 4 + k.len() + 4 + v.len(),
                Op::Delete(k) => 1 + 4 + k.len(),
            })
            .sum::<usize>()
    }
}

/// What a scan visitor wants next.
pub enum Scan {
    /// Visit the next key.
    Continue,
    /// Jump to the first key >= this one.
    SeekTo(Vec<u8>),
    /// Stop.
    Stop,
}

/// An ordered map from byte keys to byte values (keys compare as unsigned bytes).
pub trait Index: Send + Sync {
    /// The value of `key`, if present.
    fn get(&self, key: &[u8]) -> Option<Vec<u8>>;
    /// Visits keys >= `from` in order until the visitor stops.
    fn scan(&self, from: &[u8], visit: &mut dyn FnMut(&[u8], &[u8]) -> Scan);
    /// Applies a batch in order.
    fn apply(&mut self, batch: &Batch);
    /// Number of keys.
    fn len(&self) -> usize;
    /// Whether the index is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// In-memory index: a `BTreeMap`.
#[derive(Default)]
pub struct MemIndex {
    map: BTreeMap<Vec<u8>, Vec<u8>>,
}

impl MemIndex {
    /// An empty index.
    pub fn new() -> Self {
        MemIndex::default()
    }
    /// Inserts without a batch (checkpoint loading).
    pub fn insert(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.map.insert(key, value);
    }
    /// Visits every entry in order (checkpoint writing).
    pub fn for_each(&self, mut f: impl FnMut(&[u8], &[u8])) {
        for (k, v) in &self.map {
            f(k, v);
        }
    }
}

impl Index for MemIndex {
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.map.get(key).cloned()
    }

    fn scan(&self, from: &[u8], visit: &mut dyn FnMut(&[u8], &[u8]) -> Scan) {
        let mut start = from.to_vec();
        'seek: loop {
            for (k, v) in self
                .map
                .range::<[u8], _>((Bound::Included(start.as_slice()), Bound::Unbounded))
            {
                match visit(k, v) {
                    Scan::Continue => {}
                    Scan::Stop => return,
                    Scan::SeekTo(next) => {
                        debug_assert!(next.as_slice() > k.as_slice(), "scan must move forward");
                        start = next;
                        continue 'seek;
                    }
                }
            }
            return;
        }
    }

    fn apply(&mut self, batch: &Batch) {
        for op in &batch.ops {
            match op {
                Op::Put(k, v) => {
                    self.map.insert(k.clone(), v.clone());
                }
                Op::Delete(k) => {
                    self.map.remove(k);
                }
            }
        }
    }

    fn len(&self) -> usize {
        self.map.len()
    }
}
