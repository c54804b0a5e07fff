//! Comparing a trail's checkpoints, wherever kept, with each other and with its rows: pure.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::checkpoint::{Checkpoint, CheckpointKeys, SignatureError};

/// The checkpoints of one trail one place holds.
#[derive(Debug, Clone)]
pub struct Source {
    /// Where, for people: `consent database`, `phi-vault checkpoint file /…`.
    pub label: String,
    pub checkpoints: Vec<Checkpoint>,
    /// Lines of a file that are not checkpoints: (line number, why).
    pub malformed: Vec<(usize, String)>,
    /// For a receiver's database: the numbers its origin has not delivered yet (by the origin's
    /// `checkpoint_deliveries`). Their absence here is pending, not missing: the origin sends
    /// them every round and at its next start (a checkpoint published at shutdown cannot reach a
    /// receiver that is shutting down too).
    pub undelivered: BTreeSet<i64>,
}

/// What the trail's database says about the rows checkpoints name.
#[derive(Debug, Clone, Default)]
pub struct TrailRows {
    /// The newest row's sequence number; `None` when the trail is empty.
    pub last_seq: Option<i64>,
    /// The row hash at each sequence number a checkpoint names (absent: no such row).
    pub hashes: BTreeMap<i64, Vec<u8>>,
}

/// Why a checkpoint is missing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "cause", rename_all = "snake_case")]
pub enum Missing {
    /// Numbers `from..=to` are held nowhere, though later ones are.
    Gap { from: i64, to: i64, seq_after: i64, seq_before: i64 },
    /// Held in some places, not in these.
    Absent { number: i64, seq: i64, missing_from: Vec<String> },
    /// Rows older than the bound that no checkpoint covers.
    RowsBeyondLastCheckpoint { first_seq: i64, rows: i64, oldest_row_at: String, last_checkpoint_seq: i64 },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Problem {
    /// Checkpoint `checkpoint` vouches for rows up to `seq`; the trail ends before.
    Truncated {
        checkpoint: i64,
        seq: i64,
        trail_ends_at: Option<i64>,
        first_bad_seq: i64,
    },
    /// Checkpoint `checkpoint` vouches for another hash at `seq` (or for a row now gone): a row
    /// in `first_bad_seq..=seq` was changed and the chain recomputed after it.
    Rewritten {
        checkpoint: i64,
        seq: i64,
        first_bad_seq: i64,
        checkpoints_contradicted: usize,
    },
    MissingCheckpoint(Missing),
    BadSignature {
        number: i64,
        source: String,
    },
    /// Checkpoints nobody can verify: no key for their origin was given.
    UnverifiableCheckpoints {
        count: usize,
        reason: String,
    },
    /// Two different checkpoints under one number.
    ConflictingCheckpoints {
        number: i64,
        sources: Vec<String>,
    },
    /// A later checkpoint vouches for an earlier row than the one before it.
    Backwards {
        number: i64,
        seq: i64,
        previous_seq: i64,
    },
    MalformedCheckpoint {
        source: String,
        line: usize,
        error: String,
    },
    /// A place that should hold checkpoints could not be read (a receiver unreachable).
    Unreadable {
        source: String,
        error: String,
    },
}

impl Problem {
    /// The first sequence number this problem shows to be bad, if it names one.
    pub fn first_bad_seq(&self) -> Option<i64> {
        match self {
            Problem::Truncated { first_bad_seq, .. } | Problem::Rewritten { first_bad_seq, .. } => Some(*first_bad_seq),
            _ => None,
        }
    }

    /// One line for people.
    pub fn describe(&self) -> String {
        match self {
            Problem::Truncated { checkpoint, seq, trail_ends_at, first_bad_seq } => format!(
                "tail truncated: checkpoint #{checkpoint} vouches for rows up to seq {seq}, but the trail {}; \
                 rows from seq {first_bad_seq} are gone",
                trail_ends_at.map_or("is empty".to_owned(), |s| format!("ends at seq {s}"))
            ),
            Problem::Rewritten { checkpoint, seq, first_bad_seq, checkpoints_contradicted } => format!(
                "rewritten: checkpoint #{checkpoint} vouches for another row at seq {seq}; a row in seq \
                 {first_bad_seq}..={seq} was changed and the chain recomputed after it (first bad seq \
                 {first_bad_seq}; {checkpoints_contradicted} checkpoint(s) contradicted)"
            ),
            Problem::MissingCheckpoint(Missing::Gap { from, to, seq_after, seq_before }) => format!(
                "missing checkpoint: #{from}..=#{to} are held nowhere (they covered rows after seq {seq_after} \
                 up to seq {seq_before})"
            ),
            Problem::MissingCheckpoint(Missing::Absent { number, seq, missing_from }) => {
                format!("missing checkpoint: #{number} (seq {seq}) is not in {}", missing_from.join(", "))
            }
            Problem::MissingCheckpoint(Missing::RowsBeyondLastCheckpoint {
                first_seq,
                rows,
                oldest_row_at,
                last_checkpoint_seq,
            }) => format!(
                "missing checkpoint: {rows} row(s) from seq {first_seq} (the oldest written {oldest_row_at}) are \
                 beyond the last checkpoint (seq {last_checkpoint_seq}) and older than the bound"
            ),
            Problem::BadSignature { number, source } => {
                format!("bad checkpoint signature: #{number} in {source} does not verify with its origin's key")
            }
            Problem::UnverifiableCheckpoints { count, reason } => {
                format!("{count} checkpoint(s) cannot be verified: {reason}")
            }
            Problem::ConflictingCheckpoints { number, sources } => {
                format!("conflicting checkpoints: #{number} differs between {}", sources.join(" and "))
            }
            Problem::Backwards { number, seq, previous_seq } => {
                format!("checkpoint #{number} vouches for seq {seq}, before its predecessor's seq {previous_seq}")
            }
            Problem::MalformedCheckpoint { source, line, error } => {
                format!("malformed checkpoint at line {line} of {source}: {error}")
            }
            Problem::Unreadable { source, error } => {
                format!("could not read the checkpoints in {source}: {error}")
            }
        }
    }
}

/// The checkpoints found, for the report.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Found {
    /// Verified checkpoints (distinct numbers) across all sources.
    pub verified: usize,
    /// Per source: how many of this trail's checkpoints it holds.
    pub sources: Vec<(String, usize)>,
    /// The newest verified checkpoint: (number, seq).
    pub latest: Option<(i64, i64)>,
    /// Checkpoints not delivered to a receiver yet: (number, where).
    pub pending_delivery: Vec<(i64, String)>,
}

/// Checks the sources against each other and against the trail's rows: what was found, and the
/// problems.
pub fn compare(sources: &[Source], keys: &CheckpointKeys, rows: &TrailRows) -> (Found, Vec<Problem>) {
    let mut problems = Vec::new();
    let mut valid: BTreeMap<i64, (Checkpoint, Vec<String>)> = BTreeMap::new();
    let mut conflicting = std::collections::BTreeSet::new();
    let mut unknown = 0;
    for source in sources {
        for (line, error) in &source.malformed {
            problems.push(Problem::MalformedCheckpoint {
                source: source.label.clone(),
                line: *line,
                error: error.clone(),
            });
        }
        for checkpoint in &source.checkpoints {
            match keys.verify(checkpoint) {
                Ok(()) => {}
                Err(SignatureError::NoKey(_)) => {
                    unknown += 1;
                    continue;
                }
                Err(SignatureError::Bad(_)) => {
                    problems.push(Problem::BadSignature { number: checkpoint.number, source: source.label.clone() });
                    continue;
                }
            }
            let entry = valid.entry(checkpoint.number).or_insert_with(|| (checkpoint.clone(), Vec::new()));
            if !entry.0.same_as(checkpoint) && conflicting.insert(checkpoint.number) {
                let mut holders = entry.1.clone();
                holders.push(source.label.clone());
                problems.push(Problem::ConflictingCheckpoints { number: checkpoint.number, sources: holders });
            }
            if !entry.1.contains(&source.label) {
                entry.1.push(source.label.clone());
            }
        }
    }
    if unknown > 0 {
        let origin = sources.iter().flat_map(|s| s.checkpoints.first()).map(|c| c.origin.to_string()).next();
        problems.push(Problem::UnverifiableCheckpoints {
            count: unknown,
            reason: format!(
                "no checkpoint public key for {} (--checkpoint-key, or checkpoint_public_key_file in a config)",
                origin.unwrap_or_default()
            ),
        });
    }

    // Held in one place but not another (unless not delivered there yet).
    let mut pending_delivery = Vec::new();
    for (number, (checkpoint, holders)) in &valid {
        let lacking = sources.iter().filter(|s| !holders.contains(&s.label));
        let (pending, missing): (Vec<&Source>, Vec<&Source>) = lacking.partition(|s| s.undelivered.contains(number));
        pending_delivery.extend(pending.into_iter().map(|s| (*number, s.label.clone())));
        let missing_from: Vec<String> = missing.into_iter().map(|s| s.label.clone()).collect();
        if !missing_from.is_empty() {
            problems.push(Problem::MissingCheckpoint(Missing::Absent {
                number: *number,
                seq: checkpoint.seq,
                missing_from,
            }));
        }
    }
    // Held nowhere: gaps in the numbering.
    let mut expected = 1;
    let mut seq_after = 0;
    for (number, (checkpoint, _)) in &valid {
        if *number > expected {
            problems.push(Problem::MissingCheckpoint(Missing::Gap {
                from: expected,
                to: number - 1,
                seq_after,
                seq_before: checkpoint.seq,
            }));
        }
        expected = number + 1;
        seq_after = checkpoint.seq;
    }
    // Monotonic.
    let mut previous: Option<&Checkpoint> = None;
    for (checkpoint, _) in valid.values() {
        if let Some(p) = previous {
            if checkpoint.seq < p.seq {
                problems.push(Problem::Backwards {
                    number: checkpoint.number,
                    seq: checkpoint.seq,
                    previous_seq: p.seq,
                });
            }
        }
        previous = Some(checkpoint);
    }

    // Against the trail, in sequence order: the last checkpoint that matches proves every row up
    // to it; the first that does not shows where the damage starts.
    let mut by_seq: Vec<&Checkpoint> =
        valid.iter().filter(|(n, _)| !conflicting.contains(*n)).map(|(_, (c, _))| c).collect();
    by_seq.sort_by_key(|c| (c.seq, c.number));
    let mut proven = 0;
    let mut rewritten: Option<Problem> = None;
    let mut truncated: Option<Problem> = None;
    for checkpoint in by_seq {
        match rows.hashes.get(&checkpoint.seq) {
            Some(hash) if *hash == checkpoint.head_hash && rewritten.is_none() => proven = checkpoint.seq,
            Some(hash) if *hash == checkpoint.head_hash => {}
            None if rows.last_seq.is_none_or(|last| checkpoint.seq > last) => {
                let first_bad_seq = rows.last_seq.map_or(1, |last| last + 1);
                // Report the checkpoint reaching furthest.
                truncated = Some(Problem::Truncated {
                    checkpoint: checkpoint.number,
                    seq: checkpoint.seq,
                    trail_ends_at: rows.last_seq,
                    first_bad_seq,
                });
            }
            _ => match &mut rewritten {
                Some(Problem::Rewritten { checkpoints_contradicted, .. }) => *checkpoints_contradicted += 1,
                _ => {
                    rewritten = Some(Problem::Rewritten {
                        checkpoint: checkpoint.number,
                        seq: checkpoint.seq,
                        first_bad_seq: proven + 1,
                        checkpoints_contradicted: 1,
                    })
                }
            },
        }
    }
    problems.extend(rewritten);
    problems.extend(truncated);

    let found = Found {
        verified: valid.len(),
        sources: sources
            .iter()
            .map(|s| (s.label.clone(), valid.values().filter(|(_, holders)| holders.contains(&s.label)).count()))
            .collect(),
        latest: valid.values().map(|(c, _)| (c.number, c.seq)).next_back(),
        pending_delivery,
    };
    (found, problems)
}

/// The sequence number the newest verified checkpoint vouches for (0 when there is none): rows
/// after it are not anchored yet.
pub fn anchored_up_to(sources: &[Source], keys: &CheckpointKeys) -> i64 {
    sources.iter().flat_map(|s| &s.checkpoints).filter(|c| keys.verify(c).is_ok()).map(|c| c.seq).max().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use crate::checkpoint::{CheckpointKey, Trail};
    use crate::ServiceName;

    use super::*;

    struct Fixture {
        key: CheckpointKey,
        keys: CheckpointKeys,
    }

    fn fixture() -> Fixture {
        let (der, _) = crate::keys::generate().expect("key");
        let key = CheckpointKey::from_pkcs8(ServiceName::PublicApi, &der).expect("key");
        let mut keys = CheckpointKeys::default();
        keys.insert(ServiceName::PublicApi, key.public());
        Fixture { key, keys }
    }

    fn hash(seq: i64) -> Vec<u8> {
        vec![seq as u8; 32]
    }

    impl Fixture {
        fn cp(&self, number: i64, seq: i64) -> Checkpoint {
            self.key.sign(Trail::AuditLogs, number, seq, &hash(seq), crate::chain::now())
        }
    }

    fn rows(last: i64, changed_from: Option<i64>) -> TrailRows {
        let hashes = (1..=last)
            .map(|s| (s, if changed_from.is_some_and(|c| s >= c) { vec![0xee; 32] } else { hash(s) }))
            .collect();
        TrailRows { last_seq: Some(last), hashes }
    }

    fn source(label: &str, checkpoints: Vec<Checkpoint>) -> Source {
        Source { label: label.into(), checkpoints, malformed: Vec::new(), undelivered: Default::default() }
    }

    #[test]
    fn intact_when_every_checkpoint_matches_everywhere() {
        let f = fixture();
        let cps = vec![f.cp(1, 3), f.cp(2, 7)];
        let sources = [source("a", cps.clone()), source("b", cps)];
        let (found, problems) = compare(&sources, &f.keys, &rows(9, None));
        assert_eq!(problems, vec![]);
        assert_eq!((found.verified, found.latest), (2, Some((2, 7))));
        assert_eq!(anchored_up_to(&sources, &f.keys), 7);
    }

    #[test]
    fn truncation_rewriting_and_missing_checkpoints_are_named() {
        let f = fixture();
        let cps = vec![f.cp(1, 3), f.cp(2, 7), f.cp(3, 9)];
        let sources = [source("a", cps.clone())];
        let (_, problems) = compare(&sources, &f.keys, &rows(5, None));
        assert_eq!(
            problems,
            vec![Problem::Truncated { checkpoint: 3, seq: 9, trail_ends_at: Some(5), first_bad_seq: 6 }]
        );
        let (_, problems) = compare(&sources, &f.keys, &rows(9, Some(5)));
        assert_eq!(
            problems,
            vec![Problem::Rewritten { checkpoint: 2, seq: 7, first_bad_seq: 4, checkpoints_contradicted: 2 }]
        );
        let sources = [source("a", cps.clone()), source("b", vec![cps[0].clone(), cps[2].clone()])];
        let (_, problems) = compare(&sources, &f.keys, &rows(9, None));
        assert_eq!(
            problems,
            vec![Problem::MissingCheckpoint(Missing::Absent { number: 2, seq: 7, missing_from: vec!["b".into()] })]
        );
        let mut receiver = source("b", vec![cps[0].clone(), cps[1].clone()]);
        receiver.undelivered.insert(3);
        let (found, problems) = compare(&[source("a", cps.clone()), receiver], &f.keys, &rows(9, None));
        assert_eq!((problems, found.pending_delivery), (vec![], vec![(3, "b".to_owned())]), "not sent yet");
        let sources = [source("a", vec![cps[0].clone(), cps[2].clone()])];
        let (_, problems) = compare(&sources, &f.keys, &rows(9, None));
        assert_eq!(
            problems,
            vec![Problem::MissingCheckpoint(Missing::Gap { from: 2, to: 2, seq_after: 3, seq_before: 9 })]
        );
    }

    #[test]
    fn forged_and_conflicting_checkpoints_are_reported() {
        let f = fixture();
        let mut forged = f.cp(2, 7);
        forged.seq = 8;
        let sources = [source("a", vec![f.cp(1, 3), forged]), source("b", vec![f.cp(1, 4)])];
        let (found, problems) = compare(&sources, &f.keys, &rows(9, None));
        assert!(problems.contains(&Problem::BadSignature { number: 2, source: "a".into() }), "{problems:?}");
        assert!(
            problems.contains(&Problem::ConflictingCheckpoints { number: 1, sources: vec!["a".into(), "b".into()] }),
            "{problems:?}"
        );
        assert_eq!(found.verified, 1);
        let (_, problems) = compare(&sources, &CheckpointKeys::default(), &rows(9, None));
        assert!(matches!(problems[..], [Problem::UnverifiableCheckpoints { count: 3, .. }]), "{problems:?}");
    }
}
