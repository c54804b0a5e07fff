//! Consent forms are versioned files (`policies/consent-forms/`): the consent service records
//! each at start with the SHA-256 of its exact text, and refuses to start when a form already in
//! use was edited under the same version, or when a form file is malformed.

use std::collections::BTreeMap;
use std::path::Path;

use common::db::Database;
use consent::forms::{self, PublishError, RecipientKind};
use harness::{repo_root, TestApp, TestDatabase};
use sqlx::Row;

fn copy_forms(to: &Path) {
    std::fs::create_dir_all(to).expect("dir");
    for entry in std::fs::read_dir(repo_root().join("policies/consent-forms")).expect("forms") {
        let path = entry.expect("entry").path();
        std::fs::copy(&path, to.join(path.file_name().expect("name"))).expect("copy");
    }
}

#[tokio::test]
async fn the_service_records_each_form_with_the_hash_of_its_text() {
    let app = TestApp::spawn().await;
    let pool = sqlx::PgPool::connect(&app.database(Database::Consent).url_as("postgres")).await.expect("db");
    let on_disk = forms::load_dir(&repo_root().join("policies/consent-forms")).expect("forms");
    assert!(on_disk.iter().any(|f| f.recipient == RecipientKind::Tpo), "a single TPO consent form is offered");
    assert!(on_disk.iter().any(|f| f.recipient == RecipientKind::Named));
    for form in &on_disk {
        let text =
            std::fs::read(repo_root().join(format!("policies/consent-forms/{}.txt", form.version))).expect("txt");
        let row = sqlx::query("SELECT body, body_sha256, title, recipient_kind FROM consent_forms WHERE version = $1")
            .bind(&form.version)
            .fetch_one(&pool)
            .await
            .expect("recorded");
        assert_eq!(row.get::<String, _>("body").as_bytes(), &text[..]);
        assert_eq!(row.get::<Vec<u8>, _>("body_sha256"), common::chain::sha256(&text).to_vec());
        assert_eq!(row.get::<String, _>("title"), form.title);
        assert_eq!(row.get::<String, _>("recipient_kind"), form.recipient.as_str());
    }

    // A second instance starting on the same database finds them recorded, unchanged: it starts.
    let dir = app.keys.dir.join("forms-same");
    copy_forms(&dir);
    let mut cfg = consent_config(&app);
    cfg.service.forms_dir = dir.clone();
    let again = consent::build(cfg).await;
    assert!(again.is_ok(), "unchanged forms are accepted again: {:?}", again.err());

    // The same version with one word changed: refused, and nothing recorded changes.
    let first = &on_disk[0];
    let changed = std::fs::read_to_string(dir.join(format!("{}.txt", first.version))).expect("txt").replacen(
        "SecondWind",
        "Second Wind",
        1,
    );
    std::fs::write(dir.join(format!("{}.txt", first.version)), changed).expect("write");
    let mut cfg = consent_config(&app);
    cfg.service.forms_dir = dir.clone();
    let refused = consent::build(cfg).await.map(|_| ()).expect_err("a changed form is refused").to_string();
    assert!(refused.contains(&first.version) && refused.contains("new version"), "{refused}");
    let stored: Vec<u8> = sqlx::query_scalar("SELECT body_sha256 FROM consent_forms WHERE version = $1")
        .bind(&first.version)
        .fetch_one(&pool)
        .await
        .expect("hash");
    assert_eq!(stored, first.sha256.to_vec(), "the recorded form is untouched");
    pool.close().await;
    app.stop().await;
}

fn consent_config(app: &TestApp) -> consent::ConsentConfig {
    harness::consent_config(app.database(Database::Consent).app_url(), &app.keys, &BTreeMap::new())
}

#[tokio::test]
async fn malformed_form_files_are_refused_with_the_file_named() {
    let base = std::env::temp_dir().join(format!("secondwind-forms-{}", uuid::Uuid::new_v4().simple()));
    let cases: [(&str, &str, Option<&str>, &str); 5] = [
        ("v1.toml", "title = \"T\"\nrecipient = \"named\"\npublished = 2026-11-26\n", None, "v1.txt"),
        ("v1.toml", "title = \"T\"\nrecipient = \"everyone\"\npublished = 2026-11-26\n", Some("text"), "v1.toml"),
        (
            "v1.toml",
            "title = \"T\"\nrecipient = \"named\"\npublished = 2026-11-26\nextra = 1\n",
            Some("text"),
            "v1.toml",
        ),
        (
            "Bad Version.toml",
            "title = \"T\"\nrecipient = \"named\"\npublished = 2026-11-26\n",
            Some("text"),
            "Bad Version.toml",
        ),
        (
            "v1.toml",
            "title = \"T\"\nrecipient = \"named\"\npublished = 2026-11-26T10:00:00Z\n",
            Some("text"),
            "v1.toml",
        ),
    ];
    for (i, (meta_name, meta, text, named)) in cases.into_iter().enumerate() {
        let dir = base.join(i.to_string());
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::write(dir.join(meta_name), meta).expect("meta");
        if let Some(text) = text {
            std::fs::write(dir.join(meta_name.replace(".toml", ".txt")), text).expect("text");
        }
        let error = forms::load_dir(&dir).err().unwrap_or_else(|| panic!("case {i} must be refused"));
        assert!(error.contains(named), "case {i}: {error}");
    }
    // A symbolic link in place of a form's text is refused, as is a text over 1 MiB.
    let dir = base.join("link");
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(dir.join("v1.toml"), "title = \"T\"\nrecipient = \"named\"\npublished = 2026-11-26\n")
        .expect("meta");
    std::fs::write(base.join("elsewhere.txt"), "text").expect("text");
    std::os::unix::fs::symlink(base.join("elsewhere.txt"), dir.join("v1.txt")).expect("symlink");
    assert!(forms::load_dir(&dir).expect_err("a symlink").contains("not a regular file"));
    std::fs::remove_file(dir.join("v1.txt")).expect("rm");
    std::fs::write(dir.join("v1.txt"), "x".repeat(1024 * 1024 + 1)).expect("big");
    assert!(forms::load_dir(&dir).expect_err("too big").contains("larger than"));

    let empty = base.join("empty");
    std::fs::create_dir_all(&empty).expect("dir");
    assert!(forms::load_dir(&empty).expect_err("no forms").contains("no consent forms"));
    let _ = std::fs::remove_dir_all(&base);
}

#[tokio::test]
async fn publishing_checks_every_recorded_version_in_one_transaction() {
    let db = TestDatabase::create(Database::Consent, "forms_publish").await;
    let pool = sqlx::PgPool::connect(&db.app_url()).await.expect("pool");
    let mut loaded = forms::load_dir(&repo_root().join("policies/consent-forms")).expect("forms");
    forms::publish(&pool, &loaded).await.expect("first publication");
    forms::publish(&pool, &loaded).await.expect("the same forms again");

    // A new version recorded before a changed one is found: the change is refused and the new
    // one is not recorded either.
    let mut new = loaded[0].clone();
    new.version = "zz-new-2026-12".into();
    loaded[0].title.push_str(" (edited)");
    loaded.insert(0, new);
    match forms::publish(&pool, &loaded).await {
        Err(PublishError::Changed(version)) => assert_eq!(version, loaded[1].version),
        other => panic!("expected a refusal, got {other:?}"),
    }
    let recorded: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM consent_forms WHERE version = 'zz-new-2026-12')")
            .fetch_one(&pool)
            .await
            .expect("query");
    assert!(!recorded, "nothing of a refused publication is recorded");
    pool.close().await;
    db.drop_now().await;
}
