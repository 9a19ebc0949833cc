//! Names the plan uses for system calls and errno values on x86_64, resolved
//! from static tables (no host access).

pub use super::syscalls_x86_64::SYSCALLS;

/// The x86_64 number of a system call, by name.
pub fn syscall_nr(name: &str) -> Option<i64> {
    SYSCALLS
        .binary_search_by(|(n, _)| bytes_cmp(n.as_bytes(), name.as_bytes()))
        .ok()
        .map(|i| SYSCALLS[i].1)
}

/// The name of an x86_64 system call, by number.
pub fn syscall_name(nr: u64) -> Option<&'static str> {
    SYSCALLS
        .iter()
        .find(|(_, n)| u64::try_from(*n) == Ok(nr))
        .map(|(name, _)| *name)
}

/// `a.cmp(b)` for short names, compared in line: a launch looks up every name
/// of a spec's allow-list several times (about 7 000 comparisons for podman's),
/// and `str::cmp` calls the C library's `memcmp`, which musl runs a byte at a
/// time behind a call.
#[inline]
fn bytes_cmp(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    for (x, y) in a.iter().zip(b) {
        if x != y {
            return x.cmp(y);
        }
    }
    a.len().cmp(&b.len())
}

/// errno names accepted in policies (`errno:EPERM`) and printed in plans.
pub const ERRNOS: &[(&str, u32)] = &[
    ("EPERM", 1),
    ("ENOENT", 2),
    ("EINTR", 4),
    ("EIO", 5),
    ("E2BIG", 7),
    ("EBADF", 9),
    ("EAGAIN", 11),
    ("ENOMEM", 12),
    ("EACCES", 13),
    ("EFAULT", 14),
    ("EBUSY", 16),
    ("EEXIST", 17),
    ("ENODEV", 19),
    ("EINVAL", 22),
    ("ENOSPC", 28),
    ("ESPIPE", 29),
    ("EROFS", 30),
    ("ERANGE", 34),
    ("ENOSYS", 38),
    ("EOPNOTSUPP", 95),
    ("EAFNOSUPPORT", 97),
];

/// errno by name.
pub fn errno_by_name(name: &str) -> Option<u32> {
    ERRNOS.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
}

/// errno name by value, when it has one in [`ERRNOS`].
pub fn errno_name(v: u32) -> Option<&'static str> {
    ERRNOS.iter().find(|(_, n)| *n == v).map(|(name, _)| *name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_and_resolves() {
        assert!(SYSCALLS.windows(2).all(|w| w[0].0 < w[1].0));
        assert_eq!(syscall_nr("read"), Some(0));
        assert_eq!(syscall_nr("execve"), Some(59));
        assert_eq!(syscall_nr("bdflush"), None);
        assert_eq!(syscall_name(59), Some("execve"));
        assert_eq!(syscall_name(100_000), None);
        assert_eq!(errno_by_name("ENOSYS"), Some(38));
        assert_eq!(errno_name(1), Some("EPERM"));
    }

    #[test]
    fn bytes_cmp_agrees_with_str_cmp() {
        let names: Vec<&str> = SYSCALLS
            .iter()
            .map(|(n, _)| *n)
            .chain(["", "a", "read", "readv", "rea"])
            .collect();
        for a in &names {
            for b in &names {
                assert_eq!(bytes_cmp(a.as_bytes(), b.as_bytes()), a.cmp(b), "{a:?} vs {b:?}");
            }
        }
        assert!(SYSCALLS.iter().all(|(n, nr)| syscall_nr(n) == Some(*nr)));
    }
}
