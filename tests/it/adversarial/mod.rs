//! The adversarial suite: each attack or fault of the security review
//! (shared/design/security-review.md at 582672d), reproduced as the review did it and kept as
//! a regression test. What each one defends is in docs/security.md. Tests that need root take
//! the kernel tier's guard; the rest run anywhere, as the pure tier does.

mod availability;
mod hygiene;
mod state_files;
mod trust;
