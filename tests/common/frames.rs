//! One seeded generator and one control-protocol frame mutator, shared by
//! the tests that use them (tests/fuzz.rs's control target and its
//! deterministic mutation test, tests/control.rs's mutated frames on the
//! socket, tests/kill_launcher.rs's kill delays): every failure reproduces
//! from its seed, and a new kind of mutation reaches every test at once.

use sandboxctl::exec::control::proto::HEADER_LEN;

/// xorshift64*: small, seedable, no crate; good enough to pick mutations.
pub struct Rng(pub u64);

impl Rng {
    /// The next number. A seed of 0 would stay 0: callers seed with `| 1`.
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }

    /// True one time in `one_in`.
    pub fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }
}

/// Bytes worth putting into a frame: JSON syntax, NUL, high bytes, digits.
pub const INTERESTING: &[u8] = b"\0\xff\"{}[]:,\\0-e\x80";

/// One to four byte-level mutations of a frame, in place: a bit flipped, a
/// byte set to or inserted as an [`INTERESTING`] one, a byte removed, the
/// frame cut, or the header's length rewritten to match what is left (so a
/// mutated body gets past the header check and reaches the JSON decoder).
pub fn mutate_frame(f: &mut Vec<u8>, rng: &mut Rng) {
    for _ in 0..1 + rng.below(4) {
        match rng.below(6) {
            0 if !f.is_empty() => {
                let i = rng.below(f.len());
                f[i] ^= 1 << rng.below(8);
            }
            1 if !f.is_empty() => {
                let i = rng.below(f.len());
                f[i] = INTERESTING[rng.below(INTERESTING.len())];
            }
            2 => {
                let i = rng.below(f.len() + 1);
                f.insert(i, INTERESTING[rng.below(INTERESTING.len())]);
            }
            3 if !f.is_empty() => {
                f.remove(rng.below(f.len()));
            }
            4 => f.truncate(rng.below(f.len() + 1)),
            _ => fix_length(f),
        }
    }
}

/// Rewrites a frame's header length to the body that follows it (nothing
/// when the frame is shorter than a header).
pub fn fix_length(f: &mut [u8]) {
    if f.len() >= HEADER_LEN {
        let len = (f.len() - HEADER_LEN) as u32;
        f[4..HEADER_LEN].copy_from_slice(&len.to_be_bytes());
    }
}
