//! Guest programs for kvm-wss: one binary per access pattern, in `src/bin/`.
#![no_std]
