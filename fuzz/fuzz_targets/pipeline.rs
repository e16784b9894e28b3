//! The pipeline validator (and, for a valid pipeline, the Kubeflow compiler) on arbitrary text:
//! every problem is an error with its path, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(p) = pm_orchestrator::graph::load(text) {
        let _ = pm_orchestrator::kfp::compile(&p);
    }
});
