//! No import cycle between the top-level modules of `personalization` (each module may use
//! the ones below it, never one that uses it back).

#[path = "support/module_graph.rs"]
mod module_graph;

#[test]
fn personalization_modules_import_each_other_without_a_cycle() {
    module_graph::assert_acyclic(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
}

#[test]
fn the_cycle_check_finds_a_cycle_when_there_is_one() {
    module_graph::check_that_a_cycle_is_found();
}
