//! Adversarial tests: trust (see mod.rs).
