//! A `processor` that imports `flowlet:operator/state`, which only a `stateful-processor` may:
//! the host must refuse it at load, saying so.

#[cfg(target_arch = "wasm32")]
mod component {
    wit_bindgen::generate!({
        path: "../../../../wit",
        inline: r#"
            package test:imports;

            world processor-with-state {
                import flowlet:operator/state@0.2.0;
                export flowlet:operator/handler@0.2.0;
            }
        "#,
        world: "test:imports/processor-with-state",
        generate_all,
    });

    use exports::flowlet::operator::handler::Guest;
    use flowlet::operator::types::{Batch, Error, Output, Setup};

    struct Plugin;

    impl Guest for Plugin {
        fn init(_: String, _: Setup) -> Result<(), Error> {
            // Used, so that the component really imports it.
            flowlet::operator::state::value_get(&[], "x");
            Ok(())
        }

        fn process(input: Batch, _: u32) -> Result<Output, Error> {
            Ok(Output {
                events: input,
                routes: Vec::new(),
                rejected: Vec::new(),
            })
        }
    }

    export!(Plugin);
}
