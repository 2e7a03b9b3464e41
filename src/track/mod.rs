//! Access tracking: finding which guest pages the guest touched.

pub mod decode;
