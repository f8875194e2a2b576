//! The SQL front end, fed arbitrary pipeline files: planning either succeeds or
//! returns an error (with a line), never panics; a planned pipeline describes
//! itself and builds its operators.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil_engine::plan::Pipeline;
use vigil_engine::runtime::JobRunner;

fuzz_target!(|data: &[u8]| {
    let Ok(sql) = std::str::from_utf8(data) else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let Ok(pipeline) = runtime.block_on(Pipeline::plan(sql)) else {
        return;
    };
    let _ = pipeline.describe();
    for job in &pipeline.jobs {
        let _ = JobRunner::new(job, &pipeline.ctx);
    }
});
