//! Client-side rate limiting of Kubernetes API calls, like client-go's `QPS`/`Burst`: a
//! token bucket of `burst` tokens refilled at `qps` per second, as a layer on the kube
//! client's HTTP stack. A request that finds the bucket empty waits for its token (in
//! arrival order) instead of failing, so a provisioning storm queues in the service rather
//! than drawing 429s from the API server.
//!
//! The wait happens in `poll_ready`: the kube client drives its stack through a buffer, so
//! requests beyond the burst queue there, each released when its token is due. A watch
//! takes one token for its request; the long-lived stream that answers it is a response
//! body and costs nothing more. Retries (`reconcile::with_retry`, which honours a 429's
//! `retryAfterSeconds`) sit above the client and simply take a token again.

use std::{
    collections::HashMap,
    fmt,
    future::Future,
    pin::Pin,
    sync::{Arc, Mutex, PoisonError},
    task::{Context, Poll},
    time::Duration,
};

use kube::Client;
use tokio::time::{Instant, Sleep};
use tower_layer::Layer;
use tower_service::Service;

use crate::metrics::{KubeCounter, Metrics};

/// Default of `KUBE_QPS`: sustained API requests per second.
pub const DEFAULT_QPS: f64 = 50.0;
/// Default of `KUBE_BURST`: requests that may go at once before `KUBE_QPS` applies.
pub const DEFAULT_BURST: u32 = 100;

/// A rate that cannot be a token bucket.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RateError {
    /// `qps` is zero, negative, not a number or infinite.
    #[error("the Kubernetes request rate must be a finite number above 0 per second, not {0}")]
    Qps(f64),
    /// `burst` is zero.
    #[error("the Kubernetes request burst must be at least 1")]
    Burst,
}

/// The rate of a [`RateLimit`]: `qps` tokens per second, at most `burst` saved up.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    qps: f64,
    burst: u32,
}

impl Rate {
    /// `qps` requests per second with bursts of `burst`; both must be above 0.
    pub fn new(qps: f64, burst: u32) -> Result<Self, RateError> {
        if !(qps.is_finite() && qps > 0.0) {
            return Err(RateError::Qps(qps));
        }
        if burst == 0 {
            return Err(RateError::Burst);
        }
        Ok(Self { qps, burst })
    }

    /// Requests per second.
    pub fn qps(&self) -> f64 {
        self.qps
    }

    /// Requests that may go at once.
    pub fn burst(&self) -> u32 {
        self.burst
    }
}

impl Default for Rate {
    fn default() -> Self {
        Self {
            qps: DEFAULT_QPS,
            burst: DEFAULT_BURST,
        }
    }
}

/// A Kubernetes client for `config` whose calls are counted in
/// `codeserver_kube_requests_total` and go at most at `rate`; like
/// `serve::counted_client`, it leaves retries to the reconciler (`default_retry` off).
pub fn limited_client(
    mut config: kube::Config,
    metrics: &Metrics,
    rate: Rate,
) -> Result<Client, kube::Error> {
    crate::install_crypto();
    config.default_retry = false;
    let builder = kube::client::ClientBuilder::try_from(config)?;
    Ok(builder
        .with_layer(&KubeCounter::new(metrics.clone()))
        .with_layer(&RateLimit::new(rate))
        .build())
}

/// The shared bucket: tokens may go negative, which is how many are promised to waiters.
#[derive(Debug)]
struct Bucket {
    rate: Rate,
    tokens: f64,
    updated: Instant,
}

impl Bucket {
    /// Takes one token and says when it is due (now, or later when the bucket is empty).
    fn reserve(&mut self, now: Instant) -> Instant {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        let burst = f64::from(self.rate.burst);
        self.tokens = (self.tokens + elapsed * self.rate.qps).min(burst);
        self.updated = now;
        self.tokens -= 1.0;
        if self.tokens >= 0.0 {
            now
        } else {
            now + Duration::from_secs_f64(-self.tokens / self.rate.qps)
        }
    }
}

impl Bucket {
    /// A full bucket of `rate` at `now`.
    fn full(rate: Rate, now: Instant) -> Self {
        Self {
            rate,
            tokens: f64::from(rate.burst),
            updated: now,
        }
    }

    /// Takes `n` tokens if the bucket holds them now; never promises tokens ahead.
    fn try_take(&mut self, n: u32, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        let burst = f64::from(self.rate.burst);
        self.tokens = (self.tokens + elapsed * self.rate.qps).min(burst);
        self.updated = now;
        if self.tokens >= f64::from(n) {
            self.tokens -= f64::from(n);
            true
        } else {
            false
        }
    }

    /// Whether the bucket is full again at `now` (forgetting it changes nothing).
    fn is_full(&self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens + elapsed * self.rate.qps >= f64::from(self.rate.burst)
    }
}

/// The most keys a [`KeyedRateLimit`] tracks before it forgets the full buckets.
const MAX_KEYS: usize = 10_000;

/// One token bucket of `rate` per key (per caller), which refuses instead of waiting:
/// user reads that call Kubernetes or Gitea each take from their caller's bucket, so one
/// caller spends only their own budget, never the service's shared one.
///
/// Bounded: when it tracks [`MAX_KEYS`] keys it forgets those whose bucket is full again
/// (a full bucket and a forgotten one answer alike).
#[derive(Debug)]
pub struct KeyedRateLimit {
    rate: Rate,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl KeyedRateLimit {
    /// No key has spent anything yet.
    pub fn new(rate: Rate) -> Self {
        Self {
            rate,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// The rate of each key's bucket.
    pub fn rate(&self) -> Rate {
        self.rate
    }

    /// Takes `n` tokens from `key`'s bucket; false (and nothing taken) when it holds fewer.
    pub fn try_take(&self, key: &str, n: u32) -> bool {
        let now = Instant::now();
        // NB: plain numbers behind the lock; a panic elsewhere cannot leave them broken.
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(bucket) = buckets.get_mut(key) {
            return bucket.try_take(n, now);
        }
        if buckets.len() >= MAX_KEYS {
            buckets.retain(|_, bucket| !bucket.is_full(now));
        }
        let mut bucket = Bucket::full(self.rate, now);
        let taken = bucket.try_take(n, now);
        buckets.insert(key.to_owned(), bucket);
        taken
    }
}

/// The layer to add to a `kube::client::ClientBuilder`. Clones share one bucket.
#[derive(Clone)]
pub struct RateLimit {
    bucket: Arc<Mutex<Bucket>>,
}

impl fmt::Debug for RateLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimit").finish_non_exhaustive()
    }
}

impl RateLimit {
    /// A full bucket of `rate`.
    pub fn new(rate: Rate) -> Self {
        Self {
            bucket: Arc::new(Mutex::new(Bucket::full(rate, Instant::now()))),
        }
    }

    fn reserve(&self) -> Instant {
        // NB: the bucket holds plain numbers; a panic elsewhere cannot leave it broken.
        let mut bucket = self.bucket.lock().unwrap_or_else(PoisonError::into_inner);
        bucket.reserve(Instant::now())
    }
}

impl<S> Layer<S> for RateLimit {
    type Service = Limited<S>;

    fn layer(&self, inner: S) -> Limited<S> {
        Limited {
            inner,
            limit: self.clone(),
            state: State::Idle,
        }
    }
}

/// Where a [`Limited`] service is with its next request's token.
enum State {
    /// No token taken.
    Idle,
    /// A token taken, due when the sleep ends.
    Waiting(Pin<Box<Sleep>>),
    /// A token in hand for the next call.
    Ready,
}

/// The client's HTTP service, calling the inner one at the bucket's pace.
pub struct Limited<S> {
    inner: S,
    limit: RateLimit,
    state: State,
}

impl<S: fmt::Debug> fmt::Debug for Limited<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Limited")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S: Clone> Clone for Limited<S> {
    fn clone(&self) -> Self {
        // NB: a token belongs to the service that waited for it, never to a clone.
        Self {
            inner: self.inner.clone(),
            limit: self.limit.clone(),
            state: State::Idle,
        }
    }
}

impl<S, R> Service<R> for Limited<S>
where
    S: Service<R>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        loop {
            match &mut self.state {
                State::Idle => {
                    let due = self.limit.reserve();
                    self.state = if due <= Instant::now() {
                        State::Ready
                    } else {
                        State::Waiting(Box::pin(tokio::time::sleep_until(due)))
                    };
                }
                State::Waiting(sleep) => {
                    if sleep.as_mut().poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    self.state = State::Ready;
                }
                State::Ready => return self.inner.poll_ready(cx),
            }
        }
    }

    fn call(&mut self, request: R) -> Self::Future {
        self.state = State::Idle;
        self.inner.call(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_must_be_positive() {
        assert_eq!(Rate::new(0.0, 1), Err(RateError::Qps(0.0)));
        assert!(Rate::new(f64::NAN, 1).is_err());
        assert_eq!(Rate::new(-1.0, 1), Err(RateError::Qps(-1.0)));
        assert_eq!(Rate::new(1.0, 0), Err(RateError::Burst));
        assert_eq!(
            Rate::new(5.0, 10).map(|r| (r.qps(), r.burst())),
            Ok((5.0, 10))
        );
    }

    #[test]
    fn an_empty_bucket_promises_tokens_at_the_rate() {
        let start = Instant::now();
        let mut bucket = Bucket {
            rate: Rate::new(10.0, 2).unwrap(),
            tokens: 2.0,
            updated: start,
        };
        assert_eq!(bucket.reserve(start), start);
        assert_eq!(bucket.reserve(start), start);
        let third = bucket.reserve(start) - start;
        let fourth = bucket.reserve(start) - start;
        assert!((third.as_secs_f64() - 0.1).abs() < 1e-6, "{third:?}");
        assert!((fourth.as_secs_f64() - 0.2).abs() < 1e-6, "{fourth:?}");
        // A second later the debt is paid and the bucket is full again, not fuller.
        let later = start + Duration::from_secs(2);
        assert_eq!(bucket.reserve(later), later);
        assert_eq!(bucket.reserve(later), later);
        assert!(bucket.reserve(later) > later);
    }

    #[tokio::test(start_paused = true)]
    async fn each_key_spends_its_own_bucket_and_is_refused_when_it_is_empty() {
        let limit = KeyedRateLimit::new(Rate::new(2.0, 4).unwrap());
        assert!(limit.try_take("alice", 3));
        assert!(!limit.try_take("alice", 2), "one token left");
        assert!(limit.try_take("alice", 1));
        assert!(limit.try_take("bob", 4), "bob has his own bucket");
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(limit.try_take("alice", 2), "refilled at the rate");
        assert!(!limit.try_take("alice", 1));
        assert!(!limit.try_take("carol", 5), "never more than the burst");
    }
}
