//! Live notifications over Server-Sent Events. A notification row's trigger announces the user's
//! id on PostgreSQL's `notifications` channel; every public-api instance listens (one connection
//! each) and wakes the streams of that user connected to it, which read the new rows themselves.
//! So an event raised on one instance reaches a client connected to any other, and nothing but a
//! user id crosses the channel.
//!
//! A stream opens with the unread count, then sends each new notification as it arrives. It ends
//! when the session ends (checked every minute: a revoked session stops receiving), when the
//! server shuts down, or when the client goes. If the listener lost its connection, notices may
//! have been missed, so every stream looks for rows newer than the last it sent.

use std::time::Duration;

use rocket::response::stream::{Event, EventStream};
use rocket::{get, routes, Route, Shutdown, State};
use sqlx::PgPool;
use tokio::sync::broadcast;
use uuid::Uuid;

use common::applications::NotificationView;

use crate::auth::AuthUser;

/// The channel the notifications trigger announces on.
pub const CHANNEL: &str = "notifications";
/// How often a stream checks its session is still live.
const SESSION_CHECK: Duration = Duration::from_secs(60);

/// Wakes the streams: a user id, or `Uuid::nil()` for "everyone look" after a lost connection.
#[derive(Clone)]
pub struct Live(broadcast::Sender<Uuid>);

impl Live {
    pub fn new() -> Self {
        Live(broadcast::channel(1024).0)
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
                    Ok(user) => { let _ = live.0.send(user); }
                    Err(_) => tracing::warn!("unreadable notification notice"),
                },
                Ok(None) => { let _ = live.0.send(Uuid::nil()); }
                Err(e) => {
                    let _ = live.0.send(Uuid::nil());
                    tracing::warn!(error = %e, "notification listener failed; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            },
        }
    }
}

/// The user's notifications after `after` (by `seq`), oldest first, with their `seq`.
async fn newer(pool: &PgPool, user: Uuid, after: i64) -> Result<Vec<(i64, NotificationView)>, sqlx::Error> {
    use sqlx::Row;
    let rows = sqlx::query(
        "SELECT id, seq, kind, title, body, resource_type, resource_id, created_at, read_at FROM notifications \
         WHERE user_id = $1 AND seq > $2 ORDER BY seq LIMIT 100",
    )
    .bind(user)
    .bind(after)
    .fetch_all(pool)
    .await?;
    rows.iter().map(|row| Ok((row.try_get("seq")?, crate::notifications::view(row)?))).collect()
}

/// My notifications as they happen (`text/event-stream`). Events: `unread` (`{"unread": n}`)
/// first; `notification` (a notification, as in the list) for each new one; `end` when the
/// session ended. Send the access token in the `Authorization` header (use a fetch-based
/// EventSource); never put it in the URL.
#[utoipa::path(get, path = "/api/v1/notifications/stream", tag = "notifications", security(("bearer" = [])),
    responses(
        (status = 200, description = "An event stream: `unread`, then `notification` events, `end` when the session ends", content_type = "text/event-stream"),
        (status = 401, description = "Not signed in", body = common::ErrorBody),
    ))]
#[get("/notifications/stream")]
pub async fn stream(
    user: AuthUser,
    live: &State<Live>,
    pool: &State<PgPool>,
    mut shutdown: Shutdown,
) -> EventStream![] {
    let mut wake = live.0.subscribe();
    let pool = pool.inner().clone();
    let (me, session) = (user.user_id, user.session_id);
    EventStream! {
        let start: Result<(i64, i64), sqlx::Error> = sqlx::query_as(
            "SELECT COALESCE(max(seq), 0), count(*) FILTER (WHERE read_at IS NULL) FROM notifications WHERE user_id = $1",
        )
        .bind(me)
        .fetch_one(&pool)
        .await;
        let Ok((mut last, unread)) = start else { return };
        yield Event::json(&serde_json::json!({ "unread": unread })).event("unread");
        let mut check = tokio::time::interval(SESSION_CHECK);
        check.tick().await;
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                _ = check.tick() => {
                    match crate::auth::sessions::live_account(&pool, session, me).await {
                        Ok(Some(_)) => {}
                        _ => {
                            yield Event::data("session ended").event("end");
                            break;
                        }
                    }
                }
                woke = wake.recv() => {
                    match woke {
                        Ok(user) if user != me && !user.is_nil() => continue,
                        Err(broadcast::error::RecvError::Closed) => break,
                        // Ours, everyone's, or missed some (lagged): look.
                        _ => {}
                    }
                    let Ok(rows) = newer(&pool, me, last).await else { break };
                    for (seq, notification) in rows {
                        last = seq;
                        yield Event::json(&notification).event("notification");
                    }
                }
            }
        }
    }
    .heartbeat(Duration::from_secs(15))
}

pub fn routes() -> Vec<Route> {
    routes![stream]
}
