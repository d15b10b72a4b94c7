//! A component of a world that is not flowlet's, to test that the host refuses it clearly.

#[cfg(target_arch = "wasm32")]
mod component {
    wit_bindgen::generate!({
        inline: r#"
            package test:other@1.0.0;

            world greeter {
                export greet: func(name: string) -> string;
            }
        "#,
    });

    struct Greeter;

    impl Guest for Greeter {
        fn greet(name: String) -> String {
            format!("hello, {name}")
        }
    }

    export!(Greeter);
}
