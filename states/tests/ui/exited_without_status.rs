include!("common/stand_in.rs");

// Postgres exiting on its own is told by its exit status, not a message.
fn main() {
    let running = Empty::<T>::spawn().start("a").started(1);
    let _failed = running.postgres_exited("died".to_string());
}
