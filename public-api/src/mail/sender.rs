//! The relay and the one message: the SMTP transport built from `[service.mail]`, the fixed text
//! every email is, and one bounded send.

use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde::{Deserialize, Serialize};

use super::rules::{Sent, LEASE_SECS};

/// `[service.mail]`: where email goes. Without it no email is sent (the outbox keeps rows until
/// a relay is configured).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailSettings {
    /// The relay: `smtp://host:port` (plain, dev and tests only), `smtp://host:port?tls=required`
    /// (STARTTLS) or `smtps://host:port`, with `user:password@` where the relay wants it.
    /// Production refuses a relay without TLS. A secret: it may hold the relay's password.
    pub relay: common::Secret<String>,
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

/// The sender: the relay's transport and the fixed parts of every message.
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    pub(super) settings: MailSettings,
}

impl Mailer {
    /// Checks the settings; `production` refuses a relay without TLS.
    pub fn new(settings: &MailSettings, production: bool) -> Result<Self, String> {
        // Parse errors never quote the URL (it may hold a password).
        let relay = reqwest::Url::parse(settings.relay.expose()).map_err(|_| "relay: not a URL".to_owned())?;
        // As lettre reads it: the first `tls` parameter decides.
        let tls = relay.scheme() == "smtps"
            || (relay.scheme() == "smtp"
                && relay.query_pairs().find(|(k, _)| k == "tls").is_some_and(|(_, v)| v == "required"));
        if production && !tls {
            return Err("production requires a relay with TLS (smtps:// or ?tls=required)".into());
        }
        if production && !settings.sign_in_url.starts_with("https://") {
            return Err("production requires an https sign_in_url".into());
        }
        if settings.timeout_secs as i64 * 2 >= LEASE_SECS {
            return Err(format!("timeout_secs must be under {} s", LEASE_SECS / 2));
        }
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(settings.relay.expose())
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

    /// Sends the message to `to` once, within `timeout_secs`.
    pub(super) async fn send(&self, to: Mailbox) -> Sent {
        let message = match self.message(to) {
            Ok(message) => message,
            Err(_) => return Sent::Moot("the message could not be built"),
        };
        // lettre bounds the connection, not a relay that stops answering: the whole send is bounded.
        let limit = Duration::from_secs(self.settings.timeout_secs.max(1));
        match tokio::time::timeout(limit, self.transport.send(message)).await {
            Ok(Ok(_)) => Sent::Yes,
            // What is kept of an error names its kind and code, never the address it may quote.
            Ok(Err(e)) if e.is_permanent() => Sent::Never(smtp_error(&e)),
            Ok(Err(e)) => Sent::Later(smtp_error(&e)),
            Err(_) => Sent::Later("timeout".into()),
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn production_refuses_a_relay_without_tls() {
        let settings = MailSettings {
            relay: common::Secret::new("smtp://127.0.0.1:2525".into()),
            from: "SecondWind <no-reply@secondwind.test>".into(),
            sign_in_url: "https://app.secondwind.test".into(),
            poll_interval_ms: 100,
            max_attempts: 3,
            timeout_secs: 5,
        };
        assert!(Mailer::new(&settings, true).is_err());
        assert!(Mailer::new(&settings, false).is_ok());
        let tls = MailSettings {
            relay: common::Secret::new("smtps://relay.secondwind.test:465".into()),
            sign_in_url: "https://app.secondwind.test".into(),
            ..settings.clone()
        };
        assert!(Mailer::new(&tls, true).is_ok());
        let starttls = MailSettings {
            relay: common::Secret::new("smtp://relay.secondwind.test:587?tls=required".into()),
            ..tls.clone()
        };
        assert!(Mailer::new(&starttls, true).is_ok());
        let smuggled = MailSettings {
            relay: common::Secret::new("smtp://relay.secondwind.test:25?tls=opportunistic&x=tls=required".into()),
            ..tls.clone()
        };
        assert!(Mailer::new(&smuggled, true).is_err(), "tls=required only as the tls parameter");
        let second = MailSettings {
            relay: common::Secret::new("smtp://relay.secondwind.test:25?tls=opportunistic&tls=required".into()),
            ..tls.clone()
        };
        assert!(Mailer::new(&second, true).is_err(), "lettre takes the first tls parameter");
        let with_password = MailSettings {
            relay: common::Secret::new("smtps://mailer:hunter2@relay.secondwind.test:465".into()),
            ..tls.clone()
        };
        assert!(!format!("{with_password:?}").contains("hunter2"), "the relay's password is never printed");
        let plain_link = MailSettings { sign_in_url: "http://app.secondwind.test".into(), ..tls.clone() };
        assert!(Mailer::new(&plain_link, true).is_err(), "production links are https");
        let bad_from = MailSettings { from: "not an address".into(), ..settings };
        assert!(Mailer::new(&bad_from, false).is_err());
    }

    #[test]
    fn the_message_carries_no_detail() {
        let settings = MailSettings {
            relay: common::Secret::new("smtp://127.0.0.1:2525".into()),
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
