//! Signed checkpoints: trails anchored outside their own database.
//!
//! A hash chain shows an edited or removed row, but not the newest rows cut off, nor an edit
//! whose every later hash was recomputed by someone holding the database. So each service
//! publishes, for each of its chained trails whose head moved, a checkpoint: origin, trail,
//! checkpoint number (1, 2, … per trail), the head's sequence number and row hash, and the time,
//! signed with the service's checkpoint key (Ed25519; not the internal-call key). A checkpoint
//! is kept in three places: the origin's own `checkpoints` table (which numbers them), a
//! checkpoint file under `log.dir` (`<service>.checkpoints.jsonl`, one JSON object a line), and
//! the `checkpoints` table of every configured receiver (`checkpoint.receivers`), sent over a
//! signed internal call (`POST /internal/v1/checkpoints`). `secondwind-operator audit verify`
//! compares each trail with every checkpoint it finds.
//!
//! The receiver refuses a checkpoint whose signature does not verify with the origin's
//! checkpoint key, whose assertion was not issued by its origin, or that goes backwards (a lower
//! number or sequence, or a different head for a number or sequence it already holds).
//!
//! Publishing takes a per-trail try-lock in the origin's database, so with several instances one
//! publishes; it never holds a lock across the network (the file and the receivers are written
//! after commit). What failed to reach a receiver is retried every round and after a restart
//! (`checkpoint_deliveries` records what arrived). Before publishing, the publisher checks that
//! the row its previous checkpoint vouched for is still there with the same hash; if not it
//! raises an alarm and publishes nothing, so a rewritten trail is never blessed.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use ring::signature::{Ed25519KeyPair, KeyPair, UnparsedPublicKey, ED25519};
use rocket::fairing::AdHoc;
use rocket::http::Status;
use rocket::serde::json::Json;
use rocket::{get, post, routes, Build, Rocket, Route, State};
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgPool};
use time::OffsetDateTime;

use crate::assertion::{CallContext, InternalCall, Signer};
use crate::client::{ClientError, InternalClient};
use crate::config::{Config, ConfigError, Profile};
use crate::json::Body;
use crate::keys::{self, KeyError};
use crate::ops::ServiceInfo;
use crate::start::StartError;
use crate::{chain, ApiError, RequestId, ServiceName};

/// Every hash-chained trail, by the name checkpoints carry (its table's name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trail {
    /// public-api: every state change and auth event.
    AuditLogs,
    /// phi-vault: every PHI access.
    AccessLog,
    /// phi-vault: compliance findings on flagged accesses.
    AccessReviews,
    /// phi-vault: the accounting of disclosures.
    Disclosures,
    /// consent: every disclosure question and its answer.
    Decisions,
    /// consent: the signed consents.
    Consents,
    /// consent: their revocations.
    Revocations,
}

impl Trail {
    pub const ALL: [Trail; 7] = [
        Self::AuditLogs,
        Self::AccessLog,
        Self::AccessReviews,
        Self::Disclosures,
        Self::Decisions,
        Self::Consents,
        Self::Revocations,
    ];

    pub fn as_str(self) -> &'static str {
        self.table()
    }

    pub fn table(self) -> &'static str {
        match self {
            Self::AuditLogs => "audit_logs",
            Self::AccessLog => "access_log",
            Self::AccessReviews => "access_reviews",
            Self::Disclosures => "disclosures",
            Self::Decisions => "decisions",
            Self::Consents => "consents",
            Self::Revocations => "revocations",
        }
    }

    /// The service that writes the trail.
    pub fn service(self) -> ServiceName {
        match self {
            Self::AuditLogs => ServiceName::PublicApi,
            Self::AccessLog | Self::AccessReviews | Self::Disclosures => ServiceName::PhiVault,
            Self::Decisions | Self::Consents | Self::Revocations => ServiceName::Consent,
        }
    }

    /// The column the chain is ordered by (the checkpoint's sequence number).
    pub fn seq_column(self) -> &'static str {
        match self {
            // `seq` there names the access-log entry reviewed.
            Self::AccessReviews => "chain_seq",
            _ => "seq",
        }
    }

    /// When a row was written.
    pub fn time_column(self) -> &'static str {
        match self {
            Self::AuditLogs | Self::AccessLog => "occurred_at",
            Self::AccessReviews => "reviewed_at",
            Self::Disclosures => "disclosed_at",
            Self::Decisions => "decided_at",
            Self::Consents => "created_at",
            Self::Revocations => "revoked_at",
        }
    }

    /// The trails `service` writes.
    pub fn of(service: ServiceName) -> impl Iterator<Item = Trail> {
        Self::ALL.into_iter().filter(move |t| t.service() == service)
    }

    fn index(self) -> i64 {
        Self::ALL.iter().position(|t| *t == self).unwrap_or_default() as i64
    }

    /// The advisory lock a publisher takes for this trail (so several instances publish each
    /// checkpoint once).
    pub fn publish_lock(self) -> i64 {
        PUBLISH_LOCK + self.index()
    }
}

impl std::fmt::Display for Trail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Trail {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|t| t.as_str() == s).ok_or_else(|| format!("unknown trail `{s}`"))
    }
}

/// One signed checkpoint, as it travels, is stored and is written to the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    pub origin: ServiceName,
    pub trail: Trail,
    /// 1, 2, … per origin and trail; a gap means a checkpoint went missing.
    pub number: i64,
    /// The trail's head: the sequence number of its newest row …
    pub seq: i64,
    /// … and that row's hash, which commits to every row before it.
    #[serde(with = "hex_bytes")]
    pub head_hash: Vec<u8>,
    #[serde(with = "time::serde::rfc3339")]
    pub published_at: OffsetDateTime,
    /// Ed25519 over [`Checkpoint::message`].
    #[serde(with = "base64_bytes")]
    pub signature: Vec<u8>,
}

impl Checkpoint {
    /// The signed bytes: every field but the signature, one per line.
    pub fn message(&self) -> Vec<u8> {
        format!(
            "secondwind-checkpoint-v1\norigin {}\ntrail {}\nnumber {}\nseq {}\nhead {}\ntime {}\n",
            self.origin,
            self.trail,
            self.number,
            self.seq,
            chain::hex(&self.head_hash),
            chain::micros(self.published_at)
        )
        .into_bytes()
    }

    /// The same checkpoint: equal in every signed field and the signature.
    pub fn same_as(&self, other: &Checkpoint) -> bool {
        self.message() == other.message() && self.signature == other.signature
    }

    fn check_shape(&self) -> Result<(), String> {
        if self.trail.service() != self.origin {
            return Err(format!("{} does not write the {} trail", self.origin, self.trail));
        }
        if self.number < 1 || self.seq < 1 {
            return Err("number and seq start at 1".into());
        }
        if self.head_hash.len() != 32 || self.signature.len() != 64 {
            return Err("head_hash is 32 bytes and signature 64".into());
        }
        Ok(())
    }
}

mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&crate::chain::hex(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        crate::chain::from_hex(&text).ok_or_else(|| serde::de::Error::custom("not lowercase hex"))
    }
}

mod base64_bytes {
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        super::STANDARD.decode(text).map_err(serde::de::Error::custom)
    }
}

/// Where each service anchors its checkpoints, as `secondwind-operator dev init` and the test
/// harness configure it (`checkpoint.receivers`): public-api and phi-vault in consent's
/// database, consent in phi-vault's. Each trail is thus held outside its own database.
pub fn topology(service: ServiceName) -> Vec<ServiceName> {
    match service {
        ServiceName::PublicApi | ServiceName::PhiVault => vec![ServiceName::Consent],
        ServiceName::Consent => vec![ServiceName::PhiVault],
    }
}

mod client;
mod publish;
mod receive;
mod signing;
mod store;
mod wiring;

pub use client::*;
pub use publish::*;
pub use receive::*;
pub use signing::*;
pub use store::*;
pub use wiring::*;
// What the parts share among themselves (their `pub(super)` items).
#[allow(unused_imports)]
use {client::*, publish::*, receive::*, signing::*, store::*, wiring::*};
