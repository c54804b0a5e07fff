//! Email about notifications, sent from a PostgreSQL outbox, never inside a request.
//!
//! [`crate::notifications::add`] writes an `email_outbox` row in the transaction of the change
//! it announces, for the kinds in [`EMAILED`] and unless the person turned email off
//! (`notification_preferences`). The row names the notification and the person, never an
//! address or any content. A worker in each public-api instance ([`run`]) claims due rows with
//! `FOR UPDATE SKIP LOCKED`, leasing them for a while by moving their next attempt ahead, so
//! instances never take the same row and a row whose sender died is taken again when its lease
//! ends. Sending happens outside any transaction: the address is read then (an erased or
//! opted-out person gets nothing), the message is fixed text that says something changed and to
//! sign in (no PHI), and the row is marked sent, retried later with a growing delay, or given up
//! after [`MailSettings::max_attempts`] or on a permanent refusal. Delivery is at least once: a
//! process that dies between the relay's acceptance and marking the row sends it again.

use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgPool, Row};
use uuid::Uuid;

/// The notification kinds that are also emailed: changes the person should hear of even when
/// not signed in.
pub const EMAILED: [&str; 4] =
    ["application.status", "insurance.decided", "application.assigned", "auth.device_sign_in"];

/// `[service.mail]`: where email goes. Without it no email is sent (the outbox keeps rows until
/// a relay is configured).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailSettings {
    /// The relay: `smtp://host:port` (plain, dev and tests only), `smtp://host:port?tls=required`
    /// (STARTTLS) or `smtps://host:port`, with `user:password@` where the relay wants it.
    /// Production refuses a relay without TLS.
    pub relay: String,
    /// The sender, e.g. `SecondWind <no-reply@secondwind.org>`.
    pub from: String,
    /// Where people sign in; the one link an email carries.
    pub sign_in_url: String,
    /// How often the worker looks for due email.
    #[serde(default = "defaults::poll_ms")]
    pub poll_interval_ms: u64,
    /// Attempts before an email is given up.
    #[serde(default = "defaults::attempts")]
    pub max_attempts: i32,
    /// The longest one SMTP exchange may take.
    #[serde(default = "defaults::timeout")]
    pub timeout_secs: u64,
}

mod defaults {
    pub fn poll_ms() -> u64 {
        2000
    }
    pub fn attempts() -> i32 {
        8
    }
    pub fn timeout() -> u64 {
        20
    }
}

/// The subject of every email.
pub const SUBJECT: &str = "An update is waiting for you";

/// How long a claimed row is left to its sender before another may take it: far longer than
/// one send may take (each is cut at `timeout_secs`), and one row is claimed at a time, so a
/// lease never ends while its sender still holds the row.
const LEASE_SECS: i64 = 300;

/// Queues an email about notification `id` for `user`, in the caller's transaction, if its
/// kind is emailed and the person has not turned email off.
pub async fn enqueue(tx: &mut PgConnection, user: Uuid, id: Uuid, kind: &str) -> Result<(), sqlx::Error> {
    if !EMAILED.contains(&kind) {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO email_outbox (user_id, notification_id) SELECT $1, $2 \
         WHERE NOT EXISTS (SELECT 1 FROM notification_preferences WHERE user_id = $1 AND NOT email)",
    )
    .bind(user)
    .bind(id)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// The delay before attempt `attempts + 1`: 30 s doubling, at most an hour.
pub fn backoff(attempts: i32) -> Duration {
    let exponent = attempts.clamp(1, 8) as u32 - 1;
    Duration::from_secs((30u64 << exponent).min(3600))
}

/// The sender: the relay's transport and the fixed parts of every message.
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    settings: MailSettings,
}

impl Mailer {
    /// Checks the settings; `production` refuses a relay without TLS.
    pub fn new(settings: &MailSettings, production: bool) -> Result<Self, String> {
        let relay = reqwest::Url::parse(&settings.relay).map_err(|e| format!("relay: {e}"))?;
        let tls = relay.scheme() == "smtps"
            || (relay.scheme() == "smtp" && relay.query_pairs().any(|(k, v)| k == "tls" && v == "required"));
        if production && !tls {
            return Err("production requires a relay with TLS (smtps:// or ?tls=required)".into());
        }
        if production && !settings.sign_in_url.starts_with("https://") {
            return Err("production requires an https sign_in_url".into());
        }
        if settings.timeout_secs as i64 * 2 >= LEASE_SECS {
            return Err(format!("timeout_secs must be under {} s", LEASE_SECS / 2));
        }
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(&settings.relay)
            .map_err(|e| format!("relay: {e}"))?
            .timeout(Some(Duration::from_secs(settings.timeout_secs.max(1))))
            .build();
        let from = settings.from.parse().map_err(|e| format!("from: {e}"))?;
        Ok(Self { transport, from, settings: settings.clone() })
    }

    /// The one message every email is: it says only that something is waiting, never what or
    /// about which program (a mailbox and a relay are outside 42 CFR Part 2's protection, and
    /// even the fact of participation is protected), and where to sign in.
    fn message(&self, to: Mailbox) -> Result<Message, lettre::error::Error> {
        let body = format!(
            "Hello,\n\nThere is an update waiting for you in your account.\n\n\
             Sign in to see it:\n{}\n\n\
             For your privacy we never put details in email.\n\
             You can turn these emails off in your notification settings.\n",
            self.settings.sign_in_url
        );
        Message::builder().from(self.from.clone()).to(to).subject(SUBJECT).header(ContentType::TEXT_PLAIN).body(body)
    }
}

/// A claimed row.
struct Job {
    id: i64,
    user: Uuid,
    notification: Uuid,
    attempts: i32,
}

/// Claims the next due row, leasing it. A due row whose attempts are used up (its sender died
/// on the last one) is given up instead.
async fn claim(pool: &PgPool, max_attempts: i32) -> Result<Option<Job>, sqlx::Error> {
    sqlx::query(
        "UPDATE email_outbox SET given_up_at = now(), last_error = 'attempts used up' \
         WHERE sent_at IS NULL AND given_up_at IS NULL AND next_attempt_at <= now() AND attempts >= $1",
    )
    .bind(max_attempts)
    .execute(pool)
    .await?;
    let row = sqlx::query(
        "UPDATE email_outbox SET attempts = attempts + 1, next_attempt_at = now() + make_interval(secs => $1) \
         WHERE id = (SELECT id FROM email_outbox WHERE sent_at IS NULL AND given_up_at IS NULL \
         AND next_attempt_at <= now() ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED) \
         RETURNING id, user_id, notification_id, attempts",
    )
    .bind(LEASE_SECS as f64)
    .fetch_optional(pool)
    .await?;
    row.map(|row| {
        Ok(Job {
            id: row.try_get("id")?,
            user: row.try_get("user_id")?,
            notification: row.try_get("notification_id")?,
            attempts: row.try_get("attempts")?,
        })
    })
    .transpose()
}

/// How an attempt ended.
enum Sent {
    Yes,
    /// Nothing to send any more (the person was erased, turned email off, or has no usable
    /// address): given up, with why.
    Moot(&'static str),
    /// Try again later, unless the attempts are used up.
    Later(String),
    /// The relay refused for good.
    Never(String),
}

async fn attempt(pool: &PgPool, mailer: &Mailer, job: &Job) -> Result<Sent, sqlx::Error> {
    let row = sqlx::query(
        "SELECT u.email, (u.deleted_at IS NOT NULL) AS gone, \
         COALESCE((SELECT p.email FROM notification_preferences p WHERE p.user_id = u.id), true) AS wanted \
         FROM users u JOIN notifications n ON n.id = $2 AND n.user_id = u.id WHERE u.id = $1",
    )
    .bind(job.user)
    .bind(job.notification)
    .fetch_optional(pool)
    .await?;
    let Some(row) = row else { return Ok(Sent::Moot("the notification is gone")) };
    if row.try_get::<bool, _>("gone")? {
        return Ok(Sent::Moot("the account is gone"));
    }
    if !row.try_get::<bool, _>("wanted")? {
        return Ok(Sent::Moot("email turned off"));
    }
    let Ok(to) = row.try_get::<String, _>("email")?.parse::<Mailbox>() else {
        return Ok(Sent::Moot("no usable address"));
    };
    let message = match mailer.message(to) {
        Ok(message) => message,
        Err(_) => return Ok(Sent::Moot("the message could not be built")),
    };
    // lettre bounds the connection, not a relay that stops answering: the whole send is bounded.
    let limit = Duration::from_secs(mailer.settings.timeout_secs.max(1));
    Ok(match tokio::time::timeout(limit, mailer.transport.send(message)).await {
        Ok(Ok(_)) => Sent::Yes,
        // What is kept of an error names its kind and code, never the address it may quote.
        Ok(Err(e)) if e.is_permanent() => Sent::Never(smtp_error(&e)),
        Ok(Err(e)) => Sent::Later(smtp_error(&e)),
        Err(_) => Sent::Later("timeout".into()),
    })
}

fn smtp_error(e: &lettre::transport::smtp::Error) -> String {
    let kind = if e.is_permanent() {
        "permanent"
    } else if e.is_transient() {
        "transient"
    } else if e.is_timeout() {
        "timeout"
    } else {
        "connection"
    };
    match e.status() {
        Some(code) => format!("{kind} {code}"),
        None => kind.to_owned(),
    }
}

/// Settles a row only while it is still this sender's claim: not settled, and not claimed again
/// since (its attempt count unchanged).
const STILL_MINE: &str = "WHERE id = $1 AND attempts = $2 AND sent_at IS NULL AND given_up_at IS NULL";

async fn settle(pool: &PgPool, job: &Job, sent: Sent, max_attempts: i32) -> Result<(), sqlx::Error> {
    match sent {
        Sent::Yes => {
            sqlx::query(&format!("UPDATE email_outbox SET sent_at = now(), last_error = NULL {STILL_MINE}"))
                .bind(job.id)
                .bind(job.attempts)
                .execute(pool)
                .await?;
            tracing::info!(email = job.id, "email sent");
        }
        Sent::Later(why) if job.attempts < max_attempts => {
            sqlx::query(&format!(
                "UPDATE email_outbox SET next_attempt_at = now() + make_interval(secs => $4), last_error = $3 \
                 {STILL_MINE}"
            ))
            .bind(job.id)
            .bind(job.attempts)
            .bind(&why)
            .bind(backoff(job.attempts).as_secs_f64())
            .execute(pool)
            .await?;
            tracing::warn!(email = job.id, attempts = job.attempts, error = %why, "email not sent; will retry");
        }
        Sent::Moot(why) => give_up(pool, job, why).await?,
        Sent::Later(why) | Sent::Never(why) => give_up(pool, job, &why).await?,
    }
    Ok(())
}

async fn give_up(pool: &PgPool, job: &Job, why: &str) -> Result<(), sqlx::Error> {
    sqlx::query(&format!("UPDATE email_outbox SET given_up_at = now(), last_error = $3 {STILL_MINE}"))
        .bind(job.id)
        .bind(job.attempts)
        .bind(why)
        .execute(pool)
        .await?;
    tracing::warn!(email = job.id, attempts = job.attempts, reason = why, "email given up");
    Ok(())
}

/// Sends what is due, then again every poll interval, until shutdown. A worker that panics is
/// started again (its row is taken again when its lease ends).
pub async fn run(pool: PgPool, mailer: Mailer, shutdown: rocket::Shutdown) {
    let mailer = std::sync::Arc::new(mailer);
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

async fn work(pool: PgPool, mailer: std::sync::Arc<Mailer>, shutdown: rocket::Shutdown) {
    let every = Duration::from_millis(mailer.settings.poll_interval_ms.max(50));
    tokio::pin!(shutdown);
    loop {
        loop {
            let job = match claim(&pool, mailer.settings.max_attempts).await {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_to_an_hour() {
        assert_eq!(backoff(1), Duration::from_secs(30));
        assert_eq!(backoff(2), Duration::from_secs(60));
        assert_eq!(backoff(4), Duration::from_secs(240));
        assert_eq!(backoff(8), Duration::from_secs(3600));
        assert_eq!(backoff(50), Duration::from_secs(3600));
    }

    #[test]
    fn production_refuses_a_relay_without_tls() {
        let settings = MailSettings {
            relay: "smtp://127.0.0.1:2525".into(),
            from: "SecondWind <no-reply@secondwind.test>".into(),
            sign_in_url: "https://app.secondwind.test".into(),
            poll_interval_ms: 100,
            max_attempts: 3,
            timeout_secs: 5,
        };
        assert!(Mailer::new(&settings, true).is_err());
        assert!(Mailer::new(&settings, false).is_ok());
        let tls = MailSettings {
            relay: "smtps://relay.secondwind.test:465".into(),
            sign_in_url: "https://app.secondwind.test".into(),
            ..settings.clone()
        };
        assert!(Mailer::new(&tls, true).is_ok());
        let starttls = MailSettings { relay: "smtp://relay.secondwind.test:587?tls=required".into(), ..tls.clone() };
        assert!(Mailer::new(&starttls, true).is_ok());
        let smuggled = MailSettings {
            relay: "smtp://relay.secondwind.test:25?tls=opportunistic&x=tls=required".into(),
            ..tls.clone()
        };
        assert!(Mailer::new(&smuggled, true).is_err(), "tls=required only as the tls parameter");
        let plain_link = MailSettings { sign_in_url: "http://app.secondwind.test".into(), ..tls.clone() };
        assert!(Mailer::new(&plain_link, true).is_err(), "production links are https");
        let bad_from = MailSettings { from: "not an address".into(), ..settings };
        assert!(Mailer::new(&bad_from, false).is_err());
    }

    #[test]
    fn the_message_carries_no_detail() {
        let settings = MailSettings {
            relay: "smtp://127.0.0.1:2525".into(),
            from: "SecondWind <no-reply@secondwind.test>".into(),
            sign_in_url: "https://app.secondwind.test/sign-in".into(),
            poll_interval_ms: 100,
            max_attempts: 3,
            timeout_secs: 5,
        };
        let mailer = Mailer::new(&settings, false).expect("mailer");
        let to: Mailbox = "pat@example.test".parse().expect("to");
        let text = String::from_utf8(mailer.message(to).expect("message").formatted()).expect("utf-8");
        assert!(text.contains(&format!("Subject: {SUBJECT}")), "{text}");
        assert!(text.contains("https://app.secondwind.test/sign-in"), "{text}");
        // Not even the program or what changed: the fact of participation is protected (the
        // sender is configured; production chooses a neutral one).
        let body = text.split("\r\n\r\n").skip(1).collect::<String>();
        for detail in ["SecondWind", "application", "insurance", "recovery", "treatment"] {
            assert!(!body.contains(detail) && !text.contains(&format!("Subject: {detail}")), "{detail} in {text}");
        }
    }
}
