//! The launcher's allocator (every target): dlmalloc behind a one-word spin lock.
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

//!
//! **The vfork child.** The workload is spawned with `CLONE_VM|CLONE_VFORK`:
//! it runs in the supervisor's memory, so an allocation there would take this
//! lock and change the supervisor's heap — and a child killed inside the
//! allocator (a spec seccomp filter that kills on mmap, brk or munmap) would
//! leave the lock held, and the supervisor spinning forever. So the child
//! never reaches dlmalloc: [`enter_child`], its first act, switches every
//! allocation to a bump arena in this binary's zeroed data (no system call,
//! no lock: page faults only), frees become no-ops, and the supervisor,
//! resumed, calls [`leave_child`] before anything else. The exec path itself
//! allocates nothing (its argument arrays are built before the spawn); the
//! arena catches the rest of the workload's setup (origins, capability sets,
//! a failure report).

use std::alloc::{GlobalAlloc, Layout};
use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Size of the vfork child's arena.
const ARENA_SIZE: usize = 256 * 1024;

#[repr(C, align(4096))]
struct Arena(UnsafeCell<[u8; ARENA_SIZE]>);

// SAFETY: the arena is written only by the vfork child, while the one other
// process that shares it (the supervisor) is suspended.
unsafe impl Sync for Arena {}

static ARENA: Arena = Arena(UnsafeCell::new([0; ARENA_SIZE]));
/// Set by the vfork child: allocate from [`ARENA`] only.
static IN_CHILD: AtomicBool = AtomicBool::new(false);
/// Bytes of [`ARENA`] handed out.
static ARENA_USED: AtomicUsize = AtomicUsize::new(0);

/// The vfork child's first act: from here every allocation of this process
/// (of the shared memory) comes from the arena and nothing is freed.
pub fn enter_child() {
    IN_CHILD.store(true, Ordering::SeqCst);
}

/// The supervisor's first act once its vfork child has exec'd or died: back
/// to dlmalloc. What the child allocated stays in the arena (never reused).
pub fn leave_child() {
    IN_CHILD.store(false, Ordering::SeqCst);
}

/// Empties the arena for the next vfork child (a serving supervisor spawns
/// one per `exec`). Only once the last child has exec'd or died, and only
/// when nothing it allocated is still referenced: the interpreter puts back
/// every field the child's walk changed before this is called.
pub fn reset_arena() {
    let used = ARENA_USED.swap(0, Ordering::SeqCst);
    // The pages the child touched read as zero again and stop counting as
    // this process's memory (the arena is in zeroed data; its contents are
    // dead).
    let len = used.min(ARENA_SIZE).next_multiple_of(4096);
    if len > 0 {
        // SAFETY: [ARENA, ARENA + len) lies inside the page-aligned arena,
        // which nothing references once the child is gone (see above).
        unsafe { libc::madvise(ARENA.0.get().cast(), len, libc::MADV_DONTNEED) };
    }
}

/// Bytes the vfork children of this process took from the arena (a test
/// sees the child's path allocate nothing from dlmalloc through this).
pub fn arena_used() -> usize {
    ARENA_USED.load(Ordering::SeqCst)
}

/// Test hook (`fault-injection`): marks the lock of every [`Allocator`] of
/// this process held (`true`) or free, as a child killed inside the
/// allocator would leave it. A spawned child that reached the allocator
/// while it is held would spin forever.
pub fn hold_lock(held: bool) {
    HELD.store(held, Ordering::SeqCst);
}

/// Set by [`hold_lock`].
static HELD: AtomicBool = AtomicBool::new(false);

fn in_arena(ptr: *mut u8) -> bool {
    let base = ARENA.0.get() as usize;
    (base..base + ARENA_SIZE).contains(&(ptr as usize))
}

/// A bump allocation from the arena; null when it is exhausted.
fn arena_alloc(layout: Layout) -> *mut u8 {
    let base = ARENA.0.get() as usize;
    let used = ARENA_USED.load(Ordering::Relaxed);
    let start = (base + used).next_multiple_of(layout.align().max(1));
    let end = start + layout.size();
    if end > base + ARENA_SIZE {
        return std::ptr::null_mut();
    }
    ARENA_USED.store(end - base, Ordering::Relaxed);
    start as *mut u8
}

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
        while HELD.load(Ordering::Relaxed) {
            std::hint::spin_loop();
        }
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

/// The process's global [`Allocator`], once registered ([`Allocator::register`]).
static GLOBAL: std::sync::atomic::AtomicPtr<Allocator> = std::sync::atomic::AtomicPtr::new(std::ptr::null_mut());

impl Allocator {
    /// Registers this allocator (the `#[global_allocator]` static) so that
    /// [`trim`] can reach it.
    pub fn register(&'static self) {
        GLOBAL.store(std::ptr::from_ref(self).cast_mut(), Ordering::Relaxed);
    }
}

/// Gives the free memory at the top of the heap back to the system (a
/// created sandbox's supervisor, once it outlives its launcher: what the
/// launcher freed would otherwise stay dirty and private to it). Returns
/// whether anything was released; nothing when no allocator is registered.
pub fn trim() -> bool {
    let g = GLOBAL.load(Ordering::Relaxed);
    if g.is_null() {
        return false;
    }
    // SAFETY: `g` was registered from a `&'static Allocator`.
    let a = unsafe { &*g };
    // SAFETY: trim only releases memory dlmalloc owns and no block uses.
    a.with(|h| unsafe { h.trim(0) })
}

impl Default for Allocator {
    fn default() -> Self {
        Self::new()
    }
}

// SAFETY: each method forwards to dlmalloc's matching call, with the size and
// alignment GlobalAlloc guarantees, under the lock; in a vfork child (and for
// pointers the child allocated) the arena is used instead, which dlmalloc
// never sees.
unsafe impl GlobalAlloc for Allocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if IN_CHILD.load(Ordering::Relaxed) {
            return arena_alloc(layout);
        }
        // SAFETY: as for the impl.
        self.with(|h| unsafe { h.malloc(layout.size(), layout.align()) })
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // The child frees nothing (a free of the supervisor's memory would
        // take the lock); arena memory is never freed.
        if IN_CHILD.load(Ordering::Relaxed) || in_arena(ptr) {
            return;
        }
        // SAFETY: `ptr` came from this allocator with `layout`.
        self.with(|h| unsafe { h.free(ptr, layout.size(), layout.align()) })
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if IN_CHILD.load(Ordering::Relaxed) {
            let p = arena_alloc(layout);
            if !p.is_null() {
                // SAFETY: `p` is `layout.size()` bytes of the arena, just taken.
                unsafe { p.write_bytes(0, layout.size()) };
            }
            return p;
        }
        // SAFETY: as for the impl.
        self.with(|h| unsafe { h.calloc(layout.size(), layout.align()) })
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if IN_CHILD.load(Ordering::Relaxed) || in_arena(ptr) {
            // SAFETY: the new layout is valid (GlobalAlloc's contract).
            let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
            // SAFETY: as for the impl.
            let q = unsafe { self.alloc(new_layout) };
            if !q.is_null() {
                // SAFETY: both blocks hold at least the smaller size.
                unsafe { std::ptr::copy_nonoverlapping(ptr, q, layout.size().min(new_size)) };
                // SAFETY: `ptr` came from this allocator with `layout`.
                unsafe { self.dealloc(ptr, layout) };
            }
            return q;
        }
        // SAFETY: `ptr` came from this allocator with `layout`.
        self.with(|h| unsafe { h.realloc(ptr, layout.size(), layout.align(), new_size) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// In child mode nothing reaches dlmalloc: the heap's lock is never
    /// taken (a child killed there would leave it held), frees are no-ops,
    /// and memory moves out of the arena again once the parent is back.
    #[test]
    fn the_vfork_child_allocates_from_the_arena_only() {
        let a = Allocator::new();
        let layout = Layout::from_size_align(40, 8).unwrap();
        // SAFETY: as in `allocates_frees_and_grows`.
        unsafe {
            let parent = a.alloc(layout);
            a.locked.store(true, Ordering::SeqCst); // as if a dead child held it
            enter_child();
            let before = arena_used();
            let c = a.alloc(layout);
            assert!(in_arena(c));
            c.write_bytes(9, 40);
            a.dealloc(parent, layout); // no-op: would spin on the lock otherwise
            let c2 = a.realloc(c, layout, 4000);
            assert!(in_arena(c2) && *c2.add(39) == 9);
            let z = a.alloc_zeroed(Layout::from_size_align(64, 64).unwrap());
            assert!(in_arena(z) && z as usize % 64 == 0);
            assert!(arena_used() > before);
            leave_child();
            a.locked.store(false, Ordering::SeqCst);
            let out = a.realloc(c2, Layout::from_size_align(4000, 8).unwrap(), 8000);
            assert!(!in_arena(out) && *out.add(39) == 9);
            a.dealloc(out, Layout::from_size_align(8000, 8).unwrap());
            a.dealloc(parent, layout);
        }
    }

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
