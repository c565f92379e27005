//! The pool's scheduling, without processes or tasks: which sandbox takes an
//! invocation, when one is started, who waits, who is throttled, which idle
//! sandbox is reclaimed. The pool owns one `Schedule` behind a lock and
//! carries out what it decides.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::sandbox::{InvokeError, Load, Order, Scaling};

/// A sandbox's place in the pool: its number and which sandbox holds it
/// (a number is reused after a sandbox ends; the serial is not).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Place {
    /// Its number (`0` keeps the configured Runtime API address).
    pub index: usize,
    /// Which sandbox holds the number.
    pub serial: u64,
    /// Which of its invocations (a lease's, for [`Schedule::finishing`]).
    pub turn: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Starting,
    Idle(Instant),
    Busy,
    /// Its answer is out; the runtime is about to ask for the next one.
    Finishing,
}

struct Slot<M> {
    serial: u64,
    member: Option<M>,
    phase: Phase,
    served: u64,
    turn: u64,
}

/// What became of an arriving invocation.
pub enum Arrival<M, W> {
    /// An idle sandbox takes it now.
    Run(Place, M, W),
    /// It waits; a new sandbox is to be started at `Place` (a cold start).
    StartAndWait(Place),
    /// It waits for a busy sandbox.
    Wait,
    /// It is refused.
    Refused(W, InvokeError),
}

/// A waiting invocation handed to a sandbox that became free.
pub struct Handoff<M, W> {
    /// The sandbox.
    pub place: Place,
    /// Its handle.
    pub member: M,
    /// The invocation.
    pub waiter: W,
}

/// The pool's state.
pub struct Schedule<M, W> {
    spec: Scaling,
    slots: Vec<Option<Slot<M>>>,
    /// Idle sandboxes in the order they became idle (the last: most recent).
    idle: Vec<usize>,
    /// Waiting invocations in arrival order (`true`: an `Event`).
    waiting: VecDeque<(bool, W)>,
    /// How many of them are `Event`s.
    events: usize,
    closed: bool,
    next_serial: u64,
}

impl<M: Clone, W> Schedule<M, W> {
    /// An empty pool.
    pub fn new(spec: Scaling) -> Self {
        Schedule {
            spec,
            slots: Vec::new(),
            idle: Vec::new(),
            waiting: VecDeque::new(),
            events: 0,
            closed: false,
            next_serial: 0,
        }
    }

    /// Sandboxes, starting or started.
    pub fn size(&self) -> usize {
        self.slots.iter().flatten().count()
    }

    fn starting(&self) -> usize {
        self.count(Phase::Starting)
    }

    fn count(&self, phase: Phase) -> usize {
        self.slots
            .iter()
            .flatten()
            .filter(|s| s.phase == phase)
            .count()
    }

    /// The invocation of `p` has its whole answer: its sandbox will be free
    /// as soon as the runtime asks for the next, so an invocation arriving
    /// meanwhile waits for it rather than starting another sandbox.
    pub fn finishing(&mut self, p: Place) {
        if let Some(slot) = self.slot(p) {
            if slot.turn == p.turn && slot.phase == Phase::Busy {
                slot.phase = Phase::Finishing;
            }
        }
    }

    /// Reserve a number for a new sandbox, if the concurrency allows one.
    pub fn reserve(&mut self) -> Option<Place> {
        if self.closed || self.size() >= self.spec.concurrency {
            return None;
        }
        let index = match self.slots.iter().position(Option::is_none) {
            Some(i) => i,
            None => {
                self.slots.push(None);
                self.slots.len() - 1
            }
        };
        let serial = self.next_serial;
        self.next_serial += 1;
        self.slots[index] = Some(Slot {
            serial,
            member: None,
            phase: Phase::Starting,
            served: 0,
            turn: 0,
        });
        Some(Place {
            index,
            serial,
            turn: 0,
        })
    }

    fn slot(&mut self, p: Place) -> Option<&mut Slot<M>> {
        self.slots
            .get_mut(p.index)
            .and_then(Option::as_mut)
            .filter(|s| s.serial == p.serial)
    }

    /// Take an invocation: to an idle sandbox (`ready` tells which are
    /// initialised, for the least-recent order), else start one, else wait,
    /// else refuse.
    pub fn arrive(&mut self, w: W, event: bool, ready: impl Fn(&M) -> bool) -> Arrival<M, W> {
        if self.closed {
            return Arrival::Refused(
                w,
                InvokeError::Unavailable(crate::sandbox::Unavailable::ShuttingDown),
            );
        }
        if let Some(index) = self.pick_idle(&ready) {
            let Some(slot) = self.slots[index].as_mut() else {
                unreachable!("idle sandboxes have slots")
            };
            slot.phase = Phase::Busy;
            slot.served += 1;
            slot.turn += 1;
            let place = Place {
                index,
                serial: slot.serial,
                turn: slot.turn,
            };
            let member = slot.member.clone();
            return match member {
                Some(m) => Arrival::Run(place, m, w),
                None => unreachable!("idle sandboxes are started"),
            };
        }
        // Sandboxes about to be free take waiting invocations first.
        let starting = self.starting() + self.count(Phase::Finishing);
        let (queued, bound) = if event {
            (self.events, self.spec.max_event_queue)
        } else {
            // Invocations a starting sandbox will take do not count against the queue.
            (
                self.waiting.len() - self.events,
                self.spec.max_queue + starting,
            )
        };
        if queued >= bound && self.size() >= self.spec.concurrency {
            let e = if event || self.spec.max_queue > 0 {
                InvokeError::QueueFull {
                    waiting: if event {
                        self.spec.max_event_queue
                    } else {
                        self.spec.max_queue
                    },
                }
            } else {
                InvokeError::Throttled
            };
            return Arrival::Refused(w, e);
        }
        self.waiting.push_back((event, w));
        self.events += usize::from(event);
        // Start a sandbox for it unless one starting already will take it.
        if self.waiting.len() > starting {
            if let Some(place) = self.reserve() {
                return Arrival::StartAndWait(place);
            }
        }
        Arrival::Wait
    }

    fn pick_idle(&mut self, ready: &impl Fn(&M) -> bool) -> Option<usize> {
        let pos = match self.spec.order {
            Order::MostRecent => self.idle.len().checked_sub(1)?,
            Order::LeastRecent => {
                let is_ready = |i: &usize| {
                    self.slots[*i]
                        .as_ref()
                        .and_then(|s| s.member.as_ref())
                        .is_some_and(ready)
                };
                self.idle
                    .iter()
                    .position(is_ready)
                    .or_else(|| (!self.idle.is_empty()).then_some(0))?
            }
        };
        Some(self.idle.remove(pos))
    }

    /// The sandbox at `p` started: it takes the oldest waiting invocation,
    /// or becomes idle.
    pub fn started(
        &mut self,
        p: Place,
        member: M,
        alive: impl Fn(&W) -> bool,
    ) -> Option<Handoff<M, W>> {
        let slot = self.slot(p)?;
        slot.member = Some(member);
        slot.phase = Phase::Busy;
        self.release(p, alive)
    }

    /// The sandbox at `p` could not start: its number is free again; the
    /// oldest waiting invocation that no other sandbox will take is handed
    /// back to be failed.
    pub fn start_failed(&mut self, p: Place) -> Option<W> {
        self.slot(p)?;
        self.slots[p.index] = None;
        let covered = self.starting() + self.busy() + self.count(Phase::Finishing);
        if self.waiting.len() > covered {
            self.pop()
        } else {
            None
        }
    }

    fn busy(&self) -> usize {
        self.slots
            .iter()
            .flatten()
            .filter(|s| s.phase == Phase::Busy)
            .count()
    }

    fn pop(&mut self) -> Option<W> {
        let (event, w) = self.waiting.pop_front()?;
        self.events -= usize::from(event);
        Some(w)
    }

    /// The sandbox at `p` finished its invocation: it takes the oldest
    /// waiting one (`alive` skips synchronous callers that left; an `Event`
    /// has nobody to leave), or becomes idle.
    pub fn release(&mut self, p: Place, alive: impl Fn(&W) -> bool) -> Option<Handoff<M, W>> {
        let closed = self.closed;
        let waiter = loop {
            match self.waiting.front() {
                Some((false, w)) if !alive(w) => {
                    self.pop();
                }
                Some(_) => break self.pop(),
                None => break None,
            }
        };
        let slot = self.slot(p)?;
        if closed {
            slot.phase = Phase::Idle(Instant::now());
            return None;
        }
        match waiter {
            Some(waiter) => {
                slot.phase = Phase::Busy;
                slot.served += 1;
                slot.turn += 1;
                let member = slot.member.clone()?;
                Some(Handoff {
                    place: Place {
                        turn: slot.turn,
                        ..p
                    },
                    member,
                    waiter,
                })
            }
            None => {
                slot.phase = Phase::Idle(Instant::now());
                self.idle.push(p.index);
                None
            }
        }
    }

    /// The sandbox at `p` ended (on its own, or reclaimed).
    pub fn remove(&mut self, p: Place) -> bool {
        if self.slot(p).is_none() {
            return false;
        }
        self.slots[p.index] = None;
        self.idle.retain(|i| *i != p.index);
        true
    }

    /// Idle sandboxes beyond `min_warm` idle for longer than the idle
    /// timeout at `now`: taken out of the pool, to be shut down.
    pub fn reclaim(&mut self, now: Instant) -> Vec<(Place, M)> {
        let Some(limit) = self.spec.idle_timeout else {
            return Vec::new();
        };
        let mut out = Vec::new();
        // The least recently used go first.
        for index in self.idle.clone() {
            if self.size() <= self.spec.min_warm {
                break;
            }
            let Some(slot) = self.slots[index].as_ref() else {
                continue;
            };
            let Phase::Idle(since) = slot.phase else {
                continue;
            };
            if now.duration_since(since) < limit {
                continue;
            }
            let p = Place {
                index,
                serial: slot.serial,
                turn: slot.turn,
            };
            if let Some(m) = slot.member.clone() {
                out.push((p, m));
            }
            self.remove(p);
        }
        out
    }

    /// How often reclaim should look.
    pub fn reclaim_tick(&self) -> Option<Duration> {
        self.spec
            .idle_timeout
            .map(|d| (d / 4).clamp(Duration::from_millis(10), Duration::from_secs(1)))
    }

    /// Stop: every waiting invocation is handed back (to be refused), no
    /// new one is taken.
    pub fn close(&mut self) -> Vec<W> {
        self.closed = true;
        self.idle.clear();
        self.events = 0;
        self.waiting.drain(..).map(|(_, w)| w).collect()
    }

    /// Closed.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Every started sandbox, by place.
    pub fn members(&self) -> Vec<(Place, M, u64)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(index, s)| {
                let s = s.as_ref()?;
                let m = s.member.clone()?;
                Some((
                    Place {
                        index,
                        serial: s.serial,
                        turn: s.turn,
                    },
                    m,
                    s.served,
                ))
            })
            .collect()
    }

    /// The load now.
    pub fn load(&self) -> Load {
        let mut l = Load {
            queued: self.waiting.len() as u64,
            ..Load::default()
        };
        for s in self.slots.iter().flatten() {
            match s.phase {
                Phase::Starting => l.starting += 1,
                Phase::Idle(_) => l.idle += 1,
                Phase::Busy | Phase::Finishing => l.busy += 1,
            }
        }
        l
    }
}

#[cfg(test)]
mod tests;
