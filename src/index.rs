//! The replay index: every delivery id stored within the replay horizon, so that a sender's retry
//! is a duplicate for days (not minutes), whatever became of its event since (held, acknowledged,
//! dropped by retention). It lives in a file mapped shared by every nginx worker (the master maps
//! it before the workers fork) and is changed only with atomic operations, so no lock is taken.
//!
//! Layout: a header page (magic, version, sizes, a salt, a checksum; then the shared current
//! window and a small header per table), then `TABLES` open-addressing tables of fixed slots.
//! Each table holds the ids first stored in one window of `window_secs` seconds; a lookup reads
//! every live table, a new id goes into the current window's table, and the table of a window that
//! left the horizon is emptied and reused. An id is remembered for at least the horizon (the
//! windows of `TABLES - 1` tables cover it) and at most one window more.
//!
//! A slot is four words, 32 bytes (two to a cache line, never across one): the id's digest
//! (SHA-256 of the salt and the id, its first 128 bits, in two words: `tag`, never 0, and `lo`),
//! the first 8 bytes of the body's SHA-256, and `ctl` (a state and a time). Tables are sized to be
//! half full, so that a probe for an id that is not there ends within a slot or two; a busier
//! window than that fills its table up to three quarters (a few slots a probe) before refusing.
//! Each table also has a summary (three bits of one word per id, 16 bits an id) small enough to
//! stay in the CPU's cache: a table whose summary lacks an id's bits is not read, so that a new
//! id costs one read of its home table rather than one of every table. An id is claimed by compare-and-swap of `tag` into an empty slot;
//! ids are only ever added at the first empty slot of their probe sequence, so two workers claiming
//! the same id meet at the same slot and one of them wins. `ctl` is written last (release) and read
//! first (acquire): the other words of a slot are read only once `ctl` says they are written.

use core::sync::atomic::{AtomicU64, Ordering};
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::io::AsRawFd;
use std::path::Path;

use sha2::{Digest, Sha256};

const MAGIC: &[u8; 8] = b"UP42WIDX";
const VERSION: u32 = 1;
/// Tables (windows): the current one and `TABLES - 1` before it cover the horizon.
pub(crate) const TABLES: u64 = 4;
const HEADER_BYTES: usize = 4096;
/// Where the per-table headers start in the header page, and their size (four words).
const TABLE_HEADERS: usize = 512;
const TABLE_HEADER_BYTES: usize = 32;
/// Words per slot: tag, lo, body, ctl.
const WORDS: usize = 4;
const CTL: usize = 3;
/// Bytes per slot.
pub(crate) const SLOT_BYTES: u64 = (WORDS * 8) as u64;
/// A table is sized for its window's ids at a load factor of 0.5 (one of every two slots).
const LOAD_NUM: u64 = 1;
const LOAD_DEN: u64 = 2;
/// Past its window's ids a table goes on taking new ones (a busier day than dedup_capacity was
/// set for: the receiver warns at 80 %) up to half as many again, a load of 0.75, where a probe
/// for a new id still reads a few slots; only then is an id refused (503, retried).
const SPILL_NUM: u64 = 3;
const SPILL_DEN: u64 = 2;
/// The most ids an index may be made for.
pub(crate) const MAX_CAPACITY: u64 = 1 << 32;

// `ctl`: the state in the top two bits; WRITTEN once the slot's other words are the claimer's
// (only then is `lo` compared); a time in unix seconds below. A pending slot that is not written
// is one whose claimer is between its two steps, or died there: it is in flight until its time.
const EMPTY: u64 = 0;
const PENDING: u64 = 1 << 62;
const STORED: u64 = 2 << 62;
const DEAD: u64 = 3 << 62;
const STATE: u64 = 3 << 62;
const WRITTEN: u64 = 1 << 61;
const TIME: u64 = WRITTEN - 1;

// A table header's `window` word: 0 for a table never used, else the window + 1; while the table
// is being emptied, RESET and the time the emptying started.
const RESET: u64 = 1 << 63;
/// An emptying that has not finished after this long was abandoned (its process died): another
/// worker takes it over.
const RESET_STUCK_SECS: u64 = 10;
/// How long a claim waits for another worker to finish emptying the current table.
const RESET_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// The outcome of a claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// The id is new (or its earlier claim was cancelled, or abandoned past its deadline): it is
    /// the caller's until `commit` or `cancel`.
    New(Slot),
    /// The id is stored with the same body.
    Duplicate,
    /// The id is stored with another body.
    Conflict,
    /// Another delivery with this id is being stored right now.
    InFlight,
    /// The current window's table holds as many ids as it may.
    Full,
}

/// What became of an id a rebuild inserted (`up42wh_index_insert`'s `outcome`).
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    /// Remembered now.
    Added = 1,
    /// Remembered already.
    Known = 2,
    /// Stored longer ago than the horizon: not remembered.
    PastHorizon = 3,
    /// Its window's table holds as many ids as the index's capacity allows (the capacity was
    /// lowered since): not remembered.
    Full = 4,
}

/// A claimed slot, for `commit` and `cancel`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    pub(crate) table: u32,
    pub(crate) index: u64,
    /// The claim's deadline, as `ctl` holds it: a commit or cancel finds its claim by it.
    pub(crate) deadline: u64,
}

/// How the index was opened (`up42wh_index_open`'s `opened`).
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opened {
    /// The file was there, whole and of these settings.
    Existing = 1,
    /// There was none: a new, empty index.
    Created = 2,
    /// The file was damaged, of another version or made for other settings: replaced by an empty
    /// one, which the caller rebuilds from what it keeps (`up42wh_index_insert`).
    Replaced = 3,
}

/// An open index. Every method takes `&self`: share it between threads (and, mapped before a
/// fork, between processes) freely.
pub struct Index {
    base: *mut u8,
    len: usize,
    slots_per_table: u64,
    per_window: u64,
    window_secs: u64,
    salt: [u8; 16],
}

// SAFETY: the mapping is only read and written through atomics (the header's constant part is
// written before the index is shared and never again).
unsafe impl Send for Index {}
// SAFETY: as above.
unsafe impl Sync for Index {}

impl Drop for Index {
    fn drop(&mut self) {
        // SAFETY: `base` and `len` are the mapping made in `map`, unmapped once, here.
        unsafe { libc::munmap(self.base.cast(), self.len) };
    }
}

/// The sizes an index of `capacity` ids over `horizon` seconds has: slots per table, ids per
/// window, window length.
fn geometry(capacity: u64, horizon: u64) -> Option<(u64, u64, u64)> {
    if capacity == 0 || capacity > MAX_CAPACITY || horizon == 0 || horizon > u64::from(u32::MAX) {
        return None;
    }
    let per_window = capacity.div_ceil(TABLES - 1);
    let slots = (per_window * LOAD_DEN).div_ceil(LOAD_NUM);
    let window = horizon.div_ceil(TABLES - 1);
    Some((slots, per_window, window))
}

/// Words of a table's summary: 16 bits an id the table may hold (it holds half as many ids as
/// it has slots).
fn summary_words(slots_per_table: u64) -> u64 {
    slots_per_table.div_ceil(8)
}

/// Where the slots start: after the header page and the tables' summaries, page aligned.
fn slots_at(slots_per_table: u64) -> u64 {
    (HEADER_BYTES as u64 + TABLES * summary_words(slots_per_table) * 8).next_multiple_of(4096)
}

/// The file's size for these sizes.
fn file_len(slots_per_table: u64) -> u64 {
    slots_at(slots_per_table) + TABLES * slots_per_table * SLOT_BYTES
}

/// FNV-1a over the header's constant part: a header damaged or half written is not trusted.
fn checksum(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The header's constant part: magic, version, tables, slots per table, ids per window, window
/// length, salt (56 bytes), then its checksum.
fn header(slots: u64, per_window: u64, window: u64, salt: &[u8; 16]) -> [u8; 64] {
    let mut h = [0u8; 64];
    h[..8].copy_from_slice(MAGIC);
    h[8..12].copy_from_slice(&VERSION.to_le_bytes());
    h[12..16].copy_from_slice(&(TABLES as u32).to_le_bytes());
    h[16..24].copy_from_slice(&slots.to_le_bytes());
    h[24..32].copy_from_slice(&per_window.to_le_bytes());
    h[32..40].copy_from_slice(&window.to_le_bytes());
    h[40..56].copy_from_slice(salt);
    let sum = checksum(&h[..56]);
    h[56..64].copy_from_slice(&sum.to_le_bytes());
    h
}

fn random_salt() -> io::Result<[u8; 16]> {
    use std::io::Read;
    let mut salt = [0u8; 16];
    File::open("/dev/urandom")?.read_exact(&mut salt)?;
    Ok(salt)
}

/// Gives the file's `len` bytes their blocks on disk now: a write through the mapping to a block
/// the disk no longer has room for would kill the process (SIGBUS), where this is an error the
/// caller reports at start.
fn reserve(file: &File, len: u64) -> io::Result<()> {
    let n = libc::off_t::try_from(len).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: an open file descriptor and a length; the kernel checks them.
    match unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, n) } {
        0 => Ok(()),
        // A file system without fallocate (and a libc that does not emulate it): write zeros.
        libc::EOPNOTSUPP | libc::EINVAL => {
            use std::io::Write;
            let zeros = [0u8; 65536];
            let mut f = file;
            let mut left = len;
            while left > 0 {
                let n = left.min(zeros.len() as u64) as usize;
                f.write_all(&zeros[..n])?;
                left -= n as u64;
            }
            f.sync_data()
        }
        e => Err(io::Error::from_raw_os_error(e)),
    }
}

/// A slot's `ctl` from `from` to `to`: released to readers, acquiring what another wrote.
fn ctl_cas(ctl: &AtomicU64, from: u64, to: u64) -> Result<u64, u64> {
    ctl.compare_exchange(from, to, Ordering::AcqRel, Ordering::Acquire)
}

/// Maps `len` bytes of `file` shared, read and write.
fn map(file: &File, len: u64) -> io::Result<*mut u8> {
    let len = usize::try_from(len).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: a fresh shared mapping of an open file descriptor; the kernel checks the arguments.
    let p = unsafe {
        libc::mmap(
            core::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            file.as_raw_fd(),
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    Ok(p.cast())
}

impl Index {
    /// Opens the index at `path` for `capacity` ids over `horizon` seconds, or makes a new one
    /// (written beside it and renamed into place, so that nobody maps half a file). A file that
    /// is damaged, of another version or of other settings is replaced by an empty index.
    pub fn open(path: &Path, capacity: u64, horizon: u64) -> io::Result<(Index, Opened)> {
        let (slots, per_window, window) =
            geometry(capacity, horizon).ok_or(io::ErrorKind::InvalidInput)?;
        let len = file_len(slots);
        let mut opened = Opened::Created;
        if let Ok(file) = OpenOptions::new().read(true).write(true).open(path) {
            if file.metadata()?.len() == len {
                let base = map(&file, len)?;
                let mut index = Index {
                    base,
                    len: len as usize,
                    slots_per_table: slots,
                    per_window,
                    window_secs: window,
                    salt: [0; 16],
                };
                // SAFETY: the mapping is at least a header page long.
                let found = unsafe { core::slice::from_raw_parts(base, 64) };
                let mut salt = [0u8; 16];
                salt.copy_from_slice(&found[40..56]);
                if found == header(slots, per_window, window, &salt) {
                    index.salt = salt;
                    return Ok((index, Opened::Existing));
                }
            }
            opened = Opened::Replaced;
        }
        let salt = random_salt()?;
        let tmp = path.with_extension(format!("new.{}", std::process::id()));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        // A file that could not be given its blocks (a full disk) is not left behind.
        let base = match file
            .set_len(len)
            .and_then(|()| reserve(&file, len))
            .and_then(|()| map(&file, len))
        {
            Ok(base) => base,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(e);
            }
        };
        let h = header(slots, per_window, window, &salt);
        // SAFETY: nobody else has this file yet; the mapping is at least a header page long.
        unsafe { core::ptr::copy_nonoverlapping(h.as_ptr(), base, h.len()) };
        let index = Index {
            base,
            len: len as usize,
            slots_per_table: slots,
            per_window,
            window_secs: window,
            salt,
        };
        std::fs::rename(&tmp, path).inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })?;
        Ok((index, opened))
    }

    fn word(&self, offset: usize) -> &AtomicU64 {
        debug_assert!(offset.is_multiple_of(8) && offset + 8 <= self.len);
        // SAFETY: inside the mapping (every caller computes offsets from the geometry), 8-byte
        // aligned (the mapping is page aligned, offsets are multiples of 8), and only ever
        // accessed atomically.
        unsafe { &*self.base.add(offset).cast::<AtomicU64>() }
    }

    /// The shared current window: the highest any worker has seen, so that workers whose clocks
    /// read a second apart still add to one table.
    fn current(&self) -> &AtomicU64 {
        self.word(64)
    }

    fn table_word(&self, table: u64, word: usize) -> &AtomicU64 {
        self.word(TABLE_HEADERS + table as usize * TABLE_HEADER_BYTES + word * 8)
    }

    /// A table's window word, count of ids, and oldest stored time.
    fn window_of(&self, table: u64) -> &AtomicU64 {
        self.table_word(table, 0)
    }
    fn count_of(&self, table: u64) -> &AtomicU64 {
        self.table_word(table, 1)
    }
    fn oldest_of(&self, table: u64) -> &AtomicU64 {
        self.table_word(table, 2)
    }

    fn slot_word(&self, table: u64, index: u64, word: usize) -> &AtomicU64 {
        let slot = (table * self.slots_per_table + index) as usize;
        self.word(slots_at(self.slots_per_table) as usize + slot * WORDS * 8 + word * 8)
    }

    /// A table's summary of the ids it holds: three bits of one word per id, set before the id's
    /// slot is claimed. A word without all three bits of an id means the table does not hold it,
    /// so that a new id is looked for only where it may be (a summary is small enough to stay in
    /// the CPU's cache; a table is not).
    fn summary(&self, table: u64, lo: u64) -> (&AtomicU64, u64) {
        let words = summary_words(self.slots_per_table);
        let i = ((u128::from(lo) * u128::from(words)) >> 64) as u64;
        let bits = (1 << (lo & 63)) | (1 << ((lo >> 6) & 63)) | (1 << ((lo >> 12) & 63));
        (self.summary_word(table, i), bits)
    }

    fn summary_word(&self, table: u64, i: u64) -> &AtomicU64 {
        let words = summary_words(self.slots_per_table);
        self.word(HEADER_BYTES + ((table * words + i) * 8) as usize)
    }

    fn may_hold(&self, table: u64, lo: u64) -> bool {
        let (word, bits) = self.summary(table, lo);
        word.load(Ordering::SeqCst) & bits == bits
    }

    /// The id's digest: two words, the first never 0 (0 marks an empty slot).
    fn digest(&self, id: &[u8]) -> (u64, u64) {
        let d = Sha256::new()
            .chain_update(self.salt)
            .chain_update(id)
            .finalize();
        let hi = u64::from_le_bytes(d[..8].try_into().unwrap_or_default());
        let lo = u64::from_le_bytes(d[8..16].try_into().unwrap_or_default());
        (hi.max(1), lo)
    }

    /// The first slot of an id's probe sequence in a table.
    fn start(&self, hi: u64) -> u64 {
        ((u128::from(hi) * u128::from(self.slots_per_table)) >> 64) as u64
    }

    /// The window of `now`, made the shared current one when it is newer.
    fn window_at(&self, now: u64) -> u64 {
        let w = now / self.window_secs;
        self.current().fetch_max(w, Ordering::SeqCst).max(w)
    }

    /// Whether `table` holds the ids of a window live at `current`.
    fn live(&self, table: u64, current: u64) -> bool {
        let w = self.window_of(table).load(Ordering::Acquire);
        w != 0 && w & RESET == 0 && w - 1 + TABLES > current && w - 1 <= current + 1
    }

    /// The table of window `w`, emptied first when it still holds an older window (or `None`
    /// while another worker empties it for longer than a claim waits).
    fn table_for(&self, w: u64, now: u64) -> Option<u64> {
        let t = w % TABLES;
        let word = self.window_of(t);
        let mut started = None;
        loop {
            let seen = word.load(Ordering::Acquire);
            if seen == w + 1 {
                return Some(t);
            }
            if seen & RESET == 0 && seen != 0 && seen - 1 > w {
                return None; // the table already holds a newer window: `w` left the horizon
            }
            let stuck = seen & RESET != 0 && now.saturating_sub(seen & !RESET) > RESET_STUCK_SECS;
            if (seen & RESET == 0 || stuck)
                && word
                    .compare_exchange(seen, RESET | now, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
            {
                self.empty(t);
                word.store(w + 1, Ordering::Release);
                return Some(t);
            }
            // Another worker is emptying it: wait for that (a few milliseconds), within reason.
            if started
                .get_or_insert_with(std::time::Instant::now)
                .elapsed()
                > RESET_WAIT
            {
                return None;
            }
            std::hint::spin_loop();
            std::thread::yield_now();
        }
    }

    /// Empties a table (its window word says it is being emptied).
    fn empty(&self, table: u64) {
        for i in 0..summary_words(self.slots_per_table) {
            self.summary_word(table, i).store(0, Ordering::Relaxed);
        }
        for i in 0..self.slots_per_table {
            for w in 0..WORDS {
                self.slot_word(table, i, w).store(0, Ordering::Relaxed);
            }
        }
        self.count_of(table).store(0, Ordering::Relaxed);
        self.oldest_of(table).store(0, Ordering::Relaxed);
    }

    /// Claims `id` for a delivery whose body's SHA-256 is `body` at `now` (unix seconds): `New`
    /// with its slot, to `commit` once the event is stored or `cancel` when it is not; or what
    /// the index knows of it. A claim not committed by `now + pending_ttl` may be taken over by a
    /// retry.
    pub fn claim(&self, id: &[u8], body: &[u8; 32], now: u64, pending_ttl: u64) -> Claim {
        for _ in 0..3 {
            let current = self.window_at(now & TIME);
            if let Some(claim) = self.claim_at(current, id, body, now, pending_ttl) {
                return claim;
            }
        }
        Claim::InFlight
    }

    /// A claim in window `current`, or `None` when the window moved on meanwhile and the claim
    /// was given up. A claim made in a window that another worker has just ended may have missed
    /// the same id claimed at that moment in the new window's table (it read that table before
    /// the id got there). The other claimer read this table after moving the window on (all
    /// these operations are sequentially consistent), so it saw this claim: this one is given up
    /// and made again in the new window, where the two meet at one slot.
    fn claim_at(
        &self,
        current: u64,
        id: &[u8],
        body: &[u8; 32],
        now: u64,
        pending_ttl: u64,
    ) -> Option<Claim> {
        let claim = self.claim_in(current, current, id, body, now, pending_ttl);
        match claim {
            Claim::New(slot) if self.current().load(Ordering::SeqCst) != current => {
                self.cancel(&slot);
                None
            }
            _ => Some(claim),
        }
    }

    /// A claim of `id` in the table of window `w` (the current one, or for a rebuild the
    /// window it was stored in), unless a table live at `current` holds it.
    fn claim_in(
        &self,
        w: u64,
        current: u64,
        id: &[u8],
        body: &[u8; 32],
        now: u64,
        pending_ttl: u64,
    ) -> Claim {
        let (hi, lo) = self.digest(id);
        let body = u64::from_le_bytes(body[..8].try_into().unwrap_or_default());
        let now = now & TIME;
        let deadline = (now + pending_ttl) & TIME;
        let Some(home) = self.table_for(w, now) else {
            return Claim::InFlight;
        };
        // The home table's first slot and the other tables' summaries, loaded together so that
        // their cache misses overlap; then only the tables that may hold the id are read.
        core::hint::black_box(
            self.slot_word(home, self.start(hi), 0)
                .load(Ordering::Relaxed),
        );
        let mut maybe = [false; TABLES as usize];
        for t in (0..TABLES).filter(|&t| t != home && self.live(t, current)) {
            maybe[t as usize] = self.may_hold(t, lo);
        }
        for t in (0..TABLES).filter(|&t| maybe[t as usize]) {
            if let Some(found) = self.find(t, hi, lo, body, now, deadline, false) {
                return found;
            }
        }
        self.find(home, hi, lo, body, now, deadline, true)
            .unwrap_or(Claim::Full)
    }

    /// Looks for the id in `table`; with `add`, claims the first empty slot when it is not there.
    #[allow(clippy::too_many_arguments)]
    fn find(
        &self,
        table: u64,
        hi: u64,
        lo: u64,
        body: u64,
        now: u64,
        deadline: u64,
        add: bool,
    ) -> Option<Claim> {
        let n = self.slots_per_table;
        let mut i = self.start(hi);
        for _ in 0..n {
            let tag = self.slot_word(table, i, 0);
            let mut seen = tag.load(Ordering::SeqCst);
            if seen == 0 {
                if !add {
                    return None;
                }
                if self.count_of(table).load(Ordering::Relaxed) >= self.limit() {
                    return Some(Claim::Full);
                }
                // The summary first: whoever reads the tag can also read the summary's bits.
                let (word, bits) = self.summary(table, lo);
                word.fetch_or(bits, Ordering::SeqCst);
                match tag.compare_exchange(0, hi, Ordering::SeqCst, Ordering::SeqCst) {
                    Ok(_) => {
                        self.count_of(table).fetch_add(1, Ordering::Relaxed);
                        return Some(self.write(table, i, EMPTY, lo, body, deadline));
                    }
                    Err(other) => seen = other,
                }
            }
            if seen == hi {
                if let Some(found) = self.existing(table, i, lo, body, now, deadline, add) {
                    return Some(found);
                }
            }
            i = if i + 1 == n { 0 } else { i + 1 };
        }
        add.then_some(Claim::Full)
    }

    /// Writes a claim's words into slot `i` (its tag already the id's) and marks it written:
    /// `New`, or `InFlight` when `ctl` is no longer `was` nor a reader's deadline for it (taken
    /// over: only after a claimer stalled past its deadline between its two steps).
    fn write(&self, table: u64, i: u64, was: u64, lo: u64, body: u64, deadline: u64) -> Claim {
        self.slot_word(table, i, 1).store(lo, Ordering::Relaxed);
        self.slot_word(table, i, 2).store(body, Ordering::Relaxed);
        let ctl = self.slot_word(table, i, CTL);
        let mine = PENDING | WRITTEN | deadline;
        let mut expected = was;
        for _ in 0..2 {
            match ctl_cas(ctl, expected, mine) {
                Ok(_) => {
                    return Claim::New(Slot {
                        table: table as u32,
                        index: i,
                        deadline,
                    })
                }
                // A reader gave the unwritten claim a deadline meanwhile: still ours.
                Err(v) if v & (STATE | WRITTEN) == PENDING && was == EMPTY => expected = v,
                Err(_) => break,
            }
        }
        Claim::InFlight
    }

    /// What a slot whose tag is the id's says of it: `None` when it is another id's (the rest of
    /// the digest differs), or a cancelled claim of this one outside its home table (`home`
    /// false: the claim goes on to the home table). In the home table a cancelled claim of the
    /// id is claimed again in place, so that a sender retrying a delivery the receiver keeps
    /// refusing (a full disk) takes one slot, not one a retry.
    #[allow(clippy::too_many_arguments)]
    fn existing(
        &self,
        table: u64,
        i: u64,
        lo: u64,
        body: u64,
        now: u64,
        deadline: u64,
        home: bool,
    ) -> Option<Claim> {
        let ctl = self.slot_word(table, i, CTL);
        let seen = ctl.load(Ordering::Acquire);
        if seen == EMPTY {
            // Claimed a moment ago and not yet written, or by a worker that died right there:
            // give it a deadline, after which a retry takes it over.
            let _ = ctl_cas(ctl, EMPTY, PENDING | deadline);
            return Some(Claim::InFlight);
        }
        if seen & WRITTEN != 0 && self.slot_word(table, i, 1).load(Ordering::Relaxed) != lo {
            return None; // another id whose digest begins the same
        }
        match seen & STATE {
            STORED => Some(
                if self.slot_word(table, i, 2).load(Ordering::Relaxed) == body {
                    Claim::Duplicate
                } else {
                    Claim::Conflict
                },
            ),
            PENDING if seen & TIME > now => Some(Claim::InFlight),
            // Abandoned past its deadline, or cancelled (and written: `lo` was compared): the
            // retry takes it over, with its own body. Until it is written again, readers see a
            // claim in flight.
            PENDING => Some(self.take_over(table, i, seen, lo, body, deadline)),
            DEAD if home && seen & WRITTEN != 0 => {
                Some(self.take_over(table, i, seen, lo, body, deadline))
            }
            _ => None, // cancelled elsewhere: the id is claimed in its home table
        }
    }

    /// Takes slot `i`, whose `ctl` was `seen`, for a new claim of its id.
    fn take_over(&self, table: u64, i: u64, seen: u64, lo: u64, body: u64, deadline: u64) -> Claim {
        let taken = PENDING | deadline;
        if ctl_cas(self.slot_word(table, i, CTL), seen, taken).is_err() {
            return Claim::InFlight;
        }
        self.write(table, i, taken, lo, body, deadline)
    }

    fn claimed(&self, slot: &Slot) -> Option<&AtomicU64> {
        let table = u64::from(slot.table);
        (table < TABLES && slot.index < self.slots_per_table)
            .then(|| self.slot_word(table, slot.index, CTL))
    }

    /// Marks a claim stored at `now`. False when the claim was no longer the caller's (taken
    /// over after its deadline): the id is another delivery's now.
    pub(crate) fn commit(&self, slot: &Slot, now: u64) -> bool {
        let Some(ctl) = self.claimed(slot) else {
            return false;
        };
        let table = u64::from(slot.table);
        let ok = ctl_cas(
            ctl,
            PENDING | WRITTEN | slot.deadline,
            STORED | WRITTEN | (now & TIME),
        )
        .is_ok();
        if ok {
            // The earliest time stored in the table (a rebuild inserts in no particular order).
            let _ = self
                .oldest_of(table)
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |o| {
                    (o == 0 || o > now).then_some(now)
                });
        }
        ok
    }

    /// Gives a claim up: its delivery was not stored, and a retry may claim the id again.
    pub(crate) fn cancel(&self, slot: &Slot) {
        if let Some(ctl) = self.claimed(slot) {
            // Written: the slot's `lo` stays, and a retry of the same id finds it by it.
            let _ = ctl_cas(ctl, PENDING | WRITTEN | slot.deadline, DEAD | WRITTEN);
        }
    }

    /// Takes back a claim committed at `stored_at`: its event could not be kept after all, and a
    /// retry may claim the id again. Nothing when the slot has changed since.
    pub(crate) fn uncommit(&self, slot: &Slot, stored_at: u64) {
        if let Some(ctl) = self.claimed(slot) {
            let _ = ctl_cas(ctl, STORED | WRITTEN | (stored_at & TIME), DEAD | WRITTEN);
        }
    }

    /// Remembers an id stored at `time`, as a rebuild from the journal does: whether it was
    /// added, known already, past the horizon, or refused because its window is full (the
    /// capacity was lowered since the id was stored).
    pub fn insert(&self, id: &[u8], body: &[u8; 32], time: u64, now: u64) -> Inserted {
        let current = self.window_at(now);
        let w = time / self.window_secs;
        if w + TABLES <= current + 1 {
            return Inserted::PastHorizon;
        }
        match self.claim_in(w, current, id, body, now, 60) {
            Claim::New(slot) if self.commit(&slot, time) => Inserted::Added,
            Claim::Full => Inserted::Full,
            _ => Inserted::Known,
        }
    }

    /// The ids in the live tables (claimed, stored or cancelled), and when the oldest was stored
    /// (0: none).
    pub(crate) fn held(&self, now: u64) -> (u64, u64) {
        let current = self.window_at(now);
        let (mut ids, mut oldest) = (0, 0);
        for t in (0..TABLES).filter(|&t| self.live(t, current)) {
            ids += self.count_of(t).load(Ordering::Relaxed);
            let o = self.oldest_of(t).load(Ordering::Relaxed);
            if o != 0 && (oldest == 0 || o < oldest) {
                oldest = o;
            }
        }
        (ids, oldest)
    }

    /// The most ids one window may add, and the window's length in seconds.
    pub(crate) fn window(&self) -> (u64, u64) {
        (self.per_window, self.window_secs)
    }

    /// The most ids a table takes before a new one is refused.
    pub(crate) fn limit(&self) -> u64 {
        self.per_window * SPILL_NUM / SPILL_DEN
    }

    /// The ids the window of `now` holds so far (0 before its table is used).
    pub(crate) fn window_ids(&self, now: u64) -> u64 {
        let w = self.window_at(now);
        let t = w % TABLES;
        if self.window_of(t).load(Ordering::Acquire) == w + 1 {
            self.count_of(t).load(Ordering::Relaxed)
        } else {
            0
        }
    }

    /// The file's size.
    pub(crate) fn bytes(&self) -> u64 {
        self.len as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    const DAY: u64 = 86_400;
    const NOW: u64 = 1_700_000_000;

    /// A file of the test's own, removed (with the directory once empty) when dropped: an open
    /// index keeps its mapping, and test runs leave nothing in /tmp.
    struct TempPath(std::path::PathBuf);

    impl std::ops::Deref for TempPath {
        type Target = std::path::Path;
        fn deref(&self) -> &std::path::Path {
            &self.0
        }
    }

    impl AsRef<std::path::Path> for TempPath {
        fn as_ref(&self) -> &std::path::Path {
            &self.0
        }
    }

    impl Drop for TempPath {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
            if let Some(dir) = self.0.parent() {
                let _ = std::fs::remove_dir(dir);
            }
        }
    }

    fn path(name: &str) -> TempPath {
        let dir = std::env::temp_dir().join(format!("up42wh-index-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join(name);
        let _ = std::fs::remove_file(&p);
        TempPath(p)
    }

    fn body(n: u8) -> [u8; 32] {
        [n; 32]
    }

    fn stored(index: &Index, id: &[u8], b: u8, now: u64) {
        match index.claim(id, &body(b), now, 30) {
            Claim::New(slot) => assert!(index.commit(&slot, now)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_id_is_remembered_for_the_horizon_whatever_its_state() {
        let (index, opened) = Index::open(&path("horizon"), 1000, 3 * DAY).unwrap();
        assert_eq!(opened, Opened::Created);
        stored(&index, b"m:1", 1, NOW);
        // The same body: a duplicate; another body: a conflict; for three days.
        for later in [1, 30 * 60, DAY, 3 * DAY - 1] {
            assert_eq!(
                index.claim(b"m:1", &body(1), NOW + later, 30),
                Claim::Duplicate
            );
            assert_eq!(
                index.claim(b"m:1", &body(2), NOW + later, 30),
                Claim::Conflict
            );
        }
        // Past the horizon and the window after it, forgotten.
        assert!(matches!(
            index.claim(b"m:1", &body(1), NOW + 5 * DAY, 30),
            Claim::New(_)
        ));
    }

    #[test]
    fn a_claim_in_flight_a_cancel_and_an_abandoned_claim() {
        let (index, _) = Index::open(&path("claims"), 1000, 3 * DAY).unwrap();
        let Claim::New(slot) = index.claim(b"i:a", &body(1), NOW, 30) else {
            panic!()
        };
        assert_eq!(index.claim(b"i:a", &body(1), NOW + 1, 30), Claim::InFlight);
        index.cancel(&slot);
        // Cancelled: the retry claims it again, in the same slot (it takes no other).
        let Claim::New(again) = index.claim(b"i:a", &body(1), NOW + 2, 30) else {
            panic!()
        };
        assert_eq!((again.table, again.index), (slot.table, slot.index));
        assert_eq!(index.held(NOW + 2).0, 1);
        // Not committed by its deadline: a retry takes it over, and the late commit fails.
        let Claim::New(taken) = index.claim(b"i:a", &body(3), NOW + 40, 30) else {
            panic!()
        };
        assert!(!index.commit(&again, NOW + 41));
        assert!(index.commit(&taken, NOW + 41));
        assert_eq!(
            index.claim(b"i:a", &body(3), NOW + 42, 30),
            Claim::Duplicate
        );
    }

    #[test]
    fn a_claim_overtaken_by_a_window_turn_is_made_again_in_the_new_window() {
        let (index, _) = Index::open(&path("overtaken"), 30, 3).unwrap();
        // A worker reads the window (NOW); another moves it on (NOW + 1) and looks for the same
        // id in the old window's table before the first has claimed it there: it will claim it
        // in the new table. The first must not keep its claim in the old one.
        let late = index.window_at(NOW);
        index.window_at(NOW + 1);
        assert_eq!(index.claim_at(late, b"m:1", &body(1), NOW, 30), None);
        let Claim::New(slot) = index.claim(b"m:1", &body(1), NOW + 1, 30) else {
            panic!("the claim in the new window is new")
        };
        assert!(index.commit(&slot, NOW + 1));
        assert_eq!(index.claim(b"m:1", &body(1), NOW, 30), Claim::Duplicate);
        assert_eq!(
            index.held(NOW + 1).0,
            2,
            "the given-up claim's slot stays, dead"
        );
    }

    #[test]
    fn two_claims_of_one_id_across_a_window_turn_store_it_once() {
        // Windows of one second: at every turn one thread claims in the window that ends, the
        // other in the one that starts, at the same moment.
        let (index, _) = Index::open(&path("turn"), 3000, 3).unwrap();
        let index = Arc::new(index);
        let turns = 2000u64;
        let barrier = Arc::new(std::sync::Barrier::new(2));
        let threads: Vec<_> = (0..2u64)
            .map(|late| {
                let (index, barrier) = (Arc::clone(&index), Arc::clone(&barrier));
                std::thread::spawn(move || {
                    let mut new = Vec::new();
                    for turn in 1..=turns {
                        let now = NOW + turn - 1 + late;
                        let id = format!("m:{turn}");
                        barrier.wait();
                        if let Claim::New(slot) = index.claim(id.as_bytes(), &body(1), now, 30) {
                            assert!(index.commit(&slot, now));
                            new.push(turn);
                        }
                    }
                    new
                })
            })
            .collect();
        let mut stored: Vec<u64> = threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect();
        stored.sort_unstable();
        let before = stored.len();
        stored.dedup();
        assert_eq!(before, stored.len(), "an id stored twice");
    }

    #[test]
    fn a_full_window_refuses_and_forgets_nothing() {
        let (index, _) = Index::open(&path("full"), 30, 3 * DAY).unwrap();
        let (per_window, limit) = (index.window().0, index.limit());
        assert_eq!(
            limit,
            per_window * 3 / 2,
            "half as many again past the window's ids"
        );
        for i in 0..limit {
            stored(&index, format!("m:{i}").as_bytes(), 1, NOW);
            assert_eq!(index.window_ids(NOW), i + 1);
        }
        assert_eq!(index.claim(b"m:new", &body(1), NOW, 30), Claim::Full);
        for i in 0..limit {
            let id = format!("m:{i}");
            assert_eq!(
                index.claim(id.as_bytes(), &body(1), NOW, 30),
                Claim::Duplicate
            );
        }
        assert_eq!(index.held(NOW), (limit, NOW));
        // The next window starts empty.
        assert_eq!(index.window_ids(NOW + index.window().1), 0);
    }

    #[test]
    fn it_survives_reopening_and_is_replaced_when_damaged_or_resized() {
        let p = path("reopen");
        {
            let (index, _) = Index::open(&p, 1000, 3 * DAY).unwrap();
            stored(&index, b"m:kept", 1, NOW);
        }
        let (index, opened) = Index::open(&p, 1000, 3 * DAY).unwrap();
        assert_eq!(opened, Opened::Existing);
        assert_eq!(
            index.claim(b"m:kept", &body(1), NOW + 60, 30),
            Claim::Duplicate
        );
        drop(index);
        // A byte flipped in the header: replaced by an empty index.
        let mut bytes = std::fs::read(&p).unwrap();
        bytes[20] ^= 1;
        std::fs::write(&p, &bytes).unwrap();
        let (index, opened) = Index::open(&p, 1000, 3 * DAY).unwrap();
        assert_eq!(opened, Opened::Replaced);
        assert!(matches!(
            index.claim(b"m:kept", &body(1), NOW, 30),
            Claim::New(_)
        ));
        drop(index);
        // Truncated, or made for another capacity: replaced too.
        std::fs::write(&p, b"short").unwrap();
        assert_eq!(Index::open(&p, 1000, 3 * DAY).unwrap().1, Opened::Replaced);
        assert_eq!(Index::open(&p, 2000, 3 * DAY).unwrap().1, Opened::Replaced);
    }

    #[test]
    fn a_rebuild_inserts_what_is_still_inside_the_horizon() {
        let (index, _) = Index::open(&path("rebuild"), 1000, 3 * DAY).unwrap();
        assert_eq!(
            index.insert(b"m:old", &body(1), NOW - 5 * DAY, NOW),
            Inserted::PastHorizon
        );
        assert_eq!(
            index.insert(b"m:recent", &body(1), NOW - 2 * DAY, NOW),
            Inserted::Added
        );
        assert_eq!(
            index.insert(b"m:today", &body(1), NOW - 60, NOW),
            Inserted::Added
        );
        // Inserted out of order: the oldest is the earliest, whatever came first.
        assert_eq!(
            index.insert(b"m:earlier", &body(1), NOW - 600, NOW),
            Inserted::Added
        );
        assert_eq!(
            index.insert(b"m:today", &body(1), NOW - 50, NOW),
            Inserted::Known
        );
        assert!(matches!(
            index.claim(b"m:old", &body(1), NOW, 30),
            Claim::New(_)
        ));
        assert_eq!(
            index.claim(b"m:recent", &body(1), NOW, 30),
            Claim::Duplicate
        );
        assert_eq!(index.claim(b"m:today", &body(1), NOW, 30), Claim::Duplicate);
        assert_eq!(index.held(NOW).1, NOW - 2 * DAY);
        let (today, _) = Index::open(&path("rebuild-order"), 1000, 3 * DAY).unwrap();
        assert_eq!(
            today.insert(b"m:b", &body(1), NOW - 60, NOW),
            Inserted::Added
        );
        assert_eq!(
            today.insert(b"m:a", &body(1), NOW - 600, NOW),
            Inserted::Added
        );
        assert_eq!(today.held(NOW).1, NOW - 600);
        // A window fuller than the capacity allows (it was lowered): said, not silent.
        let (small, _) = Index::open(&path("rebuild-small"), 3, 3 * DAY).unwrap();
        assert_eq!(
            small.insert(b"m:1", &body(1), NOW - 60, NOW),
            Inserted::Added
        );
        assert_eq!(
            small.insert(b"m:2", &body(1), NOW - 60, NOW),
            Inserted::Full
        );
    }

    #[test]
    fn many_threads_claiming_the_same_ids_store_each_once() {
        let p = path("race");
        let (index, _) = Index::open(&p, 100_000, 3 * DAY).unwrap();
        let index = Arc::new(index);
        let ids = 2000u64;
        let threads: Vec<_> = (0..8)
            .map(|n| {
                // Half share one mapping; the others map the file themselves, as separate
                // processes would.
                let index = if n % 2 == 0 {
                    Arc::clone(&index)
                } else {
                    Arc::new(Index::open(&p, 100_000, 3 * DAY).unwrap().0)
                };
                std::thread::spawn(move || {
                    let mut won = Vec::new();
                    for i in 0..ids {
                        let id = format!("m:{i}");
                        if let Claim::New(slot) = index.claim(id.as_bytes(), &body(1), NOW, 30) {
                            assert!(index.commit(&slot, NOW));
                            won.push(i);
                        }
                    }
                    won
                })
            })
            .collect();
        let mut all: Vec<u64> = threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect();
        all.sort_unstable();
        assert_eq!(
            all,
            (0..ids).collect::<Vec<_>>(),
            "each id won exactly once"
        );
        assert_eq!(index.held(NOW).0, ids);
    }

    #[test]
    fn a_slot_is_thirty_two_bytes() {
        assert_eq!(SLOT_BYTES, 32);
        let (slots, per_window, window) = geometry(1_000_000, 3 * DAY).unwrap();
        assert_eq!((per_window, window), (333_334, DAY));
        assert!(slots * LOAD_NUM >= per_window * LOAD_DEN - LOAD_DEN);
    }
}
