//! Live notifications over Server-Sent Events. A notification row's trigger announces the user's
//! id on PostgreSQL's `notifications` channel; every public-api instance listens (one connection
//! each) and wakes the streams of that user connected to it, which read the new rows themselves.
//! So an event raised on one instance reaches a client connected to any other, and nothing but a
//! user id crosses the channel.
//!
//! A stream opens with the unread count, then sends each new notification as it arrives, each
//! with its place in the person's sequence as the event id (the `unread` event carries the place
//! the stream starts from). A client that reconnects with `Last-Event-ID` (as `EventSource`
//! does) first gets every notification raised after that place, so nothing raised while it was
//! away, or while it reconnected with a fresh token, is lost. It ends
//! when the access token it opened with expires (the client reconnects with a fresh one), when
//! the session ends (checked before anything is sent, and every minute), when the server shuts
//! down, or when the client goes. If the listener lost its connection, notices may have been
//! missed, so every stream looks for rows newer than the last it sent. A person may hold
//! [`PER_USER`] streams at once and an instance [`PER_INSTANCE`]; past that, 429 or 503.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rocket::http::Status;
use rocket::request::{FromRequest, Outcome};
use rocket::response::stream::{Event, EventStream};
use rocket::{get, routes, Request, Route, Shutdown, State};
use sqlx::PgPool;
use tokio::sync::broadcast;
use uuid::Uuid;

use common::applications::NotificationView;
use common::ApiError;

use crate::auth::AuthUser;

/// The channel the notifications trigger announces on.
pub const CHANNEL: &str = "notifications";
/// How often a stream checks its session is still live.
const SESSION_CHECK: Duration = Duration::from_secs(60);
/// Streams one person may hold open at once (tabs, devices).
pub const PER_USER: usize = 5;
/// Streams one instance holds open at once.
pub const PER_INSTANCE: usize = 2000;

/// Wakes the streams (a user id, or `Uuid::nil()` for "everyone look" after a lost connection),
/// and counts the open ones.
#[derive(Clone)]
pub struct Live {
    wake: broadcast::Sender<Uuid>,
    open: Arc<Mutex<HashMap<Uuid, usize>>>,
}

impl Live {
    pub fn new() -> Self {
        Live { wake: broadcast::channel(1024).0, open: Arc::default() }
    }

    /// A place for one more stream of `user`, held until the guard drops.
    fn admit(&self, user: Uuid) -> Result<Admitted, ApiError> {
        let mut open = self.open.lock().map_err(|_| ApiError::internal("stream counts poisoned"))?;
        if open.values().sum::<usize>() >= PER_INSTANCE {
            return Err(ApiError::Unavailable("too many open streams on this instance; retry shortly".into()));
        }
        let mine = open.entry(user).or_default();
        if *mine >= PER_USER {
            return Err(ApiError::TooManyRequests(format!("at most {PER_USER} open streams per person")));
        }
        *mine += 1;
        Ok(Admitted { open: self.open.clone(), user })
    }
}

/// One admitted stream; its place is given back when the stream ends.
struct Admitted {
    open: Arc<Mutex<HashMap<Uuid, usize>>>,
    user: Uuid,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        if let Ok(mut open) = self.open.lock() {
            if let Some(n) = open.get_mut(&self.user) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    open.remove(&self.user);
                }
            }
        }
    }
}

impl Default for Live {
    fn default() -> Self {
        Self::new()
    }
}

/// Relays the channel's notices to this instance's streams until shutdown.
pub async fn relay(pool: PgPool, live: Live, shutdown: Shutdown) {
    tokio::pin!(shutdown);
    let Some(mut listener) = common::db::listen_on(&pool, CHANNEL, shutdown.as_mut()).await else { return };
    loop {
        tokio::select! {
            _ = &mut shutdown => return,
            notice = listener.try_recv() => match notice {
                Ok(Some(n)) => match n.payload().parse::<Uuid>() {
                    // No stream listening is not an error.
                    Ok(user) => { let _ = live.wake.send(user); }
                    Err(_) => tracing::warn!("unreadable notification notice"),
                },
                Ok(None) => { let _ = live.wake.send(Uuid::nil()); }
                Err(e) => {
                    let _ = live.wake.send(Uuid::nil());
                    tracing::warn!(error = %e, "notification listener failed; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            },
        }
    }
}

/// Rows read at a time.
const PAGE: usize = 100;

/// The `Last-Event-ID` a reconnecting client sends: the place of the last event it received.
/// Absent on a first connection; anything but a whole number from 0 is refused (422).
pub struct LastEventId(Option<i64>);

#[rocket::async_trait]
impl<'r> FromRequest<'r> for LastEventId {
    type Error = ();

    async fn from_request(request: &'r Request<'_>) -> Outcome<Self, ()> {
        let values: Vec<&str> = request.headers().get("last-event-id").collect();
        match values.as_slice() {
            [] => Outcome::Success(LastEventId(None)),
            [value] => match value.trim().parse::<i64>() {
                Ok(place) if place >= 0 => Outcome::Success(LastEventId(Some(place))),
                _ => refuse(request, "Last-Event-ID: the id of an event this stream sent (a whole number from 0)"),
            },
            _ => refuse(request, "Last-Event-ID: send it once"),
        }
    }
}

fn refuse(request: &Request<'_>, message: &str) -> Outcome<LastEventId, ()> {
    request.local_cache(|| common::error::ErrorMessage(Some(message.to_owned())));
    Outcome::Error((Status::UnprocessableEntity, ()))
}

/// The user's notifications after `after` (by `seq`), oldest first, with their `seq`.
async fn newer(pool: &PgPool, user: Uuid, after: i64) -> Result<Vec<(i64, NotificationView)>, sqlx::Error> {
    let rows = crate::notifications::queries::after(pool, user, after, PAGE as i64).await?;
    Ok(rows.into_iter().map(|row| (row.seq, row.into())).collect())
}

/// My notifications as they happen (`text/event-stream`). Events: `unread` (`{"unread": n}`)
/// first; `notification` (a notification, as in the list) for each new one; `end` when the
/// session ended. Each event's `id` is its place in my sequence: reconnect with `Last-Event-ID`
/// and the stream first sends what was raised after it. Send the access token in the
/// `Authorization` header (use a fetch-based EventSource); never put it in the URL.
#[utoipa::path(get, operation_id = "notifications_stream", path = "/api/v1/notifications/stream", tag = "notifications", security(("bearer" = [])),
    params(("Last-Event-ID" = Option<i64>, Header, description = "The id of the last event received, when reconnecting: the notifications raised after it come first")),
    responses(
        (status = 200, description = "An event stream: `unread`, then `notification` events, each with an `id`; `end` when the access token expires (reconnect with a fresh one and `Last-Event-ID`) or the session ends (found within a minute, and before anything more is sent)", content_type = "text/event-stream"),
        (status = 401, description = "Not signed in", body = common::ErrorBody),
        (status = 422, description = "`Last-Event-ID` is not an id this stream sends", body = common::ErrorBody),
        (status = 429, description = "Already 5 streams open for me", body = common::ErrorBody),
        (status = 503, description = "This instance holds as many streams as it may", body = common::ErrorBody),
    ))]
#[get("/notifications/stream")]
pub async fn stream(
    user: AuthUser,
    resume: LastEventId,
    live: &State<Live>,
    pool: &State<PgPool>,
    mut shutdown: Shutdown,
) -> Result<EventStream![], ApiError> {
    let admitted = live.admit(user.user_id)?;
    let mut wake = live.wake.subscribe();
    let pool = pool.inner().clone();
    let (me, session) = (user.user_id, user.session_id);
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let token_left = Duration::from_secs(u64::try_from(user.token_expires_at - now).unwrap_or(0));
    let live_session = move |pool: PgPool| async move {
        matches!(crate::auth::sessions::live_account(&pool, session, me).await, Ok(Some(_)))
    };
    Ok(EventStream! {
        let _admitted = admitted;
        let expiry = tokio::time::sleep(token_left);
        tokio::pin!(expiry);
        let start = crate::notifications::queries::position(&pool, me).await;
        let Ok((newest, unread)) = start else { return };
        // Resuming: from where the client's last event left it (never past the newest, so a
        // place from the future cannot skip what comes next). Else from now.
        let mut last = resume.0.map_or(newest, |place| place.min(newest));
        yield Event::json(&serde_json::json!({ "unread": unread })).event("unread").id(last.to_string());
        // Resuming, look at once: what was raised while the client was away comes first.
        let mut look = resume.0.is_some();
        let mut check = tokio::time::interval(SESSION_CHECK);
        check.tick().await;
        loop {
            if std::mem::take(&mut look) {
                loop {
                    let Ok(rows) = newer(&pool, me, last).await else { return };
                    let full = rows.len() == PAGE;
                    for (seq, notification) in rows {
                        last = seq;
                        yield Event::json(&notification).event("notification").id(seq.to_string());
                    }
                    if !full {
                        break;
                    }
                }
            }
            tokio::select! {
                _ = &mut shutdown => break,
                _ = &mut expiry => {
                    yield Event::data("token expired").event("end");
                    break;
                }
                _ = check.tick() => {
                    if !live_session(pool.clone()).await {
                        yield Event::data("session ended").event("end");
                        break;
                    }
                }
                woke = wake.recv() => {
                    match woke {
                        Ok(user) if user != me && !user.is_nil() => continue,
                        Err(broadcast::error::RecvError::Closed) => break,
                        // Ours, everyone's, or missed some (lagged): look.
                        _ => {}
                    }
                    // Nothing more goes to a session revoked since the last check.
                    if !live_session(pool.clone()).await {
                        yield Event::data("session ended").event("end");
                        break;
                    }
                    look = true;
                }
            }
        }
    }
    .heartbeat(Duration::from_secs(15)))
}

pub fn routes() -> Vec<Route> {
    routes![stream]
}
