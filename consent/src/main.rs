fn main() -> std::process::ExitCode {
    common::service::main(consent::SERVICE, consent::build)
}
