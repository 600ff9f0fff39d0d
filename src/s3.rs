//! S3-compatible object storage for the archive tier (`s3://bucket/prefix`, DESIGN §7).
//!
//! Owns the few S3 operations the archive needs, with the guarantees it relies on:
//!
//! - every PUT is a single request (objects are kept ≤ [`MAX_OBJECT`]) carrying
//!   `x-amz-checksum-sha256`, so the server refuses a body that was damaged in transit and the stored
//!   checksum is the object's plain SHA-256 (a multipart checksum would be a checksum of parts);
//! - every PUT sets Object Lock COMPLIANCE with a retain-until date, so nobody, the loghost's own
//!   credentials included, can delete or overwrite the copy before that date;
//! - a bucket without Object Lock is refused unless `allow_unlocked = true` in `[s3]`;
//! - [`S3Target::check`] HEADs an object and checks size, SHA-256, lock mode and retain-until: the
//!   archive removes nothing locally before every object passed it.

use std::path::Path;

use anyhow::{Context, Result, bail};
use aws_sdk_s3::Client;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::{ByteStream, DateTime, Length};
use aws_sdk_s3::types::{ChecksumAlgorithm, ChecksumMode, ObjectLockEnabled, ObjectLockMode};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use jiff::Timestamp;
use tokio::io::AsyncWriteExt;

use crate::config::S3Config;
use crate::hash::Hash;

/// The largest object the archive writes in one PUT (see NOTES: single PUTs keep the stored
/// checksum equal to the object's SHA-256). Larger day files are split at frame boundaries.
pub const MAX_OBJECT: u64 = 256 << 20;

/// An S3 error in one line: the service's code and message when there is one, else the whole
/// chain (connection refused, timeouts, …).
fn short<E, R>(e: SdkError<E, R>) -> anyhow::Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    match (e.code(), e.message()) {
        (Some(code), Some(msg)) => anyhow::anyhow!("{code}: {msg}"),
        (Some(code), None) => anyhow::anyhow!("{code}"),
        _ => anyhow::anyhow!("{}", DisplayErrorContext(e)),
    }
}

/// A bucket (and key prefix) the archive writes to.
#[derive(Debug)]
pub struct S3Target {
    client: Client,
    bucket: String,
    /// Whether objects are written with Object Lock (the bucket has it enabled).
    locked: bool,
}

impl S3Target {
    /// Connects to `bucket` (`rest` is `bucket[/prefix]`, the prefix is the caller's business)
    /// and checks the bucket has Object Lock enabled (or that `allow_unlocked` says it may not).
    pub async fn open(rest: &str, cfg: &S3Config) -> Result<S3Target> {
        let bucket = rest.split('/').next().unwrap_or_default().to_string();
        if bucket.is_empty() {
            bail!("s3://{rest}: no bucket name");
        }
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(cfg.region.clone()));
        if let Some(endpoint) = &cfg.endpoint {
            loader = loader.endpoint_url(endpoint);
        }
        if let Some(id) = &cfg.access_key_id {
            let Some(secret_file) = &cfg.secret_access_key_file else {
                bail!("[s3] access_key_id is set but secret_access_key_file is not");
            };
            crate::keys::check_private(secret_file, "the S3 secret key file")?;
            let secret = std::fs::read_to_string(secret_file).with_context(|| {
                format!(
                    "cannot read the S3 secret key from {} ([s3] secret_access_key_file)",
                    secret_file.display()
                )
            })?;
            loader = loader.credentials_provider(aws_sdk_s3::config::Credentials::new(
                id,
                secret.trim(),
                None,
                None,
                "loghost-config",
            ));
        }
        // Bounded waits: an unreachable endpoint fails the archive run or the anchor copy, and
        // is retried next time, instead of hanging it.
        loader = loader.timeout_config(
            aws_config::timeout::TimeoutConfig::builder()
                .connect_timeout(std::time::Duration::from_secs(10))
                .read_timeout(std::time::Duration::from_secs(120))
                .build(),
        );
        let shared = loader.load().await;
        let conf = aws_sdk_s3::config::Builder::from(&shared)
            .force_path_style(cfg.path_style)
            .build();
        let client = Client::from_conf(conf);

        let lock = client
            .get_object_lock_configuration()
            .bucket(&bucket)
            .send()
            .await;
        let enabled = match lock {
            Ok(out) => out
                .object_lock_configuration()
                .and_then(|c| c.object_lock_enabled())
                .is_some_and(|e| *e == ObjectLockEnabled::Enabled),
            Err(e) if e.code() == Some("ObjectLockConfigurationNotFoundError") => false,
            Err(e) => {
                return Err(short(e)).with_context(|| {
                    format!(
                        "cannot read the Object Lock configuration of bucket {bucket} (check [s3] \
                         endpoint, region and credentials)"
                    )
                });
            }
        };
        if !enabled && !cfg.allow_unlocked {
            bail!(
                "bucket {bucket} has no Object Lock: archived copies in it could be deleted or \
                 overwritten. Create the bucket with Object Lock enabled, or set \
                 `allow_unlocked = true` in [s3] to accept that"
            );
        }
        if !enabled {
            tracing::warn!(
                "bucket {bucket} has no Object Lock (allow_unlocked = true): archived copies in it \
                 can be deleted"
            );
        }
        Ok(S3Target {
            client,
            bucket,
            locked: enabled,
        })
    }

    /// Whether the bucket has Object Lock enabled (objects are written locked).
    pub fn locked(&self) -> bool {
        self.locked
    }

    pub fn describe(&self) -> String {
        format!("s3://{}", self.bucket)
    }

    /// Uploads `[offset, offset + len)` of the file at `path` as `key`, with its SHA-256 and (in a
    /// locked bucket) COMPLIANCE retention until `retain_until`.
    pub async fn put_file(
        &self,
        key: &str,
        path: &Path,
        offset: u64,
        len: u64,
        sha256: Hash,
        retain_until: Timestamp,
    ) -> Result<()> {
        let body = ByteStream::read_from()
            .path(path)
            .offset(offset)
            .length(Length::Exact(len))
            .build()
            .await
            .with_context(|| format!("cannot read {}", path.display()))?;
        self.put(key, body, len, sha256, retain_until).await
    }

    /// Uploads `data` as `key`.
    pub async fn put_bytes(
        &self,
        key: &str,
        data: &[u8],
        sha256: Hash,
        retain_until: Timestamp,
    ) -> Result<()> {
        self.put(
            key,
            ByteStream::from(data.to_vec()),
            data.len() as u64,
            sha256,
            retain_until,
        )
        .await
    }

    /// HEAD of `key`, asking for its stored checksum.
    async fn head(
        &self,
        key: &str,
    ) -> Result<
        aws_sdk_s3::operation::head_object::HeadObjectOutput,
        SdkError<
            aws_sdk_s3::operation::head_object::HeadObjectError,
            aws_sdk_s3::config::http::HttpResponse,
        >,
    > {
        self.client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .checksum_mode(ChecksumMode::Enabled)
            .send()
            .await
    }

    /// The stored SHA-256 and size of `key` (HEAD), `None` when there is no such object.
    pub async fn stored_sha256(&self, key: &str) -> Result<Option<(u64, Hash)>> {
        let head = match self.head(key).await {
            Ok(h) => h,
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => return Ok(None),
            Err(e) => {
                return Err(short(e))
                    .with_context(|| format!("cannot read s3://{}/{key}", self.bucket));
            }
        };
        let sha = head
            .checksum_sha256()
            .and_then(|c| B64.decode(c).ok())
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .map(Hash);
        match sha {
            Some(sha) => Ok(Some((
                head.content_length().unwrap_or(0).max(0) as u64,
                sha,
            ))),
            None => bail!(
                "s3://{}/{key}: the server keeps no SHA-256 for it",
                self.bucket
            ),
        }
    }

    async fn put(
        &self,
        key: &str,
        body: ByteStream,
        len: u64,
        sha256: Hash,
        retain_until: Timestamp,
    ) -> Result<()> {
        if len > MAX_OBJECT {
            bail!("{key}: {len} bytes is more than one PUT may carry here");
        }
        // The same bytes already there (a run resumed after a crash): no second version.
        if let Ok(Some((n, sha))) = self.stored_sha256(key).await
            && n == len
            && sha == sha256
        {
            return Ok(());
        }
        let mut req = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_length(len as i64)
            .checksum_algorithm(ChecksumAlgorithm::Sha256)
            .checksum_sha256(B64.encode(sha256.0))
            .body(body);
        if self.locked {
            req = req
                .object_lock_mode(ObjectLockMode::Compliance)
                .object_lock_retain_until_date(DateTime::from_secs(retain_until.as_second()));
        }
        req.send()
            .await
            .map_err(short)
            .with_context(|| format!("cannot upload s3://{}/{key}", self.bucket))?;
        Ok(())
    }

    /// HEADs `key`: its size and stored SHA-256 as given, and in a locked bucket COMPLIANCE
    /// retention until `locked_until` at least (when given).
    pub async fn check_head(
        &self,
        key: &str,
        size: u64,
        sha256: Hash,
        locked_until: Option<Timestamp>,
    ) -> Result<()> {
        let where_ = format!("s3://{}/{key}", self.bucket);
        let head = self
            .head(key)
            .await
            .map_err(short)
            .with_context(|| format!("cannot find {where_}"))?;
        if head.content_length() != Some(size as i64) {
            bail!(
                "{where_}: {} bytes stored, {size} expected",
                head.content_length().unwrap_or(-1)
            );
        }
        let want = B64.encode(sha256.0);
        match head.checksum_sha256() {
            Some(got) if got == want => {}
            Some(got) => bail!("{where_}: stored SHA-256 {got}, {want} expected"),
            None => bail!("{where_}: the server keeps no SHA-256 for it"),
        }
        if self.locked
            && let Some(min) = locked_until
        {
            if head.object_lock_mode() != Some(&ObjectLockMode::Compliance) {
                bail!(
                    "{where_}: not under Object Lock COMPLIANCE ({:?})",
                    head.object_lock_mode()
                );
            }
            let until = head.object_lock_retain_until_date().map(DateTime::secs);
            if until.is_none_or(|u| u < min.as_second()) {
                bail!("{where_}: retained until {until:?}, wanted {min} at least");
            }
        }
        Ok(())
    }

    /// Reads `key` back: HEAD for size, stored SHA-256 and (in a locked bucket) COMPLIANCE mode
    /// with a retain-until date no earlier than asked; then GET, hashing the body, so a server
    /// (or someone on the path) that answers HEAD without holding the bytes is caught before
    /// anything local is deleted.
    pub async fn check(
        &self,
        key: &str,
        size: u64,
        sha256: Hash,
        retain_until: Timestamp,
    ) -> Result<()> {
        self.check_head(key, size, sha256, Some(retain_until))
            .await?;
        let (where_, mut body) = self.get_object(key).await?;
        let mut hasher = <sha2::Sha256 as sha2::Digest>::new();
        let mut got_len = 0u64;
        while let Some(chunk) = body
            .try_next()
            .await
            .with_context(|| format!("cannot read back {where_}"))?
        {
            got_len += chunk.len() as u64;
            sha2::Digest::update(&mut hasher, &chunk);
        }
        if got_len != size || Hash::from_hasher(hasher) != sha256 {
            bail!("{where_}: the bytes read back ({got_len}) are not the bytes sent ({size})");
        }
        Ok(())
    }

    /// Starts reading `key` from byte `start` to its end: its address and its body.
    pub async fn get_from(&self, key: &str, start: u64) -> Result<(String, ByteStream)> {
        self.get_object_from(key, Some(start)).await
    }

    /// Starts reading `key`: its address (for messages) and its body.
    async fn get_object(&self, key: &str) -> Result<(String, ByteStream)> {
        self.get_object_from(key, None).await
    }

    /// Starts reading `key`, whole or from byte `start` on.
    async fn get_object_from(&self, key: &str, start: Option<u64>) -> Result<(String, ByteStream)> {
        let where_ = format!("s3://{}/{key}", self.bucket);
        let obj = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .set_range(start.map(|s| format!("bytes={s}-")))
            .send()
            .await
            .map_err(short)
            .with_context(|| match start {
                Some(s) => format!("cannot read {where_} from byte {s}"),
                None => format!("cannot read {where_}"),
            })?;
        Ok((where_, obj.body))
    }

    /// Downloads `key` into `out` (streamed), returning its SHA-256.
    pub async fn get_to(&self, key: &str, out: &mut tokio::fs::File) -> Result<Hash> {
        let (where_, mut body) = self.get_object(key).await?;
        let mut hasher = <sha2::Sha256 as sha2::Digest>::new();
        while let Some(chunk) = body
            .try_next()
            .await
            .with_context(|| format!("cannot read {where_}"))?
        {
            sha2::Digest::update(&mut hasher, &chunk);
            out.write_all(&chunk).await?;
        }
        out.flush().await?;
        Ok(Hash::from_hasher(hasher))
    }

    /// Downloads a small object (a manifest) whole: at most `max` bytes.
    pub async fn get(&self, key: &str, max: u64) -> Result<Vec<u8>> {
        let (where_, mut body) = self.get_object(key).await?;
        let mut data = Vec::new();
        while let Some(chunk) = body
            .try_next()
            .await
            .with_context(|| format!("cannot read {where_}"))?
        {
            if (data.len() + chunk.len()) as u64 > max {
                bail!("{where_} is larger than {max} bytes: not read");
            }
            data.extend_from_slice(&chunk);
        }
        Ok(data)
    }
}

/// Runs S3 work from synchronous code (checkpoint anchoring happens under the ledger lock, in
/// blocking code): a runtime of its own on a helper thread, so it works inside or outside tokio.
fn block_on<T: Send>(work: impl std::future::Future<Output = Result<T>> + Send) -> Result<T> {
    std::thread::scope(|s| {
        s.spawn(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("cannot start a runtime for S3")?
                .block_on(work)
        })
        .join()
        .map_err(|_| anyhow::anyhow!("the S3 thread panicked"))?
    })
}

/// `s3://bucket/prefix` → (`bucket/prefix` for [`S3Target::open`], the key prefix with a
/// trailing `/`, or empty).
fn split_url(url: &str) -> Result<(&str, String)> {
    let rest = url
        .strip_prefix("s3://")
        .ok_or_else(|| anyhow::anyhow!("{url}: not an s3:// URL"))?;
    let prefix = rest
        .split_once('/')
        .map(|(_, p)| p.trim_matches('/'))
        .filter(|p| !p.is_empty())
        .map(|p| format!("{p}/"))
        .unwrap_or_default();
    Ok((rest, prefix))
}

/// Copies a signed checkpoint to an `s3://` anchor as `<prefix>/<origin dir>/<name>`, once
/// (an object already there must have the same bytes), under Object Lock for `lock_days`.
pub fn anchor_put(
    url: &str,
    cfg: &S3Config,
    origin_dir: &str,
    name: &str,
    note: &[u8],
    lock_days: u32,
) -> Result<String> {
    block_on(async {
        let (rest, prefix) = split_url(url)?;
        let target = S3Target::open(rest, cfg).await?;
        let key = format!("{prefix}{origin_dir}/{name}");
        let sha = Hash::of(note);
        // A checkpoint is a few hundred bytes; anything much larger is not one of ours.
        match target.get(&key, 1 << 20).await {
            Ok(existing) if Hash::of(&existing) == sha => return Ok(key),
            Ok(_) => bail!(
                "s3://{}/{key} exists with other content: not overwriting it",
                target.bucket
            ),
            Err(_) => {}
        }
        let until = Timestamp::now()
            .checked_add(jiff::SignedDuration::from_hours(24 * i64::from(lock_days)))
            .unwrap_or_else(|_| Timestamp::now());
        target.put_bytes(&key, note, sha, until).await?;
        target.check(&key, note.len() as u64, sha, until).await?;
        Ok(key)
    })
}

/// One version of an object (or a delete marker), as `ListObjectVersions` reports it.
#[derive(Debug, Clone)]
pub struct Version {
    pub key: String,
    pub version_id: Option<String>,
    pub size: u64,
    pub etag: Option<String>,
    pub delete_marker: bool,
}

/// Objects larger than this are not read as checkpoints (a checkpoint is a few hundred bytes).
pub const MAX_CHECKPOINT_OBJECT: u64 = 64 << 10;

impl S3Target {
    /// Every version and delete marker under `prefix`, of keys after `after` (all when `None`),
    /// in key order.
    pub async fn versions(&self, prefix: &str, after: Option<&str>) -> Result<Vec<Version>> {
        let mut out = Vec::new();
        let mut key_marker = after.map(str::to_string);
        let mut version_marker: Option<String> = None;
        loop {
            let page = self
                .client
                .list_object_versions()
                .bucket(&self.bucket)
                .prefix(prefix)
                .set_key_marker(key_marker.take())
                .set_version_id_marker(version_marker.take())
                .send()
                .await
                .map_err(short)
                .with_context(|| {
                    format!(
                        "cannot list the versions under s3://{}/{prefix}",
                        self.bucket
                    )
                })?;
            for v in page.versions() {
                if let Some(key) = v.key() {
                    out.push(Version {
                        key: key.to_string(),
                        version_id: v.version_id().map(str::to_string),
                        size: v.size().unwrap_or(0).max(0) as u64,
                        etag: v.e_tag().map(str::to_string),
                        delete_marker: false,
                    });
                }
            }
            for d in page.delete_markers() {
                if let Some(key) = d.key() {
                    out.push(Version {
                        key: key.to_string(),
                        version_id: d.version_id().map(str::to_string),
                        size: 0,
                        etag: None,
                        delete_marker: true,
                    });
                }
            }
            if page.is_truncated() != Some(true) {
                break;
            }
            key_marker = page.next_key_marker().map(str::to_string);
            version_marker = page.next_version_id_marker().map(str::to_string);
            if key_marker.is_none() {
                break;
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    /// Reads one version of a small object whole; refuses one larger than `limit`.
    pub async fn get_version(
        &self,
        key: &str,
        version: Option<&str>,
        limit: u64,
    ) -> Result<Vec<u8>> {
        let where_ = format!("s3://{}/{key}", self.bucket);
        let obj = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .set_version_id(version.filter(|v| *v != "null").map(str::to_string))
            .send()
            .await
            .map_err(short)
            .with_context(|| format!("cannot read {where_}"))?;
        if obj
            .content_length()
            .is_some_and(|n| n < 0 || n as u64 > limit)
        {
            bail!(
                "{where_}: {:?} bytes, more than the {limit} expected",
                obj.content_length()
            );
        }
        let mut body = obj.body;
        let mut data = Vec::new();
        while let Some(chunk) = body
            .try_next()
            .await
            .with_context(|| format!("cannot read {where_}"))?
        {
            data.extend_from_slice(&chunk);
            if data.len() as u64 > limit {
                bail!("{where_}: more than the {limit} bytes expected");
            }
        }
        Ok(data)
    }
}

/// One object name in an anchor: the bytes of each of its versions, and its delete markers.
#[derive(Debug, Default)]
pub struct AnchorObject {
    pub name: String,
    /// Each version's bytes (or why it could not be read).
    pub versions: Vec<Result<Vec<u8>, String>>,
    pub delete_markers: usize,
}

/// Everything an `s3://` anchor holds for one origin, every version of every object, in name
/// order: only names after `after` when given (the store already holds the checkpoints up to it).
pub fn anchor_objects(
    url: &str,
    cfg: &S3Config,
    origin_dir: &str,
    after: Option<&str>,
) -> Result<Vec<AnchorObject>> {
    block_on(async {
        let (rest, prefix) = split_url(url)?;
        let target = S3Target::open(rest, cfg).await?;
        let dir = format!("{prefix}{origin_dir}/");
        let after = after.map(|a| format!("{dir}{a}"));
        let mut out: Vec<AnchorObject> = Vec::new();
        for v in target.versions(&dir, after.as_deref()).await? {
            let name = v.key.strip_prefix(&dir).unwrap_or(&v.key).to_string();
            if out.last().is_none_or(|o| o.name != name) {
                out.push(AnchorObject {
                    name: name.clone(),
                    ..Default::default()
                });
            }
            let Some(obj) = out.last_mut() else { continue };
            if v.delete_marker {
                obj.delete_markers += 1;
            } else if v.size > MAX_CHECKPOINT_OBJECT {
                obj.versions.push(Err(format!(
                    "{} bytes: too large to be a checkpoint",
                    v.size
                )));
            } else {
                obj.versions.push(
                    target
                        .get_version(&v.key, v.version_id.as_deref(), MAX_CHECKPOINT_OBJECT)
                        .await
                        .map_err(|e| format!("{e:#}")),
                );
            }
        }
        Ok(out)
    })
}
