//! Open files for dav-server: reads stream ranges of the stored content; writes stream into the
//! content store and commit a version only when the request body arrived whole (`flush`). A
//! request dropped midway commits nothing; its chunks are collected as garbage.

use std::io::SeekFrom;
use std::sync::{Mutex, PoisonError};
use std::time::SystemTime;

use bytes::{Buf, Bytes};
use dav_server::fs::{DavFile, DavMetaData, FsError, FsFuture};
use futures::channel::{mpsc, oneshot};
use futures::{FutureExt, SinkExt, StreamExt};
use oppidum_store::ByteStream;
use tokio::task::JoinHandle;

use super::fs::{Meta, fs_error};
use crate::Drive;
use crate::error::DriveError;
use crate::files::{Node, PendingUpload};

pub(crate) struct ReadFile {
    drive: Drive,
    node: Node,
    position: u64,
    /// The open content stream (a mutex only to make the file `Sync`, never contended).
    stream: Mutex<Option<ByteStream>>,
    buffered: Bytes,
}

impl std::fmt::Debug for ReadFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadFile").field("node", &self.node.id).field("position", &self.position).finish()
    }
}

impl ReadFile {
    pub(crate) fn new(drive: Drive, node: Node) -> Self {
        Self { drive, node, position: 0, stream: Mutex::new(None), buffered: Bytes::new() }
    }

    fn size(&self) -> u64 {
        u64::try_from(self.node.size).unwrap_or(0)
    }

    async fn read(&mut self, count: usize) -> Result<Bytes, FsError> {
        let size = self.size();
        if self.position >= size || count == 0 {
            return Ok(Bytes::new());
        }
        if self.stream.get_mut().unwrap_or_else(PoisonError::into_inner).is_none() {
            let stream = self.drive.read_node(&self.node, Some(self.position..size)).await.map_err(fs_error)?;
            *self.stream.get_mut().unwrap_or_else(PoisonError::into_inner) = Some(stream);
        }
        if self.buffered.is_empty()
            && let Some(stream) = self.stream.get_mut().unwrap_or_else(PoisonError::into_inner).as_mut()
        {
            match stream.next().await {
                Some(Ok(bytes)) => self.buffered = bytes,
                Some(Err(err)) => {
                    tracing::error!(error = %err, node = %self.node.id, "reading drive content failed");
                    return Err(FsError::GeneralFailure);
                }
                None => return Ok(Bytes::new()),
            }
        }
        let take = count.min(self.buffered.len());
        let out = self.buffered.split_to(take);
        self.position += take as u64;
        Ok(out)
    }
}

impl DavFile for ReadFile {
    fn metadata(&mut self) -> FsFuture<'_, Box<dyn DavMetaData>> {
        let meta: Box<dyn DavMetaData> = Box::new(Meta::of(&self.node));
        async move { Ok(meta) }.boxed()
    }

    fn write_buf(&mut self, _buf: Box<dyn Buf + Send>) -> FsFuture<'_, ()> {
        async { Err(FsError::Forbidden) }.boxed()
    }

    fn write_bytes(&mut self, _buf: Bytes) -> FsFuture<'_, ()> {
        async { Err(FsError::Forbidden) }.boxed()
    }

    fn read_bytes(&mut self, count: usize) -> FsFuture<'_, Bytes> {
        self.read(count).boxed()
    }

    fn seek(&mut self, pos: SeekFrom) -> FsFuture<'_, u64> {
        let size = self.size();
        let target = match pos {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => size.checked_add_signed(d),
            SeekFrom::Current(d) => self.position.checked_add_signed(d),
        };
        async move {
            let target = target.ok_or(FsError::GeneralFailure)?;
            if target != self.position {
                self.position = target;
                *self.stream.get_mut().unwrap_or_else(PoisonError::into_inner) = None;
                self.buffered = Bytes::new();
            }
            Ok(target)
        }
        .boxed()
    }

    fn flush(&mut self) -> FsFuture<'_, ()> {
        async { Ok(()) }.boxed()
    }
}

type Chunk = Result<Bytes, std::io::Error>;

/// A body not larger than this is held until the request ends and stored right there, in the
/// request's task: small files need no storing task, channel or hand-over between threads.
const HELD_MAX: usize = crate::content::INLINE_MAX;

/// The start of an upload whose body is still small enough to hold.
struct Held {
    drive: Drive,
    pending: PendingUpload,
    pieces: Vec<Bytes>,
}

/// A file being written. Its body is held while small; beyond [`HELD_MAX`] it goes through a
/// bounded channel to a task that stores chunks, then waits for the go-ahead that the request
/// completed before committing the version.
pub(crate) struct WriteFile {
    held: Option<Held>,
    sender: Option<mpsc::Sender<Chunk>>,
    commit: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<Node, DriveError>>>,
    written: u64,
    done: Option<Node>,
}

impl std::fmt::Debug for WriteFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteFile").field("written", &self.written).finish()
    }
}

impl WriteFile {
    pub(crate) fn start(drive: Drive, pending: PendingUpload) -> Self {
        let held = Held { drive, pending, pieces: Vec::new() };
        Self { held: Some(held), sender: None, commit: None, task: None, written: 0, done: None }
    }

    /// Starts the storing task, which the body outgrew holding.
    fn launch(&mut self, drive: Drive, pending: PendingUpload) {
        let (sender, receiver) = mpsc::channel::<Chunk>(4);
        let (commit, go) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let manifest = drive.ingest(&pending, receiver.boxed()).await?;
            match go.await {
                Ok(()) => drive.commit_upload(pending, &manifest).await.map(|(node, _)| node),
                // The request ended before its body did: commit nothing.
                Err(_) => Err(DriveError::Upload(std::io::Error::other("the upload was interrupted"))),
            }
        });
        (self.sender, self.commit, self.task) = (Some(sender), Some(commit), Some(task));
    }

    /// The task's outcome, once it has ended.
    async fn outcome(&mut self) -> Result<Node, FsError> {
        let task = self.task.take().ok_or(FsError::GeneralFailure)?;
        match task.await {
            Ok(outcome) => outcome.map_err(fs_error),
            Err(err) => {
                tracing::error!(error = %err, "WebDAV upload task failed");
                Err(FsError::GeneralFailure)
            }
        }
    }

    async fn send(&mut self, bytes: Bytes) -> Result<(), FsError> {
        // While the body is held, what was written is what is held.
        self.written += bytes.len() as u64;
        if let Some(held) = self.held.as_mut() {
            if self.written <= HELD_MAX as u64 {
                held.pieces.push(bytes);
                return Ok(());
            }
            if let Some(Held { drive, pending, pieces }) = self.held.take() {
                self.launch(drive, pending);
                for piece in pieces {
                    self.forward(piece).await?;
                }
            }
        }
        self.forward(bytes).await
    }

    /// Hands a piece of the body to the storing task.
    async fn forward(&mut self, bytes: Bytes) -> Result<(), FsError> {
        let Some(sender) = self.sender.as_mut() else { return Err(FsError::GeneralFailure) };
        if sender.send(Ok(bytes)).await.is_err() {
            // The storing task stopped early (size limit, quota, storage error): report why.
            self.sender = None;
            self.commit = None;
            return Err(self.outcome().await.err().unwrap_or(FsError::GeneralFailure));
        }
        Ok(())
    }

    async fn finish(&mut self) -> Result<(), FsError> {
        if self.done.is_some() {
            return Ok(());
        }
        if let Some(Held { drive, pending, pieces }) = self.held.take() {
            let body = futures::stream::iter(pieces.into_iter().map(Ok)).boxed();
            let manifest = drive.ingest(&pending, body).await.map_err(fs_error)?;
            let (node, _) = drive.commit_upload(pending, &manifest).await.map_err(fs_error)?;
            self.done = Some(node);
            return Ok(());
        }
        self.sender = None;
        if let Some(commit) = self.commit.take() {
            let _ = commit.send(());
        }
        self.done = Some(self.outcome().await?);
        Ok(())
    }
}

impl DavFile for WriteFile {
    fn metadata(&mut self) -> FsFuture<'_, Box<dyn DavMetaData>> {
        let meta: Box<dyn DavMetaData> = match &self.done {
            Some(node) => Box::new(Meta::of(node)),
            None => Box::new(Meta {
                len: self.written,
                modified: SystemTime::now(),
                created: SystemTime::now(),
                dir: false,
                etag: None,
            }),
        };
        async move { Ok(meta) }.boxed()
    }

    fn write_buf(&mut self, mut buf: Box<dyn Buf + Send>) -> FsFuture<'_, ()> {
        let bytes = buf.copy_to_bytes(buf.remaining());
        self.send(bytes).boxed()
    }

    fn write_bytes(&mut self, buf: Bytes) -> FsFuture<'_, ()> {
        self.send(buf).boxed()
    }

    fn read_bytes(&mut self, _count: usize) -> FsFuture<'_, Bytes> {
        async { Err(FsError::Forbidden) }.boxed()
    }

    fn seek(&mut self, pos: SeekFrom) -> FsFuture<'_, u64> {
        // Versions are written whole: no partial updates.
        let at_start = matches!(pos, SeekFrom::Start(0)) && self.written == 0;
        async move { if at_start { Ok(0) } else { Err(FsError::NotImplemented) } }.boxed()
    }

    fn flush(&mut self) -> FsFuture<'_, ()> {
        self.finish().boxed()
    }
}
