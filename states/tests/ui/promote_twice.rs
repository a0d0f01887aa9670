include!("common/stand_in.rs");

// A promotion under way is not promoted again.
fn main() {
    let running = Empty::<T>::spawn().start("replica").started(1);
    let promoting = running.promote("primary", Lsn(0x10));
    let _again = promoting.promote("primary", Lsn(0x20));
}
