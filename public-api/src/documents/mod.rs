//! Documents attached to an application: uploaded by the beneficiary while the application can
//! be changed, listed, downloaded by them and by the caseworker on their care team, and deleted
//! while it can be changed.
//!
//! An upload is `multipart/form-data` with one part, `file`. Its bytes are relayed to phi-vault
//! as they arrive and never kept here, not in memory whole, not on disk: phi-vault decides the
//! type by the bytes, scans them with clamd, seals them, and keeps the document only whole and
//! clean (its `documents` module). What the public database keeps is the document's id (also its
//! phi-vault record id), its application and a state; the name, type, size and hash are PHI
//! metadata in phi-vault.
//!
//! No transaction spans a call to phi-vault, so the public row is written first (`uploading`)
//! and marked `stored` once phi-vault accepted the document; a deletion marks it `deleting`
//! before phi-vault deletes the record. A row left in between (the process died, phi-vault's
//! answer was lost) is finished when its owner next lists the documents: the record is deleted
//! in phi-vault (gone already is fine) and the row with it. So no listed document points at a
//! missing record, and no record outlives its row for long.
//!
//! `routes.rs` holds the routes, `relay.rs` the upload's stream to phi-vault, `slots.rs` the
//! bound on uploads under way, `queries.rs` the rows and their states, `rules.rs` the limits and
//! the pure parts of a transfer.

pub mod queries;
mod relay;
pub mod routes;
mod rules;
mod slots;

pub use routes::routes;
pub use rules::DocumentSettings;
pub use slots::Uploads;
