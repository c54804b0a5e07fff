fn main() -> std::process::ExitCode {
    std::process::ExitCode::from(secondwind_admin::main_exit_code())
}
