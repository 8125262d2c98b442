//! Files and stdin: NDJSON or a JSON array, either of them gzip-compressed, told apart by their
//! content. A reader thread cuts the input into chunks of `batch_size` records; chunks are decoded
//! into Arrow on decode threads, several at a time, and come out in input order.
//!
//! Memory is bounded by the chunks in flight (`2 × parallelism` chunks of `batch_size` records,
//! and up to `2 × parallelism + 2` emptied buffers kept to be filled again): neither a large
//! NDJSON file nor a large JSON array is ever held whole.

use std::fs::File;
use std::io::{BufRead, Read};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use flate2::read::MultiGzDecoder;
use futures::stream::{BoxStream, StreamExt};

use tokio::sync::mpsc;

use arrow::array::RecordBatch;

use super::split::{ArraySplitter, Outcome, Piece};
use super::{Decoded, Input, Mark, RecordFormat, Rejection, SourceSpec, SourceStats, Start};
use crate::event::{BatchDecoder, FieldMap, Prefilter};
use crate::{Error, Result};

/// A record larger than this is taken as a sign of a malformed file (an unclosed string would
/// otherwise swallow the rest of it). The largest event any target takes is 6 MB (a synchronous
/// Lambda payload); 64 MiB leaves room and keeps memory flat on a file without line breaks.
const MAX_RECORD_BYTES: usize = 64 << 20;
/// A chunk is sent early when its bytes pass this, whatever its record count.
const MAX_CHUNK_BYTES: usize = 64 << 20;
const READ_BUFFER: usize = 1 << 20;

struct Span {
    start: usize,
    end: usize,
    position: u64,
    line: u64,
}

struct Chunk {
    origin: Arc<str>,
    data: Vec<u8>,
    spans: Vec<Span>,
    /// Checkpoints before the chunk's records.
    marks: Vec<Mark>,
}

/// What the reader hands a decode thread: records to decode, or a batch already decoded (a
/// Parquet input), passed through in its turn.
enum Work {
    Chunk(Chunk),
    Ready(Decoded),
}

/// S3 objects requested ahead of the one being read: their bodies stream in, held back by TCP,
/// while the current one is decoded.
const OBJECTS_AHEAD: usize = 4;

/// Where S3 objects come from: the runtime (the reader is a plain thread) and the objects
/// requested ahead, in input order.
struct Objects {
    handle: tokio::runtime::Handle,
    opened: mpsc::Receiver<object_store::Result<object_store::GetResult>>,
}

/// An object's body as `Read`.
struct ObjectRead {
    handle: tokio::runtime::Handle,
    body: BoxStream<'static, object_store::Result<bytes::Bytes>>,
    current: bytes::Bytes,
}

impl Read for ObjectRead {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.handle.block_on(self.body.next()) {
                Some(Ok(b)) => self.current = b,
                Some(Err(e)) => return Err(std::io::Error::other(e)),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        bytes::Buf::advance(&mut self.current, n);
        Ok(n)
    }
}

impl Chunk {
    fn new(origin: &Arc<str>) -> Self {
        Self {
            origin: origin.clone(),
            data: Vec::new(),
            spans: Vec::new(),
            marks: Vec::new(),
        }
    }
}

/// Streams the inputs of `spec` as decoded batches, in input order.
///
/// The reader thread hands chunks round-robin to `parallelism` decode threads, and the stream
/// takes results from them in the same round-robin order, so order is kept without a reorder
/// buffer. Each channel holds one chunk: memory is bounded by about `3 × parallelism` chunks.
/// (Fixed threads rather than tokio's blocking pool: each allocating thread costs the allocator
/// an arena, and a pool of short-lived threads costs many.)
pub fn stream(spec: &SourceSpec, stats: Arc<SourceStats>, parallelism: usize) -> BoxStream<'static, Result<Decoded>> {
    let parallelism = parallelism.max(1);
    // Decoded chunks' buffers go back to the reader, which fills them again: no allocation, page
    // faults and zeroing of fresh memory for every chunk.
    let (pool_tx, pool_rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(2 * parallelism + 2);
    let mut to_workers = Vec::with_capacity(parallelism);
    let mut from_workers = Vec::with_capacity(parallelism);
    for i in 0..parallelism {
        let (chunk_tx, chunk_rx) = std::sync::mpsc::sync_channel::<Result<Work>>(1);
        let (done_tx, done_rx) = mpsc::channel::<Result<Decoded>>(1);
        let map = spec.map.clone();
        let pool = pool_tx.clone();
        let prefilter = spec.prefilter.clone();
        let stats = stats.clone();
        let format = spec.format;
        std::thread::Builder::new()
            .name(format!("rehydrate-decode-{i}"))
            .spawn(move || {
                for work in chunk_rx {
                    let decoded = work.map(|w| match w {
                        Work::Chunk(c) => {
                            let (decoded, buffer) = decode_chunk(c, map.clone(), prefilter.clone(), &stats, format);
                            let _ = pool.try_send(buffer); // a full pool: the buffer is freed
                            decoded
                        }
                        // A Parquet input's batch: the row filters apply to it as to decoded ones.
                        Work::Ready(d) => d.filtered(prefilter.as_deref()),
                    });
                    let decoded = decoded.and_then(|d| d);
                    if done_tx.blocking_send(decoded).is_err() {
                        return;
                    }
                }
            })
            .expect("spawning a decode thread");
        to_workers.push(chunk_tx);
        from_workers.push(done_rx);
    }

    // Resuming: inputs whose every event is settled are not read at all.
    let inputs: Vec<Input> = spec
        .inputs
        .iter()
        .filter(|i| spec.starts.get(&i.origin()) != Some(&Start::Complete))
        .cloned()
        .collect();
    let expected = spec.expected.clone();
    let batch_size = spec.batch_size;
    let has_map = spec.map.is_some();
    // S3 objects (not Parquet, which is read by ranges) are requested a few ahead, in order.
    let objects = tokio::runtime::Handle::try_current().ok().map(|handle| {
        let (tx, opened) = mpsc::channel(OBJECTS_AHEAD);
        let wanted: Vec<_> = inputs
            .iter()
            .filter(|i| !i.is_parquet())
            .filter_map(|i| match i {
                Input::Object { store, location, .. } => Some((store.clone(), location.clone())),
                _ => None,
            })
            .collect();
        if !wanted.is_empty() {
            handle.spawn(async move {
                use object_store::ObjectStoreExt;
                for (store, location) in wanted {
                    if tx.send(store.get(&location).await).await.is_err() {
                        return; // the run stopped reading
                    }
                }
            });
        }
        Objects { handle, opened }
    });
    std::thread::Builder::new()
        .name("rehydrate-read".into())
        .spawn(move || {
            let mut objects = objects;
            let mut out = ChunkSender {
                workers: &to_workers,
                pool: pool_rx,
                next: 0,
                batch_size,
                chunk: Chunk::new(&Arc::from("")),
                count: 0,
            };
            for input in &inputs {
                stats.files.fetch_add(1, Ordering::Relaxed);
                let origin: Arc<str> = Arc::from(input.origin());
                out.chunk = Chunk::new(&origin);
                out.count = 0;
                out.chunk.marks.push(Mark {
                    origin: origin.clone(),
                    position: 0,
                    key: None,
                    end: false,
                });
                let read = if input.is_parquet() {
                    read_parquet(input, &stats, &mut out, objects.as_ref(), has_map)
                } else {
                    read_input(input, &stats, &mut out, objects.as_mut())
                };
                match read {
                    Ok(true) => {
                        if let Some(&want) = expected.get(origin.as_ref()) {
                            if want != out.count {
                                let mut m = stats.count_mismatches.lock().unwrap_or_else(|e| e.into_inner());
                                m.push(format!(
                                    "{origin}: the export's manifest lists {want} items, the file holds {}",
                                    out.count
                                ));
                            }
                        }
                        // The end of the input, in a chunk of its own after its records.
                        out.chunk.marks.push(Mark {
                            origin: origin.clone(),
                            position: out.count + 1,
                            key: None,
                            end: true,
                        });
                        if !out.flush() {
                            return;
                        }
                    }
                    Ok(false) => return, // the consumer has gone
                    Err(e) => {
                        // What was read before the failure is good: hand it on, then the error.
                        if out.flush() {
                            out.send(Err(e));
                        }
                        return;
                    }
                }
            }
        })
        .expect("spawning the reader thread");

    futures::stream::unfold((from_workers, 0usize), |(mut workers, next)| async move {
        let item = workers[next].recv().await?;
        let following = (next + 1) % workers.len();
        Some((item, (workers, following)))
    })
    .boxed()
}

fn decode_chunk(
    chunk: Chunk,
    map: Option<Arc<FieldMap>>,
    prefilter: Option<Arc<Prefilter>>,
    stats: &SourceStats,
    format: RecordFormat,
) -> (Result<Decoded>, Vec<u8>) {
    let mut decoder = BatchDecoder::new(map, chunk.spans.len()).with_prefilter(prefilter.clone());
    let mut rejections = Vec::new();
    for span in &chunk.spans {
        let bytes = &chunk.data[span.start..span.end];
        let reject = |reason: String, raw: &[u8], skipped: bool| Rejection {
            origin: chunk.origin.clone(),
            position: span.position,
            line: span.line,
            reason,
            raw: raw.to_vec(),
            skipped,
        };
        let rejection = match format {
            RecordFormat::Json => decoder
                .push(bytes, &chunk.origin, span.position)
                .err()
                .map(|reason| reject(reason, bytes, false)),
            RecordFormat::DynamoDbExport => match super::dynamodb::export_record(bytes) {
                // The item, unmarshalled, is the record (and what a dead letter holds).
                Ok(super::dynamodb::ExportRecord::Item(item)) => decoder
                    .push(item.as_bytes(), &chunk.origin, span.position)
                    .err()
                    .map(|reason| reject(reason, item.as_bytes(), false)),
                Ok(super::dynamodb::ExportRecord::Deleted(keys)) => Some(reject(
                    format!("a deletion (no NewImage) of the item {keys}: nothing to action"),
                    bytes,
                    true,
                )),
                Err(reason) => Some(reject(reason, bytes, false)),
            },
        };
        rejections.extend(rejection);
    }
    stats.records.fetch_add(chunk.spans.len() as u64, Ordering::Relaxed);
    stats.rejected.fetch_add(rejections.len() as u64, Ordering::Relaxed);
    let decoded = Decoded {
        prefiltered: decoder.take_prefiltered(),
        batch: decoder.finish(),
        rejections,
        marks: chunk.marks,
    };
    (decoded.filtered(prefilter.as_deref()), chunk.data)
}

/// Collects records into chunks and hands full chunks to the decoders, round-robin.
struct ChunkSender<'a> {
    workers: &'a [std::sync::mpsc::SyncSender<Result<Work>>],
    /// Buffers of decoded chunks, to fill again.
    pool: std::sync::mpsc::Receiver<Vec<u8>>,
    next: usize,
    batch_size: usize,
    chunk: Chunk,
    /// Records of the current input so far.
    count: u64,
}

impl ChunkSender<'_> {
    /// An empty buffer of at least `capacity` bytes, from the pool when it has one.
    fn buffer(&self, capacity: usize) -> Vec<u8> {
        match self.pool.try_recv() {
            Ok(mut b) => {
                b.clear();
                b.reserve(capacity);
                b
            }
            Err(_) => Vec::with_capacity(capacity),
        }
    }

    /// Records that the bytes from `start` to the end of the chunk's data are one record.
    /// Returns false when the consumer has gone and reading should stop.
    fn record_ends(&mut self, start: usize, position: u64, line: u64) -> bool {
        let end = self.chunk.data.len();
        self.count += 1;
        self.chunk.spans.push(Span {
            start,
            end,
            position,
            line,
        });
        if self.chunk.spans.len() >= self.batch_size || self.chunk.data.len() >= MAX_CHUNK_BYTES {
            return self.flush();
        }
        true
    }

    /// One NDJSON line, `start..end` of the chunk's data (its line break excluded); the bytes
    /// from `keep` on were read past it. A blank line is counted but is no record. Returns where
    /// the bytes from `keep` are now (0 when the chunk was sent and they began the next one), or
    /// `None` when the consumer has gone.
    fn line_ends(&mut self, start: usize, mut end: usize, line: u64, keep: usize) -> Option<usize> {
        let data = &self.chunk.data;
        while end > start && matches!(data[end - 1], b'\n' | b'\r') {
            end -= 1;
        }
        if data[start..end].iter().all(u8::is_ascii_whitespace) {
            return Some(keep);
        }
        self.count += 1;
        self.chunk.spans.push(Span {
            start,
            end,
            position: line,
            line,
        });
        if self.chunk.spans.len() < self.batch_size && self.chunk.data.len() < MAX_CHUNK_BYTES {
            return Some(keep);
        }
        // The next chunk will be about as large as this one: its buffer is made so at once,
        // rather than grown (and copied) as it fills.
        let mut data = self.buffer(self.chunk.data.len() + READ_BUFFER);
        data.extend_from_slice(&self.chunk.data[keep..]);
        let next = Chunk {
            data,
            spans: Vec::with_capacity(self.chunk.spans.len()),
            ..Chunk::new(&self.chunk.origin)
        };
        let mut full = std::mem::replace(&mut self.chunk, next);
        full.data.truncate(keep);
        self.send(Ok(Work::Chunk(full))).then_some(0)
    }

    fn flush(&mut self) -> bool {
        if self.chunk.spans.is_empty() && self.chunk.marks.is_empty() {
            self.chunk.data.clear();
            return true;
        }
        let next = Chunk {
            data: self.buffer(self.chunk.data.len()),
            ..Chunk::new(&self.chunk.origin)
        };
        let full = std::mem::replace(&mut self.chunk, next);
        self.send(Ok(Work::Chunk(full)))
    }

    /// Sends to the next decoder in turn; false when the consumer has gone.
    fn send(&mut self, item: Result<Work>) -> bool {
        let ok = self.workers[self.next].send(item).is_ok();
        self.next = (self.next + 1) % self.workers.len();
        ok
    }
}

struct CountingReader<R> {
    inner: R,
    stats: Arc<SourceStats>,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.stats.bytes.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// `std::io::BufReader` with its buffer on a page boundary. The kernel copies a file's pages
/// into the buffer on each read, and on some CPUs that copy is several times slower into an
/// address that is not 64-byte aligned (measured on an AMD EPYC VM: 2 GB in 1 MiB reads took
/// 0.25 s into a page-aligned buffer, 1.36 s 16 bytes off it, where malloc puts a large block).
struct AlignedReader<R> {
    inner: R,
    /// Zero-filled once, larger than the buffer by the alignment; the buffer is
    /// `storage[offset..offset + capacity]`.
    storage: Vec<u8>,
    offset: usize,
    capacity: usize,
    /// The unread bytes are `pos..filled` of the buffer.
    pos: usize,
    filled: usize,
}

const BUFFER_ALIGN: usize = 4096;

impl<R: Read> AlignedReader<R> {
    fn new(capacity: usize, inner: R) -> Self {
        let storage = vec![0u8; capacity + BUFFER_ALIGN];
        let offset = storage.as_ptr().align_offset(BUFFER_ALIGN).min(BUFFER_ALIGN);
        Self {
            inner,
            storage,
            offset,
            capacity,
            pos: 0,
            filled: 0,
        }
    }
}

impl<R: Read> Read for AlignedReader<R> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let buf = self.fill_buf()?;
        let n = buf.len().min(out.len());
        out[..n].copy_from_slice(&buf[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl<R: Read> BufRead for AlignedReader<R> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        if self.pos >= self.filled {
            let buf = &mut self.storage[self.offset..self.offset + self.capacity];
            self.filled = self.inner.read(buf)?;
            self.pos = 0;
        }
        Ok(&self.storage[self.offset + self.pos..self.offset + self.filled])
    }

    fn consume(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.filled);
    }
}

/// Reads one Parquet input to the end, batch by batch. Ok(false): the consumer went away.
fn read_parquet(
    input: &Input,
    stats: &Arc<SourceStats>,
    out: &mut ChunkSender<'_>,
    objects: Option<&Objects>,
    has_map: bool,
) -> Result<bool> {
    let origin: Arc<str> = Arc::from(input.origin());
    let bad = |message: String| Error::Input {
        path: std::path::PathBuf::from(origin.as_ref()),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, message),
    };
    if has_map {
        return Err(bad(
            "--map maps JSON records; a Parquet input already has the events columns: read it without --map".into(),
        ));
    }
    let hive = super::parquet::hive_values(&origin);
    let batch_size = out.batch_size;
    // The input's start mark goes before its batches.
    if !out.flush() {
        return Ok(false);
    }
    let mut batches: Box<dyn Iterator<Item = std::result::Result<RecordBatch, String>>> = match input {
        Input::File(p) => {
            let file = File::open(p).map_err(|source| Error::Input {
                path: p.clone(),
                source,
            })?;
            stats
                .bytes
                .fetch_add(file.metadata().map_or(0, |m| m.len()), Ordering::Relaxed);
            let builder = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
                .map_err(|e| bad(format!("not a Parquet file: {e}")))?;
            super::parquet::check_schema(builder.schema(), &hive).map_err(bad)?;
            let reader = builder
                .with_batch_size(batch_size)
                .build()
                .map_err(|e| bad(e.to_string()))?;
            Box::new(reader.map(|b| b.map_err(|e| e.to_string())))
        }
        Input::Object {
            store, location, size, ..
        } => {
            let Some(objects) = objects else {
                return Err(bad("S3 inputs need the async runtime".into()));
            };
            stats.bytes.fetch_add(*size, Ordering::Relaxed);
            let handle = objects.handle.clone();
            // Deprecated in parquet 59.3 in favour of hand-written `AsyncFileReader`s
            // (apache/arrow-rs#10308); it is still the reader DataFusion 55 builds on.
            #[allow(deprecated)]
            let reader = parquet::arrow::async_reader::ParquetObjectReader::new(store.clone(), location.clone())
                .with_file_size(*size);
            let builder = handle
                .block_on(parquet::arrow::ParquetRecordBatchStreamBuilder::new(reader))
                .map_err(|e| bad(format!("not a Parquet object: {e}")))?;
            super::parquet::check_schema(builder.schema(), &hive).map_err(bad)?;
            let mut stream = builder
                .with_batch_size(batch_size)
                .build()
                .map_err(|e| bad(e.to_string()))?;
            Box::new(std::iter::from_fn(move || {
                handle.block_on(stream.next()).map(|b| b.map_err(|e| e.to_string()))
            }))
        }
        Input::Stdin => return Err(bad("stdin is read as JSON".into())),
    };
    let mut position = 1u64;
    for batch in &mut batches {
        let batch = batch.map_err(|e| bad(format!("reading Parquet: {e}")))?;
        let rows = batch.num_rows() as u64;
        let decoded = super::parquet::to_events(&batch, &origin, position, &hive).map_err(bad)?;
        position += rows;
        stats.records.fetch_add(rows, Ordering::Relaxed);
        stats
            .rejected
            .fetch_add(decoded.rejections.len() as u64, Ordering::Relaxed);
        if !out.send(Ok(Work::Ready(decoded))) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Reads one input to the end. Ok(false): the consumer went away.
fn read_input(
    input: &Input,
    stats: &Arc<SourceStats>,
    out: &mut ChunkSender<'_>,
    objects: Option<&mut Objects>,
) -> Result<bool> {
    let path = std::path::PathBuf::from(input.origin());
    let io_err = |source: std::io::Error| Error::Input {
        path: path.clone(),
        source,
    };
    let raw: Box<dyn Read + Send> = match input {
        Input::Stdin => Box::new(std::io::stdin()),
        Input::File(p) => Box::new(File::open(p).map_err(io_err)?),
        Input::Object { .. } => {
            let Some(objects) = objects else {
                return Err(io_err(std::io::Error::other("S3 inputs need the async runtime")));
            };
            let opened = objects
                .handle
                .block_on(objects.opened.recv())
                .ok_or_else(|| io_err(std::io::Error::other("the object was not requested")))?
                .map_err(|e| io_err(std::io::Error::other(e)))?;
            Box::new(ObjectRead {
                handle: objects.handle.clone(),
                body: opened.into_stream(),
                current: bytes::Bytes::new(),
            })
        }
    };
    let mut buffered = AlignedReader::new(
        READ_BUFFER,
        CountingReader {
            inner: raw,
            stats: stats.clone(),
        },
    );
    let gzip = buffered.fill_buf().map_err(io_err)?.starts_with(&[0x1f, 0x8b]);
    let mut reader: Box<dyn BufRead + Send> = if gzip {
        Box::new(AlignedReader::new(READ_BUFFER, MultiGzDecoder::new(buffered)))
    } else {
        Box::new(buffered)
    };

    // The first byte that is not white space (or a byte order mark) tells the format.
    let mut line = 1u64;
    let first = loop {
        let buf = reader.fill_buf().map_err(io_err)?;
        if buf.is_empty() {
            return Ok(true); // an empty file holds no events
        }
        let skip = buf.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(buf.len());
        let first = buf.get(skip).copied();
        // Leading blank lines count, so line numbers stay true to the file.
        line += buf[..skip].iter().filter(|&&b| b == b'\n').count() as u64;
        let skip = if buf[skip..].starts_with(b"\xEF\xBB\xBF") {
            skip + 3
        } else {
            skip
        };
        reader.consume(skip);
        if let Some(b) = first {
            if b != 0xEF {
                break b;
            }
        }
    };
    let result = if first == b'[' {
        read_array(&mut reader, out, line)
    } else {
        read_ndjson(&mut reader, out, line - 1)
    };
    match result {
        Ok(alive) => Ok(alive && out.flush()),
        Err(ReadError::Io(e)) => Err(io_err(e)),
        Err(ReadError::TooLarge { line }) => Err(Error::Input {
            path: path.clone(),
            source: std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "the record starting at line {line} is larger than {} bytes; the file is probably malformed from there on (no line breaks, an unclosed string or object)",
                    max_record_bytes()
                ),
            ),
        }),
    }
}

enum ReadError {
    Io(std::io::Error),
    TooLarge { line: u64 },
}

impl From<std::io::Error> for ReadError {
    fn from(e: std::io::Error) -> Self {
        ReadError::Io(e)
    }
}

/// The largest record accepted: 64 MiB (`REHYDRATE_MAX_RECORD_BYTES` overrides it, for tests
/// and for stores with larger records).
fn max_record_bytes() -> usize {
    static CAP: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CAP.get_or_init(|| {
        std::env::var("REHYDRATE_MAX_RECORD_BYTES")
            .ok()
            .and_then(|v| v.parse().ok())
            .filter(|&n: &usize| n > 0)
            .unwrap_or(MAX_RECORD_BYTES)
    })
}

/// One record per line; blank lines are skipped but counted. `line` is the number of lines
/// already consumed.
///
/// The reader's buffer is copied into the chunk whole and its line breaks found with `memchr`
/// (SIMD); a chunk that fills up hands the bytes read past its last record on to the next one.
fn read_ndjson(reader: &mut dyn BufRead, out: &mut ChunkSender<'_>, mut line: u64) -> Result<bool, ReadError> {
    let cap = max_record_bytes();
    // The start, in the chunk's data, of the line not yet ended.
    let mut start = out.chunk.data.len();
    loop {
        let buf = match reader.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                // Keep the complete lines before the failure; name where it happened.
                out.chunk.data.truncate(start);
                return Err(std::io::Error::new(e.kind(), format!("{e} (after line {line})")).into());
            }
        };
        if buf.is_empty() {
            // The last line, without a line break.
            if out.chunk.data.len() > start {
                line += 1;
                let end = out.chunk.data.len();
                if end - start > cap {
                    out.chunk.data.truncate(start);
                    return Err(ReadError::TooLarge { line });
                }
                if out.line_ends(start, end, line, end).is_none() {
                    return Ok(false);
                }
            }
            return Ok(true);
        }
        let n = buf.len();
        let mut from = out.chunk.data.len();
        out.chunk.data.extend_from_slice(buf);
        reader.consume(n);
        while let Some(i) = memchr::memchr(b'\n', &out.chunk.data[from..]) {
            let newline = from + i;
            line += 1;
            if newline - start > cap {
                out.chunk.data.truncate(start);
                return Err(ReadError::TooLarge { line });
            }
            let Some(moved) = out.line_ends(start, newline, line, newline + 1) else {
                return Ok(false);
            };
            // After a flush the bytes from `newline + 1` on begin the next chunk.
            start = moved;
            from = moved;
        }
        if out.chunk.data.len() - start > cap {
            out.chunk.data.truncate(start);
            return Err(ReadError::TooLarge { line: line + 1 });
        }
    }
}

/// The elements of a top-level JSON array, cut out by a scanner that follows strings and
/// nesting (`split`); each element is parsed later, on its own, so one bad element is one
/// rejection. `line` is the line the reader is on.
fn read_array(reader: &mut dyn BufRead, out: &mut ChunkSender<'_>, line: u64) -> Result<bool, ReadError> {
    // Consume the opening bracket.
    reader.consume(1);
    let mut splitter = ArraySplitter::new(line);
    let mut ordinal = 0u64;
    let mut elem_line = 0u64;
    let mut elem_start = 0usize;
    loop {
        let buf = reader.fill_buf()?;
        if buf.is_empty() {
            if splitter.in_element() {
                // The file ends inside an element: reject what there is of it.
                if !out.record_ends(elem_start, ordinal, elem_line) {
                    return Ok(false);
                }
            }
            return Ok(true);
        }
        let n = buf.len();
        // The start of the bytes of this buffer that belong to an element.
        let mut seg_start = 0usize;
        let outcome = splitter.split(buf, &mut |piece| match piece {
            Piece::Start { at, line } => {
                ordinal += 1;
                elem_line = line;
                elem_start = out.chunk.data.len();
                seg_start = at;
                true
            }
            Piece::End { at } => {
                out.chunk.data.extend_from_slice(&buf[seg_start..at]);
                out.record_ends(elem_start, ordinal, elem_line)
            }
        });
        match outcome {
            Outcome::Consumed => {
                if splitter.in_element() {
                    out.chunk.data.extend_from_slice(&buf[seg_start..]);
                    if out.chunk.data.len() - elem_start > max_record_bytes() {
                        return Err(ReadError::TooLarge { line: elem_line });
                    }
                }
                reader.consume(n);
            }
            Outcome::Closed(at) => {
                reader.consume(at);
                // Anything after the array is read as NDJSON: white space is skipped, and stray
                // content becomes rejections that name their line, rather than vanishing.
                return read_ndjson(reader, out, splitter.line() - 1);
            }
            Outcome::Stopped => return Ok(false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::AsArray;
    use std::io::Write;

    fn read_all(content: &[u8], batch_size: usize) -> (Vec<String>, Vec<Rejection>, u64) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("input");
        std::fs::write(&path, content).unwrap();
        let rt = tokio::runtime::Runtime::new().unwrap();
        let aws = crate::aws::AwsArgs {
            region: None,
            profile: None,
            endpoint_url: None,
            request_timeout: 30,
        };
        let spec = rt
            .block_on(SourceSpec::resolve(
                &[path.display().to_string()],
                None,
                batch_size,
                &aws,
                &Default::default(),
            ))
            .unwrap();
        let stats = Arc::new(SourceStats::default());
        let decoded: Vec<Decoded> =
            rt.block_on(async { stream(&spec, stats.clone(), 2).map(|d| d.unwrap()).collect().await });
        let mut ids = Vec::new();
        let mut rejections = Vec::new();
        for d in decoded {
            let col = d.batch.column(0).as_string::<i32>();
            ids.extend(col.iter().map(|v| v.unwrap().to_owned()));
            rejections.extend(d.rejections);
        }
        (ids, rejections, stats.records())
    }

    fn event(id: &str) -> String {
        format!(r#"{{"id":"{id}","source":"s","detail-type":"t","detail":{{"text":"a, ] }} \" ["}}}}"#)
    }

    #[test]
    fn ndjson_in_order_with_blank_lines_and_rejections() {
        let content = format!("{}\n\n{}\r\nnot json\n   \n{}", event("a"), event("b"), event("c"));
        let (ids, rej, records) = read_all(content.as_bytes(), 2);
        assert_eq!(ids, ["a", "b", "c"]);
        assert_eq!(records, 4);
        assert_eq!(rej.len(), 1);
        assert_eq!(rej[0].line, 4);
        assert_eq!(rej[0].raw, b"not json");
    }

    #[test]
    fn json_array_pretty_and_minified() {
        let pretty = format!("[\n  {},\n  {},\n\n  5,\n  {}\n]\n", event("a"), event("b"), event("c"));
        let (ids, rej, records) = read_all(pretty.as_bytes(), 2);
        assert_eq!(ids, ["a", "b", "c"]);
        assert_eq!(records, 4);
        assert_eq!(rej.len(), 1);
        assert_eq!((rej[0].position, rej[0].line), (3, 5));

        let minified = format!("[{},{}]", event("x"), event("y"));
        assert_eq!(read_all(minified.as_bytes(), 1).0, ["x", "y"]);
        assert_eq!(read_all(b"[]", 1).0.len(), 0);
        assert_eq!(read_all(b"", 1).0.len(), 0);
    }

    #[test]
    fn truncated_array_rejects_the_partial_element() {
        let content = format!("[{},{{\"id\":\"b\",\"source\"", event("a"));
        let (ids, rej, records) = read_all(content.as_bytes(), 8);
        assert_eq!(ids, ["a"]);
        assert_eq!(records, 2);
        assert!(rej[0].reason.contains("not JSON"), "{}", rej[0].reason);
    }

    #[test]
    fn gzip_is_detected_by_content() {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(format!("{}\n{}\n", event("a"), event("b")).as_bytes())
            .unwrap();
        let (ids, _, _) = read_all(&gz.finish().unwrap(), 8192);
        assert_eq!(ids, ["a", "b"]);
    }

    #[test]
    fn the_aligned_reader_reads_every_byte_into_an_aligned_buffer() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        // A reader that answers in odd-sized pieces, as a pipe or a decompressor does.
        struct Pieces<'a>(&'a [u8]);
        impl Read for Pieces<'_> {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                let n = buf.len().min(self.0.len()).min(777);
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let mut reader = AlignedReader::new(4096, Pieces(&data));
        assert_eq!(reader.fill_buf().unwrap().as_ptr() as usize % BUFFER_ALIGN, 0);
        let mut first = [0u8; 10];
        reader.read_exact(&mut first).unwrap();
        let mut rest = Vec::new();
        reader.read_to_end(&mut rest).unwrap();
        assert_eq!([&first[..], &rest].concat(), data);
        assert!(reader.fill_buf().unwrap().is_empty());
    }
}
