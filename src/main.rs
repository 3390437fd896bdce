fn main() {
    std::process::exit(canary::run(std::env::args_os()));
}
