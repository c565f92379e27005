use super::*;

fn spec(concurrency: usize, max_queue: usize) -> Scaling {
    Scaling {
        concurrency,
        min_warm: 0,
        max_queue,
        max_event_queue: 2,
        idle_timeout: Some(Duration::from_secs(10)),
        order: Order::MostRecent,
        tenant_isolation: false,
        per_sandbox: 1,
    }
}

type S = Schedule<&'static str, u32>;

/// The handoff a release or start makes.
fn run(n: Option<Next<&'static str, u32>>) -> Option<Handoff<&'static str, u32>> {
    match n {
        Some(Next::Run(h)) => Some(h),
        Some(Next::Replace { .. }) => panic!("no tenants here"),
        None => None,
    }
}

fn ready(_: &&str) -> bool {
    true
}

/// Start a sandbox for a first invocation, and let it finish that one.
fn warm(s: &mut S, name: &'static str) -> Place {
    let Arrival::StartAndWait(p) = s.arrive(0, false, None, ready) else {
        panic!("a cold start")
    };
    let h =
        run(s.started(p, name, |_| true).into_iter().next()).expect("the waiter is handed over");
    assert_eq!(h.waiter, 0);
    assert!(run(s.release(p, |_| true)).is_none(), "nothing else waits");
    p
}

#[test]
fn a_burst_starts_sandboxes_up_to_the_concurrency_then_waits() {
    let mut s = S::new(spec(2, 1));
    assert!(matches!(
        s.arrive(1, false, None, ready),
        Arrival::StartAndWait(_)
    ));
    assert!(matches!(
        s.arrive(2, false, None, ready),
        Arrival::StartAndWait(_)
    ));
    assert!(
        matches!(s.arrive(3, false, None, ready), Arrival::Wait),
        "the queue takes one"
    );
    match s.arrive(4, false, None, ready) {
        Arrival::Refused(4, InvokeError::QueueFull { waiting: 1 }) => {}
        _ => panic!("the queue is full"),
    }
    assert_eq!(
        s.load(),
        Load {
            starting: 2,
            idle: 0,
            busy: 0,
            running: 0,
            queued: 3
        }
    );
}

#[test]
fn max_queue_zero_throttles_beyond_the_concurrency() {
    let mut s = S::new(spec(1, 0));
    let p = warm(&mut s, "a");
    let Arrival::Run(q, "a", 1) = s.arrive(1, false, None, ready) else {
        panic!("the idle sandbox takes it")
    };
    assert_eq!((p.index, p.serial), (q.index, q.serial));
    assert!(matches!(
        s.arrive(2, false, None, ready),
        Arrival::Refused(2, InvokeError::Throttled)
    ));
    assert!(
        matches!(s.arrive(3, true, None, ready), Arrival::Wait),
        "an Event waits in its own queue"
    );
    let h = run(s.release(p, |_| true)).expect("the Event runs next");
    assert_eq!(h.waiter, 3);
}

#[test]
fn the_most_recently_used_idle_sandbox_is_reused() {
    let mut s = S::new(spec(3, 5));
    let a = warm(&mut s, "a");
    // Two at once: a second sandbox.
    let Arrival::Run(_, "a", _) = s.arrive(1, false, None, ready) else {
        panic!()
    };
    let Arrival::StartAndWait(b) = s.arrive(2, false, None, ready) else {
        panic!()
    };
    run(s.started(b, "b", |_| true).into_iter().next()).expect("takes 2");
    s.release(a, |_| true);
    s.release(b, |_| true);
    let Arrival::Run(p, "b", _) = s.arrive(3, false, None, ready) else {
        panic!("b became idle last")
    };
    assert_eq!((p.index, p.serial), (b.index, b.serial));
    assert_eq!(s.size(), 2, "no third sandbox while one is idle");
}

#[test]
fn least_recent_order_prefers_ready_sandboxes() {
    let mut s = S::new(Scaling {
        order: Order::LeastRecent,
        ..spec(2, 5)
    });
    let a = warm(&mut s, "a");
    let Arrival::Run(..) = s.arrive(1, false, None, ready) else {
        panic!()
    };
    let Arrival::StartAndWait(b) = s.arrive(2, false, None, ready) else {
        panic!()
    };
    s.started(b, "b", |_| true).into_iter().next();
    s.release(a, |_| true);
    s.release(b, |_| true);
    let Arrival::Run(_, "a", _) = s.arrive(3, false, None, ready) else {
        panic!("a has been idle longest")
    };
    s.release(a, |_| true);
    let Arrival::Run(_, "a", _) = s.arrive(4, false, None, |m: &&str| *m == "a") else {
        panic!("b is not ready: a, though more recent, takes it")
    };
}

#[test]
fn callers_that_left_are_skipped_and_events_keep_their_place() {
    let mut s = S::new(spec(1, 5));
    let p = warm(&mut s, "a");
    let Arrival::Run(..) = s.arrive(1, false, None, ready) else {
        panic!()
    };
    assert!(matches!(s.arrive(10, true, None, ready), Arrival::Wait));
    assert!(matches!(s.arrive(2, false, None, ready), Arrival::Wait));
    assert!(matches!(s.arrive(3, false, None, ready), Arrival::Wait));
    let h = run(s.release(p, |w| *w != 10)).expect("next");
    assert_eq!(
        h.waiter, 10,
        "an Event has nobody to leave: it runs first, as it came first"
    );
    let h = run(s.release(p, |w| *w != 2)).expect("next");
    assert_eq!(h.waiter, 3, "2 left");
    assert!(run(s.release(p, |_| true)).is_none());
}

#[test]
fn a_failed_start_fails_the_invocation_nobody_else_takes() {
    let mut s = S::new(spec(1, 5));
    let Arrival::StartAndWait(p) = s.arrive(1, false, None, ready) else {
        panic!()
    };
    assert_eq!(s.start_failed(p), Some(1));
    assert_eq!(s.size(), 0, "the number is free again");
    assert!(matches!(
        s.arrive(2, false, None, ready),
        Arrival::StartAndWait(_)
    ));
}

#[test]
fn idle_sandboxes_beyond_min_warm_are_reclaimed_least_recent_first() {
    let mut s = S::new(Scaling {
        min_warm: 1,
        ..spec(3, 5)
    });
    let a = warm(&mut s, "a");
    let Arrival::Run(..) = s.arrive(1, false, None, ready) else {
        panic!()
    };
    let Arrival::StartAndWait(b) = s.arrive(2, false, None, ready) else {
        panic!()
    };
    s.started(b, "b", |_| true).into_iter().next();
    s.release(a, |_| true);
    s.release(b, |_| true);
    assert!(s.reclaim(Instant::now()).is_empty(), "not idle long enough");
    let later = Instant::now() + Duration::from_secs(11);
    let gone = s.reclaim(later);
    assert_eq!(gone.len(), 1, "one stays: min-warm");
    assert_eq!(gone[0].1, "a", "a became idle first");
    assert_eq!(s.size(), 1);
    assert!(!s.remove(a), "already gone");
}

#[test]
fn a_released_place_of_an_ended_sandbox_changes_nothing() {
    let mut s = S::new(spec(1, 5));
    let a = warm(&mut s, "a");
    assert!(s.remove(a));
    let Arrival::StartAndWait(b) = s.arrive(1, false, None, ready) else {
        panic!()
    };
    assert_eq!(b.index, a.index, "the number is reused");
    assert!(
        run(s.release(a, |_| true)).is_none(),
        "the old serial is not b's"
    );
    assert_eq!(s.load().starting, 1);
}

#[test]
fn closing_hands_back_every_waiter_and_refuses_new_ones() {
    let mut s = S::new(spec(1, 5));
    let _ = s.arrive(1, false, None, ready);
    let _ = s.arrive(2, true, None, ready);
    assert_eq!(s.close(), vec![1, 2]);
    assert!(matches!(
        s.arrive(3, false, None, ready),
        Arrival::Refused(3, InvokeError::Unavailable(_))
    ));
    assert!(s.reserve().is_none());
}

#[test]
fn an_invocation_waits_for_a_finishing_sandbox_rather_than_start_one() {
    let mut s = S::new(spec(4, 0));
    let a = warm(&mut s, "a");
    let Arrival::Run(p, "a", 1) = s.arrive(1, false, None, ready) else {
        panic!()
    };
    // Its answer is out; the runtime has not asked for the next yet.
    s.finishing(p);
    assert!(
        matches!(s.arrive(2, false, None, ready), Arrival::Wait),
        "no cold start, and no throttle even with --max-queue 0"
    );
    assert!(
        matches!(s.arrive(3, false, None, ready), Arrival::StartAndWait(_)),
        "a second one finds nothing about to be free"
    );
    let h = run(s.release(a, |_| true)).expect("2 goes to a");
    assert_eq!(h.waiter, 2);
    // A stale lease's `finishing` (an older turn) changes nothing.
    s.finishing(p);
    assert_eq!(s.load().busy, 1);
    s.finishing(h.place);
    let Arrival::Wait = s.arrive(4, false, None, ready) else {
        panic!("the current turn's finishing counts")
    };
}

fn tenants(concurrency: usize, max_queue: usize) -> S {
    S::new(Scaling {
        tenant_isolation: true,
        ..spec(concurrency, max_queue)
    })
}

/// Start a sandbox for `tenant` and let it finish its first invocation.
fn warm_for(s: &mut S, tenant: &str, name: &'static str, w: u32) -> Place {
    let Arrival::StartAndWait(p) = s.arrive(w, false, Some(tenant), ready) else {
        panic!("a cold start for {tenant}")
    };
    assert_eq!(
        run(s.started(p, name, |_| true).into_iter().next())
            .unwrap()
            .waiter,
        w
    );
    assert!(run(s.release(p, |_| true)).is_none());
    p
}

#[test]
fn a_sandbox_serves_one_tenant_only() {
    let mut s = tenants(3, 5);
    warm_for(&mut s, "a", "sa", 1);
    let Arrival::StartAndWait(_) = s.arrive(2, false, Some("b"), ready) else {
        panic!("b never runs in a's idle sandbox")
    };
    let Arrival::Run(_, "sa", 3) = s.arrive(3, false, Some("a"), ready) else {
        panic!("a's idle sandbox serves a")
    };
}

#[test]
fn another_tenants_idle_sandbox_makes_room_when_all_are_taken() {
    let mut s = tenants(2, 0);
    let a = warm_for(&mut s, "a", "sa", 1);
    let _b = warm_for(&mut s, "b", "sb", 2);
    // Both idle, neither c's: the least recently used (a's) is replaced,
    // even with --max-queue 0.
    let Arrival::Replace { old, new } = s.arrive(3, false, Some("c"), ready) else {
        panic!("room is made for c")
    };
    assert_eq!(
        (old.0.index, old.0.serial, old.1),
        (a.index, a.serial, "sa")
    );
    assert_eq!(new.index, a.index);
    assert_eq!(s.size(), 2, "never more than the concurrency");
    let h = run(s.started(new, "sc", |_| true).into_iter().next())
        .expect("c's invocation runs in c's sandbox");
    assert_eq!(h.waiter, 3);
}

#[test]
fn a_freed_sandbox_with_only_other_tenants_waiting_is_replaced() {
    let mut s = tenants(1, 5);
    let a = warm_for(&mut s, "a", "sa", 1);
    let Arrival::Run(p, "sa", _) = s.arrive(2, false, Some("a"), ready) else {
        panic!()
    };
    assert!(matches!(
        s.arrive(3, false, Some("b"), ready),
        Arrival::Wait
    ));
    match s.release(p, |_| true) {
        Some(Next::Replace { old, new }) => {
            assert_eq!(old.1, "sa");
            assert_eq!(new.index, a.index);
            assert_eq!(
                run(s.started(new, "sb", |_| true).into_iter().next())
                    .unwrap()
                    .waiter,
                3
            );
        }
        _ => panic!("a's sandbox makes room for the waiting b"),
    }
}

#[test]
fn a_reload_replaces_idle_sandboxes_now_and_busy_ones_when_free() {
    let mut s = S::new(spec(3, 4));
    // Two sandboxes, warm after a burst of two.
    let (Arrival::StartAndWait(a), Arrival::StartAndWait(b)) = (
        s.arrive(0, false, None, ready),
        s.arrive(1, false, None, ready),
    ) else {
        panic!("two cold starts")
    };
    let ha = run(s.started(a, "a", |_| true).into_iter().next()).expect("a takes the first waiter");
    let hb = run(s.started(b, "b", |_| true).into_iter().next()).expect("b takes the second");
    assert!(run(s.release(ha.place, |_| true)).is_none());
    assert!(run(s.release(hb.place, |_| true)).is_none());
    // b is busy when the reload comes; a is idle.
    let Arrival::Run(busy, "b", 7) = s.arrive(7, false, None, ready) else {
        panic!("the most recent idle sandbox takes it")
    };
    assert_eq!(busy.index, b.index);
    let gone = s.renew();
    assert_eq!(gone.len(), 1, "only the idle one goes at once");
    assert_eq!((gone[0].0.index, gone[0].1), (a.index, "a"));
    assert_eq!(s.size(), 1, "its room is free for the fresh one");
    // The pool starts a fresh one in that room.
    let fresh = s.reserve().expect("room for the replacement");
    assert!(run(s.started(fresh, "a2", |_| true).into_iter().next()).is_none());
    // A new invocation never goes to the stale busy one: the fresh one takes it.
    let Arrival::Run(_, "a2", 8) = s.arrive(8, false, None, ready) else {
        panic!("the fresh sandbox takes new invocations")
    };
    // b finishes: it is replaced, not made idle.
    match s.release(busy, |_| true) {
        Some(Next::Replace { old, new }) => {
            assert_eq!((old.0.index, old.1), (b.index, "b"));
            assert_ne!(new.serial, b.serial, "a new sandbox");
        }
        _ => panic!("a stale sandbox is replaced when it is free"),
    }
    assert_eq!(s.load().idle, 0, "nothing stale became idle");
}

fn lanes(concurrency: usize, max_queue: usize, per_sandbox: usize) -> S {
    S::new(Scaling {
        per_sandbox,
        ..spec(concurrency, max_queue)
    })
}

#[test]
fn lmi_a_sandbox_runs_n_invocations_and_throttles_past_them() {
    let mut s = lanes(1, 0, 3);
    let a = warm(&mut s, "a");
    for w in 1..=3 {
        let Arrival::Run(p, "a", got) = s.arrive(w, false, None, ready) else {
            panic!("lane {w} of the one sandbox takes it")
        };
        assert_eq!((p.index, p.serial, got), (a.index, a.serial, w));
    }
    assert!(matches!(
        s.arrive(4, false, None, ready),
        Arrival::Refused(4, InvokeError::Throttled)
    ));
    assert_eq!(s.load().busy, 1);
    // One lane frees: nothing waits, the sandbox stays busy with the others.
    assert!(run(s.release(a, |_| true)).is_none());
    assert_eq!(s.load().idle, 0);
    let Arrival::Run(..) = s.arrive(5, false, None, ready) else {
        panic!("the freed lane takes it")
    };
    for _ in 0..3 {
        assert!(run(s.release(a, |_| true)).is_none());
    }
    assert_eq!(s.load().idle, 1, "idle once every lane is free");
}

#[test]
fn lmi_a_started_sandbox_takes_up_to_n_waiting_and_the_queue_counts_its_lanes() {
    let mut s = lanes(1, 1, 2);
    let Arrival::StartAndWait(p) = s.arrive(1, false, None, ready) else {
        panic!("a cold start")
    };
    // The starting sandbox covers two; one more may queue; then it is full.
    assert!(matches!(s.arrive(2, false, None, ready), Arrival::Wait));
    assert!(matches!(s.arrive(3, false, None, ready), Arrival::Wait));
    assert!(matches!(
        s.arrive(4, false, None, ready),
        Arrival::Refused(4, InvokeError::QueueFull { waiting: 1 })
    ));
    let took: Vec<u32> = s
        .started(p, "a", |_| true)
        .into_iter()
        .filter_map(|n| run(Some(n)))
        .map(|h| h.waiter)
        .collect();
    assert_eq!(took, [1, 2], "both lanes at once, oldest first");
    let h = run(s.release(p, |_| true)).expect("a freed lane takes the third");
    assert_eq!(h.waiter, 3);
}

#[test]
fn lmi_a_pool_holds_sandboxes_times_n() {
    let mut s = lanes(2, 0, 2);
    let a = warm(&mut s, "a");
    let Arrival::Run(_, "a", _) = s.arrive(1, false, None, ready) else {
        panic!()
    };
    // The busy sandbox has room: no second sandbox yet.
    let Arrival::Run(_, "a", _) = s.arrive(2, false, None, ready) else {
        panic!("a's second lane")
    };
    let Arrival::StartAndWait(b) = s.arrive(3, false, None, ready) else {
        panic!("a full: a second sandbox")
    };
    assert!(matches!(s.arrive(4, false, None, ready), Arrival::Wait));
    assert_eq!(s.started(b, "b", |_| true).len(), 2, "b takes 3 and 4");
    assert!(matches!(
        s.arrive(5, false, None, ready),
        Arrival::Refused(5, InvokeError::Throttled)
    ));
    assert!(run(s.release(a, |_| true)).is_none());
}
