//! Signal names and numbers as `kill` takes them (runc's forms): a number
//! (`9`), a name with or without `SIG` in any case (`KILL`, `SIGkill`), or a
//! real-time signal relative to either end (`RTMIN+3`, `SIGRTMAX-1`). Linux
//! on x86_64; the protocol carries the number.

use super::proto::MAX_SIGNAL;

/// The standard signals, Linux x86_64 numbering.
const NAMES: [(&str, i32); 31] = [
    ("HUP", 1),
    ("INT", 2),
    ("QUIT", 3),
    ("ILL", 4),
    ("TRAP", 5),
    ("ABRT", 6),
    ("BUS", 7),
    ("FPE", 8),
    ("KILL", 9),
    ("USR1", 10),
    ("SEGV", 11),
    ("USR2", 12),
    ("PIPE", 13),
    ("ALRM", 14),
    ("TERM", 15),
    ("STKFLT", 16),
    ("CHLD", 17),
    ("CONT", 18),
    ("STOP", 19),
    ("TSTP", 20),
    ("TTIN", 21),
    ("TTOU", 22),
    ("URG", 23),
    ("XCPU", 24),
    ("XFSZ", 25),
    ("VTALRM", 26),
    ("PROF", 27),
    ("WINCH", 28),
    ("IO", 29),
    ("PWR", 30),
    ("SYS", 31),
];

/// Aliases the kernel headers define.
const ALIASES: [(&str, i32); 3] = [("IOT", 6), ("POLL", 29), ("CLD", 17)];

/// The kernel's first real-time signal (glibc reserves 32 and 33 for itself,
/// but a signal sent into a sandbox is the kernel's number).
const RTMIN: i32 = 34;

/// A string that is not a signal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{given:?} is not a signal: give a number 1–{MAX_SIGNAL}, a name (TERM, SIGKILL, ...) or RTMIN+N / RTMAX-N")]
pub struct SignalError {
    /// What was given.
    pub given: String,
}

/// Parses a signal as `kill` takes it.
pub fn parse_signal(s: &str) -> Result<i32, SignalError> {
    let err = || SignalError { given: s.to_string() };
    if let Ok(n) = s.parse::<i32>() {
        return if (1..=MAX_SIGNAL).contains(&n) {
            Ok(n)
        } else {
            Err(err())
        };
    }
    let upper = s.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    if let Some(&(_, n)) = NAMES.iter().chain(ALIASES.iter()).find(|(n, _)| *n == name) {
        return Ok(n);
    }
    let rt = |base: i32, rest: &str| -> Option<i32> {
        let n = match rest.as_bytes().first() {
            None => base,
            Some(b'+') => base.checked_add(rest[1..].parse::<i32>().ok()?)?,
            Some(b'-') => base.checked_sub(rest[1..].parse::<i32>().ok()?)?,
            _ => return None,
        };
        (RTMIN..=MAX_SIGNAL).contains(&n).then_some(n)
    };
    let n = if let Some(rest) = name.strip_prefix("RTMIN") {
        rt(RTMIN, rest)
    } else if let Some(rest) = name.strip_prefix("RTMAX") {
        rt(MAX_SIGNAL, rest)
    } else {
        None
    };
    n.ok_or_else(err)
}

/// A signal's name (`SIGTERM`, `SIGRTMIN+3`), for messages.
pub fn signal_name(n: i32) -> String {
    match NAMES.iter().find(|(_, m)| *m == n) {
        Some((name, _)) => format!("SIG{name}"),
        None if n == RTMIN => "SIGRTMIN".into(),
        None if (RTMIN + 1..=MAX_SIGNAL).contains(&n) => format!("SIGRTMIN+{}", n - RTMIN),
        None => format!("signal {n}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        for (s, n) in [
            ("9", 9),
            ("KILL", 9),
            ("kill", 9),
            ("SIGKILL", 9),
            ("SigTerm", 15),
            ("TERM", 15),
            ("hup", 1),
            ("IOT", 6),
            ("SIGCLD", 17),
            ("RTMIN", 34),
            ("RTMIN+3", 37),
            ("SIGRTMAX", 64),
            ("rtmax-2", 62),
            ("64", 64),
        ] {
            assert_eq!(parse_signal(s), Ok(n), "{s}");
        }
        for bad in [
            "0",
            "65",
            "-9",
            "",
            "SIG",
            "TERMINATE",
            "RTMIN-1",
            "RTMAX+1",
            "RTMIN+x",
            "RTMIN3",
            "9x",
        ] {
            let e = parse_signal(bad).unwrap_err();
            assert!(e.to_string().contains("is not a signal"), "{bad}: {e}");
        }
    }

    #[test]
    fn names_match_libc() {
        for (name, n) in NAMES {
            let libc_n = match name {
                "HUP" => libc::SIGHUP,
                "INT" => libc::SIGINT,
                "KILL" => libc::SIGKILL,
                "TERM" => libc::SIGTERM,
                "CHLD" => libc::SIGCHLD,
                "STOP" => libc::SIGSTOP,
                "USR1" => libc::SIGUSR1,
                "WINCH" => libc::SIGWINCH,
                "SYS" => libc::SIGSYS,
                "PWR" => libc::SIGPWR,
                _ => n,
            };
            assert_eq!(n, libc_n, "{name}");
            assert_eq!(parse_signal(&signal_name(n)), Ok(n));
        }
        assert_eq!(signal_name(37), "SIGRTMIN+3");
        assert_eq!(parse_signal(&signal_name(37)), Ok(37));
        assert_eq!(signal_name(34), "SIGRTMIN");
    }
}
