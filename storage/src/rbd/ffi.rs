//! The C API of librados and librbd (Ceph Pacific's ABI, `librados.so.2` and `librbd.so.1`),
//! loaded at run time, and safe handles over it. Every `unsafe` of the RBD back end is here.
//!
//! Why loaded at run time (`libloading`) and not linked: host-sim must build and run on
//! machines without Ceph (every export but `rbd:` ones works there), and an RBD export on such a
//! machine must fail with a sentence that says what to install, not with a loader error before
//! `main`. The declarations are hand-written from Debian's `rbd/librbd.h` and
//! `rados/librados.h` (only the few calls used); the libraries are opened once and never
//! unloaded, so the function pointers stay valid for the life of the process.
//!
//! What the handles guarantee:
//!
//! * [`Cluster`], [`Pool`] and [`Image`] own their C handle and release it exactly once, after
//!   everything that depends on it (an image keeps its pool, a pool its cluster, alive).
//! * librados and librbd handles are thread-safe (Ceph documents the C API as usable from any
//!   thread), so the handles are `Send + Sync`.
//! * [`Image::aio`] hands librbd a pointer into a caller's buffer; its contract (the buffer lives
//!   and is not touched until the completion's callback ran) is the caller's, stated there.

use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::sync::OnceLock;

type RadosT = *mut c_void;
type IoCtxT = *mut c_void;
type ImageT = *mut c_void;
type CompletionT = *mut c_void;
/// The callback librbd runs on one of its own threads when an aio operation completes.
type Callback = unsafe extern "C" fn(completion: CompletionT, arg: *mut c_void);

/// `RBD_LOCK_MODE_EXCLUSIVE` of `rbd_lock_mode_t`.
const LOCK_MODE_EXCLUSIVE: c_int = 0;

/// The function pointers, resolved once.
struct Api {
    rados_create2: unsafe extern "C" fn(*mut RadosT, *const c_char, *const c_char, u64) -> c_int,
    rados_conf_read_file: unsafe extern "C" fn(RadosT, *const c_char) -> c_int,
    rados_conf_set: unsafe extern "C" fn(RadosT, *const c_char, *const c_char) -> c_int,
    rados_conf_get: unsafe extern "C" fn(RadosT, *const c_char, *mut c_char, usize) -> c_int,
    rados_connect: unsafe extern "C" fn(RadosT) -> c_int,
    rados_shutdown: unsafe extern "C" fn(RadosT),
    rados_get_instance_id: unsafe extern "C" fn(RadosT) -> u64,
    rados_getaddrs: unsafe extern "C" fn(RadosT, *mut *mut c_char) -> c_int,
    rados_buffer_free: unsafe extern "C" fn(*mut c_char),
    rados_ioctx_create: unsafe extern "C" fn(RadosT, *const c_char, *mut IoCtxT) -> c_int,
    rados_ioctx_destroy: unsafe extern "C" fn(IoCtxT),
    rados_write_full: unsafe extern "C" fn(IoCtxT, *const c_char, *const c_char, usize) -> c_int,
    rados_read: unsafe extern "C" fn(IoCtxT, *const c_char, *mut c_char, usize, u64) -> c_int,
    rbd_pool_metadata_get:
        unsafe extern "C" fn(IoCtxT, *const c_char, *mut c_char, *mut usize) -> c_int,
    rbd_open: unsafe extern "C" fn(IoCtxT, *const c_char, *mut ImageT, *const c_char) -> c_int,
    rbd_open_read_only:
        unsafe extern "C" fn(IoCtxT, *const c_char, *mut ImageT, *const c_char) -> c_int,
    rbd_close: unsafe extern "C" fn(ImageT) -> c_int,
    rbd_get_size: unsafe extern "C" fn(ImageT, *mut u64) -> c_int,
    rbd_flush: unsafe extern "C" fn(ImageT) -> c_int,
    rbd_aio_create_completion:
        unsafe extern "C" fn(*mut c_void, Option<Callback>, *mut CompletionT) -> c_int,
    rbd_aio_write: unsafe extern "C" fn(ImageT, u64, usize, *const c_char, CompletionT) -> c_int,
    rbd_aio_read: unsafe extern "C" fn(ImageT, u64, usize, *mut c_char, CompletionT) -> c_int,
    rbd_aio_flush: unsafe extern "C" fn(ImageT, CompletionT) -> c_int,
    rbd_aio_get_return_value: unsafe extern "C" fn(CompletionT) -> isize,
    rbd_aio_release: unsafe extern "C" fn(CompletionT),
    rbd_is_exclusive_lock_owner: unsafe extern "C" fn(ImageT, *mut c_int) -> c_int,
    rbd_lock_acquire: unsafe extern "C" fn(ImageT, c_int) -> c_int,
    rbd_lock_release: unsafe extern "C" fn(ImageT) -> c_int,
    rbd_lock_get_owners:
        unsafe extern "C" fn(ImageT, *mut c_int, *mut *mut c_char, *mut usize) -> c_int,
    rbd_lock_get_owners_cleanup: unsafe extern "C" fn(*mut *mut c_char, usize),
    rbd_lock_break: unsafe extern "C" fn(ImageT, c_int, *const c_char) -> c_int,
    rbd_metadata_get: unsafe extern "C" fn(ImageT, *const c_char, *mut c_char, *mut usize) -> c_int,
    rbd_metadata_set: unsafe extern "C" fn(ImageT, *const c_char, *const c_char) -> c_int,
    /// Keeps the libraries loaded (never dropped: `Api` lives in a static).
    _libraries: [libloading::Library; 2],
}

static API: OnceLock<Result<Api, String>> = OnceLock::new();

/// Copies the function pointer named `name` out of `library`.
///
/// # Safety
/// `T` must be the exact C type of the symbol, and the pointer must not be used after
/// `library` is unloaded (ours never are).
unsafe fn symbol<T: Copy>(library: &libloading::Library, name: &str) -> Result<T, String> {
    // SAFETY: the caller states that `T` is the symbol's type.
    unsafe { library.get::<T>(name.as_bytes()) }
        .map(|symbol| *symbol)
        .map_err(|error| format!("{name}: {error}"))
}

fn load() -> Result<Api, String> {
    let open = |name: &str| {
        // SAFETY: loading librados/librbd runs their static initialisers, which only set up
        // Ceph's own global state; they have no preconditions on us.
        unsafe { libloading::Library::new(name) }.map_err(|error| {
            format!(
                "cannot load {name} ({error}); RBD exports need Ceph's client libraries \
                 (Debian: apt-get install librbd1 librados2)"
            )
        })
    };
    let rados = open("librados.so.2")?;
    let rbd = open("librbd.so.1")?;
    // SAFETY: for every `symbol` call below, the field's type is the prototype of the C
    // function of the same name in Pacific's librados.h / librbd.h, and both libraries stay
    // loaded in `_libraries` for as long as `Api` exists (forever, it is in a static).
    unsafe {
        Ok(Api {
            rados_create2: symbol(&rados, "rados_create2")?,
            rados_conf_read_file: symbol(&rados, "rados_conf_read_file")?,
            rados_conf_set: symbol(&rados, "rados_conf_set")?,
            rados_conf_get: symbol(&rados, "rados_conf_get")?,
            rados_connect: symbol(&rados, "rados_connect")?,
            rados_shutdown: symbol(&rados, "rados_shutdown")?,
            rados_get_instance_id: symbol(&rados, "rados_get_instance_id")?,
            rados_getaddrs: symbol(&rados, "rados_getaddrs")?,
            rados_buffer_free: symbol(&rados, "rados_buffer_free")?,
            rados_ioctx_create: symbol(&rados, "rados_ioctx_create")?,
            rados_ioctx_destroy: symbol(&rados, "rados_ioctx_destroy")?,
            rados_write_full: symbol(&rados, "rados_write_full")?,
            rados_read: symbol(&rados, "rados_read")?,
            rbd_pool_metadata_get: symbol(&rbd, "rbd_pool_metadata_get")?,
            rbd_open: symbol(&rbd, "rbd_open")?,
            rbd_open_read_only: symbol(&rbd, "rbd_open_read_only")?,
            rbd_close: symbol(&rbd, "rbd_close")?,
            rbd_get_size: symbol(&rbd, "rbd_get_size")?,
            rbd_flush: symbol(&rbd, "rbd_flush")?,
            rbd_aio_create_completion: symbol(&rbd, "rbd_aio_create_completion")?,
            rbd_aio_write: symbol(&rbd, "rbd_aio_write")?,
            rbd_aio_read: symbol(&rbd, "rbd_aio_read")?,
            rbd_aio_flush: symbol(&rbd, "rbd_aio_flush")?,
            rbd_aio_get_return_value: symbol(&rbd, "rbd_aio_get_return_value")?,
            rbd_aio_release: symbol(&rbd, "rbd_aio_release")?,
            rbd_is_exclusive_lock_owner: symbol(&rbd, "rbd_is_exclusive_lock_owner")?,
            rbd_lock_acquire: symbol(&rbd, "rbd_lock_acquire")?,
            rbd_lock_release: symbol(&rbd, "rbd_lock_release")?,
            rbd_lock_get_owners: symbol(&rbd, "rbd_lock_get_owners")?,
            rbd_lock_get_owners_cleanup: symbol(&rbd, "rbd_lock_get_owners_cleanup")?,
            rbd_lock_break: symbol(&rbd, "rbd_lock_break")?,
            rbd_metadata_get: symbol(&rbd, "rbd_metadata_get")?,
            rbd_metadata_set: symbol(&rbd, "rbd_metadata_set")?,
            _libraries: [rados, rbd],
        })
    }
}

fn api() -> Result<&'static Api, String> {
    API.get_or_init(load).as_ref().map_err(Clone::clone)
}

/// True if librados and librbd can be loaded here (else the reason).
pub(crate) fn available() -> Result<(), String> {
    api().map(|_| ())
}

/// A negative errno returned by a call, with the call's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CallError {
    /// What was called (`rbd_open`).
    pub call: &'static str,
    /// The positive errno.
    pub errno: i32,
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} failed: {}",
            self.call,
            std::io::Error::from_raw_os_error(self.errno)
        )
    }
}

fn check(call: &'static str, rc: c_int) -> Result<c_int, CallError> {
    if rc < 0 {
        Err(CallError { call, errno: -rc })
    } else {
        Ok(rc)
    }
}

fn c_string(text: &str) -> Result<CString, CallError> {
    CString::new(text).map_err(|_| CallError {
        call: "a name with a NUL byte",
        errno: libc::EINVAL,
    })
}

/// A connected librados client (`rados_t`).
#[derive(Debug)]
pub(crate) struct Cluster {
    handle: RadosT,
    api: &'static Api,
}

// SAFETY: a `rados_t` may be used from any thread (librados is thread-safe); `Cluster` only
// frees it in `Drop`, when no other reference exists.
unsafe impl Send for Cluster {}
// SAFETY: as above; every method takes `&self` and librados locks internally.
unsafe impl Sync for Cluster {}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("librados/librbd")
    }
}

impl Cluster {
    /// Creates a client named `client.<id>` (default `admin`), reads `conf` (or `CEPH_CONF`,
    /// or the default paths when `None`), applies `settings` (option, value), and connects.
    pub(crate) fn connect(
        id: Option<&str>,
        conf: Option<&str>,
        settings: &[(&str, &str)],
    ) -> Result<Cluster, String> {
        let api = api()?;
        let cluster_name = c_string("ceph").map_err(|e| e.to_string())?;
        let name =
            c_string(&format!("client.{}", id.unwrap_or("admin"))).map_err(|e| e.to_string())?;
        let mut handle: RadosT = std::ptr::null_mut();
        // SAFETY: `handle` is a valid out-pointer; the names are NUL-terminated and outlive
        // the call (librados copies them).
        check("rados_create2", unsafe {
            (api.rados_create2)(&mut handle, cluster_name.as_ptr(), name.as_ptr(), 0)
        })
        .map_err(|e| e.to_string())?;
        // From here on `Drop` shuts the handle down, also on the error paths below.
        let cluster = Cluster { handle, api };
        let conf = conf.map(c_string).transpose().map_err(|e| e.to_string())?;
        // SAFETY: a live handle; a NUL-terminated path or NULL (which means CEPH_CONF or the
        // default search path).
        check("rados_conf_read_file", unsafe {
            (api.rados_conf_read_file)(
                cluster.handle,
                conf.as_ref().map_or(std::ptr::null(), |c| c.as_ptr()),
            )
        })
        .map_err(|e| format!("{e} (the Ceph configuration file)"))?;
        for (option, value) in settings {
            let option_c = c_string(option).map_err(|e| e.to_string())?;
            let value_c = c_string(value).map_err(|e| e.to_string())?;
            // SAFETY: a live handle and two NUL-terminated strings librados copies.
            check("rados_conf_set", unsafe {
                (api.rados_conf_set)(cluster.handle, option_c.as_ptr(), value_c.as_ptr())
            })
            .map_err(|e| format!("{e} ({option} = {value})"))?;
        }
        // SAFETY: a live, configured, not yet connected handle.
        check("rados_connect", unsafe {
            (api.rados_connect)(cluster.handle)
        })
        .map_err(|e| e.to_string())?;
        Ok(cluster)
    }

    /// A configuration value as the client sees it (after files and settings).
    pub(crate) fn conf_get(&self, option: &str) -> Option<String> {
        let option = c_string(option).ok()?;
        let mut buffer = vec![0u8; 256];
        // SAFETY: a live handle; `buffer` is writable for its length and librados writes a
        // NUL-terminated string of at most that many octets.
        let rc = unsafe {
            (self.api.rados_conf_get)(
                self.handle,
                option.as_ptr(),
                buffer.as_mut_ptr().cast(),
                buffer.len(),
            )
        };
        if rc < 0 {
            return None;
        }
        CStr::from_bytes_until_nul(&buffer)
            .ok()
            .map(|text| text.to_string_lossy().into_owned())
    }

    /// This client's instance id (the `N` of `client.N` in lock owners and blocklists).
    pub(crate) fn instance_id(&self) -> u64 {
        // SAFETY: a live, connected handle.
        unsafe { (self.api.rados_get_instance_id)(self.handle) }
    }
}

impl Cluster {
    /// This client's address as lock owners and blocklists name it (`IP:0/NONCE`).
    pub(crate) fn address(&self) -> Option<String> {
        let mut text: *mut c_char = std::ptr::null_mut();
        // SAFETY: a live, connected handle and a valid out-pointer; librados allocates the
        // string, which is freed below with its own call.
        let rc = unsafe { (self.api.rados_getaddrs)(self.handle, &mut text) };
        if rc < 0 || text.is_null() {
            return None;
        }
        // SAFETY: librados returned a NUL-terminated string.
        let address = unsafe { CStr::from_ptr(text) }
            .to_string_lossy()
            .into_owned();
        // SAFETY: the buffer librados allocated in this call, freed once.
        unsafe { (self.api.rados_buffer_free)(text) };
        Some(address)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // SAFETY: the handle is live and this is its only release; every pool and image made
        // from it holds an `Arc` of this cluster, so none is left.
        unsafe { (self.api.rados_shutdown)(self.handle) }
    }
}

/// A pool's I/O context (`rados_ioctx_t`).
#[derive(Debug)]
pub(crate) struct Pool {
    handle: IoCtxT,
    cluster: std::sync::Arc<Cluster>,
}

// SAFETY: an ioctx may be used from any thread; it is destroyed only in `Drop`.
unsafe impl Send for Pool {}
// SAFETY: as above; librados locks internally.
unsafe impl Sync for Pool {}

impl Pool {
    /// Opens pool `name` of `cluster`.
    pub(crate) fn open(cluster: std::sync::Arc<Cluster>, name: &str) -> Result<Pool, CallError> {
        let name = c_string(name)?;
        let mut handle: IoCtxT = std::ptr::null_mut();
        // SAFETY: a live, connected cluster; a valid out-pointer; a NUL-terminated name.
        check("rados_ioctx_create", unsafe {
            (cluster.api.rados_ioctx_create)(cluster.handle, name.as_ptr(), &mut handle)
        })?;
        Ok(Pool { handle, cluster })
    }

    /// The cluster it belongs to.
    pub(crate) fn cluster(&self) -> &std::sync::Arc<Cluster> {
        &self.cluster
    }

    /// Replaces the whole content of object `oid` with `data` (blocking).
    pub(crate) fn write_full(&self, oid: &str, data: &[u8]) -> Result<(), CallError> {
        let oid = c_string(oid)?;
        // SAFETY: a live ioctx; `data` is readable for its length during the call.
        check("rados_write_full", unsafe {
            (self.cluster.api.rados_write_full)(
                self.handle,
                oid.as_ptr(),
                data.as_ptr().cast(),
                data.len(),
            )
        })?;
        Ok(())
    }

    /// Up to `max` octets of object `oid` from its start (blocking); `None` if it does not exist.
    pub(crate) fn read(&self, oid: &str, max: usize) -> Result<Option<Vec<u8>>, CallError> {
        let oid = c_string(oid)?;
        let mut buffer = vec![0u8; max];
        // SAFETY: a live ioctx; `buffer` is writable for its length during the call.
        let rc = unsafe {
            (self.cluster.api.rados_read)(
                self.handle,
                oid.as_ptr(),
                buffer.as_mut_ptr().cast(),
                buffer.len(),
                0,
            )
        };
        match check("rados_read", rc) {
            Ok(read) => {
                buffer.truncate(usize::try_from(read).unwrap_or(0));
                Ok(Some(buffer))
            }
            Err(error) if error.errno == libc::ENOENT => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// The pool's RBD metadata value of `key` (`conf_rbd_cache`), if set.
    pub(crate) fn rbd_metadata(&self, key: &str) -> Result<Option<String>, CallError> {
        let key = c_string(key)?;
        let api = self.cluster.api;
        // SAFETY: a live ioctx; `metadata_get` hands the buffer and its length to the call.
        metadata_get(|value, len| unsafe {
            (api.rbd_pool_metadata_get)(self.handle, key.as_ptr(), value, len)
        })
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        // SAFETY: the ioctx is live and released once; images opened in it hold an `Arc` of
        // this pool, so none is left.
        unsafe { (self.cluster.api.rados_ioctx_destroy)(self.handle) }
    }
}

/// Calls a `*_metadata_get` function `get(value, &mut len)`, growing the buffer on `-ERANGE`.
fn metadata_get(
    mut get: impl FnMut(*mut c_char, *mut usize) -> c_int,
) -> Result<Option<String>, CallError> {
    let mut len = 128usize;
    loop {
        let mut buffer = vec![0u8; len];
        let mut got = len;
        match get(buffer.as_mut_ptr().cast(), &mut got) {
            rc if rc == -libc::ERANGE && got > len => len = got,
            rc if rc == -libc::ENOENT => return Ok(None),
            rc => {
                check("rbd_metadata_get", rc)?;
                let text = CStr::from_bytes_until_nul(&buffer)
                    .map(|text| text.to_string_lossy().into_owned())
                    .unwrap_or_default();
                return Ok(Some(text));
            }
        }
    }
}

/// An open RBD image (`rbd_image_t`).
#[derive(Debug)]
pub(crate) struct Image {
    handle: ImageT,
    pool: std::sync::Arc<Pool>,
}

// SAFETY: librbd image handles may be used from any thread (the image context locks
// internally); the handle is closed only in `Drop`.
unsafe impl Send for Image {}
// SAFETY: as above.
unsafe impl Sync for Image {}

/// The kind of aio operation [`Image::aio`] starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AioOp {
    /// `rbd_aio_read` into the buffer.
    Read,
    /// `rbd_aio_write` from the buffer.
    Write,
    /// `rbd_aio_flush` (no buffer).
    Flush,
}

impl Image {
    /// Opens `name` in `pool`, at `snapshot` if given; read-only when `read_only` (a snapshot
    /// always is).
    pub(crate) fn open(
        pool: std::sync::Arc<Pool>,
        name: &str,
        snapshot: Option<&str>,
        read_only: bool,
    ) -> Result<Image, CallError> {
        let api = pool.cluster.api;
        let name = c_string(name)?;
        let snapshot = snapshot.map(c_string).transpose()?;
        let snapshot_ptr = snapshot.as_ref().map_or(std::ptr::null(), |s| s.as_ptr());
        let mut handle: ImageT = std::ptr::null_mut();
        let (call, open) = if read_only {
            ("rbd_open_read_only", api.rbd_open_read_only)
        } else {
            ("rbd_open", api.rbd_open)
        };
        // SAFETY: a live ioctx, NUL-terminated names (or NULL for no snapshot) and a valid
        // out-pointer.
        check(call, unsafe {
            open(pool.handle, name.as_ptr(), &mut handle, snapshot_ptr)
        })?;
        Ok(Image { handle, pool })
    }

    /// The pool it is in.
    pub(crate) fn pool(&self) -> &std::sync::Arc<Pool> {
        &self.pool
    }

    fn api(&self) -> &'static Api {
        self.pool.cluster.api
    }

    /// The image's size in octets now (librbd refreshes it after a resize).
    pub(crate) fn size(&self) -> Result<u64, CallError> {
        let mut size = 0u64;
        // SAFETY: a live image and a valid out-pointer.
        check("rbd_get_size", unsafe {
            (self.api().rbd_get_size)(self.handle, &mut size)
        })?;
        Ok(size)
    }

    /// Flushes every completed write (blocking).
    pub(crate) fn flush(&self) -> Result<(), CallError> {
        // SAFETY: a live image.
        check("rbd_flush", unsafe { (self.api().rbd_flush)(self.handle) })?;
        Ok(())
    }

    /// Starts an aio operation of `len` octets at octet `offset` on `buffer`; when it
    /// completes, a librbd thread posts `(ticket.slot, result)` to `ticket.completions` (result:
    /// octets transferred or 0, or a negative errno).
    ///
    /// # Safety
    /// For a read or write, `buffer .. buffer + len` must stay valid (and, for a read, not be
    /// read or written by anyone else) until the completion was posted; `ticket` must stay
    /// valid (not moved or dropped) until then as well. When this returns an error, nothing
    /// was started and nothing will be posted.
    pub(crate) unsafe fn aio(
        &self,
        op: AioOp,
        offset: u64,
        buffer: *mut u8,
        len: usize,
        ticket: &Ticket,
    ) -> Result<(), CallError> {
        let api = self.api();
        let mut completion: CompletionT = std::ptr::null_mut();
        let arg = std::ptr::from_ref(ticket).cast_mut().cast::<c_void>();
        // SAFETY: a valid out-pointer; `arg` is only passed back to `on_complete`, and the
        // ticket it points to outlives the operation (this function's precondition).
        check("rbd_aio_create_completion", unsafe {
            (api.rbd_aio_create_completion)(arg, Some(on_complete as Callback), &mut completion)
        })?;
        // SAFETY: a live image and a fresh completion; the buffer's validity until the
        // completion is posted is this function's precondition.
        let rc = unsafe {
            match op {
                AioOp::Read => {
                    (api.rbd_aio_read)(self.handle, offset, len, buffer.cast(), completion)
                }
                AioOp::Write => {
                    (api.rbd_aio_write)(self.handle, offset, len, buffer.cast(), completion)
                }
                AioOp::Flush => (api.rbd_aio_flush)(self.handle, completion),
            }
        };
        if rc < 0 {
            // Not started: the callback will not run, so the completion is ours to release.
            // SAFETY: a completion created above that librbd did not take.
            unsafe { (api.rbd_aio_release)(completion) };
            return Err(CallError {
                call: match op {
                    AioOp::Read => "rbd_aio_read",
                    AioOp::Write => "rbd_aio_write",
                    AioOp::Flush => "rbd_aio_flush",
                },
                errno: -rc,
            });
        }
        Ok(())
    }

    /// True if this client holds the image's exclusive lock.
    pub(crate) fn is_lock_owner(&self) -> Result<bool, CallError> {
        let mut owner: c_int = 0;
        // SAFETY: a live image and a valid out-pointer.
        check("rbd_is_exclusive_lock_owner", unsafe {
            (self.api().rbd_is_exclusive_lock_owner)(self.handle, &mut owner)
        })?;
        Ok(owner != 0)
    }

    /// Takes the exclusive lock (and keeps it: librbd will not hand it to another client that
    /// asks).
    pub(crate) fn lock_acquire(&self) -> Result<(), CallError> {
        // SAFETY: a live image.
        check("rbd_lock_acquire", unsafe {
            (self.api().rbd_lock_acquire)(self.handle, LOCK_MODE_EXCLUSIVE)
        })?;
        Ok(())
    }

    /// Gives the exclusive lock up.
    pub(crate) fn lock_release(&self) -> Result<(), CallError> {
        // SAFETY: a live image.
        check("rbd_lock_release", unsafe {
            (self.api().rbd_lock_release)(self.handle)
        })?;
        Ok(())
    }

    /// The clients holding the exclusive lock (`client.N` names), empty when nobody does.
    pub(crate) fn lock_owners(&self) -> Result<Vec<String>, CallError> {
        let api = self.api();
        let mut mode: c_int = 0;
        let mut owners: [*mut c_char; 8] = [std::ptr::null_mut(); 8];
        let mut count = owners.len();
        // SAFETY: a live image; `owners` has room for `count` pointers, which librbd fills with
        // strings it allocates (released below with the cleanup call).
        let rc = unsafe {
            (api.rbd_lock_get_owners)(self.handle, &mut mode, owners.as_mut_ptr(), &mut count)
        };
        if rc == -libc::ENOENT {
            return Ok(Vec::new());
        }
        check("rbd_lock_get_owners", rc)?;
        let count = count.min(owners.len());
        let names = owners[..count]
            .iter()
            .map(|&owner| {
                // SAFETY: librbd set the first `count` entries to NUL-terminated strings.
                unsafe { CStr::from_ptr(owner) }
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        // SAFETY: exactly the `count` strings librbd allocated in this call, released once.
        unsafe { (api.rbd_lock_get_owners_cleanup)(owners.as_mut_ptr(), count) };
        Ok(names)
    }

    /// Breaks `owner`'s exclusive lock; librbd blocklists that client first, so it can no
    /// longer write to the cluster.
    pub(crate) fn lock_break(&self, owner: &str) -> Result<(), CallError> {
        let owner = c_string(owner)?;
        // SAFETY: a live image and a NUL-terminated owner name.
        check("rbd_lock_break", unsafe {
            (self.api().rbd_lock_break)(self.handle, LOCK_MODE_EXCLUSIVE, owner.as_ptr())
        })?;
        Ok(())
    }

    /// The image metadata value of `key`, if set.
    pub(crate) fn metadata(&self, key: &str) -> Result<Option<String>, CallError> {
        let key = c_string(key)?;
        let api = self.api();
        // SAFETY: a live image; `metadata_get` hands the buffer and its length to the call.
        metadata_get(|value, len| unsafe {
            (api.rbd_metadata_get)(self.handle, key.as_ptr(), value, len)
        })
    }

    /// Sets image metadata `key` to `value` (blocking; needs the exclusive lock if another
    /// client holds it).
    pub(crate) fn set_metadata(&self, key: &str, value: &str) -> Result<(), CallError> {
        let key = c_string(key)?;
        let value = c_string(value)?;
        // SAFETY: a live image and two NUL-terminated strings.
        check("rbd_metadata_set", unsafe {
            (self.api().rbd_metadata_set)(self.handle, key.as_ptr(), value.as_ptr())
        })?;
        Ok(())
    }
}

impl Drop for Image {
    fn drop(&mut self) {
        // SAFETY: the image is live and closed once; queues keep an `Arc` of it while any of
        // their operations is in flight, so librbd has none left.
        unsafe { (self.api().rbd_close)(self.handle) };
    }
}

/// Where one aio operation's completion goes: the queue's completion list and the operation's
/// slot in the queue's table of requests in flight.
#[derive(Debug)]
pub(crate) struct Ticket {
    /// The queue's completion list.
    pub completions: std::sync::Arc<super::Completions>,
    /// The slot of the operation.
    pub slot: u32,
}

/// Runs on a librbd thread when an operation completes: takes its result, releases the
/// completion and posts `(slot, result)`. It only moves data (no engine work happens here).
unsafe extern "C" fn on_complete(completion: CompletionT, arg: *mut c_void) {
    let Ok(api) = api() else {
        return; // unreachable: a completion exists only if the API was loaded
    };
    // SAFETY: librbd hands back the completion of this operation, completed and not yet
    // released; it is released exactly once, here.
    let result = unsafe {
        let result = (api.rbd_aio_get_return_value)(completion);
        (api.rbd_aio_release)(completion);
        result
    };
    // SAFETY: `arg` is the `Ticket` given to `Image::aio`, which its queue keeps in place
    // until this operation's completion is posted (the contract of `Image::aio`).
    let ticket = unsafe { &*arg.cast::<Ticket>().cast_const() };
    ticket.completions.post(ticket.slot, result);
}
