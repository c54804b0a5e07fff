//! The committer: a queue of accesses' phase 2 steps, and workers that run each batch in one
//! transaction (module docs).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::future::{BoxFuture, FutureExt};
use sqlx::{PgConnection, PgPool};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use common::ApiError;

use super::queries;
use crate::access_log::{self, Entry};

/// The most accesses one transaction commits.
pub const MAX_BATCH: usize = 64;
/// Accesses waiting for a batch; a request beyond this waits to queue.
const QUEUE: usize = 4096;
/// An access that waited longer than this for its batch is answered 503 and not run: its
/// decision (phase 1, perhaps a consent) is that old, and its caller is about to give up.
const MAX_WAIT: Duration = Duration::from_secs(5);

/// One access's phase 2: its statements, run on the batch's transaction, and the access-log
/// entries they leave. It may run twice (in a batch, then alone), so it keeps no state between
/// runs but what it returns.
type Step = Box<dyn for<'c> Fn(&'c mut PgConnection) -> BoxFuture<'c, Result<Vec<Entry>, sqlx::Error>> + Send + Sync>;

struct Job {
    /// The record the step reads or writes: a batch's steps run in this order.
    record: Uuid,
    step: Step,
    queued: Instant,
    done: oneshot::Sender<Result<Vec<i64>, ApiError>>,
}

/// The handle the routes hold; clones share the same workers.
#[derive(Clone)]
pub struct Committer {
    queue: mpsc::Sender<Job>,
    pool: PgPool,
}

/// A typed step: on the transaction it is given, its statements; what it produced for its
/// caller and the access-log entries it leaves.
pub trait StepFn<T>:
    for<'c> Fn(&'c mut PgConnection) -> BoxFuture<'c, Result<(T, Vec<Entry>), sqlx::Error>> + Send + Sync + 'static
{
}

impl<T, F> StepFn<T> for F where
    F: for<'c> Fn(&'c mut PgConnection) -> BoxFuture<'c, Result<(T, Vec<Entry>), sqlx::Error>> + Send + Sync + 'static
{
}

/// What a step produced, kept beside the type-erased [`Step`] that fills it.
type Slot<T> = Arc<Mutex<Option<T>>>;

/// A typed step as a [`Step`] and the slot its last run leaves its value in.
fn erase<T: Send + 'static, F: StepFn<T>>(step: F) -> (Step, Slot<T>) {
    let slot: Slot<T> = Arc::new(Mutex::new(None));
    let out = slot.clone();
    let step: Step = Box::new(move |conn| {
        let run = step(conn);
        let out = out.clone();
        Box::pin(async move {
            let (value, entries) = run.await?;
            *out.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(value);
            Ok(entries)
        })
    });
    (step, slot)
}

/// Names a closure as a step, so that its signature is inferred for every connection lifetime.
pub fn step<T, F>(step: F) -> F
where
    F: for<'c> Fn(&'c mut PgConnection) -> BoxFuture<'c, Result<(T, Vec<Entry>), sqlx::Error>>,
{
    step
}

fn taken<T>(slot: &Slot<T>, seqs: Vec<i64>) -> Result<(T, Vec<i64>), ApiError> {
    let value = slot.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take();
    value.map(|value| (value, seqs)).ok_or_else(|| ApiError::internal("a committed step left no result"))
}

impl Committer {
    /// Starts `workers` committers on `pool`. Two let one batch run its statements while the
    /// other waits on its fsync. They stop when every handle is dropped.
    pub fn start(pool: PgPool, workers: usize) -> Self {
        let (queue, receiver) = mpsc::channel(QUEUE);
        let receiver = Arc::new(tokio::sync::Mutex::new(receiver));
        for _ in 0..workers.max(1) {
            tokio::spawn(work(pool.clone(), receiver.clone()));
        }
        Self { queue, pool }
    }

    /// Runs `step` in the next batch's transaction and returns, once that transaction is
    /// durable, what the step produced and the sequence numbers of its access-log entries.
    /// A step must take no lock but record rows (the access log's is taken after it): one that
    /// writes to another trail runs [`Committer::run_alone`].
    pub async fn run<T, F>(&self, record: Uuid, step: F) -> Result<(T, Vec<i64>), ApiError>
    where
        T: Send + 'static,
        F: StepFn<T>,
    {
        let (step, slot) = erase(step);
        let (done, outcome) = oneshot::channel();
        let stopped = || ApiError::Unavailable("the access log's committer has stopped".into());
        self.queue.send(Job { record, step, queued: Instant::now(), done }).await.map_err(|_| stopped())?;
        let seqs = outcome.await.map_err(|_| stopped())??;
        taken(&slot, seqs)
    }

    /// Runs `step` at once in a transaction of its own, as one access: for a step that takes a
    /// trail's lock besides the access log's (a disclosure), which a batch would hold while
    /// later steps wait on record rows, against the lock order (`records` module docs).
    pub async fn run_alone<T, F>(&self, step: F) -> Result<(T, Vec<i64>), ApiError>
    where
        T: Send + 'static,
        F: StepFn<T>,
    {
        let (step, slot) = erase(step);
        let mut seqs = attempt(&self.pool, &[&step]).await?;
        taken(&slot, seqs.pop().unwrap_or_default())
    }
}

async fn work(pool: PgPool, receiver: Arc<tokio::sync::Mutex<mpsc::Receiver<Job>>>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    loop {
        {
            let mut receiver = receiver.lock().await;
            if receiver.recv_many(&mut batch, MAX_BATCH).await == 0 {
                return; // every handle dropped
            }
        }
        // A panic in a step ends its batch (its callers get 503), not this worker.
        let jobs = std::mem::take(&mut batch);
        if std::panic::AssertUnwindSafe(commit(&pool, jobs)).catch_unwind().await.is_err() {
            tracing::error!("a group commit panicked; its accesses were answered 503 and nothing of it committed");
        }
    }
}

/// Commits a batch and answers each of its accesses. An access whose caller is gone is not
/// run; one that waited too long is refused.
async fn commit(pool: &PgPool, batch: Vec<Job>) {
    let mut batch: Vec<Job> = batch
        .into_iter()
        .filter(|job| !job.done.is_closed())
        .filter_map(|job| {
            if job.queued.elapsed() <= MAX_WAIT {
                return Some(job);
            }
            let _ = job.done.send(Err(ApiError::Unavailable("the PHI vault is overloaded; try again".into())));
            None
        })
        .collect();
    if batch.is_empty() {
        return;
    }
    batch.sort_by_key(|job| job.record);
    let steps: Vec<&Step> = batch.iter().map(|job| &job.step).collect();
    match attempt(pool, &steps).await {
        Ok(seqs) => {
            for (job, seqs) in batch.into_iter().zip(seqs) {
                let _ = job.done.send(Ok(seqs));
            }
        }
        Err(e) if batch.len() == 1 && !common::db::is_connection_lost(&e) => {
            if let Some(job) = batch.pop() {
                let _ = job.done.send(Err(e.into()));
            }
        }
        Err(e) => {
            // A lost connection (a server restart) is tried again, alone, on a checked one.
            if common::db::is_connection_lost(&e) {
                common::db::note_connection_lost();
            }
            tracing::warn!(error = %e, accesses = batch.len(), "a group commit failed; its accesses run one by one");
            for job in batch {
                let outcome = attempt(pool, &[&job.step]).await.map(|mut seqs| seqs.pop().unwrap_or_default());
                let _ = job.done.send(outcome.map_err(ApiError::from));
            }
        }
    }
}

/// One transaction: every step in order, their entries appended together, one commit. Returns
/// each step's sequence numbers.
async fn attempt(pool: &PgPool, steps: &[&Step]) -> Result<Vec<Vec<i64>>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    queries::lock_timeout(&mut tx).await?;
    let mut entries = Vec::with_capacity(steps.len());
    let mut counts = Vec::with_capacity(steps.len());
    for step in steps {
        let left = step(&mut tx).await?;
        counts.push(left.len());
        entries.extend(left);
    }
    let accesses: Vec<_> = entries.iter().map(Entry::access).collect();
    let mut seqs = access_log::append_all(&mut tx, &accesses).await?.into_iter();
    tx.commit().await?;
    Ok(counts.into_iter().map(|n| seqs.by_ref().take(n).collect()).collect())
}
