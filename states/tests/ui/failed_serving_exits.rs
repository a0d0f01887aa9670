include!("common/stand_in.rs");

// A compute whose postgres still serves does not exit and leave it behind:
// it is terminated first (TerminationPending hands the postgres over).
fn main() {
    let running = Empty::<T>::spawn().start("a").started(1);
    let failed = running.reconfigure("bad").begin().fail("rejected".into());
    let _code = failed.exit();
}
