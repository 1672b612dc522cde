//! JSON in and out of the REST API: the request body extractor and the error answers.
//!
//! Owns how a request body becomes a typed request (strictly: unknown fields, wrong
//! types and missing fields are refused) and how every failure is answered: a status
//! code and `{"status": CODE, "error": "plain reason"}`. Must not: know any REST method.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::de::DeserializeOwned;
use serde_json::json;

/// A REST failure: the status code and the plain reason a user reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestError {
    /// The HTTP status of the answer.
    pub status: StatusCode,
    /// The plain reason, in the answer's body.
    pub reason: String,
}

impl RestError {
    /// An error answered with `status` and `reason`.
    pub fn new(status: StatusCode, reason: impl Into<String>) -> Self {
        RestError {
            status,
            reason: reason.into(),
        }
    }

    /// `400 Bad Request` with the reason.
    pub fn bad_request(reason: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, reason)
    }

    /// `404 Not Found` with the reason.
    pub fn not_found(reason: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, reason)
    }
}

impl IntoResponse for RestError {
    fn into_response(self) -> Response {
        let body = json!({ "status": self.status.as_u16(), "error": self.reason });
        (self.status, Json(body)).into_response()
    }
}

/// A request body parsed strictly as `T`: one JSON value of `T`'s shape (else `400`);
/// from a browser (a request with an `Origin` header), also sent as
/// `Content-Type: application/json` (else `415`).
///
/// Why: a web page on any site may send a "simple" cross-origin POST (form or
/// `text/plain` body) without asking the server first; a JSON body needs a CORS
/// preflight, which only `rest_allowed_origins` pass. So a page a user opens cannot stop
/// the server's streams. Browsers always name the page's origin on such a POST, and only
/// a browser can be made to send one by a page; scripts (curl's `-d`, which sends a form
/// type, as WCS's examples do) send none and keep working unchanged.
pub struct RestJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for RestJson<T> {
    type Rejection = RestError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(is_json_type);
        let from_browser = req.headers().contains_key(header::ORIGIN);
        if from_browser && !is_json {
            return Err(RestError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "Unsupported Media Type: REST bodies must be JSON, sent with Content-Type: application/json",
            ));
        }
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| RestError::new(e.status(), e.body_text()))?;
        parse_body(&bytes).map(RestJson)
    }
}

/// `application/json`, any case, with or without parameters (`; charset=utf-8`).
fn is_json_type(value: &str) -> bool {
    value
        .split(';')
        .next()
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
}

/// Parses a body as `T`, with the reason a user can act on when it is not one.
pub fn parse_body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, RestError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(RestError::bad_request(
            "Request body is empty: expected a JSON object",
        ));
    }
    let value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| RestError::bad_request(format!("Malformed JSON: {e}")))?;
    // serde would also read a struct from an array (`["x"]`): only objects are requests.
    if !value.is_object() {
        return Err(RestError::bad_request(format!(
            "Invalid request: expected a JSON object, got {}",
            json_kind(&value)
        )));
    }
    serde_json::from_value(value)
        .map_err(|e| RestError::bad_request(format!("Invalid request: {e}")))
}

fn json_kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// The `405` for a REST method called with anything but POST.
pub async fn method_not_allowed() -> Response {
    let mut response = RestError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "Method not allowed: REST methods take POST with a JSON body",
    )
    .into_response();
    response
        .headers_mut()
        .insert(header::ALLOW, header::HeaderValue::from_static("POST"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    struct Sample {
        local_stream_name: String,
        #[serde(default)]
        flag: Option<bool>,
    }

    fn reason(body: &str) -> String {
        let err = parse_body::<Sample>(body.as_bytes()).unwrap_err();
        assert_eq!(err.status, StatusCode::BAD_REQUEST, "{body}");
        err.reason
    }

    #[test]
    fn parses_a_good_body() {
        let s: Sample = parse_body(br#" {"localStreamName":"a","flag":true} "#).unwrap();
        assert_eq!(s.local_stream_name, "a");
        assert_eq!(s.flag, Some(true));
    }

    #[test]
    fn refusals_say_why() {
        assert_eq!(
            reason("  \n"),
            "Request body is empty: expected a JSON object"
        );
        assert!(reason("{\"localStreamName\":").starts_with("Malformed JSON: EOF"));
        assert!(reason("{nope}").starts_with("Malformed JSON: key must be a string"));
        assert!(reason("{\"localStreamName\":1}")
            .starts_with("Invalid request: invalid type: integer `1`, expected a string"));
        assert!(
            reason("{\"localStreamName\":\"a\",\"flag\":\"yes\"}").contains("expected a boolean")
        );
        assert!(reason("{\"localStreamName\":\"a\",\"x\":1}").starts_with(
            "Invalid request: unknown field `x`, expected `localStreamName` or `flag`"
        ));
        assert!(reason("{}").starts_with("Invalid request: missing field `localStreamName`"));
        assert_eq!(
            reason("[\"a\"]"),
            "Invalid request: expected a JSON object, got an array"
        );
        assert_eq!(
            reason("null"),
            "Invalid request: expected a JSON object, got null"
        );
        assert!(reason("{\"localStreamName\":\"a\"} trailing")
            .starts_with("Malformed JSON: trailing characters"));
    }

    #[test]
    fn only_json_content_types_are_json() {
        assert!(is_json_type("application/json"));
        assert!(is_json_type("Application/JSON; charset=utf-8"));
        for other in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "application/jsonx",
            "",
        ] {
            assert!(!is_json_type(other), "{other}");
        }
    }

    #[test]
    fn error_body_is_json_with_status_and_reason() {
        let response = RestError::not_found("Stream not found").into_response();
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
    }
}
