fn main() -> std::process::ExitCode {
    common::service::main(public_api::SERVICE, public_api::build)
}
