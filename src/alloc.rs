//! The allocator of musl builds: dlmalloc behind a one-word spin lock.
//!
//! musl's own allocator (mallocng) hands memory back to the kernel eagerly:
//! parsing's many small allocations and frees became mmap/munmap churn and TLB
//! flushes, and the front end took 1.10 ms to a prepared plan instead of
//! glibc's 0.68 (docs/apply.md, "Speed"). dlmalloc, in pure Rust, keeps freed
//! memory for reuse. The dlmalloc crate's own global allocator takes a
//! pthread mutex on every call, which in musl is a call of some hundred
//! instructions; sandboxctl runs no threads, so the lock here is one
//! uncontended atomic exchange. It still is a lock: a thread, if one is ever
//! started, stays correct.

use std::alloc::{GlobalAlloc, Layout};
use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, Ordering};

/// dlmalloc, locked by a spin lock. Install with `#[global_allocator]`.
pub struct Allocator {
    locked: AtomicBool,
    heap: UnsafeCell<dlmalloc::Dlmalloc>,
}

// SAFETY: `heap` is only reached through `with`, which holds `locked`.
unsafe impl Sync for Allocator {}

impl Allocator {
    /// An allocator with an empty heap.
    pub const fn new() -> Self {
        Allocator {
            locked: AtomicBool::new(false),
            heap: UnsafeCell::new(dlmalloc::Dlmalloc::new()),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut dlmalloc::Dlmalloc) -> T) -> T {
        while self
            .locked
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            std::hint::spin_loop();
        }
        // SAFETY: the lock is held, so this is the only reference to the heap.
        let r = f(unsafe { &mut *self.heap.get() });
        self.locked.store(false, Ordering::Release);
        r
    }
}

impl Default for Allocator {
    fn default() -> Self {
        Self::new()
    }
}

// SAFETY: each method forwards to dlmalloc's matching call, with the size and
// alignment GlobalAlloc guarantees, under the lock.
unsafe impl GlobalAlloc for Allocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for the impl.
        self.with(|h| unsafe { h.malloc(layout.size(), layout.align()) })
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from this allocator with `layout`.
        self.with(|h| unsafe { h.free(ptr, layout.size(), layout.align()) })
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for the impl.
        self.with(|h| unsafe { h.calloc(layout.size(), layout.align()) })
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` came from this allocator with `layout`.
        self.with(|h| unsafe { h.realloc(ptr, layout.size(), layout.align(), new_size) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocates_frees_and_grows() {
        let a = Allocator::new();
        let layout = Layout::from_size_align(24, 8).unwrap();
        // SAFETY: layouts are non-zero; pointers are used within their sizes
        // and freed with the layouts they were made with.
        unsafe {
            let p = a.alloc(layout);
            assert!(!p.is_null());
            p.write_bytes(7, 24);
            let q = a.realloc(p, layout, 4096);
            assert!(!q.is_null());
            assert_eq!(*q.add(23), 7);
            a.dealloc(q, Layout::from_size_align(4096, 8).unwrap());
            let z = a.alloc_zeroed(Layout::from_size_align(64, 64).unwrap());
            assert_eq!(z as usize % 64, 0);
            assert!((0..64).all(|i| *z.add(i) == 0));
            a.dealloc(z, Layout::from_size_align(64, 64).unwrap());
        }
    }
}
