//! Walks every legal edge and checks the generated tables.

use super::*;
use std::collections::HashSet;

/// A stand-in for the driver's types: the machine is generic over them.
struct T;
impl Compute for T {
    type Spec = &'static str;
    type Postgres = u32;
    type Error = String;
    type Stopped = Stopped;
    type ExitStatus = i32;
    fn exited(postgres: &u32, status: i32) -> String {
        format!("postgres {postgres} exited with {status}")
    }
}

/// The stand-in's proof that postgres stopped.
struct Stopped;

/// Records each step as (from, to, method) in terms of [`Node`]s.
#[derive(Default)]
struct Walk(HashSet<(Node, Node, &'static str)>);

impl Walk {
    fn step<A, B>(&mut self, from: A, method: &'static str, f: impl FnOnce(A) -> B) -> B
    where
        A: Probe,
        B: Probe,
    {
        let from_status = from.probe();
        let to = f(from);
        self.0
            .insert((Node::State(from_status), Node::State(to.probe()), method));
        to
    }
    /// A handover: the step also returns what the state held.
    fn hand<A, B, P>(
        &mut self,
        from: A,
        method: &'static str,
        f: impl FnOnce(A) -> (P, B),
    ) -> (P, B)
    where
        A: Probe,
        B: Probe,
    {
        let from_status = from.probe();
        let (held, to) = f(from);
        self.0
            .insert((Node::State(from_status), Node::State(to.probe()), method));
        (held, to)
    }
    fn exit<A: Probe>(&mut self, from: A, f: impl FnOnce(A) -> Exited) -> u8 {
        let from_status = from.probe();
        self.0.insert((Node::State(from_status), Node::End, "exit"));
        f(from).code()
    }
}

/// The status of a concrete state, without consuming it.
trait Probe {
    fn probe(&self) -> Kind;
}
macro_rules! probe {
    ($($s:ident),*) => {$(impl Probe for $s<T> { fn probe(&self) -> Kind { Kind::$s } })*};
}
probe!(
    Empty,
    ConfigurationPending,
    ReconfigurationPending,
    Configuration,
    Reconfiguration,
    Init,
    Running,
    RestartPending,
    Restarting,
    Promoting,
    Promoted,
    RefreshPending,
    Refreshing,
    TerminationPending,
    Terminating,
    Stopping,
    Failed,
    FailedServing,
    Terminated
);

#[test]
fn every_declared_edge_is_walked() {
    let mut w = Walk::default();
    w.0.insert((Node::Start, Node::State(Kind::Empty), "spawn"));

    // Spec at launch: Empty -> Init -> Running -> TerminationPending ->
    // Stopping -> Terminated -> [*].
    let init = w.step(Empty::<T>::spawn(), "start", |s| s.start("spec"));
    assert_eq!(*init.spec(), "spec");
    let running = w.step(init, "started", |s| s.started(42));
    assert_eq!(*running.postgres(), 42);
    let pending = w.step(running, "terminate", |s| {
        s.terminate(Termination::signal(TerminationMode::Fast))
    });
    assert_eq!(pending.termination().mode, TerminationMode::Fast);
    let (pg, stopping) = w.hand(pending, "begin", |s| s.begin());
    assert_eq!(
        (pg, stopping.termination().mode, *stopping.spec()),
        (42, TerminationMode::Fast, "spec")
    );
    let lsn = Some(Lsn(0x1_0000_0010));
    let terminated = w.step(stopping, "terminated", |s| s.terminated(Stopped, lsn));
    assert_eq!(terminated.lsn(), lsn);
    assert_eq!(w.exit(terminated, |s| s.exit()), 0);

    // Startup failure: Init -> Failed -> [*].
    let init = w.step(Empty::<T>::spawn(), "start", |s| s.start("spec"));
    let failed = w.step(init, "fail", |s| s.fail("boom".into()));
    assert_eq!(failed.error(), "boom");
    assert_eq!(w.exit(failed, |s| s.exit()), 1);

    // Signal during startup: nothing to stop.
    let init = w.step(Empty::<T>::spawn(), "start", |s| s.start("spec"));
    let terminating = w.step(init, "terminate", |s| {
        s.terminate(Termination::api(TerminationMode::Immediate))
    });
    assert_eq!(
        terminating.termination(),
        Termination::api(TerminationMode::Immediate)
    );

    // Spec over the API: Empty -> ConfigurationPending -> Configuration -> Running.
    let cp = w.step(Empty::<T>::spawn(), "configure", |s| s.configure("a"));
    let cfg = w.step(cp, "begin", |s| s.begin());
    assert_eq!(*cfg.spec(), "a");
    let running = w.step(cfg, "configured", |s| s.configured(7));
    // Reconfigure: Running -> ReconfigurationPending -> Reconfiguration ->
    // Running, the postgres kept throughout.
    let cp = w.step(running, "reconfigure", |s| s.reconfigure("b"));
    assert_eq!(*cp.spec(), "b");
    let mut cfg = w.step(cp, "begin", |s| s.begin());
    assert_eq!(
        (*cfg.spec(), *cfg.postgres(), *cfg.postgres_mut()),
        ("b", 7, 7)
    );
    let running = w.step(cfg, "configured", |s| s.configured());
    assert_eq!((*running.spec(), *running.postgres()), ("b", 7));
    let failed = w.step(running, "postgres_exited", |s| s.postgres_exited(137));
    assert_eq!(failed.error(), "postgres 7 exited with 137");

    // Configuration failure and signal during configuration.
    let cp = w.step(Empty::<T>::spawn(), "configure", |s| s.configure("a"));
    let cfg = w.step(cp, "begin", |s| s.begin());
    w.step(cfg, "fail", |s| s.fail("bad".into()));
    // A failed reconfiguration keeps postgres serving; a new spec recovers
    // it in place, and a termination stops it.
    let running = w.step(Empty::<T>::spawn(), "start", |s| s.start("a"));
    let running = w.step(running, "started", |s| s.started(9));
    let cp = w.step(running, "reconfigure", |s| s.reconfigure("bad"));
    let cfg = w.step(cp, "begin", |s| s.begin());
    assert_eq!((*cfg.spec(), *cfg.previous()), ("bad", "a"));
    let mut failed = w.step(cfg, "fail", |s| s.fail("rejected".into()));
    assert_eq!(
        (failed.error().as_str(), *failed.spec(), *failed.postgres()),
        ("rejected", "a", 9)
    );
    assert_eq!(*failed.postgres_mut(), 9);
    let cp = w.step(failed, "reconfigure", |s| s.reconfigure("good"));
    let cfg = w.step(cp, "begin", |s| s.begin());
    assert_eq!(*cfg.postgres(), 9);
    let running = w.step(cfg, "configured", |s| s.configured());
    let failed = w.step(running, "postgres_exited", |s| s.postgres_exited(1));
    let terminating = w.step(failed, "terminate", |s| {
        s.terminate(Termination::signal(TerminationMode::Fast))
    });
    w.step(terminating, "nothing_to_stop", |s| s.nothing_to_stop());
    // The postgres of a failed reconfiguration can die too: Failed, with the
    // error that failed the reconfiguration.
    let running = Empty::<T>::spawn().start("a").started(11);
    let failed = running.reconfigure("bad").begin().fail("rejected".into());
    let failed = w.step(failed, "postgres_exited", |s| s.postgres_exited(9));
    assert_eq!(failed.error(), "rejected");
    let running = Empty::<T>::spawn().start("a").started(12);
    let failed = running.reconfigure("bad").begin().fail("rejected".into());
    let pending = w.step(failed, "terminate", |s| {
        s.terminate(Termination::api(TerminationMode::Immediate))
    });
    // The postgres handed over ends stopped, with the proof, or abandoned,
    // saying what was left.
    let (pg, stopping) = w.hand(pending, "begin", |s| s.begin());
    assert_eq!(
        (pg, stopping.termination().mode, *stopping.spec()),
        (12, TerminationMode::Immediate, "a")
    );
    let terminated = w.step(stopping, "abandoned", |s| {
        s.abandoned("postgres 12 abandoned".into())
    });
    assert_eq!(terminated.lsn(), None);
    let (_, stopping) = Empty::<T>::spawn()
        .start("a")
        .started(13)
        .terminate(Termination::signal(TerminationMode::Fast))
        .begin();
    let terminated = w.step(stopping, "terminated", |s| {
        s.terminated(Stopped, Some(Lsn(0x30)))
    });
    assert_eq!(terminated.lsn(), Some(Lsn(0x30)));
    // A failed start takes a new spec as a start.
    let failed = {
        let cp = w.step(Empty::<T>::spawn(), "configure", |s| s.configure("a"));
        let cfg = w.step(cp, "begin", |s| s.begin());
        w.step(cfg, "fail", |s| s.fail("x".into()))
    };
    let cp = w.step(failed, "configure", |s| s.configure("again"));
    assert_eq!(*cp.spec(), "again");
    // A signal during a reconfiguration stops the postgres it kept.
    let running = w.step(Empty::<T>::spawn(), "start", |s| s.start("a"));
    let running = w.step(running, "started", |s| s.started(10));
    let cp = w.step(running, "reconfigure", |s| s.reconfigure("b"));
    let cfg = w.step(cp, "begin", |s| s.begin());
    let pending = w.step(cfg, "terminate", |s| {
        s.terminate(Termination::signal(TerminationMode::Fast))
    });
    let (pg, stopping) = pending.begin();
    // The spec in effect is the one postgres served before.
    assert_eq!((pg, *stopping.spec()), (10, "a"));
    let cp = w.step(Empty::<T>::spawn(), "configure", |s| s.configure("a"));
    let cfg = w.step(cp, "begin", |s| s.begin());
    w.step(cfg, "terminate", |s| {
        s.terminate(Termination::signal(TerminationMode::Fast))
    });

    // Restart in place: Running -> RestartPending -> Restarting -> Running;
    // a postgres that does not come back fails; a signal during the restart
    // terminates.
    let running = w.step(Empty::<T>::spawn(), "start", |s| s.start("r"));
    let running = w.step(running, "started", |s| s.started(3));
    let pending = w.step(running, "restart", |s| s.restart());
    assert_eq!(*pending.spec(), "r");
    let (old, restarting) = w.hand(pending, "begin", |s| s.begin());
    assert_eq!((old, *restarting.spec()), (3, "r"));
    let running = w.step(restarting, "restarted", |s| s.restarted(Stopped, 4));
    assert_eq!(*running.postgres(), 4);
    let pending = w.step(running, "restart", |s| s.restart());
    let (old, restarting) = pending.begin();
    assert_eq!(old, 4);
    w.step(restarting, "fail", |s| s.fail("gone".into()));
    let running = w.step(Empty::<T>::spawn(), "start", |s| s.start("r"));
    let running = w.step(running, "started", |s| s.started(5));
    let (_, restarting) = running.restart().begin();
    w.step(restarting, "terminate", |s| {
        s.terminate(Termination::signal(TerminationMode::Fast))
    });

    // Promotion: Running (replica) -> Promoting -> Running (primary); the
    // WAL not arriving in time leaves the replica running with its spec; a
    // failure after the promotion keeps postgres; a signal terminates.
    let running = w.step(Empty::<T>::spawn(), "start", |s| s.start("replica"));
    let running = w.step(running, "started", |s| s.started(6));
    let promoting = w.step(running, "promote", |s| s.promote("primary", Lsn(0x10)));
    assert_eq!(*promoting.replica_spec(), "replica");
    assert_eq!(*promoting.primary_spec(), "primary");
    assert_eq!(promoting.wal_flush_lsn(), Lsn(0x10));
    assert_eq!(*promoting.postgres(), 6);
    let running = w.step(promoting, "not_promoted", |s| s.not_promoted());
    assert_eq!(*running.spec(), "replica");
    let promoting = w.step(running, "promote", |s| s.promote("primary", Lsn(0x10)));
    let promoted = w.step(promoting, "pg_promoted", |s| s.pg_promoted());
    assert_eq!(
        (*promoted.primary_spec(), *promoted.postgres()),
        ("primary", 6)
    );
    let running = w.step(promoted, "promoted", |s| s.promoted());
    assert_eq!((*running.spec(), *running.postgres()), ("primary", 6));
    let promoting = w.step(running, "promote", |s| s.promote("again", Lsn(0x20)));
    let promoted = promoting.pg_promoted();
    let failed = w.step(promoted, "fail", |s| s.fail("catalog".into()));
    assert_eq!((*failed.spec(), *failed.postgres()), ("again", 6));
    let running = w.step(Empty::<T>::spawn(), "start", |s| s.start("replica"));
    let running = w.step(running, "started", |s| s.started(8));
    let promoting = w.step(running, "promote", |s| s.promote("primary", Lsn(0x10)));
    let pending = w.step(promoting, "terminate", |s| {
        s.terminate(Termination::signal(TerminationMode::Fast))
    });
    let (pg, stopping) = pending.begin();
    assert_eq!((pg, *stopping.spec()), (8, "replica"));
    let promoted = Empty::<T>::spawn()
        .start("replica")
        .started(14)
        .promote("primary", Lsn(0x10))
        .pg_promoted();
    let pending = w.step(promoted, "terminate", |s| {
        s.terminate(Termination::signal(TerminationMode::Fast))
    });
    let (pg, stopping) = pending.begin();
    assert_eq!((pg, *stopping.spec()), (14, "primary"));

    // Refresh: Running -> RefreshPending -> Refreshing -> Running with the
    // spec read again; a failed attempt is retried with its error kept; a
    // failed compute that still serves takes a refresh too; a signal stops
    // it; a spec source with no spec detaches the compute, which exits 1.
    let running = Empty::<T>::spawn().start("old").started(20);
    let pending = w.step(running, "refresh", |s| s.refresh());
    assert_eq!((*pending.spec(), pending.error()), ("old", None));
    let refreshing = w.step(pending, "begin", |s| s.begin());
    let pending = w.step(refreshing, "retry", |s| s.retry("cplane down".into()));
    assert_eq!(pending.error().map(String::as_str), Some("cplane down"));
    let mut refreshing = pending.begin();
    assert_eq!(
        (
            *refreshing.spec(),
            *refreshing.postgres(),
            *refreshing.postgres_mut()
        ),
        ("old", 20, 20)
    );
    let running = w.step(refreshing, "refreshed", |s| s.refreshed("new"));
    assert_eq!((*running.spec(), *running.postgres()), ("new", 20));
    let failed = running.reconfigure("bad").begin().fail("rejected".into());
    let pending = w.step(failed, "refresh", |s| s.refresh());
    assert_eq!(
        (*pending.spec(), pending.error().map(String::as_str)),
        ("new", Some("rejected"))
    );
    let refreshing = pending.begin();
    let pending = w.step(refreshing, "terminate", |s| {
        s.terminate(Termination::signal(TerminationMode::Fast))
    });
    assert_eq!(pending.begin().0, 20);
    let refreshing = Empty::<T>::spawn().start("a").started(21).refresh().begin();
    let pending = w.step(refreshing, "detach", |s| s.detach());
    assert_eq!(pending.termination(), Termination::detached());
    let (_, stopping) = pending.begin();
    let terminated = stopping.terminated(Stopped, None);
    assert_eq!(terminated.termination().origin, Origin::Detached);
    assert_eq!(terminated.exit().code(), 1);
    let refreshing = Empty::<T>::spawn().start("a").started(22).refresh().begin();
    let failed = w.step(refreshing, "postgres_exited", |s| s.postgres_exited(9));
    assert_eq!(failed.error(), "postgres 22 exited with 9");

    // Termination from Empty.
    let terminating = w.step(Empty::<T>::spawn(), "terminate", |s| {
        s.terminate(Termination::signal(TerminationMode::Fast))
    });
    let terminated = w.step(terminating, "nothing_to_stop", |s| s.nothing_to_stop());
    assert_eq!(terminated.lsn(), None);

    let declared: HashSet<_> = EDGES.iter().map(|e| (e.from, e.to, e.method)).collect();
    assert_eq!(declared.len(), EDGES.len(), "an edge is declared twice");
    assert_eq!(w.0, declared, "walked edges differ from the declared ones");
}

#[test]
fn edges_cover_the_seed_diagram_and_label_everything() {
    use Kind::*;
    let seed = [
        (Node::Start, Node::State(Empty)),
        (Node::State(Empty), Node::State(ConfigurationPending)),
        (
            Node::State(ConfigurationPending),
            Node::State(Configuration),
        ),
        (Node::State(Configuration), Node::State(Failed)),
        (Node::State(Configuration), Node::State(Running)),
        (Node::State(Empty), Node::State(Init)),
        (Node::State(Empty), Node::State(Terminating)),
        (Node::State(Init), Node::State(Failed)),
        (Node::State(Init), Node::State(Running)),
        (Node::State(Running), Node::State(TerminationPending)),
        (Node::State(TerminationPending), Node::State(Stopping)),
        (Node::State(Stopping), Node::State(Terminated)),
        (Node::State(Failed), Node::End),
        (Node::State(Terminated), Node::End),
        (Node::State(Running), Node::State(ReconfigurationPending)),
        (
            Node::State(ReconfigurationPending),
            Node::State(Reconfiguration),
        ),
        (Node::State(Reconfiguration), Node::State(Running)),
        (Node::State(Running), Node::State(Failed)),
    ];
    let edges: HashSet<_> = EDGES.iter().map(|e| (e.from, e.to)).collect();
    for pair in seed {
        assert!(
            edges.contains(&pair),
            "missing edge {} --> {}",
            pair.0,
            pair.1
        );
    }
    for e in EDGES {
        assert!(
            !e.label.trim().is_empty(),
            "edge {} --> {} has no label",
            e.from,
            e.to
        );
    }
    // Every state is reachable from [*] and can reach [*].
    for s in Kind::ALL {
        assert!(
            EDGES.iter().any(|e| e.to == Node::State(*s)),
            "{s} unreachable"
        );
        assert!(
            EDGES.iter().any(|e| e.from == Node::State(*s)),
            "{s} is a dead end"
        );
    }
}

#[test]
fn snake_case_names_are_stable() {
    for (status, name) in _SNAKE_NAMES {
        assert_eq!(status.to_string(), *name);
        assert_eq!(name.parse::<Status>().unwrap(), *status);
        assert_eq!(
            serde_json::to_string(status).unwrap(),
            format!("\"{name}\"")
        );
    }
    assert_eq!(TerminationMode::Immediate.to_string(), "immediate");
    assert_eq!(
        "fast".parse::<TerminationMode>().unwrap(),
        TerminationMode::Fast
    );
}

#[test]
fn the_type_view_lists_every_edge_once() {
    let m = mermaid_types();
    assert!(m.starts_with("stateDiagram-v2\n"));
    assert_eq!(m.lines().count(), EDGES.len() + 1);
    assert!(m.contains("    [*] --> Empty : Compute spawned\n"));
    assert!(m.contains("    Empty --> Terminating : Requested termination\n"));
    assert!(m.contains("    Terminated --> [*] : Compute exited\n"));
    let live = mermaid_highlighted(View::Types, Status::Running);
    assert!(live.starts_with(&m));
    assert!(live.ends_with("    class Running current\n"));
}

#[test]
fn the_status_view_draws_statuses_and_merges_their_edges() {
    let m = mermaid();
    assert!(m.starts_with("stateDiagram-v2\n"));
    let lines: Vec<&str> = m.lines().skip(1).collect();
    // Only statuses are drawn, never a type that is a twin.
    for line in &lines {
        let (edge, _label) = line.trim().split_once(" : ").unwrap();
        let (from, to) = edge.split_once(" --> ").unwrap();
        for node in [from, to] {
            assert!(
                node == "[*]" || Status::ALL.iter().any(|s| s.name() == node),
                "{node} is not a status"
            );
        }
        assert_ne!(from, to, "a handover inside one status is drawn: {line}");
        let pair = format!("    {edge} : ");
        assert_eq!(m.matches(&pair).count(), 1, "{edge} drawn twice");
    }
    assert!(m.contains("    Empty --> TerminationPending : Requested termination\n"));
    assert!(m.contains("    TerminationPending --> Terminated : Terminated compute\n"));
    assert!(!m.contains("Terminating"));
    assert!(!m.contains("Reconfiguration"));
    let live = mermaid_highlighted(View::Status, Status::Configuration);
    assert!(live.starts_with(&m));
    assert!(live.ends_with("    class Configuration current\n"));
}

#[test]
fn a_start_and_a_reconfiguration_report_one_status() {
    assert_eq!(Kind::Configuration.status(), Status::Configuration);
    assert_eq!(Kind::Reconfiguration.status(), Status::Configuration);
    assert_eq!(
        Kind::ReconfigurationPending.status(),
        Status::ConfigurationPending
    );
    let running = Empty::<T>::spawn().start("a").started(1);
    let state: AnyState<T> = running.reconfigure("b").begin().into();
    assert_eq!(state.kind(), Kind::Reconfiguration);
    assert_eq!(state.status(), Status::Configuration);
    // The live diagram highlights every type reporting the status.
    let live = mermaid_highlighted(View::Types, Status::Configuration);
    assert!(live.contains("    class Configuration current\n"));
    assert!(live.contains("    class Reconfiguration current\n"));
}

#[test]
fn a_state_with_postgres_and_its_twin_without_report_one_status() {
    for (with, without, status) in [
        (Kind::FailedServing, Kind::Failed, Status::Failed),
        (
            Kind::TerminationPending,
            Kind::Terminating,
            Status::TerminationPending,
        ),
        (Kind::RestartPending, Kind::Restarting, Status::Restarting),
    ] {
        assert_eq!((with.status(), without.status()), (status, status));
    }
    let live = mermaid_highlighted(View::Types, Status::Failed);
    assert!(live.contains("    class Failed current\n"));
    assert!(live.contains("    class FailedServing current\n"));
}
