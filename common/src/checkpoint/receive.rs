//! The receiving side: `POST /internal/v1/checkpoints` from an origin, and the held checkpoints
//! a service may read back of its own trails.

#[allow(unused_imports)]
use super::*;

// ---------------------------------------------------------------- receiving

/// Stores a peer's checkpoint. The caller must be the checkpoint's origin, the signature must
/// verify with the origin's checkpoint key, and it may not go backwards (409). 204 when stored
/// or already held.
#[post("/internal/v1/checkpoints", data = "<body>")]
pub(super) async fn receive(
    call: InternalCall,
    body: Body<Checkpoint>,
    pool: &State<PgPool>,
    keys: &State<CheckpointKeys>,
    info: &State<ServiceInfo>,
) -> Result<Status, ApiError> {
    let checkpoint = body.into_inner();
    let claims = &call.0;
    let refuse = |reason: &str| {
        tracing::warn!(
            service = info.service.as_str(),
            request_id = %claims.request_id,
            caller = claims.iss.as_str(),
            origin = checkpoint.origin.as_str(),
            trail = checkpoint.trail.as_str(),
            number = checkpoint.number,
            alarm = "checkpoint_refused",
            reason,
            "checkpoint refused"
        );
    };
    if claims.iss != checkpoint.origin {
        refuse("the caller is not the checkpoint's origin");
        return Err(ApiError::Forbidden);
    }
    if checkpoint.origin == info.service {
        refuse("a service does not anchor its trails in its own database");
        return Err(ApiError::Forbidden);
    }
    if let Err(e) = checkpoint.check_shape() {
        refuse(&e);
        return Err(ApiError::Unprocessable(e));
    }
    match keys.verify(&checkpoint) {
        Ok(()) => {}
        Err(e @ SignatureError::NoKey(_)) => {
            refuse(&e.to_string());
            return Err(ApiError::Forbidden);
        }
        Err(e @ SignatureError::Bad(_)) => {
            refuse(&e.to_string());
            return Err(ApiError::Unprocessable("signature: does not verify".into()));
        }
    }
    let mut tx = pool.begin().await?;
    match store(&mut tx, &checkpoint).await? {
        Ok(stored) => {
            tx.commit().await?;
            if stored == Stored::New {
                tracing::info!(
                    request_id = %claims.request_id,
                    origin = checkpoint.origin.as_str(),
                    trail = checkpoint.trail.as_str(),
                    number = checkpoint.number,
                    seq = checkpoint.seq,
                    "checkpoint stored"
                );
            }
            Ok(Status::NoContent)
        }
        Err(refused) => {
            tx.rollback().await?;
            refuse(&refused.reason);
            Err(ApiError::Conflict(refused.to_string()))
        }
    }
}

/// A page of the checkpoints a receiver holds of one of the caller's trails.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HeldPage {
    pub checkpoints: Vec<Checkpoint>,
    /// Pass as `after` for the next page; absent on the last.
    pub next_after: Option<i64>,
}

pub(super) const HELD_PAGE: i64 = 2_000;

/// How old a checkpoint must be for a verification to count it (one published later may be in
/// the database and not yet in the file; a delivery in flight is told apart by the origin's
/// records of what arrived).
pub const SETTLE: time::Duration = time::Duration::seconds(2);

/// The checkpoints this database holds of the caller's own `trail`, by number: an origin
/// comparing its trail with what its receivers hold (`anchor::check_trails`). Only a
/// service's own checkpoints are shown to it.
#[get("/internal/v1/checkpoints?<trail>&<after>")]
pub(super) async fn held_of_caller(
    call: InternalCall,
    trail: &str,
    after: Option<&str>,
    pool: &State<PgPool>,
) -> Result<Json<HeldPage>, ApiError> {
    let claims = &call.0;
    let after: Option<i64> = crate::json::query_param("after", after, "an integer")?;
    let trail: Trail = trail.parse().map_err(|_| ApiError::Unprocessable("trail: a trail's table name".into()))?;
    if trail.service() != claims.iss {
        return Err(ApiError::Forbidden);
    }
    let rows = sqlx::query_as!(
        CheckpointRow,
        "SELECT origin, trail, number, seq, head_hash, published_at, signature FROM checkpoints \
         WHERE origin = $1 AND trail = $2 AND number > $3 ORDER BY number LIMIT $4",
        claims.iss.as_str(),
        trail.as_str(),
        after.unwrap_or(0),
        HELD_PAGE + 1,
    )
    .fetch_all(pool.inner())
    .await?;
    let mut checkpoints = store::checkpoints(rows)?;
    let next_after = (checkpoints.len() as i64 > HELD_PAGE).then(|| {
        checkpoints.truncate(HELD_PAGE as usize);
        checkpoints.last().map(|c| c.number)
    });
    Ok(Json(HeldPage { checkpoints, next_after: next_after.flatten() }))
}

pub fn routes() -> Vec<Route> {
    routes![receive, held_of_caller]
}
