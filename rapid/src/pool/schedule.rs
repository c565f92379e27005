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
    /// Invocations it runs now (up to `per_sandbox`; 1 unless LMI).
    running: usize,
    /// Tenant isolation: the one tenant this sandbox serves.
    tenant: Option<String>,
    /// Started before a reload (`--watch`): replaced when next free.
    stale: bool,
}

/// What became of an arriving invocation.
pub enum Arrival<M, W> {
    /// An idle sandbox takes it now.
    Run(Place, M, W),
    /// It waits; a new sandbox is to be started at `Place` (a cold start).
    StartAndWait(Place),
    /// It waits for a busy sandbox.
    Wait,
    /// Tenant isolation: every sandbox is taken; the idle one `old` (another
    /// tenant's, the least recently used) is to be shut down and a sandbox
    /// for this tenant started at `new`; the invocation waits for it.
    Replace {
        /// The sandbox to shut down (already out of the pool).
        old: (Place, M),
        /// Where the new one starts.
        new: Place,
    },
    /// It is refused.
    Refused(W, InvokeError),
}

/// What a sandbox that finished an invocation does next.
pub enum Next<M, W> {
    /// It takes a waiting invocation.
    Run(Handoff<M, W>),
    /// Tenant isolation: only other tenants wait; it is shut down (`old`)
    /// and a sandbox for the first of them starts at `new`.
    Replace {
        /// The sandbox to shut down (already out of the pool).
        old: (Place, M),
        /// Where the new one starts.
        new: Place,
    },
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
    /// Waiting invocations in arrival order: an `Event`?, its tenant.
    waiting: VecDeque<(bool, Option<String>, W)>,
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

    /// Invocations the starting sandboxes will take (`per_sandbox` each).
    fn starting(&self) -> usize {
        self.count(Phase::Starting) * self.spec.per_sandbox
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
        let single = self.spec.per_sandbox == 1;
        if let Some(slot) = self.slot(p) {
            // LMI: other invocations may still run in it.
            if single && slot.turn == p.turn && slot.phase == Phase::Busy {
                slot.phase = Phase::Finishing;
            }
        }
    }

    /// Reserve a number for a new sandbox, if the concurrency allows one.
    pub fn reserve(&mut self) -> Option<Place> {
        self.reserve_for(None)
    }

    /// Reserve a number for a new sandbox of `tenant`.
    fn reserve_for(&mut self, tenant: Option<&str>) -> Option<Place> {
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
            running: 0,
            tenant: tenant.map(str::to_owned),
            stale: false,
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
    pub fn arrive(
        &mut self,
        w: W,
        event: bool,
        tenant: Option<&str>,
        ready: impl Fn(&M) -> bool,
    ) -> Arrival<M, W> {
        if self.closed {
            return Arrival::Refused(
                w,
                InvokeError::Unavailable(crate::sandbox::Unavailable::ShuttingDown),
            );
        }
        if let Some(index) = self
            .pick_idle(tenant, &ready)
            .or_else(|| self.pick_room(tenant))
        {
            let Some(slot) = self.slots[index].as_mut() else {
                unreachable!("idle sandboxes have slots")
            };
            slot.phase = Phase::Busy;
            slot.running += 1;
            slot.served += 1;
            slot.turn += 1;
            if slot.tenant.is_none() {
                slot.tenant = tenant.map(str::to_owned);
            }
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
        let evictable = self.evictable(tenant).is_some();
        let (queued, bound) = if event {
            (self.events, self.spec.max_event_queue)
        } else {
            // Invocations a starting sandbox will take do not count against the queue.
            (
                self.waiting.len() - self.events,
                self.spec.max_queue + starting,
            )
        };
        if queued >= bound && self.size() >= self.spec.concurrency && !evictable {
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
        self.waiting
            .push_back((event, tenant.map(str::to_owned), w));
        self.events += usize::from(event);
        // Start a sandbox for it unless one starting already will take it.
        if self.waiters_of(tenant) > self.covering(tenant) {
            if let Some(place) = self.reserve_for(tenant) {
                return Arrival::StartAndWait(place);
            }
            if let Some((old, new)) = self.replace_for(tenant) {
                return Arrival::Replace { old, new };
            }
        }
        Arrival::Wait
    }

    /// Waiting invocations of `tenant` (all of them without isolation).
    fn waiters_of(&self, tenant: Option<&str>) -> usize {
        self.waiting
            .iter()
            .filter(|(_, t, _)| t.as_deref() == tenant)
            .count()
    }

    /// Waiting invocations of `tenant` that sandboxes about to take one
    /// will take (a starting one takes `per_sandbox`).
    fn covering(&self, tenant: Option<&str>) -> usize {
        self.slots
            .iter()
            .flatten()
            .filter(|s| s.tenant.as_deref() == tenant)
            .map(|s| match s.phase {
                Phase::Starting => self.spec.per_sandbox,
                Phase::Finishing => 1,
                _ => 0,
            })
            .sum()
    }

    /// LMI: a busy sandbox (of `tenant`) that runs fewer than `per_sandbox`
    /// invocations, the one with the fewest.
    fn pick_room(&self, tenant: Option<&str>) -> Option<usize> {
        if self.spec.per_sandbox == 1 {
            return None;
        }
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| Some((i, s.as_ref()?)))
            .filter(|(_, s)| {
                s.phase == Phase::Busy
                    && s.member.is_some()
                    && s.running < self.spec.per_sandbox
                    && s.tenant.as_deref() == tenant
            })
            .min_by_key(|(_, s)| s.running)
            .map(|(i, _)| i)
    }

    /// Tenant isolation: the least recently used idle sandbox of another
    /// tenant, which may make room for `tenant`.
    fn evictable(&self, tenant: Option<&str>) -> Option<usize> {
        if !self.spec.tenant_isolation {
            return None;
        }
        self.idle.iter().copied().find(|i| {
            self.slots[*i]
                .as_ref()
                .is_some_and(|s| s.tenant.as_deref() != tenant)
        })
    }

    /// Take the evictable sandbox out and reserve its room for `tenant`.
    fn replace_for(&mut self, tenant: Option<&str>) -> Option<((Place, M), Place)> {
        let index = self.evictable(tenant)?;
        let slot = self.slots[index].as_ref()?;
        let old = Place {
            index,
            serial: slot.serial,
            turn: slot.turn,
        };
        let member = slot.member.clone()?;
        self.remove(old);
        let new = self.reserve_for(tenant)?;
        Some(((old, member), new))
    }

    fn pick_idle(&mut self, tenant: Option<&str>, ready: &impl Fn(&M) -> bool) -> Option<usize> {
        // A warm sandbox no tenant has used yet (`--min-warm`) is anyone's.
        let isolation = self.spec.tenant_isolation;
        let mine = |i: &usize| {
            self.slots[*i].as_ref().is_some_and(|s| {
                s.tenant.as_deref() == tenant || (isolation && s.tenant.is_none() && s.served == 0)
            })
        };
        let pos = match self.spec.order {
            Order::MostRecent => self.idle.iter().rposition(mine)?,
            Order::LeastRecent => {
                let is_ready = |i: &usize| {
                    mine(i)
                        && self.slots[*i]
                            .as_ref()
                            .and_then(|s| s.member.as_ref())
                            .is_some_and(ready)
                };
                self.idle
                    .iter()
                    .position(is_ready)
                    .or_else(|| self.idle.iter().position(mine))?
            }
        };
        Some(self.idle.remove(pos))
    }

    /// The sandbox at `p` started: it takes the oldest waiting invocation
    /// (LMI: up to `per_sandbox` of them), or becomes idle.
    pub fn started(&mut self, p: Place, member: M, alive: impl Fn(&W) -> bool) -> Vec<Next<M, W>> {
        let mut out = Vec::new();
        let Some(slot) = self.slot(p) else {
            return out;
        };
        slot.member = Some(member);
        slot.phase = Phase::Busy;
        let mut next = self.release(p, &alive);
        while let Some(n) = next.take() {
            let run = matches!(n, Next::Run(_));
            out.push(n);
            let per_sandbox = self.spec.per_sandbox;
            match self.slot(p) {
                Some(s) if run && s.phase == Phase::Busy && s.running < per_sandbox => {
                    // One more lane: `release` gives it a waiter or leaves it.
                    s.running += 1;
                    next = self.release(p, &alive);
                }
                _ => {}
            }
        }
        out
    }

    /// The sandbox at `p` could not start: its number is free again; the
    /// oldest waiting invocation that no other sandbox will take is handed
    /// back to be failed.
    pub fn start_failed(&mut self, p: Place) -> Option<W> {
        let tenant = self.slot(p)?.tenant.clone();
        self.slots[p.index] = None;
        let tenant = tenant.as_deref();
        // Sandboxes (of the tenant) that will take its waiting invocations.
        let covered = self
            .slots
            .iter()
            .flatten()
            .filter(|s| s.tenant.as_deref() == tenant && !matches!(s.phase, Phase::Idle(_)))
            .count();
        if self.waiters_of(tenant) > covered {
            let at = self
                .waiting
                .iter()
                .position(|(_, t, _)| t.as_deref() == tenant)?;
            self.take(at)
        } else {
            None
        }
    }

    fn take(&mut self, at: usize) -> Option<W> {
        let (event, _, w) = self.waiting.remove(at)?;
        self.events -= usize::from(event);
        Some(w)
    }

    /// The sandbox at `p` finished its invocation: it takes the oldest
    /// waiting one (`alive` skips synchronous callers that left; an `Event`
    /// has nobody to leave), or becomes idle.
    pub fn release(&mut self, p: Place, alive: impl Fn(&W) -> bool) -> Option<Next<M, W>> {
        let closed = self.closed;
        let slot = self.slot(p)?;
        slot.running = slot.running.saturating_sub(1);
        let still_running = slot.running > 0;
        if slot.stale && !closed {
            if still_running {
                // Lambda Managed Instances: its other invocations finish first.
                return None;
            }
            // A reload came while it ran (or started): a fresh sandbox in its room.
            let old = (
                Place {
                    turn: slot.turn,
                    ..p
                },
                slot.member.clone()?,
            );
            self.remove(p);
            let new = self.reserve()?;
            return Some(Next::Replace { old, new });
        }
        let tenant = slot.tenant.clone();
        // Callers that left are dropped first.
        let mut i = 0;
        while i < self.waiting.len() {
            match &self.waiting[i] {
                (false, _, w) if !alive(w) => {
                    self.take(i);
                }
                _ => i += 1,
            }
        }
        // A sandbox no tenant has used yet takes the first waiting, whoever it is.
        let unclaimed = self.spec.tenant_isolation
            && tenant.is_none()
            && self.slot(p).is_some_and(|s| s.served == 0);
        let mine = self
            .waiting
            .iter()
            .position(|(_, t, _)| unclaimed || t.as_deref() == tenant.as_deref());
        let claim = mine
            .and_then(|i| self.waiting.get(i))
            .and_then(|(_, t, _)| t.clone());
        let waiter = mine.and_then(|i| self.take(i));
        if waiter.is_none() && !closed && !still_running && self.spec.tenant_isolation {
            // Only other tenants wait: this sandbox makes room for the first
            // of them that no sandbox of its own will take.
            let other = self
                .waiting
                .iter()
                .find(|(_, t, _)| t.as_deref() != tenant.as_deref())
                .map(|(_, t, _)| t.clone());
            if let Some(t) = other {
                if self.waiters_of(t.as_deref()) > self.covering(t.as_deref()) {
                    let slot = self.slot(p)?;
                    let member = slot.member.clone()?;
                    let old = Place {
                        turn: slot.turn,
                        ..p
                    };
                    self.remove(old);
                    let new = self.reserve_for(t.as_deref())?;
                    return Some(Next::Replace {
                        old: (old, member),
                        new,
                    });
                }
            }
        }
        let slot = self.slot(p)?;
        if closed {
            if !still_running {
                slot.phase = Phase::Idle(Instant::now());
            }
            return None;
        }
        match waiter {
            Some(waiter) => {
                slot.phase = Phase::Busy;
                slot.running += 1;
                slot.served += 1;
                slot.turn += 1;
                if slot.tenant.is_none() {
                    slot.tenant = claim;
                }
                let member = slot.member.clone()?;
                Some(Next::Run(Handoff {
                    place: Place {
                        turn: slot.turn,
                        ..p
                    },
                    member,
                    waiter,
                }))
            }
            // LMI: its other invocations still run.
            None if still_running => None,
            None => {
                slot.phase = Phase::Idle(Instant::now());
                self.idle.push(p.index);
                None
            }
        }
    }

    /// A reload (`--watch`): every sandbox there is now is to be replaced.
    /// The idle ones are taken out at once (each to be shut down and a fresh
    /// one started in its room); busy and starting ones when they are free.
    pub fn renew(&mut self) -> Vec<(Place, M)> {
        for slot in self.slots.iter_mut().flatten() {
            slot.stale = true;
        }
        let mut out = Vec::new();
        for index in std::mem::take(&mut self.idle) {
            let Some(slot) = self.slots[index].as_ref() else {
                continue;
            };
            let p = Place {
                index,
                serial: slot.serial,
                turn: slot.turn,
            };
            if let Some(m) = slot.member.clone() {
                out.push((p, m));
            }
            self.slots[index] = None;
        }
        out
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
        self.waiting.drain(..).map(|(_, _, w)| w).collect()
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
            l.running += s.running as u64;
        }
        l
    }
}

#[cfg(test)]
mod tests;
