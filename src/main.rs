//! Parse, run, map the outcome to an exit code; nothing else.

use std::io::Write;

fn main() {
    let code = match tap_provision::cli::main() {
        Ok(code) => code,
        Err(err) => {
            let mut stderr = std::io::stderr().lock();
            let _ = write!(stderr, "error: {err}");
            for cause in err.chain().skip(1) {
                let _ = write!(stderr, "\n  caused by: {cause}");
            }
            let _ = writeln!(stderr);
            if err.downcast_ref::<tap_provision::error::Locked>().is_some() {
                tap_provision::error::exit::LOCKED
            } else {
                tap_provision::error::exit::ERROR
            }
        }
    };
    std::process::exit(code);
}
