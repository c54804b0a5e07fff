pub mod applications;
pub mod audit;
pub mod consents;
pub mod disclosures;
pub mod insurance;
pub mod recipients;
pub mod session;
pub mod users;

use std::io::{BufRead, IsTerminal, Write};

use crate::failure::{Failure, Result};

/// Asks before a destructive step; `--yes` answers for scripts. Without a terminal and without
/// `--yes` the answer is no, with the flag named.
pub fn confirm(question: &str, yes: bool) -> Result<()> {
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        return Err(Failure::usage(format!("{question}: pass --yes to confirm when not running interactively")));
    }
    eprint!("{question} [y/N] ");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if matches!(answer.trim(), "y" | "Y" | "yes") {
        Ok(())
    } else {
        Err(Failure::failed("cancelled; nothing changed"))
    }
}

/// `k=v&…` with each value percent-encoded; absent values left out.
pub fn query(pairs: &[(&str, Option<String>)]) -> String {
    let mut url = url::Url::parse("http://x/").expect("static URL parses");
    {
        let mut q = url.query_pairs_mut();
        for (k, v) in pairs {
            if let Some(v) = v {
                q.append_pair(k, v);
            }
        }
    }
    url.query().map(|q| format!("?{q}")).unwrap_or_default()
}
