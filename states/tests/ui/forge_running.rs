include!("common/stand_in.rs");

// Forging a state: Running can only come from a transition that supplies a postgres handle.
fn main() {
    let _running: Running<T> = Running { spec: "spec", postgres: 1 };
}
