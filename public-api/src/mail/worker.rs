//! The worker each public-api instance runs: it claims due rows one at a time, sends each, and
//! settles it (sent, retried later, or given up).

use std::sync::Arc;
use std::time::Duration;

use lettre::message::Mailbox;
use sqlx::PgPool;

use super::queries::{self, Job};
use super::rules::{backoff, Sent};
use super::sender::Mailer;

/// Sends what is due, then again every poll interval, until shutdown. A worker that panics is
/// started again (its row is taken again when its lease ends).
pub async fn run(pool: PgPool, mailer: Mailer, shutdown: rocket::Shutdown) {
    let mailer = Arc::new(mailer);
    loop {
        let worker = tokio::spawn(work(pool.clone(), mailer.clone(), shutdown.clone()));
        match worker.await {
            Ok(()) => break,
            Err(e) => {
                tracing::error!(error = %e, "the email worker stopped unexpectedly; starting it again");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

async fn work(pool: PgPool, mailer: Arc<Mailer>, shutdown: rocket::Shutdown) {
    let every = Duration::from_millis(mailer.settings.poll_interval_ms.max(50));
    tokio::pin!(shutdown);
    loop {
        loop {
            let job = match queries::claim(&pool, mailer.settings.max_attempts).await {
                Ok(Some(job)) => job,
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "email outbox unreadable; will retry");
                    break;
                }
            };
            let outcome = match attempt(&pool, &mailer, &job).await {
                Ok(sent) => settle(&pool, &job, sent, mailer.settings.max_attempts).await,
                Err(e) => Err(e),
            };
            // The lease stands: the row is taken again once it ends.
            if let Err(e) = outcome {
                tracing::warn!(email = job.id, error = %e, "email outbox update failed; the row will be retried");
            }
        }
        tokio::select! {
            _ = &mut shutdown => break,
            _ = tokio::time::sleep(every) => {}
        }
    }
}

/// Reads where the email goes, as it stands now, and sends it there.
async fn attempt(pool: &PgPool, mailer: &Mailer, job: &Job) -> Result<Sent, sqlx::Error> {
    let Some(recipient) = queries::recipient(pool, job).await? else {
        return Ok(Sent::Moot("the notification is gone"));
    };
    if recipient.gone {
        return Ok(Sent::Moot("the account is gone"));
    }
    if !recipient.wanted {
        return Ok(Sent::Moot("email turned off"));
    }
    let Ok(to) = recipient.email.parse::<Mailbox>() else {
        return Ok(Sent::Moot("no usable address"));
    };
    Ok(mailer.send(to).await)
}

async fn settle(pool: &PgPool, job: &Job, sent: Sent, max_attempts: i32) -> Result<(), sqlx::Error> {
    match sent {
        Sent::Yes => {
            queries::mark_sent(pool, job).await?;
            tracing::info!(email = job.id, "email sent");
        }
        Sent::Later(why) if job.attempts < max_attempts => {
            queries::retry_later(pool, job, &why, backoff(job.attempts).as_secs_f64()).await?;
            tracing::warn!(email = job.id, attempts = job.attempts, error = %why, "email not sent; will retry");
        }
        Sent::Moot(why) => give_up(pool, job, why).await?,
        Sent::Later(why) | Sent::Never(why) => give_up(pool, job, &why).await?,
    }
    Ok(())
}

async fn give_up(pool: &PgPool, job: &Job, why: &str) -> Result<(), sqlx::Error> {
    queries::give_up(pool, job, why).await?;
    tracing::warn!(email = job.id, attempts = job.attempts, reason = why, "email given up");
    Ok(())
}
