//! Waiting for a condition outside the test's control (a spawned process, a file it
//! writes) by polling it against a deadline, never by sleeping a fixed time.

// NB: each test binary compiles this module and uses only part of it.
#![allow(dead_code)]

use std::{future::Future, time::Duration};

/// The longest pause between two checks.
const MAX_PAUSE: Duration = Duration::from_millis(100);

/// Checks `check` until it yields a value, for at most `patience`; panics saying that
/// `what` did not happen in time. The pauses between checks start at 5 ms and double.
pub async fn eventually<T, Fut>(what: &str, patience: Duration, mut check: impl FnMut() -> Fut) -> T
where
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + patience;
    let mut pause = Duration::from_millis(5);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        let now = tokio::time::Instant::now();
        assert!(now < deadline, "{what}: not within {patience:?}");
        tokio::time::sleep(pause.min(deadline - now)).await;
        pause = (pause * 2).min(MAX_PAUSE);
    }
}

/// Waits until `url` answers a GET with `status`, for at most `patience`.
pub async fn until_status(client: &reqwest::Client, url: &str, status: u16, patience: Duration) {
    eventually(&format!("{url} answers {status}"), patience, || async {
        let answer = client.get(url).send().await.ok()?;
        (answer.status().as_u16() == status).then_some(())
    })
    .await;
}
