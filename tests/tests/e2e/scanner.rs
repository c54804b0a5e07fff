//! The virus scanner client against a real clamd (started by scripts/test with a local EICAR
//! test signature): clean bytes pass, the test virus is found alone and appended to a PDF, a
//! stream past clamd's limit is refused, and an unreachable scanner is an error, never clean.

use std::time::Duration;

use common::clamd::{ScanError, Scanner, Verdict};

/// The EICAR anti-virus test file: harmless, and detected by every scanner as a test virus.
const EICAR: &[u8] = br"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";

fn scanner() -> Scanner {
    let address =
        std::env::var("SECONDWIND_TEST_CLAMD").expect("SECONDWIND_TEST_CLAMD: run the tests with scripts/test");
    Scanner::new(address, Duration::from_secs(30))
}

#[tokio::test]
async fn clamd_finds_the_test_virus_and_passes_clean_files() {
    let scanner = scanner();
    scanner.ping().await.expect("clamd answers PONG");

    let pdf = b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n".to_vec();
    assert_eq!(scanner.scan_bytes(&pdf).await, Ok(Verdict::Clean));
    // Larger than one chunk, so the stream is sent in several.
    let big_clean: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    assert_eq!(scanner.scan_bytes(&big_clean).await, Ok(Verdict::Clean));

    let found = |verdict: Result<Verdict, ScanError>| match verdict {
        Ok(Verdict::Infected(name)) => name,
        other => panic!("not found: {other:?}"),
    };
    assert!(found(scanner.scan_bytes(EICAR).await).contains("EICAR"));
    let mut disguised = pdf.clone();
    disguised.extend_from_slice(EICAR);
    assert!(found(scanner.scan_bytes(&disguised).await).contains("EICAR"), "appended to a PDF");
    let mut late = big_clean.clone();
    late.extend_from_slice(EICAR);
    assert!(found(scanner.scan_bytes(&late).await).contains("EICAR"), "past the first chunk");

    // scripts/test gives clamd a 12 MiB stream limit.
    let oversize = vec![b'a'; 13 * 1024 * 1024];
    assert_eq!(scanner.scan_bytes(&oversize).await, Err(ScanError::TooLarge));
}

#[tokio::test]
async fn an_unreachable_scanner_is_an_error_not_a_clean_verdict() {
    // A port nothing listens on: bind one, then let it go.
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let gone = Scanner::new(format!("127.0.0.1:{port}"), Duration::from_secs(5));
    assert!(matches!(gone.scan_bytes(b"%PDF-1.7").await, Err(ScanError::Unavailable(_))));
    assert!(matches!(gone.ping().await, Err(ScanError::Unavailable(_))));

    // A listener that accepts and never answers: the timeout decides, and it is no verdict.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = silent.local_addr().expect("addr");
    let hold = tokio::spawn(async move {
        let (_connection, _) = silent.accept().await.expect("accept");
        tokio::time::sleep(Duration::from_secs(30)).await;
    });
    let slow = Scanner::new(address.to_string(), Duration::from_millis(500));
    assert!(matches!(slow.scan_bytes(b"%PDF-1.7").await, Err(ScanError::Unavailable(_))));
    hold.abort();
}
