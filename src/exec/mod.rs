//! The interpreter side: everything that touches the host. `detect` asks the
//! machine for its [`HostFacts`](crate::host::HostFacts).

pub mod detect;
