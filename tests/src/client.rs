//! A signed-in person calling the public API: JSON in, status and JSON (or the raw text) out.

use reqwest::Method;
use serde_json::Value;

use crate::auth::Login;
use crate::TestApp;

pub struct Client<'a> {
    pub app: &'a TestApp,
    pub who: &'a Login,
}

impl Client<'_> {
    pub async fn send(&self, method: Method, path: &str, body: Option<&Value>) -> (u16, Value) {
        self.send_keyed(method, path, body, None).await
    }

    /// As [`Client::send`], with an `Idempotency-Key` header when `key` is given.
    pub async fn send_keyed(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        key: Option<&str>,
    ) -> (u16, Value) {
        let mut request = self.app.http.request(method, self.app.api(path)).bearer_auth(&self.who.access_token);
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.expect("send");
        let status = response.status().as_u16();
        let text = response.text().await.expect("text");
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.send(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.send(Method::POST, path, Some(body)).await
    }

    pub async fn patch(&self, path: &str, body: &Value) -> (u16, Value) {
        self.send(Method::PATCH, path, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: &Value) -> (u16, Value) {
        self.send(Method::PUT, path, Some(body)).await
    }

    /// Sends raw bytes as JSON, for malformed bodies.
    pub async fn post_raw(&self, path: &str, body: &'static str) -> (u16, Value) {
        let response = self
            .app
            .http
            .post(self.app.api(path))
            .bearer_auth(&self.who.access_token)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("send");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Posts `body` with `content_type` (a hand-made multipart form, whole or not).
    pub async fn upload(&self, path: &str, content_type: &str, body: Vec<u8>) -> (u16, Value) {
        let response = self
            .app
            .http
            .post(self.app.api(path))
            .bearer_auth(&self.who.access_token)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("send");
        let status = response.status().as_u16();
        let text = response.text().await.expect("text");
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// GETs raw bytes: the status, the headers and the body (an error if it was cut).
    pub async fn download(&self, path: &str) -> (u16, reqwest::header::HeaderMap, Result<Vec<u8>, String>) {
        let response =
            self.app.http.get(self.app.api(path)).bearer_auth(&self.who.access_token).send().await.expect("send");
        let (status, headers) = (response.status().as_u16(), response.headers().clone());
        let body = response.bytes().await.map(|b| b.to_vec()).map_err(|e| e.to_string());
        (status, headers, body)
    }
}
