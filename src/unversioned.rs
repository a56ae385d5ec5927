//! Plumbing that the `gracetls` command, the examples and the tests use from the inside. **Not
//! covered by semver**: anything here may change or go in any release. A program that uses
//! the library needs none of it.

pub use crate::format::{format_duration, with_causes};
pub use crate::transport::{MemoryTransport, Spill};
pub use crate::utc::{rfc3339 as format_rfc3339, utc as format_utc};
