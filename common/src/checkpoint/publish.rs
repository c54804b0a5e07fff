//! The publisher: for each trail whose head moved, a checkpoint signed, stored, written to the
//! file and delivered to every receiver; what failed to arrive is retried.

#[allow(unused_imports)]
use super::*;

// ---------------------------------------------------------------- publishing

/// Rounds in a row a trail's publish lock may be busy before the publisher raises an alarm:
/// publishing takes milliseconds, so a lock held longer means something is holding it.
pub(super) const STALL_ROUNDS: u32 = 3;

/// Publishes this service's checkpoints and delivers them to its receivers.
///
/// It does not trust its own database about what it signed: it remembers the last checkpoint it
/// published of each trail (seeded at start from its own checkpoint file), checks that the
/// database still holds exactly that, and checks the database's latest with its own public key.
/// Someone who deletes or rewrites checkpoints in the database, to have the publisher sign a
/// rewritten trail next, gets an alarm instead.
pub struct Publisher {
    key: CheckpointKey,
    pool: PgPool,
    receivers: Vec<(ServiceName, CheckpointClient)>,
    file: Option<PathBuf>,
    interval: Duration,
    /// This service's checkpoint public keys: the current one and any retired ones.
    own_keys: CheckpointKeys,
    /// The latest checkpoint of each trail this process has published, found in its file, or
    /// seen in the database (and found signed by its own key) on an earlier round.
    remembered: std::sync::Mutex<HashMap<Trail, Checkpoint>>,
    /// Rounds in a row each trail's publish lock was busy.
    busy: std::sync::Mutex<HashMap<Trail, u32>>,
}

impl Publisher {
    pub fn new(
        key: CheckpointKey,
        pool: PgPool,
        receivers: Vec<(ServiceName, CheckpointClient)>,
        file: Option<PathBuf>,
        interval: Duration,
    ) -> Self {
        Self::with_accepted_keys(key, &[], pool, receivers, file, interval)
    }

    /// Like [`Publisher::new`], also accepting this service's checkpoints signed with the
    /// `accepted` public keys (during a key rotation).
    pub fn with_accepted_keys(
        key: CheckpointKey,
        accepted: &[[u8; 32]],
        pool: PgPool,
        receivers: Vec<(ServiceName, CheckpointClient)>,
        file: Option<PathBuf>,
        interval: Duration,
    ) -> Self {
        let mut own_keys = CheckpointKeys::default();
        own_keys.insert(key.service, key.public());
        for other in accepted {
            own_keys.insert(key.service, *other);
        }
        let remembered =
            std::sync::Mutex::new(file.as_deref().map(|f| last_in_file(f, key.service, &own_keys)).unwrap_or_default());
        Self { key, own_keys, pool, receivers, file, interval, remembered, busy: Default::default() }
    }

    fn remember(&self, checkpoint: &Checkpoint) {
        let mut remembered = self.remembered.lock().unwrap_or_else(|p| p.into_inner());
        if remembered.get(&checkpoint.trail).is_none_or(|known| known.number < checkpoint.number) {
            remembered.insert(checkpoint.trail, checkpoint.clone());
        }
    }

    fn remembered(&self, trail: Trail) -> Option<Checkpoint> {
        self.remembered.lock().unwrap_or_else(|p| p.into_inner()).get(&trail).cloned()
    }

    /// Counts a round in which another holder had the trail's publish lock; once that has gone
    /// on for [`STALL_ROUNDS`] rounds and no instance has published the moved head meanwhile,
    /// alarms. (Another instance publishing each round is fine: its checkpoints are fresh.)
    async fn lock_busy(&self, tx: &mut PgConnection, trail: Trail, busy: bool) -> Result<(), sqlx::Error> {
        let count = {
            let mut counts = self.busy.lock().unwrap_or_else(|p| p.into_inner());
            let count = counts.entry(trail).or_default();
            *count = if busy { *count + 1 } else { 0 };
            *count
        };
        if count < STALL_ROUNDS {
            return Ok(());
        }
        // The table and its sequence column are the trail's own, so this SQL is built here.
        let (table, seq_column) = (trail.table(), trail.seq_column());
        let head: Option<i64> =
            sqlx::query_scalar(&format!("SELECT max({seq_column}) FROM {table}")).fetch_one(&mut *tx).await?;
        // Only a checkpoint this service signed, no older than what it already knows, shows the
        // trail anchored: a row someone inserted to look fresh does not.
        let last = latest(tx, self.service(), trail).await?.filter(|last| {
            self.own_keys.verify(last).is_ok() && self.remembered(trail).is_none_or(|known| known.number <= last.number)
        });
        let stale_after = time::Duration::try_from(self.interval * STALL_ROUNDS).unwrap_or_default();
        let anchored = match (&last, head) {
            (_, None) => true,
            (Some(last), Some(head)) => last.seq == head || chain::now() - last.published_at < stale_after,
            (None, Some(_)) => false,
        };
        if !anchored {
            tracing::error!(
                trail = trail.as_str(),
                rounds = count,
                alarm = "checkpoint_stalled",
                "AUDIT ALARM: something has held this trail's checkpoint lock for several rounds; \
                 nothing anchors the trail meanwhile"
            );
        }
        Ok(())
    }

    /// Whether the database's checkpoints of `trail` still agree with what this process knows it
    /// signed, and the latest is signed by this service's own key.
    async fn checkpoints_agree(
        &self,
        tx: &mut PgConnection,
        trail: Trail,
        last: Option<&Checkpoint>,
    ) -> Result<bool, sqlx::Error> {
        if let Some(last) = last {
            if self.own_keys.verify(last).is_err() {
                return Ok(false);
            }
        }
        let Some(known) = self.remembered(trail) else { return Ok(true) };
        let Some(last) = last else { return Ok(false) };
        if last.number <= known.number {
            return Ok(last.same_as(&known));
        }
        let held = sqlx::query_as!(
            CheckpointRow,
            "SELECT origin, trail, number, seq, head_hash, published_at, signature FROM checkpoints \
             WHERE trail = $1 AND number = $2",
            trail.as_str(),
            known.number,
        )
        .fetch_optional(&mut *tx)
        .await?;
        Ok(match held {
            Some(row) => Checkpoint::try_from(row)?.same_as(&known),
            None => false,
        })
    }

    pub fn service(&self) -> ServiceName {
        self.key.service
    }

    /// A checkpoint of each trail whose head moved since its last one: stored in this service's
    /// database, then appended to the file. Returns the new checkpoints.
    pub async fn publish(&self) -> Result<Vec<Checkpoint>, sqlx::Error> {
        let mut published = Vec::new();
        for trail in Trail::of(self.service()) {
            if let Some(checkpoint) = self.publish_trail(trail).await? {
                if let Some(file) = &self.file {
                    if let Err(e) = append_file(file, &checkpoint) {
                        tracing::error!(
                            trail = trail.as_str(),
                            number = checkpoint.number,
                            error = %e,
                            alarm = "checkpoint_file",
                            "could not append the checkpoint to its file"
                        );
                    }
                }
                published.push(checkpoint);
            }
        }
        Ok(published)
    }

    async fn publish_trail(&self, trail: Trail) -> Result<Option<Checkpoint>, sqlx::Error> {
        let (table, seq_column) = (trail.table(), trail.seq_column());
        let mut tx = self.pool.begin().await?;
        let mine = sqlx::query_scalar!(r#"SELECT pg_try_advisory_xact_lock($1) AS "mine!""#, trail.publish_lock())
            .fetch_one(&mut *tx)
            .await?;
        if let Err(e) = self.lock_busy(&mut tx, trail, !mine).await {
            tracing::warn!(trail = trail.as_str(), error = %e, "could not check whether publishing is stalled");
        }
        if !mine {
            return Ok(None); // another instance is publishing this trail right now
        }
        // The trail's own table and columns: built here, as every trail read in this file.
        let head: Option<(i64, Vec<u8>)> =
            sqlx::query_as(&format!("SELECT {seq_column}, row_hash FROM {table} ORDER BY {seq_column} DESC LIMIT 1"))
                .fetch_optional(&mut *tx)
                .await?;
        let Some((seq, head_hash)) = head else { return Ok(None) };
        let last = latest(&mut tx, self.service(), trail).await?;
        if !self.checkpoints_agree(&mut tx, trail, last.as_ref()).await? {
            tracing::error!(
                trail = trail.as_str(),
                alarm = "checkpoints_rewritten",
                "AUDIT ALARM: the checkpoints in this service's database are not the ones it signed \
                 (deleted, changed or forged); publishing stopped for this trail (run secondwind-operator audit verify)"
            );
            return Ok(None);
        }
        // What this instance has now seen is what it holds the database to next round (so it
        // notices checkpoints another instance published being deleted too).
        if let Some(last) = &last {
            self.remember(last);
            if last.seq == seq && last.head_hash == head_hash {
                return Ok(None); // the head has not moved
            }
            let vouched: Option<Vec<u8>> =
                sqlx::query_scalar(&format!("SELECT row_hash FROM {table} WHERE {seq_column} = $1"))
                    .bind(last.seq)
                    .fetch_optional(&mut *tx)
                    .await?;
            if vouched.as_deref() != Some(&last.head_hash[..]) {
                tracing::error!(
                    trail = trail.as_str(),
                    checkpoint = last.number,
                    seq = last.seq,
                    alarm = "trail_rewritten",
                    "AUDIT ALARM: the row a published checkpoint vouches for is gone or changed; \
                     publishing stopped for this trail (run secondwind-operator audit verify)"
                );
                return Ok(None);
            }
        }
        let number = last.map_or(1, |l| l.number + 1);
        let checkpoint = self.key.sign(trail, number, seq, &head_hash, chain::now());
        if let Err(refused) = store(&mut tx, &checkpoint).await? {
            tracing::error!(error = %refused, alarm = "checkpoint_refused", "could not record a checkpoint");
            return Ok(None);
        }
        tx.commit().await?;
        tracing::info!(trail = trail.as_str(), number, seq, "checkpoint published");
        self.remember(&checkpoint);
        Ok(Some(checkpoint))
    }

    /// This service's checkpoints of `trail` in its own database, by number.
    pub async fn own_checkpoints(&self, trail: Trail) -> Result<Vec<Checkpoint>, sqlx::Error> {
        let own = sqlx::query_as!(
            CheckpointRow,
            "SELECT origin, trail, number, seq, head_hash, published_at, signature FROM checkpoints \
             WHERE origin = $1 AND trail = $2 ORDER BY number",
            self.service().as_str(),
            trail.as_str(),
        )
        .fetch_all(&self.pool)
        .await?;
        store::checkpoints(own)
    }

    /// The database this service's trails and checkpoints are in.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// How often a checkpoint is published.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// This service's checkpoint file, when it keeps one.
    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// The peers whose databases receive this service's checkpoints.
    pub fn receivers(&self) -> &[(ServiceName, CheckpointClient)] {
        &self.receivers
    }

    /// This service's checkpoint public keys: the current one and any retired ones.
    pub fn own_keys(&self) -> &CheckpointKeys {
        &self.own_keys
    }

    /// Sends every checkpoint a receiver has not acknowledged, oldest first per trail; returns
    /// how many were delivered. A refusal (409) is final and raises an alarm; any other failure
    /// is retried next round.
    pub async fn deliver(&self) -> Result<usize, sqlx::Error> {
        let mut delivered = 0;
        let ctx = CallContext::system("audit_anchor", RequestId::generate());
        for (receiver, client) in &self.receivers {
            let rows = sqlx::query_as!(
                CheckpointRow,
                "SELECT c.origin, c.trail, c.number, c.seq, c.head_hash, c.published_at, c.signature \
                 FROM checkpoints c WHERE c.origin = $1 AND NOT EXISTS (SELECT 1 FROM checkpoint_deliveries d \
                 WHERE d.trail = c.trail AND d.number = c.number AND d.receiver = $2) \
                 ORDER BY c.trail, c.number LIMIT 500",
                self.service().as_str(),
                receiver.as_str(),
            )
            .fetch_all(&self.pool)
            .await?;
            let mut blocked = HashSet::new();
            for checkpoint in store::checkpoints(rows)? {
                if blocked.contains(&checkpoint.trail) {
                    continue;
                }
                let outcome = match client.store(&ctx, &checkpoint).await {
                    Ok(()) => "stored",
                    // Going backwards (409) or a signature the receiver does not accept (422): final,
                    // so the trail's later checkpoints are not held up behind it.
                    Err(ClientError::Status { status: status @ (409 | 422), .. })
                    | Err(ClientError::Refused { status: status @ (409 | 422), .. }) => {
                        tracing::error!(
                            receiver = receiver.as_str(),
                            trail = checkpoint.trail.as_str(),
                            number = checkpoint.number,
                            status,
                            alarm = "checkpoint_refused",
                            "AUDIT ALARM: a receiver refused a checkpoint (409: going backwards; 422: signature not accepted)"
                        );
                        "refused"
                    }
                    Err(e) => {
                        tracing::warn!(
                            receiver = receiver.as_str(),
                            trail = checkpoint.trail.as_str(),
                            number = checkpoint.number,
                            error = %e,
                            "checkpoint not delivered; retrying next round"
                        );
                        blocked.insert(checkpoint.trail);
                        continue;
                    }
                };
                sqlx::query!(
                    "INSERT INTO checkpoint_deliveries (trail, number, receiver, outcome) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT DO NOTHING",
                    checkpoint.trail.as_str(),
                    checkpoint.number,
                    receiver.as_str(),
                    outcome,
                )
                .execute(&self.pool)
                .await?;
                delivered += usize::from(outcome == "stored");
            }
        }
        Ok(delivered)
    }

    /// One round: publish, then deliver; failures are logged, never fatal.
    pub async fn round(&self) {
        if let Err(e) = self.publish().await {
            tracing::warn!(error = %e, "publishing checkpoints failed; retrying next round");
        }
        if let Err(e) = self.deliver().await {
            tracing::warn!(error = %e, "delivering checkpoints failed; retrying next round");
        }
    }

    /// Delivers what an earlier run left undelivered, then a round every interval until shutdown
    /// (the shutdown round is the fairing's, see [`Anchor::attach`]).
    pub async fn run(self: Arc<Self>, shutdown: rocket::Shutdown) {
        if let Err(e) = self.deliver().await {
            tracing::warn!(error = %e, "delivering earlier checkpoints failed; retrying next round");
        }
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + self.interval, self.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = ticker.tick() => self.round().await,
                _ = &mut shutdown => break,
            }
        }
    }
}
