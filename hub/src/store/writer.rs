//! The one writer thread: takes write operations from a bounded queue and commits them in
//! batches, one transaction each.
//!
//! Batching is group commit: the thread waits for the first operation, then takes everything
//! already queued (up to [`MAX_BATCH`]) into the same transaction. Under load, what arrives while a
//! commit is syncing goes into the next one, so a burst of thousands of state changes costs a few
//! fsyncs. When nobody waits for any operation of the batch (state reports, automation traces),
//! the writer also gathers what arrives within [`COMMIT_WINDOW`] before it commits: a sensor
//! reporting 1,000 times a second then costs 10 fsyncs a second, not 1,000. An operation
//! someone waits for (an acknowledgement whose receiver is alive: an API change, a flush) ends
//! the window at once. Within the window the writer sleeps: a write nobody waits for does not
//! wake it (one wake-up per write was most of its cost, in context switches); a waited write, or a
//! sender finding the queue full, kicks it awake. Each operation runs in its own savepoint, so one failing operation never
//! undoes the others. An operation's acknowledgement is sent only after its transaction is
//! durable (`synchronous = FULL`).
//!
//! History rows name their (device, feature) pair by a `series` id. The writer keeps the ids it
//! has used in memory, so a sample costs no lookup once its series is known; the memory is
//! cleared whenever a transaction fails (its new series rows are gone with it) and after series
//! rows are removed ([`WriteOp::ForgetEmptySeries`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;

use hearth_sdk::{Area, Context, Device, DeviceDescriptor, DeviceId, Origin, Timestamp, Value};
use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::{Notify, mpsc, oneshot};

use super::StoreError;

/// The most operations committed in one transaction.
pub const MAX_BATCH: usize = 2048;
/// How many operations may wait for the writer before senders wait (backpressure).
pub const QUEUE: usize = 8192;
/// How long a batch nobody waits for may gather more operations before it is committed. What the
/// hub reports as persisted (history reads) is only ever what was committed; a crash loses at
/// most this much of the newest history, and never what anyone was told was saved.
pub const COMMIT_WINDOW: std::time::Duration = std::time::Duration::from_millis(100);

/// The longest the writer works on a batch before it lets other threads run: a 100 ms batch takes
/// a few milliseconds, and the kernel let it finish while a reaction waited for the core (the
/// reaction p99 rose by that much, every commit). Yielding costs a system call.
const WORK_SLICE: std::time::Duration = std::time::Duration::from_micros(500);

/// Whether someone waits for this operation's commit.
fn awaited(op: &(WriteOp, Option<Ack>)) -> bool {
    op.1.as_ref().is_some_and(|ack| !ack.is_closed())
}

/// Sleeps until `deadline` or a kick, whichever comes first; returns whether it was kicked.
/// Without a clock there is no window: returns at once, as if the deadline had passed.
fn sleep_until(clock: Option<&tokio::runtime::Runtime>, kick: &Notify, deadline: tokio::time::Instant) -> bool {
    match clock {
        // The timer is made inside the runtime, whose clock it needs.
        Some(rt) => rt.block_on(async { tokio::time::timeout_at(deadline, kick.notified()).await }).is_ok(),
        None => false,
    }
}

/// Takes what is queued into `batch`, up to [`MAX_BATCH`]; returns whether any taken operation
/// is awaited, and whether every sender is gone.
fn take_queued(
    rx: &mut mpsc::Receiver<(WriteOp, Option<Ack>)>,
    batch: &mut Vec<(WriteOp, Option<Ack>)>,
) -> (bool, bool) {
    let mut urgent = false;
    while batch.len() < MAX_BATCH {
        match rx.try_recv() {
            Ok(op) => {
                urgent |= awaited(&op);
                batch.push(op);
            }
            Err(mpsc::error::TryRecvError::Empty) => return (urgent, false),
            Err(mpsc::error::TryRecvError::Disconnected) => return (urgent, true),
        }
    }
    (urgent, false)
}

type ExecFn = Box<dyn FnOnce(&Connection) -> Result<(), StoreError> + Send>;

/// One write.
pub enum WriteOp {
    /// Insert or update a device row (descriptor, user name, area).
    UpsertDevice(Box<Device>),
    /// Delete a device and its latest state (its history stays).
    DeleteDevice(DeviceId),
    /// Insert or update an area.
    UpsertArea(Area),
    /// Delete an area (devices in it keep no area).
    DeleteArea(String),
    /// A feature's value changed: update latest state and append to history.
    State {
        /// The device.
        device: DeviceId,
        /// The feature.
        feature: String,
        /// The new value.
        value: Value,
        /// When it changed.
        at: Timestamp,
        /// Why.
        context: Context,
    },
    /// A momentary event: append to history.
    Event {
        /// The device.
        device: DeviceId,
        /// The feature.
        feature: String,
        /// The event name.
        event: String,
        /// When.
        at: Timestamp,
        /// Why.
        context: Context,
    },
    /// Anything else (accounts, tokens), as a closure over the transaction.
    Exec(ExecFn),
    /// A write and the cloud outbox row it causes, committed together; the outbox keeps to
    /// `cap` rows.
    Shared(Box<WriteOp>, crate::cloud::outbox::Row, u64),
    /// A cloud outbox row that goes with no other write (availability).
    Outbox(crate::cloud::outbox::Row, u64),
    /// Removes the series that have no rows left in history or its aggregates (history upkeep,
    /// after retention).
    ForgetEmptySeries,
}

impl std::fmt::Debug for WriteOp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WriteOp::UpsertDevice(d) => write!(f, "UpsertDevice({})", d.id),
            WriteOp::DeleteDevice(d) => write!(f, "DeleteDevice({d})"),
            WriteOp::UpsertArea(a) => write!(f, "UpsertArea({})", a.id),
            WriteOp::DeleteArea(a) => write!(f, "DeleteArea({a})"),
            WriteOp::State { device, feature, .. } => write!(f, "State({device}/{feature})"),
            WriteOp::Event { device, feature, .. } => write!(f, "Event({device}/{feature})"),
            WriteOp::Exec(_) => f.write_str("Exec"),
            WriteOp::Shared(op, row, _) => write!(f, "Shared({op:?}, {})", row.kind.as_str()),
            WriteOp::Outbox(row, _) => write!(f, "Outbox({}/{})", row.kind.as_str(), row.device),
            WriteOp::ForgetEmptySeries => f.write_str("ForgetEmptySeries"),
        }
    }
}

type Ack = oneshot::Sender<Result<(), String>>;

/// Counters of the writer, for `/metrics` and benchmarks.
#[derive(Debug, Default)]
pub struct WriterStats {
    /// Operations committed.
    pub ops: AtomicU64,
    /// Transactions committed.
    pub batches: AtomicU64,
    /// Operations that failed.
    pub failures: AtomicU64,
    /// Cloud outbox rows dropped to keep the outbox within its cap.
    pub outbox_dropped: AtomicU64,
    /// History upkeep and the disk budget, which the writer checks after each batch.
    pub upkeep: super::upkeep::UpkeepStats,
}

/// A cheap handle that queues writes for the writer thread.
#[derive(Debug, Clone)]
pub struct StoreWriter {
    tx: mpsc::Sender<(WriteOp, Option<Ack>)>,
    /// Wakes the writer within its commit window: a write someone waits for, or a full queue.
    kick: Arc<Notify>,
    stats: Arc<WriterStats>,
}

impl StoreWriter {
    /// Starts the writer thread on `conn`. The thread ends when every handle is dropped, after
    /// committing what was queued; join the returned handle to wait for the final write.
    pub fn start(conn: Connection) -> (StoreWriter, thread::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        let stats = Arc::new(WriterStats::default());
        let thread_stats = stats.clone();
        let kick = Arc::new(Notify::new());
        let thread_kick = kick.clone();
        let handle = thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || run(conn, rx, &thread_kick, &thread_stats))
            .unwrap_or_else(|e| panic!("cannot start the database writer thread: {e}"));
        (StoreWriter { tx, kick, stats }, handle)
    }

    /// Queues a write; waits while the queue is full. Does not wait for the commit.
    pub async fn send(&self, op: WriteOp) -> Result<(), StoreError> {
        self.enqueue((op, None)).await
    }

    /// Queues a write and returns a receiver that resolves once it is committed.
    pub async fn send_acked(&self, op: WriteOp) -> Result<oneshot::Receiver<Result<(), String>>, StoreError> {
        let (ack, rx) = oneshot::channel();
        self.enqueue((op, Some(ack))).await?;
        // Someone waits: the window ends now.
        self.kick.notify_one();
        Ok(rx)
    }

    async fn enqueue(&self, item: (WriteOp, Option<Ack>)) -> Result<(), StoreError> {
        match self.tx.try_send(item) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(item)) => {
                // The writer may be asleep in its window: room comes sooner if it commits now.
                self.kick.notify_one();
                self.tx.send(item).await.map_err(|_| StoreError::WriterGone)
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Err(StoreError::WriterGone),
        }
    }

    /// Queues a write and waits until it is committed.
    pub async fn write(&self, op: WriteOp) -> Result<(), StoreError> {
        let rx = self.send_acked(op).await?;
        rx.await.map_err(|_| StoreError::WriterGone)?.map_err(StoreError::Write)
    }

    /// Runs `f` in the writer's transaction and returns its result once committed.
    pub async fn exec<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let slot = Arc::new(std::sync::Mutex::new(None));
        let out = slot.clone();
        self.write(WriteOp::Exec(Box::new(move |tx| {
            let value = f(tx)?;
            if let Ok(mut s) = out.lock() {
                *s = Some(value);
            }
            Ok(())
        })))
        .await?;
        let value = slot.lock().ok().and_then(|mut s| s.take());
        value.ok_or(StoreError::WriterGone)
    }

    /// Waits until everything queued before this call is committed.
    pub async fn flush(&self) -> Result<(), StoreError> {
        self.write(WriteOp::Exec(Box::new(|_| Ok(())))).await
    }

    /// The writer's counters.
    pub fn stats(&self) -> &Arc<WriterStats> {
        &self.stats
    }

    /// Operations waiting in the queue.
    pub fn queued(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }
}

/// The series ids the writer has used: (device, feature) to `series.id`. Only ids committed or
/// written in the open transaction are here; see [`run`].
#[derive(Debug, Default)]
struct SeriesIds(HashMap<String, HashMap<String, i64>>);

impl SeriesIds {
    /// The series id of `device`'s `feature`, made when it has none. A lookup in memory when the
    /// writer has used it before; otherwise one indexed read, and an insert the first time.
    fn get(&mut self, tx: &Connection, device: &DeviceId, feature: &str) -> Result<i64, StoreError> {
        if let Some(id) = self.0.get(device.as_str()).and_then(|f| f.get(feature)) {
            return Ok(*id);
        }
        let found = tx
            .prepare_cached("SELECT id FROM series WHERE device = ?1 AND feature = ?2")?
            .query_row(params![device.as_str(), feature], |r| r.get::<_, i64>(0))
            .optional()?;
        let id = match found {
            Some(id) => id,
            None => {
                tx.prepare_cached("INSERT INTO series (device, feature) VALUES (?1, ?2)")?
                    .execute(params![device.as_str(), feature])?;
                tx.last_insert_rowid()
            }
        };
        self.0.entry(device.as_str().to_owned()).or_default().insert(feature.to_owned(), id);
        Ok(id)
    }

    fn clear(&mut self) {
        self.0.clear();
    }
}

/// The context as stored with a history row: none for a device's own report (origin device, no
/// parent), which is most of them and says nothing its row does not.
fn stored_context(context: &Context) -> Result<Option<String>, StoreError> {
    if context.origin == Origin::Device && context.parent.is_none() {
        return Ok(None);
    }
    Ok(Some(serde_json::to_string(context)?))
}

fn run(mut conn: Connection, mut rx: mpsc::Receiver<(WriteOp, Option<Ack>)>, kick: &Notify, stats: &WriterStats) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut series = SeriesIds::default();
    // A clock of the writer's own for the commit window (a failure only loses the window).
    let clock = tokio::runtime::Builder::new_current_thread().enable_time().build().ok();
    while let Some(first) = rx.blocking_recv() {
        let mut urgent = awaited(&first);
        batch.push(first);
        let deadline = tokio::time::Instant::now() + COMMIT_WINDOW;
        loop {
            let (awaited_op, closed) = take_queued(&mut rx, &mut batch);
            urgent |= awaited_op;
            if urgent || closed || batch.len() >= MAX_BATCH {
                break;
            }
            // Asleep until the deadline: what arrives meanwhile waits in the queue. A kick (a
            // waited write, a full queue; or one left from before this window) takes it early.
            if !sleep_until(clock.as_ref(), kick, deadline) {
                take_queued(&mut rx, &mut batch);
                break;
            }
        }
        let n = batch.len() as u64;
        let mut results = Vec::with_capacity(batch.len());
        let committed = (|| -> Result<(), rusqlite::Error> {
            let mut tx = conn.transaction()?;
            let mut slice = std::time::Instant::now();
            for (op, _) in &mut batch {
                if slice.elapsed() >= WORK_SLICE {
                    thread::yield_now();
                    slice = std::time::Instant::now();
                }
                let op = std::mem::replace(op, WriteOp::Exec(Box::new(|_| Ok(()))));
                // Registry and state writes cannot fail on their own (only with the whole
                // transaction); other operations get a savepoint so a refusal undoes only them.
                if !matches!(op, WriteOp::Exec(_)) {
                    results.push(apply(&tx, op, stats, &mut series).map_err(|e| e.to_string()));
                    continue;
                }
                // Savepoint statements prepared once: an automation's trace is one of these on
                // every run.
                tx.prepare_cached("SAVEPOINT hearth_op")?.execute([])?;
                match apply(&tx, op, stats, &mut series) {
                    Ok(()) => {
                        tx.prepare_cached("RELEASE hearth_op")?.execute([])?;
                        results.push(Ok(()));
                    }
                    Err(e) => {
                        tx.prepare_cached("ROLLBACK TO hearth_op")?.execute([])?;
                        tx.prepare_cached("RELEASE hearth_op")?.execute([])?;
                        results.push(Err(e.to_string()));
                    }
                }
            }
            tx.set_drop_behavior(rusqlite::DropBehavior::Commit);
            tx.commit()
        })();
        match committed {
            Ok(()) => {
                stats.ops.fetch_add(n, Ordering::Relaxed);
                stats.batches.fetch_add(1, Ordering::Relaxed);
                // Within the budget before anyone hears the write is done: a flush waits for it.
                stats.upkeep.after_batch(&conn);
                for ((_, ack), r) in batch.drain(..).zip(results.into_iter().chain(std::iter::repeat(Ok(())))) {
                    if r.is_err() {
                        stats.failures.fetch_add(1, Ordering::Relaxed);
                    }
                    if let Err(e) = &r {
                        tracing::warn!(error = %e, "A database write failed.");
                    }
                    if let Some(ack) = ack {
                        let _ = ack.send(r);
                    }
                }
            }
            Err(e) => {
                // Series rows made in the transaction are gone with it.
                series.clear();
                tracing::error!(error = %e, ops = n, "A database transaction failed; its writes are lost.");
                stats.failures.fetch_add(n, Ordering::Relaxed);
                for (_, ack) in batch.drain(..) {
                    if let Some(ack) = ack {
                        let _ = ack.send(Err(e.to_string()));
                    }
                }
            }
        }
    }
    tracing::debug!("The database writer has committed everything and stops.");
}

/// Applies one operation inside the batch's transaction (through its savepoint).
fn apply(tx: &Connection, op: WriteOp, stats: &WriterStats, series: &mut SeriesIds) -> Result<(), StoreError> {
    let now = Timestamp::now().as_millis();
    match op {
        WriteOp::UpsertDevice(d) => {
            let descriptor = DeviceDescriptor {
                id: d.id.clone(),
                name: d.name.clone(),
                suggested_area: None,
                manufacturer: d.manufacturer.clone(),
                model: d.model.clone(),
                firmware: d.firmware.clone(),
                via: d.via.clone(),
                power_source: d.power_source,
                features: d.features.clone(),
            };
            tx.prepare_cached(
                "INSERT INTO devices (id, adapter, name, name_by_user, area, descriptor, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (id) DO UPDATE SET adapter = ?2, name = ?3, name_by_user = ?4, area = ?5,
                   descriptor = ?6, updated_at = ?7",
            )?
            .execute(params![
                d.id.as_str(),
                d.adapter,
                d.name,
                d.name_by_user,
                d.area,
                serde_json::to_string(&descriptor)?,
                now
            ])?;
        }
        WriteOp::DeleteDevice(id) => {
            tx.execute("DELETE FROM state WHERE device = ?1", [id.as_str()])?;
            tx.execute("DELETE FROM devices WHERE id = ?1", [id.as_str()])?;
        }
        WriteOp::UpsertArea(a) => {
            tx.prepare_cached(
                "INSERT INTO areas (id, name, sort) VALUES (?1, ?2, ?3)
                 ON CONFLICT (id) DO UPDATE SET name = ?2, sort = ?3",
            )?
            .execute(params![a.id, a.name, a.order])?;
        }
        WriteOp::DeleteArea(id) => {
            tx.execute("DELETE FROM areas WHERE id = ?1", [id])?;
        }
        WriteOp::State { device, feature, value, at, context } => {
            let value = serde_json::to_string(&value)?;
            tx.prepare_cached(
                "INSERT INTO state (device, feature, value, changed_at, reported_at) VALUES (?1, ?2, ?3, ?4, ?4)
                 ON CONFLICT (device, feature) DO UPDATE SET value = ?3, changed_at = ?4, reported_at = ?4",
            )?
            .execute(params![device.as_str(), feature, value, at.as_millis()])?;
            let id = series.get(tx, &device, &feature)?;
            tx.prepare_cached("INSERT INTO history (series, kind, value, at, context) VALUES (?1, 0, ?2, ?3, ?4)")?
                .execute(params![id, value, at.as_millis(), stored_context(&context)?])?;
        }
        WriteOp::Event { device, feature, event, at, context } => {
            let id = series.get(tx, &device, &feature)?;
            tx.prepare_cached("INSERT INTO history (series, kind, value, at, context) VALUES (?1, 1, ?2, ?3, ?4)")?
                .execute(params![id, serde_json::to_string(&event)?, at.as_millis(), stored_context(&context)?])?;
        }
        WriteOp::Exec(f) => f(tx)?,
        WriteOp::ForgetEmptySeries => {
            // Cleared first: should the statement fail half-way, no id it removed stays known.
            series.clear();
            let n = tx.execute(
                "DELETE FROM series WHERE NOT EXISTS (SELECT 1 FROM history WHERE history.series = series.id)
                   AND NOT EXISTS (SELECT 1 FROM history_5m WHERE history_5m.series = series.id)
                   AND NOT EXISTS (SELECT 1 FROM history_1h WHERE history_1h.series = series.id)",
                [],
            )?;
            if n > 0 {
                tracing::debug!(series = n, "Forgot series with no history left.");
            }
        }
        WriteOp::Shared(op, row, cap) => {
            apply(tx, *op, stats, series)?;
            let dropped = crate::cloud::outbox::insert(tx, &row, cap)?;
            stats.outbox_dropped.fetch_add(dropped, Ordering::Relaxed);
        }
        WriteOp::Outbox(row, cap) => {
            let dropped = crate::cloud::outbox::insert(tx, &row, cap)?;
            stats.outbox_dropped.fetch_add(dropped, Ordering::Relaxed);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The database's size as a file once its write-ahead log is checkpointed into it.
    fn file_bytes(path: &std::path::Path) -> u64 {
        let conn = Connection::open(path).expect("open");
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())).expect("checkpoint");
        let pages: i64 = conn.query_row("PRAGMA page_count", [], |r| r.get(0)).expect("pages");
        let size: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0)).expect("page size");
        u64::try_from(pages * size).expect("size")
    }

    fn state(device: &str, feature: &str, value: f64, at: i64, origin: Origin) -> WriteOp {
        WriteOp::State {
            device: DeviceId::parse(device).expect("id"),
            feature: feature.into(),
            value: Value::Number(value),
            at: Timestamp::from_millis(at),
            context: Context::new(format!("c-{at}"), origin),
        }
    }

    /// (feature, value, context) of a device's history, oldest first.
    fn read(path: &std::path::Path, device: &str) -> Vec<(String, serde_json::Value, Option<serde_json::Value>)> {
        let conn = Connection::open(path).expect("open");
        let q = crate::store::HistoryQuery { limit: 100, ..Default::default() };
        let (entries, _) = crate::store::history(&conn, &DeviceId::parse(device).expect("id"), &q).expect("history");
        entries.into_iter().map(|e| (e.feature, e.value, e.context)).collect()
    }

    #[tokio::test]
    async fn writes_nobody_waits_for_are_gathered_into_one_commit_that_a_waited_write_ends() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (conn, _) = crate::store::open_and_migrate(dir.path()).expect("open");
        let (writer, thread) = StoreWriter::start(conn);
        // Two reports a few milliseconds apart, well inside the window, then a flush someone
        // waits for: one transaction. Committing each at once would make three.
        writer.send(state("demo:lamp", "brightness", 10.0, 1_000, Origin::Device)).await.expect("queue");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        writer.send(state("demo:lamp", "brightness", 20.0, 2_000, Origin::Device)).await.expect("queue");
        writer.flush().await.expect("flush");
        assert_eq!(writer.stats().batches.load(Ordering::Relaxed), 1, "one commit for the three");
        assert_eq!(writer.stats().ops.load(Ordering::Relaxed), 3);
        drop(writer);
        thread.join().expect("writer");
        let path = dir.path().join("hearth.db");
        assert_eq!(read(&path, "demo:lamp").len(), 2, "both reports are in history");
    }

    #[tokio::test]
    async fn a_transaction_that_fails_leaves_no_series_id_behind() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (conn, path) = crate::store::open_and_migrate(dir.path()).expect("open");
        let (writer, thread) = StoreWriter::start(conn);
        // Hold the writer in a transaction so the next two writes share the following one.
        let (go, wait) = std::sync::mpsc::channel::<()>();
        let held = writer
            .send_acked(WriteOp::Exec(Box::new(move |_| {
                let _ = wait.recv();
                Ok(())
            })))
            .await
            .expect("queue");
        let first = writer.send_acked(state("z:plug", "power", 5.0, 1_000, Origin::Device)).await.expect("queue");
        // A foreign key checked at commit: the whole transaction fails there and rolls back.
        let spoiler = writer
            .send_acked(WriteOp::Exec(Box::new(|tx| {
                tx.execute_batch(
                    "PRAGMA defer_foreign_keys = ON;
                     INSERT INTO automation_runs (run_id, automation, record, updated_at) VALUES (1, 'nobody', '{}', 1);",
                )?;
                Ok(())
            })))
            .await
            .expect("queue");
        go.send(()).expect("release");
        let _ = held.await;
        assert!(first.await.expect("answer").is_err(), "the failed transaction's write is reported lost");
        assert!(spoiler.await.expect("answer").is_err());

        writer.write(state("z:plug", "power", 6.0, 2_000, Origin::Device)).await.expect("the next write");
        assert_eq!(read(&path, "z:plug"), vec![("power".to_owned(), serde_json::json!(6.0), None)]);
        drop(writer);
        thread.join().expect("writer");
    }

    #[tokio::test]
    async fn series_with_no_history_left_are_forgotten_and_made_again_when_needed() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (conn, path) = crate::store::open_and_migrate(dir.path()).expect("open");
        let (writer, thread) = StoreWriter::start(conn);
        let ada = Origin::User { name: "ada".into() };
        writer.write(state("z:plug", "power", 5.0, 1_000, Origin::Device)).await.expect("write");
        writer.write(state("z:lamp", "brightness", 40.0, 1_000, ada.clone())).await.expect("write");
        // The plug's history ages out, as retention would remove it.
        writer
            .exec(|tx| {
                tx.execute("DELETE FROM history WHERE series = (SELECT id FROM series WHERE device = 'z:plug')", [])?;
                Ok(())
            })
            .await
            .expect("delete");
        writer.write(WriteOp::ForgetEmptySeries).await.expect("forget");
        let left: Vec<String> = {
            let conn = Connection::open(&path).expect("open");
            let mut st = conn.prepare("SELECT device || '/' || feature FROM series").expect("prepare");
            st.query_map([], |r| r.get(0)).expect("query").collect::<Result<_, _>>().expect("rows")
        };
        assert_eq!(left, ["z:lamp/brightness"]);

        writer.write(state("z:plug", "power", 7.0, 3_000, Origin::Device)).await.expect("write again");
        assert_eq!(read(&path, "z:plug"), vec![("power".to_owned(), serde_json::json!(7.0), None)]);
        let lamp = read(&path, "z:lamp");
        assert_eq!(lamp.len(), 1);
        assert_eq!(
            lamp[0].2,
            Some(serde_json::json!({"id": "c-1000", "origin": {"kind": "user", "name": "ada"}})),
            "a context other than a device's own report is kept"
        );
        drop(writer);
        thread.join().expect("writer");
    }

    /// Issue 12's target: a history sample costs under 100 bytes on disk. Sensors of a real
    /// home's shape, through the writer as the hub writes them.
    #[tokio::test]
    async fn a_history_sample_costs_under_100_bytes_on_disk() {
        const SAMPLES: u64 = 50_000;
        let dir = tempfile::tempdir().expect("temp dir");
        let (conn, path) = crate::store::open_and_migrate(dir.path()).expect("open");
        drop(conn);
        let before = file_bytes(&path);

        let (writer, thread) = StoreWriter::start(crate::store::open_connection(&path).expect("open"));
        let devices: Vec<DeviceId> = (0..60u64)
            .map(|i| DeviceId::parse(&format!("zigbee2mqtt:0x00158d0008d4{:04x}", 0xe5f6 + i)).expect("id"))
            .collect();
        let start = 1_764_400_000_000i64;
        let prefix = format!("{start:x}");
        for i in 0..SAMPLES {
            let device = devices[(i % 60) as usize].clone();
            let (feature, value) = match i / 60 % 3 {
                0 => ("temperature", Value::Number(f64::from(1800 + (i * 7 % 700) as u32) / 100.0)),
                1 => ("humidity", Value::Number(f64::from(350 + (i * 3 % 300) as u32) / 10.0)),
                _ => ("occupancy", Value::Bool(i % 2 == 0)),
            };
            let context = Context::new(format!("{prefix}-{:x}", i + 1), Origin::Device);
            let at = Timestamp::from_millis(start + i as i64 * 1_200);
            writer.send(WriteOp::State { device, feature: feature.into(), value, at, context }).await.expect("queue");
        }
        writer.flush().await.expect("flush");
        drop(writer);
        thread.join().expect("writer");

        let after = file_bytes(&path);
        let conn = Connection::open(&path).expect("open");
        let rows: i64 = conn.query_row("SELECT COUNT(*) FROM history", [], |r| r.get(0)).expect("count");
        assert_eq!(rows, SAMPLES as i64, "every sample is in history");
        let per_sample = (after - before) as f64 / SAMPLES as f64;
        eprintln!("history on disk: {per_sample:.1} bytes per sample ({SAMPLES} samples, {} bytes)", after - before);
        assert!(per_sample < 100.0, "a history sample costs {per_sample:.1} bytes on disk; the target is under 100");
    }
}
