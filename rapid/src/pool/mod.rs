//! A pool: one function's sandboxes behind the one sandbox contract.
//!
//! An invocation goes to an idle warm sandbox (most recently used first;
//! one-shot: the one that has had longest to initialise), else a new sandbox
//! is started and the invocation waits for its init (a cold start), else it
//! waits in the FIFO bounded by `--max-queue` (`Event` invocations in their
//! own, bounded by `--max-event-queue`); with `--max-queue 0` one beyond the
//! concurrency is throttled. `--min-warm` sandboxes start at once and stay;
//! `--idle-timeout` reclaims the others. Control commands apply to every
//! sandbox.
//!
//! * `schedule.rs` — the decisions, without processes (unit-tested).
//! * this file — carrying them out: starting sandboxes, leases, commands.

mod schedule;

use std::sync::{Arc, Mutex, Weak};
use std::time::Instant;

use futures_util::future::join_all;
use interop::ShutdownReason;
use tokio::sync::{oneshot, watch};

use self::schedule::{Arrival, Handoff, Next, Place, Schedule};
use crate::sandbox::{
    read_event, Body, BoxFuture, Command, CommandReply, ControlError, Health, Invocation,
    InvokeError, Load, Member, Pending, Reply, ReplyBody, Sandbox, SandboxState, Scaling, Stats,
    Unavailable,
};

/// Starts the sandbox numbered `index`.
pub type Factory =
    Arc<dyn Fn(usize) -> BoxFuture<'static, Result<Arc<dyn Member>, String>> + Send + Sync>;

type Started = Result<Pending, InvokeError>;

/// An invocation waiting for a sandbox.
struct Waiter {
    inv: Invocation,
    tx: oneshot::Sender<Started>,
    /// When the pool took it (its duration counts from here).
    since: Instant,
}

type Sched = Schedule<Arc<dyn Member>, Waiter>;

struct Inner {
    spec: Scaling,
    /// The largest event a sandbox takes.
    payload_limit: usize,
    schedule: Mutex<Sched>,
    factory: Factory,
    stats: Arc<Stats>,
    health: watch::Sender<Health>,
    finished: watch::Sender<bool>,
    /// The last Init command, replayed to sandboxes started after it.
    last_init: Mutex<Option<interop::Init>>,
    born: Instant,
}

/// A function's pool of sandboxes.
pub struct Pool(Arc<Inner>);

/// A sandbox's lease on the invocation it runs; dropped when it is over.
struct Lease {
    pool: Weak<Inner>,
    place: Place,
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(inner) = self.pool.upgrade() {
            let next = inner.lock().release(self.place, |w| !w.tx.is_closed());
            if let Some(n) = next {
                Inner::go_on(&inner, n);
            }
        }
    }
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, Sched> {
        self.schedule.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Run `inv` on `member`, holding a lease on `place`: the member's
    /// admission, then its answer, counted in the pool's stats (from `since`,
    /// when the pool took it).
    async fn run(
        this: &Arc<Inner>,
        place: Place,
        member: Arc<dyn Member>,
        inv: Invocation,
        since: Instant,
    ) -> Started {
        let lease = Lease {
            pool: Arc::downgrade(this),
            place,
        };
        let pending = member.submit_held(inv, Box::new(lease)).await?;
        let pool = Arc::downgrade(this);
        let stats = this.stats.clone();
        // One wrapper for the answer: its end frees the sandbox for what
        // waits (see `finishing`) and is counted.
        Ok(Box::pin(async move {
            let reply = pending.await;
            let whole = !matches!(&reply.outcome, Ok(r) if !matches!(r.body, ReplyBody::Full(_)));
            if let (true, Some(inner)) = (whole, pool.upgrade()) {
                inner.lock().finishing(place);
            }
            stats.invoked(reply.outcome_kind(), since.elapsed());
            reply
        }))
    }

    /// Carry out what a freed sandbox does next.
    fn go_on(this: &Arc<Inner>, next: Next<Arc<dyn Member>, Waiter>) {
        match next {
            Next::Run(h) => Inner::hand_off(this, h),
            Next::Replace { old, new } => {
                Inner::replace(this, old, new, "a sandbox makes room or is reloaded")
            }
        }
    }

    /// Shut `old` down (another tenant's idle sandbox, or one a reload
    /// replaces) and start a sandbox at `new` in its room.
    fn replace(this: &Arc<Inner>, old: (Place, Arc<dyn Member>), new: Place, why: &'static str) {
        let (place, member) = old;
        let weak = Arc::downgrade(this);
        tracing::info!(
            sandbox = place.index,
            "{why}: shut down (SPINDOWN), a new one starts"
        );
        tokio::spawn(async move {
            let stop = Command::Shutdown {
                reason: ShutdownReason::Spindown,
                exit: true,
            };
            if let Err(e) = member.control(stop).await {
                tracing::debug!(sandbox = place.index, "replace: {e}");
            }
            // Its number (and sandbox 0's Runtime API address) is free now.
            if let Some(inner) = weak.upgrade() {
                Inner::start(&inner, new);
            }
        });
    }

    fn hand_off(this: &Arc<Inner>, h: Handoff<Arc<dyn Member>, Waiter>) {
        let Handoff {
            place,
            member,
            waiter,
        } = h;
        let this = this.clone();
        tokio::spawn(async move {
            let started = Inner::run(&this, place, member, waiter.inv, waiter.since).await;
            let _ = waiter.tx.send(started);
        });
    }

    /// Start the sandbox at `place`; once it is up it takes the oldest
    /// waiting invocation (or becomes idle).
    fn start(this: &Arc<Inner>, place: Place) {
        let inner = this.clone();
        inner.stats.init();
        tokio::spawn(async move {
            let t = Instant::now();
            tracing::info!(sandbox = place.index, "sandbox starting");
            // A sandbox that had this number may still be shutting down
            // (sandbox 0's address is then still bound): retry for a while.
            let mut attempt = (inner.factory)(place.index).await;
            let until = Instant::now() + std::time::Duration::from_millis(2500);
            while attempt.is_err() && Instant::now() < until {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                attempt = (inner.factory)(place.index).await;
            }
            let member = match attempt {
                Ok(m) => m,
                Err(why) => {
                    tracing::error!(sandbox = place.index, "cannot start a sandbox: {why}");
                    let failed = inner.lock().start_failed(place);
                    if let Some(w) = failed {
                        let _ = w.tx.send(Err(InvokeError::Down(format!(
                            "cannot start a sandbox: {why}"
                        ))));
                    }
                    return;
                }
            };
            if let Some(init) = inner.replayed_init() {
                // A platform initialised the others: this one gets the same parameters.
                if let Err(e) = member.control(Command::Init(Box::new(init))).await {
                    tracing::warn!(sandbox = place.index, "the Init replay was refused: {e}");
                }
            }
            Inner::watch_member(&inner, place, member.clone());
            let next = inner
                .lock()
                .started(place, member, |w: &Waiter| !w.tx.is_closed());
            tracing::info!(
                sandbox = place.index,
                took_ms = t.elapsed().as_millis() as u64,
                "sandbox started"
            );
            for n in next {
                Inner::go_on(&inner, n);
            }
            inner.refresh_health();
        });
    }

    fn replayed_init(&self) -> Option<interop::Init> {
        self.last_init
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Follow a member's health (into the pool's) and its end.
    fn watch_member(this: &Arc<Inner>, place: Place, member: Arc<dyn Member>) {
        let weak = Arc::downgrade(this);
        let mut health = member.health();
        let finished = member.finished();
        tokio::spawn(async move {
            tokio::pin!(finished);
            loop {
                tokio::select! {
                    () = &mut finished => break,
                    changed = health.changed() => {
                        if changed.is_err() {
                            break;
                        }
                        match weak.upgrade() {
                            Some(inner) => inner.refresh_health(),
                            None => return,
                        }
                    }
                }
            }
            let Some(inner) = weak.upgrade() else {
                return;
            };
            // An end the pool did not ask for (one-shot exit, a shutdown
            // that asked rapid to exit) ends the pool too.
            let unasked = inner.lock().remove(place);
            if unasked {
                tracing::info!(sandbox = place.index, "sandbox ended; the pool stops");
                inner.close();
                let _ = inner.finished.send(true);
            }
            inner.refresh_health();
        });
    }

    /// The pool's health: ready when any sandbox is ready (or none is needed
    /// yet), starting while one starts, else the first one's trouble.
    fn refresh_health(&self) {
        let (members, starting) = {
            let g = self.lock();
            (g.members(), g.load().starting > 0)
        };
        let mut starting = starting;
        let mut trouble = None;
        let mut ready = members.is_empty() && !starting;
        for (_, m, _) in &members {
            match &*m.health().borrow() {
                Health::Ready => ready = true,
                Health::Starting => starting = true,
                Health::Unhealthy(why) => {
                    trouble.get_or_insert_with(|| why.clone());
                }
            }
        }
        let now = if ready {
            Health::Ready
        } else if starting {
            Health::Starting
        } else {
            Health::Unhealthy(trouble.unwrap_or_else(|| "no sandbox is running".into()))
        };
        self.health.send_if_modified(|h| {
            let changed = *h != now;
            *h = now;
            changed
        });
    }

    /// Refuse every waiting invocation and take no new one.
    fn close(&self) {
        let waiters = self.lock().close();
        for w in waiters {
            let _ = w.tx.send(Err(InvokeError::Unavailable(
                Unavailable::ShutDownDuringInvoke,
            )));
        }
    }

    fn members(&self) -> Vec<Arc<dyn Member>> {
        self.lock()
            .members()
            .into_iter()
            .map(|(_, m, _)| m)
            .collect()
    }
}

impl Pool {
    /// A pool over sandboxes made by `factory`; `min_warm` of them start now
    /// (`first`, already made, is sandbox 0).
    pub fn start(
        spec: Scaling,
        payload_limit: usize,
        factory: Factory,
        first: Option<Arc<dyn Member>>,
    ) -> Pool {
        let (health, _) = watch::channel(if spec.min_warm > 0 {
            Health::Starting
        } else {
            Health::Ready
        });
        let inner = Arc::new(Inner {
            spec,
            payload_limit,
            schedule: Mutex::new(Schedule::new(spec)),
            factory,
            stats: Arc::new(Stats::default()),
            health,
            finished: watch::channel(false).0,
            last_init: Mutex::new(None),
            born: Instant::now(),
        });
        let mut warm = spec.min_warm;
        if let Some(member) = first {
            let place = inner.lock().reserve();
            if let Some(place) = place {
                inner.stats.init();
                Inner::watch_member(&inner, place, member.clone());
                let next = inner.lock().started(place, member, |_| true);
                debug_assert!(next.is_empty(), "nothing waits yet");
                warm = warm.saturating_sub(1);
            }
        }
        for _ in 0..warm {
            let place = inner.lock().reserve();
            if let Some(place) = place {
                Inner::start(&inner, place);
            }
        }
        inner.refresh_health();
        if let Some(tick) = inner.lock().reclaim_tick() {
            tokio::spawn(reclaim(Arc::downgrade(&inner), tick));
        }
        Pool(inner)
    }

    /// A reload (`--watch`): idle sandboxes are replaced by fresh ones now,
    /// busy ones after their invocation; new invocations go to fresh ones.
    pub fn renew(&self) {
        let inner = &self.0;
        let gone = inner.lock().renew();
        let (idle, load) = (gone.len(), inner.lock().load());
        tracing::info!(
            idle,
            busy = load.busy + load.starting,
            "reload: idle sandboxes are replaced now, busy ones after their invoke"
        );
        for old in gone {
            match inner.lock().reserve() {
                Some(new) => Inner::replace(inner, old, new, "reload"),
                None => tracing::debug!("reload: the pool is closed"),
            }
        }
        inner.refresh_health();
    }

    async fn admit(&self, inv: Invocation) -> Result<Pending, InvokeError> {
        let inner = &self.0;
        let headers = inv.request.headers();
        let event = headers
            .get("x-amz-invocation-type")
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"Event"));
        let tenant = if inner.spec.tenant_isolation {
            match headers.get("x-amz-tenant-id").and_then(|v| v.to_str().ok()) {
                Some(t) if !t.is_empty() => Some(t.to_owned()),
                _ => return Err(InvokeError::TenantRequired),
            }
        } else {
            None
        };
        // The event is read before the invocation waits (an `Event` is
        // answered once it is queued).
        let Invocation {
            id,
            call_id,
            request,
            context,
            budget,
            log_tail,
            typed_result,
        } = inv;
        let (parts, body) = request.into_parts();
        let payload = read_event(body, inner.payload_limit).await?;
        let inv = Invocation {
            id,
            call_id,
            request: http::Request::from_parts(parts, Body::from(payload)),
            context,
            budget,
            log_tail,
            typed_result,
        };
        let (tx, rx) = oneshot::channel();
        let since = Instant::now();
        let waiter = Waiter { inv, tx, since };
        let arrival = inner.lock().arrive(waiter, event, tenant.as_deref(), |m| {
            *m.health().borrow() == Health::Ready
        });
        let started: BoxFuture<'static, Started> = match arrival {
            Arrival::Run(place, member, w) => {
                // The sandbox admits it now (its refusal is the caller's answer).
                return Inner::run(inner, place, member, w.inv, w.since).await;
            }
            Arrival::StartAndWait(place) => {
                Inner::start(inner, place);
                inner.refresh_health();
                Box::pin(wait(rx))
            }
            Arrival::Wait => Box::pin(wait(rx)),
            Arrival::Replace { old, new } => {
                Inner::replace(inner, old, new, "another tenant's idle sandbox makes room");
                inner.refresh_health();
                Box::pin(wait(rx))
            }
            Arrival::Refused(_, e) => {
                if matches!(e, InvokeError::Throttled | InvokeError::QueueFull { .. }) {
                    inner.stats.throttled();
                }
                return Err(e);
            }
        };
        // Counted once it runs (`Inner::run`); a refusal while it waited, here.
        let stats = inner.stats.clone();
        Ok(Box::pin(async move {
            match started.await {
                Ok(pending) => pending.await,
                Err(e) => {
                    let reply = Reply::new(Err(e));
                    stats.invoked(reply.outcome_kind(), since.elapsed());
                    reply
                }
            }
        }))
    }

    /// Send `cmd` to every sandbox at once; the first failure, else the
    /// first sandbox's answer.
    async fn broadcast(&self, make: impl Fn() -> Command) -> Result<CommandReply, ControlError> {
        let members = self.0.members();
        let answers = join_all(members.iter().map(|m| m.control(make()))).await;
        let mut first = None;
        for a in answers {
            match a {
                Err(e) => return Err(e),
                Ok(r) => {
                    first.get_or_insert(r);
                }
            }
        }
        first.ok_or_else(|| {
            ControlError::refused(make().name(), "Idle", "the pool has no sandbox running")
        })
    }
}

async fn wait(rx: oneshot::Receiver<Started>) -> Started {
    rx.await.unwrap_or(Err(InvokeError::Unavailable(
        Unavailable::ShutDownDuringInvoke,
    )))
}

/// Shut down sandboxes idle past the idle timeout, beyond `--min-warm`.
async fn reclaim(pool: Weak<Inner>, tick: std::time::Duration) {
    loop {
        tokio::time::sleep(tick).await;
        let Some(inner) = pool.upgrade() else {
            return;
        };
        if inner.lock().is_closed() {
            return;
        }
        let gone = inner.lock().reclaim(Instant::now());
        for (place, member) in gone {
            tracing::info!(sandbox = place.index, "idle sandbox reclaimed");
            tokio::spawn(async move {
                // `exit`: the sandbox's engine ends too (nothing of it stays).
                let stop = Command::Shutdown {
                    reason: ShutdownReason::Spindown,
                    exit: true,
                };
                if let Err(e) = member.control(stop).await {
                    tracing::debug!(sandbox = place.index, "reclaim: {e}");
                }
            });
        }
        inner.refresh_health();
    }
}

impl Sandbox for Pool {
    fn submit(&self, inv: Invocation) -> BoxFuture<'_, Result<Pending, InvokeError>> {
        Box::pin(self.admit(inv))
    }

    fn accepting(&self) -> Result<(), Unavailable> {
        if self.0.lock().is_closed() {
            return Err(Unavailable::ShuttingDown);
        }
        Ok(())
    }

    fn control(&self, cmd: Command) -> BoxFuture<'_, Result<CommandReply, ControlError>> {
        Box::pin(async move {
            match cmd {
                Command::Init(init) => {
                    let params = *init;
                    let answer = self
                        .broadcast(|| Command::Init(Box::new(params.clone())))
                        .await;
                    if answer.is_ok() {
                        *self.0.last_init.lock().unwrap_or_else(|p| p.into_inner()) = Some(params);
                    }
                    answer
                }
                Command::Reset(r) => {
                    *self.0.last_init.lock().unwrap_or_else(|p| p.into_inner()) = None;
                    self.broadcast(|| Command::Reset(r)).await
                }
                Command::Shutdown { reason, exit } => {
                    self.0.close();
                    let answer = self
                        .broadcast(|| Command::Shutdown {
                            reason,
                            exit: false,
                        })
                        .await;
                    if exit {
                        let _ = self.0.finished.send(true);
                    }
                    answer
                }
                Command::Restore => self.broadcast(|| Command::Restore).await,
            }
        })
    }

    fn health(&self) -> watch::Receiver<Health> {
        self.0.health.subscribe()
    }

    fn state(&self) -> BoxFuture<'_, SandboxState> {
        Box::pin(async move {
            let members = self.0.lock().members();
            let mut states = join_all(members.iter().map(|(p, m, _)| {
                let index = p.index;
                async move {
                    let mut s = m.state().await;
                    s.index = Some(index);
                    s
                }
            }))
            .await;
            let health = self.0.health.borrow().clone();
            let load = self.0.lock().load();
            // One sandbox: its own state, as a single sandbox reports it.
            if self.0.spec.concurrency == 1 && states.len() == 1 {
                let mut s = states.remove(0);
                s.index = None;
                s.queued += load.queued as usize;
                return s;
            }
            SandboxState {
                mode: "lambda",
                phase: if states.is_empty() { "Idle" } else { "Pool" },
                health: health.name(),
                why: health.why().map(str::to_owned),
                in_flight: states.iter().map(|s| s.in_flight).sum(),
                queued: load.queued as usize + states.iter().map(|s| s.queued).sum::<usize>(),
                invokes: states.iter().map(|s| s.invokes).sum(),
                age_ms: self.0.born.elapsed().as_millis() as u64,
                sandboxes: states,
                ..SandboxState::default()
            }
        })
    }

    fn stats(&self) -> &Stats {
        &self.0.stats
    }

    fn load(&self) -> Load {
        self.0.lock().load()
    }

    fn finished(&self) -> BoxFuture<'static, ()> {
        let mut rx = self.0.finished.subscribe();
        Box::pin(async move {
            let _ = rx.wait_for(|done| *done).await;
        })
    }
}
