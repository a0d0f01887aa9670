include!("common/stand_in.rs");

// A requested restart holds the serving postgres: it cannot come back
// Running (nor fail and drop it) before handing it over to be stopped.
fn main() {
    let pending = Empty::<T>::spawn().start("a").started(1).restart();
    let _running = pending.restarted(Stopped, 2);
    let pending = Empty::<T>::spawn().start("a").started(1).restart();
    let _failed = pending.fail("lost".into());
}
