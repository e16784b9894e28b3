//! The artifact store: every artifact is addressed by URL and read or written through
//! `object_store` (`file://`, `s3://`, `gs://`, `az://`, `memory://`, or a plain path).
//!
//! **Atomicity.** Each object write is atomic on every backend (a local write goes to a staging
//! file and is renamed; S3/GCS/Azure publish an object whole). An *artifact* is a folder of
//! files plus a `_manifest.json` written last: the manifest is the commit point, so a reader
//! that finds no manifest treats the artifact as absent, and a reader that finds one verifies
//! each file's SHA-256 against it. A step killed mid-write leaves no visible artifact.
//!
//! **API boundary:** the manifest format ([`Manifest`]) and the run layout ([`layout`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Errors of the store, each naming the URL involved.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("invalid store URL {url:?}: {reason}")]
    Url { url: String, reason: String },
    #[error("{url}: not found")]
    NotFound { url: String },
    #[error("{url}: {message}")]
    Backend { url: String, message: String },
    #[error("{url}: corrupt artifact: {reason}")]
    Corrupt { url: String, reason: String },
    /// The machine refused the operation (no space left, permission denied, a read-only file
    /// system): retrying will not help until someone acts.
    #[error("{url}: {message}")]
    Refused { url: String, message: String },
}

impl StoreError {
    /// Whether retrying the operation could help (an outage, a timeout), as opposed to a missing
    /// object, a corrupt artifact, a bad URL or a refusal by the machine.
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Backend { .. })
    }
}

/// Whether an I/O error is the machine refusing (no space, quota, permission, read-only file
/// system), which no retry fixes.
pub fn refused_by_the_machine(e: &std::io::Error) -> bool {
    use nix::errno::Errno;
    e.raw_os_error().is_some_and(|code| {
        [Errno::ENOSPC, Errno::EDQUOT, Errno::EACCES, Errno::EPERM, Errno::EROFS].contains(&Errno::from_raw(code))
    })
}

/// Whether an object store error was caused by the machine refusing (see
/// [`refused_by_the_machine`]), anywhere in its chain of causes.
fn refused(e: &object_store::Error) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        if c.downcast_ref::<std::io::Error>().is_some_and(refused_by_the_machine) {
            return true;
        }
        cause = c.source();
    }
    false
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A location in an object store: a backend plus a prefix, and the URL that names it.
#[derive(Clone)]
pub struct Store {
    inner: Arc<dyn ObjectStore>,
    prefix: Path,
    url: String,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("url", &self.url).finish()
    }
}

/// Version token of an object, for conditional updates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Version(UpdateVersion);

fn memory_stores() -> &'static Mutex<HashMap<String, Arc<InMemory>>> {
    static STORES: OnceLock<Mutex<HashMap<String, Arc<InMemory>>>> = OnceLock::new();
    STORES.get_or_init(|| Mutex::new(HashMap::new()))
}

fn url_error(url: &str, reason: impl Into<String>) -> StoreError {
    StoreError::Url { url: url.to_string(), reason: reason.into() }
}

/// Reads one object named by its full URL or local path (`s3://bucket/a/contract.yaml`,
/// `contracts/fleet.yaml`).
pub async fn read_location(location: &str) -> Result<Bytes> {
    let loc = location.trim();
    let (dir, name) = match loc.rsplit_once('/') {
        Some(("", name)) => ("/", name),
        Some((dir, name)) => (dir, name),
        None => (".", loc),
    };
    if name.is_empty() || dir.ends_with(':') || dir.ends_with(":/") {
        return Err(url_error(location, "expected the URL or path of a file"));
    }
    Store::open(dir)?.get(name).await
}

impl Store {
    /// Opens a URL. Plain paths (absolute or relative) are local folders. `memory://NAME/...`
    /// stores are shared by name within the process. Cloud credentials and endpoints come from
    /// the usual environment variables (`AWS_*`, `GOOGLE_*`, `AZURE_*`).
    pub fn open(url: &str) -> Result<Store> {
        Self::open_with(url, &[])
    }

    /// Like [`Store::open`], with backend options on top of the environment, e.g.
    /// `("aws_endpoint", "http://127.0.0.1:8333")` (object_store's configuration keys).
    pub fn open_with(url: &str, options: &[(&str, &str)]) -> Result<Store> {
        let url = url.trim();
        if url.is_empty() {
            return Err(url_error(url, "empty"));
        }
        let Some((scheme, rest)) = url.split_once("://") else {
            return Self::open_local(url, url);
        };
        let (bucket, key) = match rest.split_once('/') {
            Some((b, k)) => (b, k.trim_matches('/')),
            None => (rest, ""),
        };
        let prefix = Path::parse(key).map_err(|e| url_error(url, e.to_string()))?;
        let inner: Arc<dyn ObjectStore> = match scheme {
            "file" => return Self::open_local(&format!("/{}", rest.trim_start_matches('/')), url),
            "memory" => {
                let mut map = memory_stores().lock().map_err(|_| url_error(url, "memory store registry poisoned"))?;
                map.entry(bucket.to_string()).or_insert_with(|| Arc::new(InMemory::new())).clone()
            }
            "s3" | "s3a" => {
                let mut b = object_store::aws::AmazonS3Builder::from_env().with_bucket_name(bucket);
                for (k, v) in options {
                    let key = k.parse().map_err(|e: object_store::Error| url_error(url, e.to_string()))?;
                    b = b.with_config(key, *v);
                }
                Arc::new(b.build().map_err(|e| url_error(url, e.to_string()))?)
            }
            "gs" => Arc::new(
                object_store::gcp::GoogleCloudStorageBuilder::from_env()
                    .with_bucket_name(bucket)
                    .build()
                    .map_err(|e| url_error(url, e.to_string()))?,
            ),
            "az" | "abfs" => Arc::new(
                object_store::azure::MicrosoftAzureBuilder::from_env()
                    .with_container_name(bucket)
                    .build()
                    .map_err(|e| url_error(url, e.to_string()))?,
            ),
            other => {
                return Err(url_error(
                    url,
                    format!("unsupported scheme {other:?} (expected file, s3, gs, az or memory)"),
                ));
            }
        };
        if bucket.is_empty() {
            return Err(url_error(url, "missing bucket (or memory store) name"));
        }
        let url = format!("{scheme}://{bucket}{}", if key.is_empty() { String::new() } else { format!("/{key}") });
        Ok(Store { inner, prefix, url })
    }

    fn open_local(path: &str, shown: &str) -> Result<Store> {
        let p = std::path::Path::new(path);
        std::fs::create_dir_all(p).map_err(|e| url_error(shown, format!("cannot create folder: {e}")))?;
        let abs = std::fs::canonicalize(p).map_err(|e| url_error(shown, e.to_string()))?;
        let fs =
            object_store::local::LocalFileSystem::new_with_prefix(&abs).map_err(|e| url_error(shown, e.to_string()))?;
        Ok(Store { inner: Arc::new(fs), prefix: Path::default(), url: format!("file://{}", abs.display()) })
    }

    /// The URL of this location.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The URL of `rel` below this location.
    pub fn url_of(&self, rel: &str) -> String {
        let rel = rel.trim_matches('/');
        if rel.is_empty() { self.url.clone() } else { format!("{}/{rel}", self.url) }
    }

    /// A sub-location.
    pub fn join(&self, rel: &str) -> Store {
        let rel = rel.trim_matches('/');
        if rel.is_empty() {
            return self.clone();
        }
        let mut prefix = self.prefix.clone();
        for part in rel.split('/').filter(|p| !p.is_empty()) {
            prefix = prefix.clone().join(part);
        }
        Store { inner: self.inner.clone(), prefix, url: self.url_of(rel) }
    }

    fn path(&self, rel: &str) -> Path {
        let mut p = self.prefix.clone();
        for part in rel.split('/').filter(|p| !p.is_empty()) {
            p = p.clone().join(part);
        }
        p
    }

    fn backend(&self, rel: &str, e: object_store::Error) -> StoreError {
        match e {
            object_store::Error::NotFound { .. } => StoreError::NotFound { url: self.url_of(rel) },
            other if refused(&other) => StoreError::Refused { url: self.url_of(rel), message: other.to_string() },
            other => StoreError::Backend { url: self.url_of(rel), message: other.to_string() },
        }
    }

    /// Reads a whole object.
    pub async fn get(&self, rel: &str) -> Result<Bytes> {
        let res = self.inner.get(&self.path(rel)).await.map_err(|e| self.backend(rel, e))?;
        res.bytes().await.map_err(|e| self.backend(rel, e))
    }

    /// Reads a whole object if present, with its version for a later conditional update.
    pub async fn get_versioned(&self, rel: &str) -> Result<Option<(Bytes, Version)>> {
        match self.inner.get(&self.path(rel)).await {
            Ok(res) => {
                let version =
                    Version(UpdateVersion { e_tag: res.meta.e_tag.clone(), version: res.meta.version.clone() });
                let bytes = res.bytes().await.map_err(|e| self.backend(rel, e))?;
                Ok(Some((bytes, version)))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.backend(rel, e)),
        }
    }

    /// Whether an object exists.
    pub async fn exists(&self, rel: &str) -> Result<bool> {
        match self.inner.head(&self.path(rel)).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(self.backend(rel, e)),
        }
    }

    /// Size and last-modified time (RFC 3339) of an object.
    pub async fn head_meta(&self, rel: &str) -> Result<(u64, String)> {
        let m = self.inner.head(&self.path(rel)).await.map_err(|e| self.backend(rel, e))?;
        Ok((m.size, m.last_modified.to_rfc3339()))
    }

    /// Writes an object atomically, replacing any previous one.
    pub async fn put(&self, rel: &str, bytes: Bytes) -> Result<()> {
        self.inner
            .put(&self.path(rel), PutPayload::from_bytes(bytes))
            .await
            .map(|_| ())
            .map_err(|e| self.backend(rel, e))
    }

    /// Writes an object only if none exists; returns `false` (and writes nothing) otherwise.
    /// Exactly one of several racing writers gets `true`.
    pub async fn create(&self, rel: &str, bytes: Bytes) -> Result<bool> {
        let opts = PutOptions { mode: PutMode::Create, ..Default::default() };
        match self.inner.put_opts(&self.path(rel), PutPayload::from_bytes(bytes), opts).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
            Err(e) => Err(self.backend(rel, e)),
        }
    }

    /// Replaces an object only if it is still at `expected` (compare-and-swap); returns `false`
    /// if another writer got there first. Not all backends support it (the local file system
    /// does not); [`Store::create`] on fresh names works everywhere.
    pub async fn update(&self, rel: &str, bytes: Bytes, expected: &Version) -> Result<bool> {
        let opts = PutOptions { mode: PutMode::Update(expected.0.clone()), ..Default::default() };
        match self.inner.put_opts(&self.path(rel), PutPayload::from_bytes(bytes), opts).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::Precondition { .. } | object_store::Error::AlreadyExists { .. }) => Ok(false),
            Err(e) => Err(self.backend(rel, e)),
        }
    }

    /// Deletes an object (absent is not an error).
    pub async fn delete(&self, rel: &str) -> Result<()> {
        match self.inner.delete(&self.path(rel)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.backend(rel, e)),
        }
    }

    /// Paths (relative to this location) of every object below `rel`, sorted.
    pub async fn list(&self, rel: &str) -> Result<Vec<String>> {
        let prefix = self.path(rel);
        let metas: Vec<object_store::ObjectMeta> =
            self.inner.list(Some(&prefix)).try_collect().await.map_err(|e| self.backend(rel, e))?;
        let base = self.prefix.as_ref();
        let mut out: Vec<String> = metas
            .into_iter()
            .map(|m| {
                let full = m.location.as_ref().to_string();
                match full.strip_prefix(base) {
                    Some(r) if !base.is_empty() => r.trim_start_matches('/').to_string(),
                    _ => full,
                }
            })
            .collect();
        out.sort();
        Ok(out)
    }

    /// Writes the files of an artifact, then its manifest (the commit point). Returns the
    /// manifest. Re-writing an artifact replaces it whole.
    pub async fn write_artifact(
        &self,
        kind: &str,
        producer: &str,
        files: Vec<(String, Bytes)>,
        metadata: serde_json::Value,
    ) -> Result<Manifest> {
        // An old manifest must not vouch for new files while they are being written.
        self.delete(MANIFEST).await?;
        let mut entries = Vec::with_capacity(files.len());
        for (name, bytes) in files {
            entries.push(FileEntry { name: name.clone(), size: bytes.len() as u64, sha256: sha256_hex(&bytes) });
            self.put(&name, bytes).await?;
        }
        let manifest = Manifest {
            schema_version: MANIFEST_VERSION,
            kind: kind.to_string(),
            producer: producer.to_string(),
            created_at: crate::data::time::now_rfc3339(),
            files: entries,
            metadata,
        };
        let json = serde_json::to_vec_pretty(&manifest)
            .map_err(|e| StoreError::Backend { url: self.url_of(MANIFEST), message: e.to_string() })?;
        self.put(MANIFEST, Bytes::from(json)).await?;
        Ok(manifest)
    }

    /// Reads an artifact's manifest; `NotFound` if the artifact is absent or was never committed.
    pub async fn read_manifest(&self) -> Result<Manifest> {
        let bytes = self.get(MANIFEST).await?;
        let m: Manifest = serde_json::from_slice(&bytes)
            .map_err(|e| StoreError::Corrupt { url: self.url_of(MANIFEST), reason: e.to_string() })?;
        if m.schema_version > MANIFEST_VERSION {
            return Err(StoreError::Corrupt {
                url: self.url_of(MANIFEST),
                reason: format!("manifest version {} is newer than this build ({MANIFEST_VERSION})", m.schema_version),
            });
        }
        Ok(m)
    }

    /// Checks every file of a committed artifact against its manifest (size and SHA-256), reading
    /// each as a stream: nothing is held whole in memory. `Corrupt` names the first file that
    /// differs.
    pub async fn verify_artifact(&self, manifest: &Manifest) -> Result<()> {
        for entry in &manifest.files {
            let res = self.inner.get(&self.path(&entry.name)).await.map_err(|e| self.backend(&entry.name, e))?;
            let mut stream = res.into_stream();
            let mut h = Sha256::new();
            let mut size = 0u64;
            while let Some(chunk) = stream.try_next().await.map_err(|e| self.backend(&entry.name, e))? {
                size += chunk.len() as u64;
                h.update(&chunk);
            }
            let got = hex::encode(h.finalize());
            if got != entry.sha256 || size != entry.size {
                return Err(StoreError::Corrupt {
                    url: self.url_of(&entry.name),
                    reason: format!(
                        "content does not match the manifest (sha256 {got}, {size} bytes; expected {}, {} bytes)",
                        entry.sha256, entry.size
                    ),
                });
            }
        }
        Ok(())
    }

    /// Removes the staging files an interrupted write left below this location, and returns
    /// their paths. A local write goes to `<name>#<n>` and is renamed when complete, so a writer
    /// killed mid-write (SIGKILL, OOM) leaves `<name>#<n>` behind, invisible to listings and
    /// never removed otherwise. Only files of that pattern go: an object's own name never has a
    /// raw `#` on disk (object_store writes it as `%23`), so committed artifacts are not touched.
    /// Call it only while nothing writes below this location. Object stores publish an object whole; an upload they did not finish is theirs
    /// to expire (an S3 lifecycle rule's AbortIncompleteMultipartUpload), so there it does
    /// nothing.
    pub async fn clean_staging(&self) -> Result<Vec<String>> {
        let Some(dir) = self.url.strip_prefix("file://").map(std::path::PathBuf::from) else {
            return Ok(Vec::new());
        };
        let url = self.url.clone();
        let walk = move || -> std::io::Result<Vec<String>> {
            let mut removed = Vec::new();
            let mut stack = vec![dir];
            while let Some(d) = stack.pop() {
                let entries = match std::fs::read_dir(&d) {
                    Ok(e) => e,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e),
                };
                for entry in entries {
                    let entry = entry?;
                    let path = entry.path();
                    if entry.file_type()?.is_dir() {
                        stack.push(path);
                        continue;
                    }
                    let name = entry.file_name().to_string_lossy().into_owned();
                    let staging = name
                        .rsplit_once('#')
                        .is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
                    if staging {
                        std::fs::remove_file(&path)?;
                        removed.push(path.display().to_string());
                    }
                }
            }
            Ok(removed)
        };
        tokio::task::spawn_blocking(walk)
            .await
            .map_err(|e| StoreError::Backend { url: url.clone(), message: e.to_string() })?
            .map_err(|e| {
                let message = format!("cleaning staging files: {e}");
                if refused_by_the_machine(&e) {
                    StoreError::Refused { url, message }
                } else {
                    StoreError::Backend { url, message }
                }
            })
    }

    /// Reads one file of a committed artifact and checks it against the manifest.
    pub async fn read_artifact_file(&self, manifest: &Manifest, name: &str) -> Result<Bytes> {
        let entry = manifest.files.iter().find(|f| f.name == name).ok_or_else(|| StoreError::Corrupt {
            url: self.url().to_string(),
            reason: format!("the manifest lists no file {name:?}"),
        })?;
        let bytes = self.get(name).await?;
        let got = sha256_hex(&bytes);
        if got != entry.sha256 || bytes.len() as u64 != entry.size {
            return Err(StoreError::Corrupt {
                url: self.url_of(name),
                reason: format!(
                    "content does not match the manifest (sha256 {got}, {} bytes; expected {}, {} bytes)",
                    bytes.len(),
                    entry.sha256,
                    entry.size
                ),
            });
        }
        Ok(bytes)
    }
}

/// Name of the manifest object inside an artifact folder.
pub const MANIFEST: &str = "_manifest.json";
pub const MANIFEST_VERSION: u32 = 1;

/// One file of an artifact.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    pub name: String,
    pub size: u64,
    pub sha256: String,
}

/// The commit record of an artifact.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub schema_version: u32,
    /// KFP-style artifact type: `Dataset`, `Model`, `Metrics`, ...
    pub kind: String,
    /// The binary and version that wrote it.
    pub producer: String,
    pub created_at: String,
    pub files: Vec<FileEntry>,
    #[serde(default)]
    pub metadata: serde_json::Value,
}

impl Manifest {
    /// Content hash of the artifact: SHA-256 over the sorted (name, sha256) pairs. Independent of
    /// when and by whom it was written, so it keys caches and lineage.
    pub fn content_hash(&self) -> String {
        let mut files: Vec<(&str, &str)> = self.files.iter().map(|f| (f.name.as_str(), f.sha256.as_str())).collect();
        files.sort();
        let mut h = Sha256::new();
        for (name, sha) in files {
            h.update(name.as_bytes());
            h.update([0]);
            h.update(sha.as_bytes());
            h.update([b'\n']);
        }
        hex::encode(h.finalize())
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Where things live below a store root (see ARCHITECTURE.md, "Artifact layout").
pub mod layout {
    /// Folder of one pipeline run.
    pub fn run(run_id: &str) -> String {
        format!("runs/{run_id}")
    }
    /// Artifact folder of a step output within a run.
    pub fn step_output(run_id: &str, step: &str, output: &str) -> String {
        format!("runs/{run_id}/{step}/{output}")
    }
    /// Model registry root.
    pub const REGISTRY: &str = "registry";
}
