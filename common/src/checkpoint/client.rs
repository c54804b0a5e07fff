//! The internal client of a receiver's checkpoint routes.

#[allow(unused_imports)]
use super::*;

/// A receiving peer's checkpoint route: where a service anchors its trails.
#[derive(Clone)]
pub struct CheckpointClient(InternalClient);

impl CheckpointClient {
    pub fn new(inner: InternalClient) -> Self {
        Self(inner)
    }

    /// Stores a signed checkpoint in the peer's database (204, also when already held; 409 when
    /// it goes backwards).
    pub async fn store(&self, ctx: &CallContext, checkpoint: &Checkpoint) -> Result<(), ClientError> {
        self.0.send(reqwest::Method::POST, "/internal/v1/checkpoints", ctx, Some(checkpoint)).await.map(|_| ())
    }

    /// Every checkpoint the peer holds of this service's `trail`, by number, page by page.
    pub async fn held(&self, ctx: &CallContext, trail: Trail) -> Result<Vec<Checkpoint>, ClientError> {
        // A bound on what one verification holds from a peer (a few hundred MiB): almost four
        // years of checkpoints at the default one-minute interval.
        const MOST: usize = 2_000_000;
        let mut all = Vec::new();
        let mut after = 0;
        loop {
            if all.len() > MOST {
                return Err(ClientError::Body {
                    peer: self.0.peer(),
                    message: format!("more than {MOST} checkpoints held of one trail"),
                });
            }
            let page: HeldPage =
                self.0.get(&format!("/internal/v1/checkpoints?trail={}&after={after}", trail.as_str()), ctx).await?;
            all.extend(page.checkpoints);
            match page.next_after {
                Some(next) if next > after => after = next,
                _ => return Ok(all),
            }
        }
    }
}
