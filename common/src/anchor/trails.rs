//! A service's trails checked against every checkpoint its publisher knows of: its own
//! database, its checkpoint file and its receivers' databases.

use std::time::Duration;

use super::{check_trail, undelivered, Problem, Source, TrailCheck, VerifyChain};
use crate::assertion::CallContext;
use crate::chain;
use crate::checkpoint::{read_file, Checkpoint, Publisher, Trail, SETTLE};
use crate::RequestId;

/// Checks each of this service's trails end to end: its chain (by `verify`), and its
/// checkpoints as held in its own database, its own checkpoint file and each receiver's
/// database (read over the receiving route, as this service), with this service's own keys.
/// A receiver that cannot be read is a problem of the report, not an error.
pub async fn check_trails(
    publisher: &Publisher,
    verify: VerifyChain,
    max_breaks: usize,
) -> Result<Vec<TrailCheck>, sqlx::Error> {
    let service = publisher.service();
    // Rows newer than this may be unanchored only because the next round has not come.
    let bound = Duration::from_secs(300).max(publisher.interval() * 3);
    let ctx = CallContext::system("audit_anchor", RequestId::generate());
    // Checkpoints published from a moment before the check began are left out everywhere:
    // one published meanwhile would otherwise be in one place and not yet in the others (the
    // file and the receivers are written after the commit). Signed, so its time is its own.
    let cutoff = chain::now() - SETTLE;
    let settled = |c: &Checkpoint| c.published_at <= cutoff;
    // The file is read once; its lines that are not checkpoints are reported with the first
    // trail (they belong to no trail).
    let file = publisher.file().map(|path| match read_file(path) {
        Ok(lines) => Ok(lines),
        // No file yet: every checkpoint is missing from it.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e.to_string()),
    });
    let mut checks = Vec::new();
    for (index, trail) in Trail::of(service).enumerate() {
        let verification = verify(trail, publisher.pool().clone(), max_breaks).await?;
        let own = publisher.own_checkpoints(trail).await?;
        let mut sources = vec![Source {
            label: format!("{service} database"),
            checkpoints: own.into_iter().filter(settled).collect(),
            malformed: Vec::new(),
            undelivered: Default::default(),
        }];
        let mut unreadable = Vec::new();
        for (receiver, client) in publisher.receivers() {
            let label = format!("{receiver} database");
            // What was not delivered is read before what the receiver holds, so a delivery
            // in between shows as held, never as missing.
            let undelivered = undelivered(publisher.pool(), service, trail, *receiver).await?;
            match client.held(&ctx, trail).await {
                Ok(checkpoints) => sources.push(Source {
                    label,
                    checkpoints: checkpoints.into_iter().filter(settled).collect(),
                    malformed: Vec::new(),
                    undelivered,
                }),
                Err(e) => unreadable.push(Problem::Unreadable { source: label, error: e.to_string() }),
            }
        }
        match &file {
            None => {}
            Some(Ok(lines)) => {
                let mut source = Source {
                    label: format!("{service} checkpoint file"),
                    checkpoints: Vec::new(),
                    malformed: Vec::new(),
                    undelivered: Default::default(),
                };
                for (line, parsed) in lines {
                    match parsed {
                        Ok(c) if c.origin == service && c.trail == trail && settled(c) => {
                            source.checkpoints.push(c.clone())
                        }
                        Ok(_) => {}
                        Err(e) if index == 0 => source.malformed.push((*line, e.clone())),
                        Err(_) => {}
                    }
                }
                sources.push(source);
            }
            Some(Err(e)) => {
                unreadable.push(Problem::Unreadable { source: format!("{service} checkpoint file"), error: e.clone() })
            }
        }
        let mut check =
            check_trail(publisher.pool(), trail, verification, &sources, publisher.own_keys(), bound).await?;
        if !unreadable.is_empty() {
            check.intact = false;
            check.problems.extend(unreadable);
        }
        checks.push(check);
    }
    Ok(checks)
}
