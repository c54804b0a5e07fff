fn main() -> std::process::ExitCode {
    common::service::main(phi_vault::SERVICE, phi_vault::build)
}
