include!("common/stand_in.rs");

// No new spec (nor a restart) while a promotion is under way: the promotion
// applies its own spec once postgres is promoted.
fn main() {
    let running = Empty::<T>::spawn().start("replica").started(1);
    let promoting = running.promote("primary", Lsn(0x10));
    let _pending = promoting.reconfigure("other");
}
