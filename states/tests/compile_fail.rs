//! Illegal transitions do not compile. Each file under `ui/` tries one kind of
//! illegal move; its `.stderr` is the compiler's refusal, checked in.
//! Regenerate after a deliberate change with `TRYBUILD=overwrite cargo test -p compute_states`.

#[test]
fn illegal_transitions_do_not_compile() {
    trybuild::TestCases::new().compile_fail("tests/ui/*.rs");
}
