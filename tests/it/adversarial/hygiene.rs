//! Adversarial tests: hygiene (see mod.rs).
