fn main() -> std::process::ExitCode {
    flowlet::main()
}
