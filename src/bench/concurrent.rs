//! The floor with the vCPU running: the same kernel calls as floor.rs, but
//! made from another thread while the guest runs its round, instead of
//! from the sync hook while the vCPU is held out of the guest.
//!
//! kvm-wss arms while the guest is held so that a boundary is exact; this
//! side shows what that choice costs or saves. A page whose mapping
//! changes while the vCPU runs may need KVM to kick the vCPU out of the
//! guest to flush; a held vCPU needs no kick, but the guest waits for the
//! whole arm. At a round's first sync the hook hands the round to the
//! arming thread and returns at once; the thread arms the round's pages
//! and collects them at once (the arming benchmark arms only pages the
//! probe never touches, so nothing is caught in between). At the round's
//! second sync the hook waits for the thread: that wait, if the thread
//! outlasted the round, is the round's hold.

use std::sync::mpsc::{self, Receiver, Sender};
use std::thread::JoinHandle;

use crate::calibrate::{Driver, Mechanism, Plan, Region};
use crate::track::{TrackError, TrackerKind};
use crate::vmm::machine::Machine;

/// The floor of `kind` (floor.rs), its arm and collect moved to an arming
/// thread that runs them while the guest runs.
pub(super) fn floor_running(
    kind: TrackerKind,
    machine: &Machine,
    region: Region,
    plan: Plan,
    cpu: Option<usize>,
) -> Result<Driver, TrackError> {
    let driver = super::floor::create(kind, machine, region, plan, cpu)?;
    Ok(Driver {
        mechanism: Box::new(Concurrent::spawn(driver.mechanism)?),
        ..driver
    })
}

fn stopped() -> TrackError {
    TrackError::Setup {
        tracker: "floor (vCPU running)",
        what: "the arming thread stopped".into(),
        source: None,
    }
}

/// Runs a mechanism's arm-then-collect on its own thread, one round at a
/// time.
struct Concurrent {
    /// Rounds to arm; dropping it stops the thread.
    rounds: Option<Sender<u64>>,
    caught: Receiver<Result<u64, TrackError>>,
    thread: Option<JoinHandle<()>>,
}

impl Concurrent {
    fn spawn(mut inner: Box<dyn Mechanism>) -> Result<Concurrent, TrackError> {
        let (rounds_tx, rounds_rx) = mpsc::channel::<u64>();
        let (caught_tx, caught_rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("floor-arming".into())
            .spawn(move || {
                for round in rounds_rx {
                    let result = inner.arm(round).and_then(|()| inner.collect());
                    if caught_tx.send(result).is_err() {
                        return;
                    }
                }
            })
            .map_err(|e| TrackError::Setup {
                tracker: "floor (vCPU running)",
                what: "cannot start the arming thread".into(),
                source: Some(e),
            })?;
        Ok(Concurrent {
            rounds: Some(rounds_tx),
            caught: caught_rx,
            thread: Some(thread),
        })
    }
}

impl Mechanism for Concurrent {
    fn arm(&mut self, round: u64) -> Result<(), TrackError> {
        let rounds = self.rounds.as_ref().ok_or_else(stopped)?;
        rounds.send(round).map_err(|_| stopped())
    }

    fn collect(&mut self) -> Result<u64, TrackError> {
        self.caught.recv().map_err(|_| stopped())?
    }
}

impl Drop for Concurrent {
    fn drop(&mut self) {
        // Closing the channel ends the thread's loop.
        self.rounds = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records the rounds it sees; catches `round` pages per round.
    struct Counting(Vec<u64>, Sender<u64>);

    impl Mechanism for Counting {
        fn arm(&mut self, round: u64) -> Result<(), TrackError> {
            self.0.push(round);
            Ok(())
        }
        fn collect(&mut self) -> Result<u64, TrackError> {
            let round = self.0.last().copied().unwrap_or(0);
            let _ = self.1.send(round);
            Ok(round)
        }
    }

    #[test]
    fn arms_and_collects_each_round_on_the_thread_in_order() {
        let (tx, rx) = mpsc::channel();
        let mut c = Concurrent::spawn(Box::new(Counting(Vec::new(), tx))).unwrap();
        for round in 1..=3 {
            c.arm(round).unwrap();
            assert_eq!(c.collect().unwrap(), round);
        }
        drop(c);
        assert_eq!(rx.iter().collect::<Vec<_>>(), vec![1, 2, 3]);
    }

    struct Failing;

    impl Mechanism for Failing {
        fn arm(&mut self, _round: u64) -> Result<(), TrackError> {
            Err(stopped())
        }
        fn collect(&mut self) -> Result<u64, TrackError> {
            Ok(0)
        }
    }

    #[test]
    fn a_failed_arm_surfaces_at_collect() {
        let mut c = Concurrent::spawn(Box::new(Failing)).unwrap();
        c.arm(1).unwrap();
        assert!(matches!(c.collect(), Err(TrackError::Setup { .. })));
    }
}
