//! `TAP_TIME_SCALE`, a testing knob: every duration the tool waits or polls by (readiness
//! poll intervals and their deadlines, retry backoffs and budgets, the SDK's backoff between
//! attempts, the pause before looking again for a create whose answer was lost, the lock's
//! poll while it waits, its lease and so its renewal) is divided by it. A run against an
//! emulator, or a front that models AWS's delays faster than real time, then keeps AWS's
//! proportions without waiting real-AWS intervals. Unset (1) against AWS. Not scaled:
//! network timeouts and the schedule's times; the lease stays at least 3 s (it is stored in
//! whole seconds others compare with their clocks).

use std::sync::OnceLock;
use std::time::Duration;

pub const VAR: &str = "TAP_TIME_SCALE";
const MAX: f64 = 1000.0;

/// The factor from the environment; an unset or empty variable is 1, one that is not
/// Unicode an error like any other bad value.
pub fn from_env() -> Result<f64, String> {
    match std::env::var(VAR) {
        Err(std::env::VarError::NotPresent) => Ok(1.0),
        Err(std::env::VarError::NotUnicode(v)) => parse(&v.to_string_lossy()),
        Ok(v) if v.trim().is_empty() => Ok(1.0),
        Ok(v) => parse(&v),
    }
}

fn parse(v: &str) -> Result<f64, String> {
    match v.trim().parse::<f64>() {
        Ok(f) if (1.0..=MAX).contains(&f) => Ok(f),
        _ => Err(format!(
            "{VAR}={v:?}: expected a number from 1 to {MAX} (a testing knob that divides every \
             wait and poll interval; unset it against AWS)"
        )),
    }
}

/// The factor in force: checked once by the CLI before anything else (an invalid value
/// stops it there); 1 wherever it was not.
pub fn scale() -> f64 {
    static SCALE: OnceLock<f64> = OnceLock::new();
    *SCALE.get_or_init(|| from_env().unwrap_or(1.0))
}

/// `d` divided by the scale factor.
pub fn scaled(d: Duration) -> Duration {
    let s = scale();
    if s == 1.0 {
        d
    } else {
        d.div_f64(s)
    }
}

/// A scaled duration `d` (one measured in a scaled run) as the real one it stands for.
pub fn unscaled(d: Duration) -> Duration {
    d.mul_f64(scale())
}

/// Sleeps `d` divided by the scale factor.
pub async fn sleep(d: Duration) {
    tokio::time::sleep(scaled(d)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_one_to_a_thousand_and_names_the_variable_otherwise() {
        assert_eq!(parse("1"), Ok(1.0));
        assert_eq!(parse(" 20 "), Ok(20.0));
        assert_eq!(parse("2.5"), Ok(2.5));
        for bad in ["0", "0.5", "-3", "abc", "1e9", "NaN", "inf"] {
            let e = parse(bad).unwrap_err();
            assert!(
                e.contains("TAP_TIME_SCALE") && e.contains(bad),
                "{bad}: {e}"
            );
        }
    }
}
