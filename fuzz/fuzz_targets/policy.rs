//! Policy bundle YAML → compile to Cedar; a bundle that compiles is asked
//! a decision for every action, each actor it names and an unknown one, on
//! a protected and an unprotected branch.
#![no_main]

use libfuzzer_sys::fuzz_target;
use omnigraph_policy::{Action, BranchCtx, PolicyEngine};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(engine) = PolicyEngine::compile("fuzz.policy.yaml", text) else {
        return;
    };
    let mut actors: Vec<String> = engine.actors().map(str::to_string).collect();
    actors.push("act-nobody".to_string());
    for actor in &actors {
        for action in Action::ALL {
            for branch in ["main", "feature/x"] {
                let ctx = BranchCtx {
                    branch: Some(branch),
                    target: Some(branch),
                };
                let _ = engine.decide(actor, action, "graph", &ctx);
            }
        }
    }
});
