//! Prints this machine's detected host facts as TOML, the format of
//! `tests/golden/hosts/*.toml`:
//!
//! ```sh
//! cargo run -q --example detect-host > tests/golden/hosts/hybrid-root.toml
//! ```

fn main() {
    match sandboxctl::exec::detect::detect() {
        Ok(h) => print!("{}", toml::to_string(&h).expect("host facts serialize")),
        Err(e) => {
            eprintln!("detect-host: {e}");
            std::process::exit(1);
        }
    }
}
