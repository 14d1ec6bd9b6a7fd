//! HTTP steps: the expected status within a latency bound.

use std::time::{Duration, Instant};

use crate::outcome::Outcome;
use crate::runbook::HttpAction;
use crate::target::redact_url;

/// Sends the request once and judges status and latency.
pub async fn run(action: &HttpAction, url: &str, timeout: Duration) -> Outcome {
    let shown = redact_url(url);
    let client = match reqwest::Client::builder()
        .timeout(timeout)
        .user_agent(concat!("cutover/", env!("CARGO_PKG_VERSION")))
        .build()
    {
        Ok(client) => client,
        Err(err) => return Outcome::error(format!("cannot build an HTTP client: {err}")),
    };
    let method = match reqwest::Method::from_bytes(action.method.as_bytes()) {
        Ok(method) => method,
        Err(_) => return Outcome::error(format!("unknown HTTP method `{}`", action.method)),
    };
    let started = Instant::now();
    let response = match client.request(method, url).send().await {
        Ok(response) => response,
        Err(err) if err.is_timeout() => {
            return Outcome::error(format!(
                "{shown}: no answer within {}s",
                timeout.as_secs_f64()
            ));
        }
        Err(err) if err.is_builder() => {
            return Outcome::error(format!("{shown} is not a valid URL"));
        }
        Err(err) => {
            return Outcome::error(format!("{shown}: {}", redact_url(&error_chain(&err))));
        }
    };
    let latency = started.elapsed();
    let status = response.status().as_u16();
    let ms = latency.as_secs_f64() * 1000.0;
    let summary = format!("{} {shown} → {status} in {ms:.0} ms", action.method);
    if status != action.expect_status {
        return Outcome::fail(format!("{summary}, expected {}", action.expect_status));
    }
    match action.max_latency {
        Some(bound) if latency > bound => {
            Outcome::fail(format!("{summary}, slower than {} ms", bound.as_millis()))
        }
        _ => Outcome::pass(summary),
    }
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
