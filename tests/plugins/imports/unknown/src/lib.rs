//! A `processor` that imports an interface flowlet does not provide: the host must refuse it
//! at load, naming the import and what a processor may import.

#[cfg(target_arch = "wasm32")]
mod component {
    wit_bindgen::generate!({
        path: "../../../../wit",
        inline: r#"
            package test:imports;

            interface socket {
                connect: func(address: string) -> bool;
            }

            world processor-with-socket {
                import socket;
                export flowlet:operator/handler@0.2.0;
            }
        "#,
        world: "test:imports/processor-with-socket",
        generate_all,
    });

    use exports::flowlet::operator::handler::Guest;
    use flowlet::operator::types::{Batch, Error, Output, Setup};

    struct Plugin;

    impl Guest for Plugin {
        fn init(_: String, _: Setup) -> Result<(), Error> {
            test::imports::socket::connect("127.0.0.1:1");
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
