//! `memcpy`, `memmove`, `memcmp` and `bcmp` for musl builds.
//!
//! musl's x86-64 `memcpy` moves unaligned heads and tails one `movsb` at a
//! time around a `rep movsq`, and its `memcmp` and `bcmp` compare a byte at a
//! time. Rust code calls these for most moves and comparisons of more than a
//! few words, and in sandboxctl's front end (parsing the policy and the spec,
//! compiling the plan) musl's `memcpy` alone took a quarter of the user time
//! (`perf`; glibc's vector versions take a twentieth). These replace them in
//! the static link (the linker takes a symbol from libc.a only when nothing
//! else defines it): up to 16 bytes with a pair of overlapping loads and
//! stores, longer copies with `rep movsb` (fast strings, ERMS/FSRM, on every
//! x86-64 CPU of the last decade), comparisons a word at a time. No loops
//! over bytes, so the compiler cannot turn them back into calls to
//! themselves.

use std::arch::asm;
use std::ptr::{read_unaligned as rd, write_unaligned as wr};

/// Copies `n` bytes; up to 16 by loading everything before storing
/// anything, so it is also correct when the ranges overlap.
#[inline(always)]
unsafe fn copy_small(d: *mut u8, s: *const u8, n: usize) {
    // SAFETY: (every access below) the caller gives `n` readable bytes at
    // `s` and `n` writable ones at `d`; each load and store lies inside them.
    unsafe {
        if n >= 8 {
            let (a, b) = (rd(s.cast::<u64>()), rd(s.add(n - 8).cast::<u64>()));
            wr(d.cast::<u64>(), a);
            wr(d.add(n - 8).cast::<u64>(), b);
        } else if n >= 4 {
            let (a, b) = (rd(s.cast::<u32>()), rd(s.add(n - 4).cast::<u32>()));
            wr(d.cast::<u32>(), a);
            wr(d.add(n - 4).cast::<u32>(), b);
        } else if n >= 2 {
            let (a, b) = (rd(s.cast::<u16>()), rd(s.add(n - 2).cast::<u16>()));
            wr(d.cast::<u16>(), a);
            wr(d.add(n - 2).cast::<u16>(), b);
        } else if n == 1 {
            *d = *s;
        }
    }
}

/// `rep movsb`, forwards (the direction flag is clear, as the ABI says).
#[inline(always)]
unsafe fn rep_movsb(d: *mut u8, s: *const u8, n: usize) {
    // SAFETY: the caller gives `n` readable bytes at `s` and `n` writable
    // ones at `d`; `rep movsb` touches exactly those.
    unsafe {
        asm!("rep movsb", inout("rcx") n => _, inout("rdi") d => _, inout("rsi") s => _,
            options(nostack, preserves_flags));
    }
}

/// The C library's `memcpy`.
///
/// # Safety
/// As for C's `memcpy`: `n` readable bytes at `s`, `n` writable ones at `d`,
/// not overlapping.
#[no_mangle]
pub unsafe extern "C" fn memcpy(d: *mut u8, s: *const u8, n: usize) -> *mut u8 {
    // SAFETY: the caller's contract.
    unsafe {
        if n <= 16 {
            copy_small(d, s, n);
        } else {
            rep_movsb(d, s, n);
        }
    }
    d
}

/// The C library's `memmove`.
///
/// # Safety
/// As for C's `memmove`: `n` readable bytes at `s`, `n` writable ones at `d`.
#[no_mangle]
pub unsafe extern "C" fn memmove(d: *mut u8, s: *const u8, n: usize) -> *mut u8 {
    // SAFETY: the caller's contract. A forward copy is right unless the
    // destination starts inside the source; then copy backwards, with the
    // direction flag set for the one instruction and cleared again.
    unsafe {
        if n <= 16 {
            copy_small(d, s, n);
        } else if (d as usize).wrapping_sub(s as usize) >= n {
            rep_movsb(d, s, n);
        } else {
            asm!("std", "rep movsb", "cld",
                inout("rcx") n => _, inout("rdi") d.add(n - 1) => _, inout("rsi") s.add(n - 1) => _,
                options(nostack));
        }
    }
    d
}

/// The C library's `memcmp`: the sign of the first differing byte pair, as
/// unsigned bytes.
///
/// # Safety
/// `n` readable bytes at `a` and at `b`.
#[no_mangle]
pub unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    // Big-endian words order like their bytes.
    fn order(x: u64, y: u64) -> i32 {
        i32::from(x > y) - i32::from(x < y)
    }
    // SAFETY: every load below lies inside the `n` bytes.
    unsafe {
        if n < 8 {
            let word = |p: *const u8| -> u64 {
                if n >= 4 {
                    u64::from(u32::from_be(rd(p.cast::<u32>()))) << 32
                        | u64::from(u32::from_be(rd(p.add(n - 4).cast::<u32>())))
                } else if n >= 2 {
                    u64::from(u16::from_be(rd(p.cast::<u16>()))) << 16 | u64::from(*p.add(n - 1))
                } else if n == 1 {
                    u64::from(*p)
                } else {
                    0
                }
            };
            return order(word(a), word(b));
        }
        let mut i = 0;
        while i + 8 <= n {
            let (x, y) = (
                u64::from_be(rd(a.add(i).cast::<u64>())),
                u64::from_be(rd(b.add(i).cast::<u64>())),
            );
            if x != y {
                return order(x, y);
            }
            i += 8;
        }
        if i < n {
            // The last eight bytes, overlapping ones already found equal.
            let (x, y) = (
                u64::from_be(rd(a.add(n - 8).cast::<u64>())),
                u64::from_be(rd(b.add(n - 8).cast::<u64>())),
            );
            return order(x, y);
        }
        0
    }
}

/// The C library's `bcmp`: zero when the bytes are equal.
///
/// # Safety
/// `n` readable bytes at `a` and at `b`.
#[no_mangle]
pub unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    // SAFETY: the caller's contract.
    unsafe { memcmp(a, b, n) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 + 3) as u8).collect()
    }

    #[test]
    fn memcpy_copies_every_size_and_alignment() {
        for n in 0..80 {
            for off in 0..9 {
                let src = pattern(n + off);
                let mut dst = vec![0xaau8; n + 16];
                // SAFETY: both buffers hold the bytes copied.
                let r = unsafe { memcpy(dst.as_mut_ptr().add(3), src.as_ptr().add(off), n) };
                assert_eq!(r, dst.as_mut_ptr().wrapping_add(3));
                assert_eq!(&dst[3..3 + n], &src[off..off + n], "n={n} off={off}");
                assert!(
                    dst[..3].iter().chain(&dst[3 + n..]).all(|&b| b == 0xaa),
                    "wrote outside, n={n}"
                );
            }
        }
    }

    #[test]
    fn memmove_handles_overlap_both_ways() {
        for n in 0..80 {
            for shift in 0..20usize {
                for forward in [true, false] {
                    let mut buf = pattern(n + 40);
                    let mut want = buf.clone();
                    let (s, d) = if forward { (20, 20 + shift) } else { (20 + shift, 20) };
                    want.copy_within(s..s + n, d);
                    // SAFETY: both ranges lie inside `buf`.
                    unsafe { memmove(buf.as_mut_ptr().add(d), buf.as_ptr().add(s), n) };
                    assert_eq!(buf, want, "n={n} shift={shift} forward={forward}");
                }
            }
        }
    }

    #[test]
    fn memcmp_orders_like_byte_slices() {
        for n in 0..40 {
            let a = pattern(n);
            // SAFETY: equal lengths, both readable.
            assert_eq!(unsafe { memcmp(a.as_ptr(), a.as_ptr(), n) }, 0);
            for i in 0..n {
                for delta in [1u8, 0x80, 0xff] {
                    let mut b = a.clone();
                    b[i] = b[i].wrapping_add(delta);
                    let want = a.cmp(&b) as i32;
                    // SAFETY: as above.
                    let got = unsafe { memcmp(a.as_ptr(), b.as_ptr(), n) };
                    assert_eq!(got.signum(), want, "n={n} i={i} delta={delta}");
                    // SAFETY: as above.
                    assert_ne!(unsafe { bcmp(a.as_ptr(), b.as_ptr(), n) }, 0);
                }
            }
        }
    }
}
