//! Adversarial tests: availability (see mod.rs).
