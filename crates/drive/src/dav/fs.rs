//! A drive seen as a WebDAV file system by dav-server: paths resolve to nodes; writes become
//! versions; deletes go to the trash; dead properties live with the node.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use dav_server::davpath::DavPath;
use dav_server::fs::{
    DavDirEntry, DavFile, DavFileSystem, DavMetaData, DavProp, FsError, FsFuture, FsStream, OpenOptions, ReadDirMeta,
};
use futures::FutureExt;
use http::StatusCode;

use super::file::{ReadFile, WriteFile};
use crate::Drive;
use crate::error::DriveError;
use crate::files::{CopyNode, CreateFolder, DeadProperty, MAX_DEPTH, Node, Resolved, Scope, UpdateNode, validate_name};

/// How drive errors read to dav-server (which turns them into status codes).
pub(crate) fn fs_error(error: DriveError) -> FsError {
    match error {
        DriveError::NotFound | DriveError::NotAFolder | DriveError::NotAFile => FsError::NotFound,
        DriveError::NameTaken(_) => FsError::Exists,
        DriveError::QuotaExceeded(_) => FsError::InsufficientStorage,
        DriveError::TooLarge(_) => FsError::TooLarge,
        DriveError::ReadOnly
        | DriveError::InvalidName(_)
        | DriveError::InvalidMove
        | DriveError::PropertyTooLarge
        | DriveError::VirusDetected(_) => FsError::Forbidden,
        DriveError::PreconditionFailed | DriveError::TooManyUploads(_) => FsError::Exists,
        other => {
            tracing::error!(error = %other, "WebDAV operation failed");
            FsError::GeneralFailure
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Meta {
    pub(crate) len: u64,
    pub(crate) modified: SystemTime,
    pub(crate) created: SystemTime,
    pub(crate) dir: bool,
    pub(crate) etag: Option<String>,
}

impl Meta {
    pub(crate) fn of(node: &Node) -> Self {
        Self {
            len: u64::try_from(node.size).unwrap_or(0),
            modified: node.updated_at.into(),
            created: node.created_at.into(),
            dir: node.kind == "folder",
            etag: Some(node.etag().trim_matches('"').to_owned()),
        }
    }

    fn top() -> Self {
        Self { len: 0, modified: SystemTime::now(), created: SystemTime::now(), dir: true, etag: None }
    }
}

impl DavMetaData for Meta {
    fn len(&self) -> u64 {
        self.len
    }
    fn modified(&self) -> Result<SystemTime, FsError> {
        Ok(self.modified)
    }
    fn created(&self) -> Result<SystemTime, FsError> {
        Ok(self.created)
    }
    fn is_dir(&self) -> bool {
        self.dir
    }
    fn etag(&self) -> Option<String> {
        self.etag.clone()
    }
}

struct Entry(Node);

impl DavDirEntry for Entry {
    fn name(&self) -> Vec<u8> {
        self.0.name.as_bytes().to_vec()
    }
    fn metadata(&self) -> FsFuture<'_, Box<dyn DavMetaData>> {
        let meta: Box<dyn DavMetaData> = Box::new(Meta::of(&self.0));
        async move { Ok(meta) }.boxed()
    }
}

/// One drive for one request.
#[derive(Debug, Clone)]
pub(crate) struct DriveFs {
    drive: Drive,
    scope: Scope,
    /// Paths resolved during this request, by [`path_key`] (dav-server asks for the same path
    /// several times per request, and for every entry of a listing); `None`: nothing there.
    /// Emptied by every change.
    resolved: Arc<Mutex<HashMap<String, Option<Node>>>>,
    /// Dead properties read with a listing, by node; emptied by every change.
    properties: Arc<Mutex<HashMap<uuid::Uuid, Vec<DeadProperty>>>>,
}

/// The names along a path; non-UTF-8 names cannot exist in a drive.
fn segments(path: &DavPath) -> Result<Vec<String>, FsError> {
    let text = std::str::from_utf8(path.as_bytes()).map_err(|_| FsError::NotFound)?;
    Ok(text.split('/').filter(|s| !s.is_empty()).map(str::to_owned).collect())
}

/// How a path is remembered: its names, each after a `/`.
fn path_key(names: &[String]) -> String {
    names.iter().fold(String::new(), |mut key, name| {
        key.push('/');
        key.push_str(name);
        key
    })
}

impl DriveFs {
    pub(crate) fn new(drive: Drive, scope: Scope) -> Self {
        Self { drive, scope, resolved: Arc::default(), properties: Arc::default() }
    }

    pub(super) fn drive(&self) -> &Drive {
        &self.drive
    }

    pub(super) fn scope(&self) -> &Scope {
        &self.scope
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<String, Option<Node>>> {
        self.resolved.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn properties_cache(&self) -> std::sync::MutexGuard<'_, HashMap<uuid::Uuid, Vec<DeadProperty>>> {
        self.properties.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Forgets resolved paths and properties: called before anything changes.
    fn forget(&self) {
        self.cache().clear();
        self.properties_cache().clear();
    }

    /// The dead properties of a node: those read with its folder's listing, or from the database.
    async fn node_properties(&self, node: &Node) -> Result<Vec<DeadProperty>, FsError> {
        if let Some(known) = self.properties_cache().get(&node.id) {
            return Ok(known.clone());
        }
        self.drive.properties(node.id).await.map_err(fs_error)
    }

    /// The node at `path` (`None`: the top of the drive).
    pub(super) async fn node(&self, path: &DavPath) -> Result<Option<Node>, FsError> {
        self.walk(&segments(path)?).await
    }

    /// The node at the end of `names` (`None`: the top), missing: `NotFound`. Every folder on the
    /// way is resolved once per request and remembered, found or not: dav-server asks for a path,
    /// then for its folder, then opens it.
    async fn walk(&self, names: &[String]) -> Result<Option<Node>, FsError> {
        if names.len() > MAX_DEPTH {
            return Err(FsError::NotFound);
        }
        let mut current: Option<Node> = None;
        for depth in 1..=names.len() {
            let key = path_key(&names[..depth]);
            let known = self.cache().get(&key).cloned();
            let found = match known {
                Some(found) => found,
                None => {
                    let folder = match &current {
                        None => "root".to_owned(),
                        Some(node) if node.kind == "folder" => node.id.to_string(),
                        Some(_) => return Err(FsError::NotFound),
                    };
                    let name = &names[depth - 1];
                    let found = self.drive.find_child(&self.scope.drive, &folder, name).await.map_err(fs_error)?;
                    self.cache().insert(key, found.clone());
                    found
                }
            };
            current = Some(found.ok_or(FsError::NotFound)?);
        }
        Ok(current)
    }

    /// The node at `path` if there is one.
    async fn node_if_any(&self, path: &DavPath) -> Result<Option<Node>, FsError> {
        match self.node(path).await {
            Err(FsError::NotFound) => Ok(None),
            other => other,
        }
    }

    /// The folder `path` goes into (`None`: the top) and its last name.
    async fn parent_and_name(&self, path: &DavPath) -> Result<(Option<Node>, String), FsError> {
        let mut names = segments(path)?;
        let name = names.pop().ok_or(FsError::Forbidden)?;
        let parent = self.walk(&names).await?;
        if parent.as_ref().is_some_and(|p| p.kind != "folder") {
            return Err(FsError::NotFound);
        }
        Ok((parent, name))
    }

    async fn existing(&self, path: &DavPath) -> Result<Node, FsError> {
        self.node(path).await?.ok_or(FsError::Forbidden)
    }

    /// Clears the way for a file replacing whatever file is at `path`.
    async fn clear(&self, path: &DavPath) -> Result<(Option<Node>, String), FsError> {
        self.forget();
        let (parent, name) = self.parent_and_name(path).await?;
        let key = parent.as_ref().map_or_else(|| "root".to_owned(), |p| p.id.to_string());
        if let Some(existing) = self.drive.find_child(&self.scope.drive, &key, &name).await.map_err(fs_error)? {
            if existing.kind == "folder" {
                return Err(FsError::Exists);
            }
            self.drive.trash(&self.scope, existing.id, None).await.map_err(fs_error)?;
            self.forget();
        }
        Ok((parent, name))
    }

    async fn open_file(&self, path: &DavPath, options: OpenOptions) -> Result<Box<dyn DavFile>, FsError> {
        if !options.write {
            let node = self.node(path).await?.ok_or(FsError::NotFound)?;
            if node.kind != "file" {
                return Err(FsError::Forbidden);
            }
            return Ok(Box::new(ReadFile::new(self.drive.clone(), node)));
        }
        if options.append {
            return Err(FsError::NotImplemented);
        }
        // What dav-server looked up before opening (the path, its folder) is reused: nothing
        // changed in this request yet, and the commit compares again with what is stored then.
        let (parent, name) = self.parent_and_name(path).await?;
        let existing = self.node_if_any(path).await?;
        match &existing {
            Some(node) if node.kind == "folder" => return Err(FsError::Forbidden),
            Some(_) if options.create_new => return Err(FsError::Exists),
            None if !options.create && !options.create_new => return Err(FsError::NotFound),
            _ => {}
        }
        let (scope, parent_id) = (&self.scope, parent.as_ref().map(|p| p.id));
        let pending = match validate_name(&name) {
            // A name the drive keeps as written (not trimmed), in a drive seen whole (not through a
            // share): the nodes resolved here are the ones the upload needs.
            Ok(valid) if valid == name && scope.root.is_none() => {
                let key = parent_id.map_or_else(|| "root".to_owned(), |id| id.to_string());
                let target = Resolved { parent: parent_id, key, name, existing };
                self.drive.begin_resolved_upload(scope, target, None, options.size).await
            }
            _ => self.drive.begin_upload(scope, parent_id, &name, None, options.size).await,
        }
        .map_err(fs_error)?;
        self.forget();
        Ok(Box::new(WriteFile::start(self.drive.clone(), pending)))
    }

    async fn entries(&self, path: &DavPath) -> Result<FsStream<Box<dyn DavDirEntry>>, FsError> {
        let folder = self.node(path).await?;
        if folder.as_ref().is_some_and(|f| f.kind != "folder") {
            return Err(FsError::Forbidden);
        }
        let (children, properties) =
            self.drive.list_with_properties(&self.scope, folder.map(|f| f.id)).await.map_err(fs_error)?;
        // dav-server then asks for each entry's path and properties: answer from what was read.
        let base = path_key(&segments(path)?);
        {
            let mut resolved = self.cache();
            for child in &children {
                let mut key = base.clone();
                key.push('/');
                key.push_str(&child.name);
                resolved.insert(key, Some(child.clone()));
            }
        }
        self.properties_cache().extend(properties);
        let entries: Vec<Result<Box<dyn DavDirEntry>, FsError>> =
            children.into_iter().map(|n| Ok(Box::new(Entry(n)) as Box<dyn DavDirEntry>)).collect();
        Ok(Box::pin(futures::stream::iter(entries)))
    }

    async fn rename_node(&self, from: &DavPath, to: &DavPath) -> Result<(), FsError> {
        self.forget();
        let source = self.existing(from).await?;
        let (parent, name) =
            if source.kind == "file" { self.clear(to).await? } else { self.parent_and_name(to).await? };
        let request =
            UpdateNode { name: Some(name), parent_id: parent.as_ref().map(|p| p.id), to_root: parent.is_none() };
        self.drive.update(&self.scope, source.id, request, None).await.map_err(fs_error)?;
        self.forget();
        Ok(())
    }

    async fn copy_node(&self, from: &DavPath, to: &DavPath) -> Result<(), FsError> {
        self.forget();
        let source = self.existing(from).await?;
        let (parent, name) = self.clear(to).await?;
        let request = CopyNode { parent_id: parent.map(|p| p.id), name: Some(name) };
        self.drive.copy(&self.scope, source.id, &self.scope, request).await.map_err(fs_error)?;
        self.forget();
        Ok(())
    }

    async fn patch(&self, path: &DavPath, patch: Vec<(bool, DavProp)>) -> Result<Vec<(StatusCode, DavProp)>, FsError> {
        let node = self.existing(path).await?;
        self.scope.require_write().map_err(fs_error)?;
        self.properties_cache().remove(&node.id);
        let mut outcome = Vec::with_capacity(patch.len());
        for (set, prop) in patch {
            let namespace = prop.namespace.clone().unwrap_or_default();
            let result = if set {
                let stored = DeadProperty {
                    namespace,
                    name: prop.name.clone(),
                    prefix: prop.prefix.clone(),
                    xml: prop.xml.clone(),
                };
                self.drive.set_property(node.id, &stored).await
            } else {
                self.drive.remove_property(node.id, &namespace, &prop.name).await
            };
            let status = match result {
                Ok(()) => StatusCode::OK,
                Err(DriveError::PropertyTooLarge) => StatusCode::INSUFFICIENT_STORAGE,
                Err(err) => return Err(fs_error(err)),
            };
            outcome.push((status, DavProp { xml: None, ..prop }));
        }
        Ok(outcome)
    }

    async fn props(&self, path: &DavPath, content: bool) -> Result<Vec<DavProp>, FsError> {
        let Some(node) = self.node(path).await? else { return Ok(Vec::new()) };
        let stored = self.node_properties(&node).await?;
        Ok(stored
            .into_iter()
            .map(|p| DavProp {
                name: p.name,
                prefix: p.prefix,
                namespace: Some(p.namespace).filter(|ns| !ns.is_empty()),
                xml: if content { p.xml } else { None },
            })
            .collect())
    }

    async fn prop(&self, path: &DavPath, wanted: DavProp) -> Result<Vec<u8>, FsError> {
        let namespace = wanted.namespace.unwrap_or_default();
        let node = self.node(path).await?.ok_or(FsError::NotFound)?;
        let stored = self.node_properties(&node).await?;
        stored
            .into_iter()
            .find(|p| p.namespace == namespace && p.name == wanted.name)
            .and_then(|p| p.xml)
            .ok_or(FsError::NotFound)
    }

    pub(super) async fn quota(&self) -> Result<(u64, Option<u64>), FsError> {
        let usage = self.drive.usage(&self.scope).await.map_err(fs_error)?;
        let used = u64::try_from(usage.versions_bytes).unwrap_or(0);
        let quota = self.drive.quota_of(&self.scope);
        Ok((used, (quota > 0).then_some(quota)))
    }
}

impl DavFileSystem for DriveFs {
    fn open<'a>(&'a self, path: &'a DavPath, options: OpenOptions) -> FsFuture<'a, Box<dyn DavFile>> {
        self.open_file(path, options).boxed()
    }

    fn read_dir<'a>(&'a self, path: &'a DavPath, _meta: ReadDirMeta) -> FsFuture<'a, FsStream<Box<dyn DavDirEntry>>> {
        self.entries(path).boxed()
    }

    fn metadata<'a>(&'a self, path: &'a DavPath) -> FsFuture<'a, Box<dyn DavMetaData>> {
        async move {
            let meta: Box<dyn DavMetaData> = match self.node(path).await? {
                Some(node) => Box::new(Meta::of(&node)),
                None => Box::new(Meta::top()),
            };
            Ok(meta)
        }
        .boxed()
    }

    fn create_dir<'a>(&'a self, path: &'a DavPath) -> FsFuture<'a, ()> {
        async move {
            self.forget();
            let (parent, name) = self.parent_and_name(path).await?;
            let request = CreateFolder { parent_id: parent.map(|p| p.id), name };
            self.drive.create_folder(&self.scope, request).await.map_err(fs_error)?;
            self.forget();
            Ok(())
        }
        .boxed()
    }

    fn remove_dir<'a>(&'a self, path: &'a DavPath) -> FsFuture<'a, ()> {
        self.remove_file(path)
    }

    fn remove_file<'a>(&'a self, path: &'a DavPath) -> FsFuture<'a, ()> {
        async move {
            self.forget();
            let node = self.existing(path).await?;
            let trashed = self.drive.trash(&self.scope, node.id, None).await.map_err(fs_error);
            self.forget();
            trashed
        }
        .boxed()
    }

    fn rename<'a>(&'a self, from: &'a DavPath, to: &'a DavPath) -> FsFuture<'a, ()> {
        self.rename_node(from, to).boxed()
    }

    fn copy<'a>(&'a self, from: &'a DavPath, to: &'a DavPath) -> FsFuture<'a, ()> {
        self.copy_node(from, to).boxed()
    }

    fn have_props<'a>(&'a self, _path: &'a DavPath) -> std::pin::Pin<Box<dyn Future<Output = bool> + Send + 'a>> {
        async { true }.boxed()
    }

    fn patch_props<'a>(
        &'a self,
        path: &'a DavPath,
        patch: Vec<(bool, DavProp)>,
    ) -> FsFuture<'a, Vec<(StatusCode, DavProp)>> {
        self.patch(path, patch).boxed()
    }

    fn get_props<'a>(&'a self, path: &'a DavPath, do_content: bool) -> FsFuture<'a, Vec<DavProp>> {
        self.props(path, do_content).boxed()
    }

    fn get_prop<'a>(&'a self, path: &'a DavPath, prop: DavProp) -> FsFuture<'a, Vec<u8>> {
        self.prop(path, prop).boxed()
    }

    fn get_quota(&self) -> FsFuture<'_, (u64, Option<u64>)> {
        self.quota().boxed()
    }
}
