//! Aligned I/O buffers and a bounded pool of them.
//!
//! O_DIRECT needs the buffer address, the length and the device offset aligned to the logical
//! block size; we align everything to [`BLOCK_SIZE`] (4 KiB), which every current disk accepts.
//!
//! Must not import anything of this crate above `device` but `error`: it knows no segment,
//! metadata, schema or store.

use std::alloc::{self, Layout};
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;
use std::sync::Arc;

use parking_lot::{Condvar, Mutex};

/// Alignment and granularity of every device I/O, in bytes.
pub const BLOCK_SIZE: usize = 4096;

/// Rounds `n` up to a multiple of [`BLOCK_SIZE`].
pub const fn align_up(n: usize) -> usize {
    (n + BLOCK_SIZE - 1) & !(BLOCK_SIZE - 1)
}

/// Rounds `n` up to a multiple of [`BLOCK_SIZE`] (u64 form for device offsets).
pub const fn align_up_u64(n: u64) -> u64 {
    (n + BLOCK_SIZE as u64 - 1) & !(BLOCK_SIZE as u64 - 1)
}

/// A heap buffer whose address and capacity are multiples of [`BLOCK_SIZE`].
///
/// `len` is the number of bytes an I/O transfers; it is kept a multiple of `BLOCK_SIZE` by
/// [`AlignedBuf::set_len`]. The bytes are zeroed on allocation.
pub struct AlignedBuf {
    ptr: NonNull<u8>,
    len: usize,
    capacity: usize,
}

// SAFETY: AlignedBuf owns its allocation exclusively, like a Vec<u8>.
unsafe impl Send for AlignedBuf {}
// SAFETY: shared access only hands out &[u8].
unsafe impl Sync for AlignedBuf {}

impl AlignedBuf {
    /// Allocates a zeroed buffer of `capacity` bytes rounded up to [`BLOCK_SIZE`]; `len` starts
    /// equal to the capacity.
    pub fn new(capacity: usize) -> Self {
        let capacity = align_up(capacity.max(BLOCK_SIZE));
        let layout = Layout::from_size_align(capacity, BLOCK_SIZE).expect("aligned layout");
        // SAFETY: layout has non-zero size.
        let ptr = unsafe { alloc::alloc_zeroed(layout) };
        let ptr = NonNull::new(ptr).unwrap_or_else(|| alloc::handle_alloc_error(layout));
        AlignedBuf {
            ptr,
            len: capacity,
            capacity,
        }
    }

    /// Capacity in bytes (a multiple of [`BLOCK_SIZE`]).
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Sets the transfer length to `len` rounded up to [`BLOCK_SIZE`].
    ///
    /// # Panics
    /// If the rounded length exceeds the capacity (a caller bug, never input-driven).
    pub fn set_len(&mut self, len: usize) {
        let len = align_up(len);
        assert!(
            len <= self.capacity,
            "AlignedBuf::set_len({len}) beyond capacity {}",
            self.capacity
        );
        self.len = len;
    }

    /// Raw pointer for the device layer's submissions.
    pub(crate) fn as_mut_ptr(&mut self) -> *mut u8 {
        self.ptr.as_ptr()
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        let layout = Layout::from_size_align(self.capacity, BLOCK_SIZE).expect("aligned layout");
        // SAFETY: allocated in `new` with this same layout.
        unsafe { alloc::dealloc(self.ptr.as_ptr(), layout) }
    }
}

impl Deref for AlignedBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: ptr is valid for `capacity >= len` initialised (zeroed) bytes.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl DerefMut for AlignedBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as above, and we hold &mut self.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl std::fmt::Debug for AlignedBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "AlignedBuf(len={}, capacity={})",
            self.len, self.capacity
        )
    }
}

/// A bounded pool of equal-sized aligned buffers.
///
/// At most `max_buffers` exist at once; [`BufferPool::get`] blocks when all are lent out. This
/// is what bounds the memory of a streaming put or get: buffer size x count, not object size.
#[derive(Clone)]
pub struct BufferPool {
    inner: Arc<PoolInner>,
}

struct PoolInner {
    buffer_bytes: usize,
    max_buffers: usize,
    state: Mutex<PoolState>,
    returned: Condvar,
}

struct PoolState {
    free: Vec<AlignedBuf>,
    outstanding: usize,
}

/// A buffer lent by a [`BufferPool`]; it goes back to the pool when dropped.
pub struct PooledBuf {
    buf: Option<AlignedBuf>,
    pool: Arc<PoolInner>,
}

impl BufferPool {
    /// A pool of at most `max_buffers` buffers of `buffer_bytes` each (rounded up to 4 KiB).
    pub fn new(buffer_bytes: usize, max_buffers: usize) -> Self {
        BufferPool {
            inner: Arc::new(PoolInner {
                buffer_bytes: align_up(buffer_bytes),
                max_buffers: max_buffers.max(1),
                state: Mutex::new(PoolState {
                    free: Vec::new(),
                    outstanding: 0,
                }),
                returned: Condvar::new(),
            }),
        }
    }

    /// Size of each buffer in bytes.
    pub fn buffer_bytes(&self) -> usize {
        self.inner.buffer_bytes
    }

    /// Maximum number of buffers lent at once.
    pub fn max_buffers(&self) -> usize {
        self.inner.max_buffers
    }

    /// Bytes of buffers allocated so far (lent out or kept free for reuse).
    pub fn allocated_bytes(&self) -> usize {
        let state = self.inner.state.lock();
        (state.outstanding + state.free.len()) * self.inner.buffer_bytes
    }

    /// Takes a buffer if one is free or may still be allocated, without waiting.
    ///
    /// A stream that holds buffers of its own must use this and, on `None`, wait for one of its
    /// own I/Os instead of blocking in [`BufferPool::get`]: otherwise streams could each hold
    /// some buffers while waiting for more, and none would ever return one.
    pub fn try_get(&self) -> Option<PooledBuf> {
        let mut state = self.inner.state.lock();
        if let Some(buf) = state.free.pop() {
            state.outstanding += 1;
            return Some(PooledBuf {
                buf: Some(buf),
                pool: self.inner.clone(),
            });
        }
        if state.outstanding < self.inner.max_buffers {
            state.outstanding += 1;
            drop(state);
            return Some(PooledBuf {
                buf: Some(AlignedBuf::new(self.inner.buffer_bytes)),
                pool: self.inner.clone(),
            });
        }
        None
    }

    /// Takes a buffer (length = full capacity), waiting while all are lent out. Call it only
    /// while holding no other buffer of this pool (see [`BufferPool::try_get`]).
    pub fn get(&self) -> PooledBuf {
        let mut state = self.inner.state.lock();
        loop {
            if let Some(buf) = state.free.pop() {
                state.outstanding += 1;
                return PooledBuf {
                    buf: Some(buf),
                    pool: self.inner.clone(),
                };
            }
            if state.outstanding < self.inner.max_buffers {
                state.outstanding += 1;
                drop(state);
                let buf = AlignedBuf::new(self.inner.buffer_bytes);
                return PooledBuf {
                    buf: Some(buf),
                    pool: self.inner.clone(),
                };
            }
            self.inner.returned.wait(&mut state);
        }
    }
}

impl PooledBuf {
    /// Takes the buffer out (for a device I/O that moves it); put it back with [`PooledBuf::restore`].
    pub fn take(&mut self) -> AlignedBuf {
        self.buf.take().expect("PooledBuf taken twice")
    }

    /// Puts back a buffer taken with [`PooledBuf::take`].
    pub fn restore(&mut self, buf: AlignedBuf) {
        self.buf = Some(buf);
    }
}

impl Deref for PooledBuf {
    type Target = AlignedBuf;
    fn deref(&self) -> &AlignedBuf {
        self.buf.as_ref().expect("PooledBuf used while taken")
    }
}

impl DerefMut for PooledBuf {
    fn deref_mut(&mut self) -> &mut AlignedBuf {
        self.buf.as_mut().expect("PooledBuf used while taken")
    }
}

impl Drop for PooledBuf {
    fn drop(&mut self) {
        let mut state = self.pool.state.lock();
        state.outstanding -= 1;
        if let Some(mut buf) = self.buf.take() {
            let full = buf.capacity();
            buf.set_len(full);
            state.free.push(buf);
        }
        drop(state);
        self.pool.returned.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_aligned_and_zeroed() {
        let buf = AlignedBuf::new(5000);
        assert_eq!(buf.capacity(), 8192);
        assert_eq!(buf.as_ptr() as usize % BLOCK_SIZE, 0);
        assert!(buf.iter().all(|&b| b == 0));
    }

    #[test]
    fn pool_bounds_outstanding_buffers() {
        let pool = BufferPool::new(4096, 2);
        let a = pool.get();
        let _b = pool.get();
        let pool2 = pool.clone();
        let waiter = std::thread::spawn(move || pool2.get().capacity());
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert!(!waiter.is_finished(), "a third buffer must wait");
        drop(a);
        assert_eq!(waiter.join().unwrap(), 4096);
    }
}
