//! random: uniformly random accesses over --wss.
#![no_std]
#![no_main]

wss_guest::entry!(wss_guest::kernel::uniform);
