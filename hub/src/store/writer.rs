//! The one writer thread: takes write operations from a bounded queue and commits them in
//! batches, one transaction each.
//!
//! Batching is group commit: the thread waits for the first operation, then takes everything
//! already queued (up to [`MAX_BATCH`]) into the same transaction. Under load, what arrives while a
//! commit is syncing goes into the next one, so a burst of thousands of state changes costs a few
//! fsyncs, while a lone change is committed at once. Each operation runs in its own savepoint, so
//! one failing operation never undoes the others. An operation's acknowledgement is sent only
//! after its transaction is durable (`synchronous = FULL`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;

use hearth_sdk::{Area, Context, Device, DeviceDescriptor, DeviceId, Timestamp, Value};
use rusqlite::{Connection, params};
use tokio::sync::{mpsc, oneshot};

use super::StoreError;

/// The most operations committed in one transaction.
pub const MAX_BATCH: usize = 2048;
/// How many operations may wait for the writer before senders wait (backpressure).
pub const QUEUE: usize = 8192;

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
    stats: Arc<WriterStats>,
}

impl StoreWriter {
    /// Starts the writer thread on `conn`. The thread ends when every handle is dropped, after
    /// committing what was queued; join the returned handle to wait for the final write.
    pub fn start(conn: Connection) -> (StoreWriter, thread::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        let stats = Arc::new(WriterStats::default());
        let thread_stats = stats.clone();
        let handle = thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || run(conn, rx, &thread_stats))
            .unwrap_or_else(|e| panic!("cannot start the database writer thread: {e}"));
        (StoreWriter { tx, stats }, handle)
    }

    /// Queues a write; waits while the queue is full. Does not wait for the commit.
    pub async fn send(&self, op: WriteOp) -> Result<(), StoreError> {
        self.tx.send((op, None)).await.map_err(|_| StoreError::WriterGone)
    }

    /// Queues a write and returns a receiver that resolves once it is committed.
    pub async fn send_acked(&self, op: WriteOp) -> Result<oneshot::Receiver<Result<(), String>>, StoreError> {
        let (ack, rx) = oneshot::channel();
        self.tx.send((op, Some(ack))).await.map_err(|_| StoreError::WriterGone)?;
        Ok(rx)
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

fn run(mut conn: Connection, mut rx: mpsc::Receiver<(WriteOp, Option<Ack>)>, stats: &WriterStats) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        let n = batch.len() as u64;
        let mut results = Vec::with_capacity(batch.len());
        let committed = (|| -> Result<(), rusqlite::Error> {
            let mut tx = conn.transaction()?;
            for (op, _) in &mut batch {
                let op = std::mem::replace(op, WriteOp::Exec(Box::new(|_| Ok(()))));
                // Registry and state writes cannot fail on their own (only with the whole
                // transaction); other operations get a savepoint so a refusal undoes only them.
                if !matches!(op, WriteOp::Exec(_)) {
                    results.push(apply(&tx, op, stats).map_err(|e| e.to_string()));
                    continue;
                }
                let mut sp = tx.savepoint()?;
                match apply(&sp, op, stats) {
                    Ok(()) => {
                        sp.commit()?;
                        results.push(Ok(()));
                    }
                    Err(e) => {
                        sp.rollback()?;
                        drop(sp);
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
fn apply(tx: &Connection, op: WriteOp, stats: &WriterStats) -> Result<(), StoreError> {
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
            tx.prepare_cached(
                "INSERT INTO history (device, feature, kind, value, at, context) VALUES (?1, ?2, 0, ?3, ?4, ?5)",
            )?
            .execute(params![
                device.as_str(),
                feature,
                value,
                at.as_millis(),
                serde_json::to_string(&context)?
            ])?;
        }
        WriteOp::Event { device, feature, event, at, context } => {
            tx.prepare_cached(
                "INSERT INTO history (device, feature, kind, value, at, context) VALUES (?1, ?2, 1, ?3, ?4, ?5)",
            )?
            .execute(params![
                device.as_str(),
                feature,
                serde_json::to_string(&event)?,
                at.as_millis(),
                serde_json::to_string(&context)?
            ])?;
        }
        WriteOp::Exec(f) => f(tx)?,
        WriteOp::Shared(op, row, cap) => {
            apply(tx, *op, stats)?;
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
