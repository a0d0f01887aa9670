include!("common/stand_in.rs");

// Only a running compute is promoted: not one still starting (nor a failed one).
fn main() {
    let init = Empty::<T>::spawn().start("replica");
    let _promoting = init.promote("primary", Lsn(0x10));
}
