//! A `processor` that imports `flowlet:operator/state`, which only a `stateful-processor` may:
//! the host must refuse it at load, saying so.

#[cfg(target_arch = "wasm32")]
mod component {
    wit_bindgen::generate!({
        path: "../../../../wit",
        inline: r#"
            package test:imports;

            world processor-with-state {
                import flowlet:operator/state@0.1.0;
                export flowlet:operator/handler@0.1.0;
            }
        "#,
        world: "test:imports/processor-with-state",
        generate_all,
    });

    use exports::flowlet::operator::handler::Guest;
    use flowlet::operator::types::{Batch, Error, Output};

    struct Plugin;

    impl Guest for Plugin {
        fn init(_: String) -> Result<(), Error> {
            // Used, so that the component really imports it.
            flowlet::operator::state::value_get(&[], "x");
            Ok(())
        }

        fn process(input: Batch) -> Result<Output, Error> {
            Ok(Output {
                events: input,
                rejected: Vec::new(),
            })
        }
    }

    export!(Plugin);
}
