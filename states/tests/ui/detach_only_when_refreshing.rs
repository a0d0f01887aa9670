include!("common/stand_in.rs");

// Only a refresh finds the compute detached from its storage: a running
// compute is terminated by a request or a signal, with their exit code.
fn main() {
    let running = Empty::<T>::spawn().start("a").started(1);
    let _pending = running.detach();
}
