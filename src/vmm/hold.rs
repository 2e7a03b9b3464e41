//! Holding the vCPU out of the guest at interval boundaries, so that the
//! sampler collects, reads the truth and re-arms while the guest stands
//! still.
//!
//! The sampler asks for a hold and kicks the vCPU thread; the kick's signal
//! handler sets `kvm_run.immediate_exit`, so `KVM_RUN` returns at once
//! whether the signal lands in the guest or just before the next entry.
//! The vCPU thread then parks at a *clean point*: one where no access is
//! half done. The runtime's access routines do an access and mark its page
//! in the truth; a vCPU kicked inside one is moved to the same instruction
//! of the routine's finishing copy (published in the status block), which
//! completes the access and the mark and rings the `boundary` doorbell, and
//! the thread parks there. Holds are released by dropping the guard.
//!
//! A guest with several vCPUs has one [`Hold`] per vCPU thread, and
//! [`hold_all`] takes them together: it asks every vCPU and kicks it
//! first, then waits until each one is parked (each through the same
//! finishing-copy rule), so the boundary falls between whole accesses on
//! every vCPU at once; dropping the [`HeldAll`] releases them all.
//!
//! The guest is untrusted: a guest that never reaches the doorbell is
//! parked wherever it is after [`FINISH_TIMEOUT`], which costs only its own
//! exactness.

use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use wss_abi::Status;

/// How long a held guest may take to finish the access it was in before
/// it is parked wherever it stands. An access takes nanoseconds and a
/// tracked fault well under a millisecond, but on a loaded host the uffd
/// handler thread may wait long for a CPU: generous, as a forced hold
/// costs exactness.
pub const FINISH_TIMEOUT: Duration = Duration::from_secs(1);

#[derive(Debug, Default)]
struct State {
    /// The sampler wants the guest held.
    requested: bool,
    /// Park now, even mid-access (the guest did not finish in time).
    forced: bool,
    /// The vCPU thread is parked.
    held: bool,
    /// The vCPU thread has left its loop for good.
    gone: bool,
    /// The thread must leave its loop (the run is over).
    stop: bool,
    /// Holds taken mid-access so far.
    forced_holds: u64,
}

/// The hold shared by the sampler and the vCPU thread.
#[derive(Debug, Default)]
pub struct Hold {
    state: Mutex<State>,
    changed: Condvar,
}

/// What the vCPU thread does when a hold is requested.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The guest is at a clean point: park.
    Park,
    /// The guest is inside an access routine: continue it at this address
    /// of the finishing copy, and park when it rings the doorbell.
    Finish(u64),
}

/// Where a vCPU stopped at `rip` must go before it can be held, given the
/// access routines the guest published. Pure, so it is tested without a
/// guest; the guest's values are not trusted to be sane.
pub fn step_at(rip: u64, status: &Status) -> Step {
    let code = status.touch_code;
    let inside = rip
        .checked_sub(code)
        .filter(|&off| code != 0 && off < status.touch_code_len);
    match inside.and_then(|off| status.touch_finish.checked_add(off)) {
        Some(target) if status.touch_finish != 0 => Step::Finish(target),
        _ => Step::Park,
    }
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    // Plain flags: consistent even if a holder panicked.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A granted hold: the guest stands still until this is dropped.
#[must_use = "the guest resumes when the hold is dropped"]
pub struct Held<'a> {
    hold: &'a Hold,
    /// When the sampler asked for the hold.
    pub requested_at: Instant,
    /// When the guest stood still (or was found gone).
    pub held_at: Instant,
    /// The guest had to be parked mid-access (see [`FINISH_TIMEOUT`]).
    pub forced: bool,
}

impl Held<'_> {
    /// Releases the guest; returns how long it was held, from the request.
    pub fn release(self) -> Duration {
        let held_for = self.requested_at.elapsed();
        drop(self);
        held_for
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        let mut st = lock(&self.hold.state);
        st.requested = false;
        st.forced = false;
        self.hold.changed.notify_all();
    }
}

impl Hold {
    /// Sampler side: holds the guest. `kick` interrupts the vCPU thread's
    /// `KVM_RUN`; it is called once, then again while the thread is slow
    /// to park. Returns when the guest stands still or the thread is gone.
    pub fn hold(&self, kick: &dyn Fn()) -> Held<'_> {
        let requested_at = self.request(kick);
        self.wait(requested_at, kick)
    }

    /// The first half of [`Hold::hold`]: asks for the hold and kicks.
    /// Returns when the request was made.
    fn request(&self, kick: &dyn Fn()) -> Instant {
        let requested_at = Instant::now();
        lock(&self.state).requested = true;
        // A sleeping guest waits on the condition, not in KVM_RUN.
        self.changed.notify_all();
        // One kick is enough: its `immediate_exit` stays set until the
        // thread looks at the request. Kicking again would only interrupt
        // the access the guest is finishing.
        kick();
        requested_at
    }

    /// The second half of [`Hold::hold`]: waits until the thread parks
    /// (forcing it after [`FINISH_TIMEOUT`] from `requested_at`).
    fn wait(&self, requested_at: Instant, kick: &dyn Fn()) -> Held<'_> {
        let mut st = lock(&self.state);
        let mut forced = false;
        while !st.held && !st.gone {
            let waited = requested_at.elapsed();
            if !forced && waited >= FINISH_TIMEOUT {
                st.forced = true;
                st.forced_holds += 1;
                forced = true;
                log::warn!("the guest did not finish its access in time: held mid-access");
                drop(st);
                kick();
                st = lock(&self.state);
                continue;
            }
            let wait = FINISH_TIMEOUT
                .saturating_sub(waited)
                .max(Duration::from_millis(1));
            st = self
                .changed
                .wait_timeout(st, wait)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        drop(st);
        let held_at = Instant::now();
        log::debug!(
            "guest held {:.0} us after the request",
            (held_at - requested_at).as_secs_f64() * 1e6
        );
        Held {
            hold: self,
            requested_at,
            held_at,
            forced,
        }
    }

    /// vCPU side: whether a hold is wanted, and whether it must be taken
    /// where the guest stands.
    pub fn wanted(&self) -> Option<bool> {
        let st = lock(&self.state);
        st.requested.then_some(st.forced)
    }

    /// vCPU side: parks until the hold is released or the run stops.
    /// Returns false when the run stops.
    pub fn park(&self) -> bool {
        let mut st = lock(&self.state);
        st.held = true;
        self.changed.notify_all();
        while st.requested && !st.stop {
            st = self
                .changed
                .wait(st)
                .unwrap_or_else(PoisonError::into_inner);
        }
        st.held = false;
        !st.stop
    }

    /// vCPU side: keeps the thread off the CPU for `nap` (a guest's
    /// `sleep`), or less when a hold or stop is asked for first, so that a
    /// sleeping guest is held as promptly as a running one.
    pub fn nap(&self, nap: Duration) {
        let until = Instant::now() + nap;
        let mut st = lock(&self.state);
        while !st.requested && !st.stop {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            st = self
                .changed
                .wait_timeout(st, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Ends the run: a parked thread wakes and leaves its loop.
    pub fn stop(&self) {
        lock(&self.state).stop = true;
        self.changed.notify_all();
    }

    /// How many holds had to be taken mid-access.
    pub fn forced_holds(&self) -> u64 {
        lock(&self.state).forced_holds
    }

    pub fn stopping(&self) -> bool {
        lock(&self.state).stop
    }

    /// vCPU side: the thread left its loop; holds are granted at once.
    pub fn gone(&self) {
        lock(&self.state).gone = true;
        self.changed.notify_all();
    }
}

/// Every vCPU of a guest, held at once (see [`hold_all`]).
#[must_use = "the guest resumes when the hold is dropped"]
pub struct HeldAll<'a> {
    held: Vec<Held<'a>>,
    /// When the sampler asked for the hold.
    pub requested_at: Instant,
}

impl HeldAll<'_> {
    /// Releases every vCPU; returns how long the guest was held, from the
    /// request.
    pub fn release(self) -> Duration {
        let held_for = self.requested_at.elapsed();
        drop(self);
        held_for
    }

    /// How many vCPUs had to be parked mid-access.
    pub fn forced(&self) -> usize {
        self.held.iter().filter(|h| h.forced).count()
    }

    /// When the last vCPU stood still.
    pub fn held_at(&self) -> Instant {
        self.held
            .iter()
            .map(|h| h.held_at)
            .max()
            .unwrap_or(self.requested_at)
    }
}

/// Holds every vCPU of a guest: asks and kicks all of them first, so they
/// finish their accesses in parallel, then waits until each is parked (or
/// gone). No vCPU is released before all stand still, so nothing any of
/// them does falls between the collection and the truth. Each entry is a
/// vCPU's hold and the kick that interrupts its thread.
pub fn hold_all<'a>(vcpus: &[(&'a Hold, &dyn Fn())]) -> HeldAll<'a> {
    let requested_at = Instant::now();
    let asked: Vec<Instant> = vcpus.iter().map(|(h, kick)| h.request(*kick)).collect();
    let held = vcpus
        .iter()
        .zip(asked)
        .map(|((h, kick), at)| h.wait(at, *kick))
        .collect();
    HeldAll { held, requested_at }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    fn status(code: u64, len: u64, finish: u64) -> Status {
        Status {
            touch_code: code,
            touch_code_len: len,
            touch_finish: finish,
            ..Status::default()
        }
    }

    #[test]
    fn a_vcpu_inside_a_routine_finishes_in_the_copy() {
        let s = status(0x4000_0480, 64, 0x4000_04c0);
        assert_eq!(step_at(0x4000_0480, &s), Step::Finish(0x4000_04c0));
        assert_eq!(step_at(0x4000_04a8, &s), Step::Finish(0x4000_04e8));
        assert_eq!(step_at(0x4000_04bf, &s), Step::Finish(0x4000_04ff));
    }

    #[test]
    fn a_vcpu_outside_the_routines_parks() {
        let s = status(0x4000_0480, 64, 0x4000_04c0);
        assert_eq!(step_at(0x4000_047f, &s), Step::Park);
        assert_eq!(step_at(0x4000_04c0, &s), Step::Park, "the copy itself");
        assert_eq!(step_at(0, &s), Step::Park);
    }

    #[test]
    fn unpublished_or_hostile_routines_never_redirect_wildly() {
        assert_eq!(step_at(0x10, &status(0, 64, 0x4000_0000)), Step::Park);
        assert_eq!(
            step_at(0x4000_0000, &status(0x4000_0000, 64, 0)),
            Step::Park
        );
        // An offset that would overflow the finishing address.
        let s = status(0x1000, u64::MAX, u64::MAX - 4);
        assert_eq!(step_at(0x1010, &s), Step::Park);
        let s = status(u64::MAX - 8, 64, 0x1000);
        assert_eq!(step_at(3, &s), Step::Park, "rip below the code");
    }

    /// A stand-in vCPU thread: parks whenever a hold is wanted, and runs
    /// `guest` otherwise.
    fn stand_in(
        hold: Arc<Hold>,
        guest: impl Fn(&Hold) + Send + 'static,
    ) -> std::thread::JoinHandle<()> {
        std::thread::spawn(move || {
            while !hold.stopping() {
                if hold.wanted().is_some() {
                    if !hold.park() {
                        break;
                    }
                } else {
                    guest(&hold);
                }
            }
            hold.gone();
        })
    }

    /// A stand-in whose guest counts its steps.
    fn vcpu_loop(hold: Arc<Hold>, steps: Arc<AtomicU64>) -> std::thread::JoinHandle<()> {
        stand_in(hold, move |_| {
            steps.fetch_add(1, Ordering::SeqCst);
            std::thread::yield_now();
        })
    }

    #[test]
    fn a_held_guest_takes_no_step_until_released() {
        let hold = Arc::new(Hold::default());
        let steps = Arc::new(AtomicU64::new(0));
        let t = vcpu_loop(Arc::clone(&hold), Arc::clone(&steps));
        for _ in 0..50 {
            let held = hold.hold(&|| {});
            assert!(!held.forced);
            let before = steps.load(Ordering::SeqCst);
            std::thread::sleep(Duration::from_micros(200));
            assert_eq!(steps.load(Ordering::SeqCst), before, "no step while held");
            held.release();
        }
        hold.stop();
        t.join().expect("the stand-in thread ends");
        // A thread that is gone grants holds at once.
        let held = hold.hold(&|| {});
        assert!(held.held_at >= held.requested_at);
    }

    #[test]
    fn holding_all_stops_every_vcpu_until_released() {
        let holds: Vec<Arc<Hold>> = (0..4).map(|_| Arc::new(Hold::default())).collect();
        let steps: Vec<Arc<AtomicU64>> = (0..4).map(|_| Arc::new(AtomicU64::new(0))).collect();
        let threads: Vec<_> = holds
            .iter()
            .zip(&steps)
            .map(|(h, s)| vcpu_loop(Arc::clone(h), Arc::clone(s)))
            .collect();
        let kicks: Vec<AtomicU64> = (0..4).map(|_| AtomicU64::new(0)).collect();
        for round in 1..=20u64 {
            let kick_fns: Vec<Box<dyn Fn() + '_>> = kicks
                .iter()
                .map(|k| {
                    Box::new(move || {
                        k.fetch_add(1, Ordering::SeqCst);
                    }) as Box<dyn Fn()>
                })
                .collect();
            let pairs: Vec<(&Hold, &dyn Fn())> = holds
                .iter()
                .zip(&kick_fns)
                .map(|(h, k)| (&**h, &**k as &dyn Fn()))
                .collect();
            let held = hold_all(&pairs);
            assert_eq!(held.forced(), 0);
            assert!(held.held_at() >= held.requested_at);
            let before: Vec<u64> = steps.iter().map(|s| s.load(Ordering::SeqCst)).collect();
            std::thread::sleep(Duration::from_micros(200));
            let after: Vec<u64> = steps.iter().map(|s| s.load(Ordering::SeqCst)).collect();
            assert_eq!(before, after, "no vCPU takes a step while all are held");
            // Each vCPU was asked and kicked exactly once per hold.
            for k in &kicks {
                assert_eq!(k.load(Ordering::SeqCst), round);
            }
            held.release();
        }
        for h in &holds {
            h.stop();
        }
        for t in threads {
            t.join().expect("the stand-in thread ends");
        }
    }

    #[test]
    fn holding_all_waits_for_a_slow_vcpu_and_skips_a_gone_one() {
        let fast = Arc::new(Hold::default());
        let gone = Arc::new(Hold::default());
        gone.gone();
        let slow = Arc::new(Hold::default());
        let fast_steps = Arc::new(AtomicU64::new(0));
        let t_fast = vcpu_loop(Arc::clone(&fast), Arc::clone(&fast_steps));
        // The slow vCPU parks only once the hold is forced.
        let s = Arc::clone(&slow);
        let t_slow = std::thread::spawn(move || {
            while !s.stopping() {
                if s.wanted() == Some(true) && !s.park() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            s.gone();
        });
        let nothing = || {};
        let held = hold_all(&[
            (&*fast, &nothing as &dyn Fn()),
            (&*gone, &nothing),
            (&*slow, &nothing),
        ]);
        assert_eq!(held.forced(), 1, "only the slow vCPU was forced");
        assert_eq!(
            (
                fast.forced_holds(),
                gone.forced_holds(),
                slow.forced_holds()
            ),
            (0, 0, 1)
        );
        // The fast one stayed parked all along the slow one's timeout.
        let before = fast_steps.load(Ordering::SeqCst);
        std::thread::sleep(Duration::from_micros(200));
        assert_eq!(fast_steps.load(Ordering::SeqCst), before);
        assert!(held.release() >= FINISH_TIMEOUT);
        for h in [&fast, &slow] {
            h.stop();
        }
        t_fast.join().expect("ends");
        t_slow.join().expect("ends");
    }

    #[test]
    fn stop_wakes_a_parked_thread() {
        let hold = Arc::new(Hold::default());
        let steps = Arc::new(AtomicU64::new(0));
        let t = vcpu_loop(Arc::clone(&hold), steps);
        let held = hold.hold(&|| {});
        hold.stop();
        t.join().expect("the parked thread leaves");
        drop(held);
    }

    #[test]
    fn a_guest_that_never_parks_is_forced_after_the_timeout() {
        let hold = Arc::new(Hold::default());
        let h = Arc::clone(&hold);
        // This thread only parks once the hold is forced.
        let t = std::thread::spawn(move || {
            loop {
                if h.stopping() {
                    break;
                }
                if h.wanted() == Some(true) && !h.park() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            h.gone();
        });
        let held = hold.hold(&|| {});
        assert!(held.forced);
        assert_eq!(hold.forced_holds(), 1);
        assert!(held.held_at - held.requested_at >= FINISH_TIMEOUT);
        drop(held);
        hold.stop();
        t.join().expect("ends");
    }

    /// A stand-in vCPU thread whose guest sleeps for an hour at a time.
    fn sleeping_loop(hold: Arc<Hold>) -> std::thread::JoinHandle<()> {
        stand_in(hold, |h| h.nap(Duration::from_secs(3600)))
    }

    #[test]
    fn a_sleeping_guest_is_held_and_stopped_without_waiting_out_its_sleep() {
        let hold = Arc::new(Hold::default());
        let t = sleeping_loop(Arc::clone(&hold));
        // Kicks do nothing here: only the request itself can wake the nap.
        for _ in 0..3 {
            let held = hold.hold(&|| {});
            assert!(!held.forced, "parked at once, not after the timeout");
            assert!(held.held_at - held.requested_at < FINISH_TIMEOUT);
            drop(held);
        }
        hold.stop();
        t.join().expect("the sleeping thread leaves");
    }

    #[test]
    fn a_nap_lasts_its_length_when_nothing_is_asked() {
        let hold = Hold::default();
        let start = Instant::now();
        hold.nap(Duration::from_millis(30));
        assert!(start.elapsed() >= Duration::from_millis(30));
        // Asked to stop, it returns at once.
        hold.stop();
        let start = Instant::now();
        hold.nap(Duration::from_secs(3600));
        assert!(start.elapsed() < Duration::from_secs(60));
    }
}
