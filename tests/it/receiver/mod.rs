//! The receiver tier: alert delivery to real HTTP(S) receivers on 127.0.0.1 and to a real
//! Alertmanager. No root.

mod alert_alertmanager;
mod alert_delivery;
