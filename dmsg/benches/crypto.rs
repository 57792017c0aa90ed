//! Throughput of the AES-256-GCM chunk stream (placeholder, filled in below).
fn main() {}
