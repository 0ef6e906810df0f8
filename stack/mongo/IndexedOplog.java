// The MongoDB stand-in (see MongoLauncher.java): the oplog, indexed by time, with its history kept,
// refused when trimmed away, and trimmed.

import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Proxy;
import java.time.Instant;
import java.util.ArrayDeque;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.concurrent.ConcurrentSkipListMap;
import java.util.function.Consumer;
import java.util.function.Supplier;
import java.util.function.UnaryOperator;
import java.util.stream.Stream;
import org.h2.mvstore.MVStore;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import de.bwaldvogel.mongo.MongoBackend;
import de.bwaldvogel.mongo.MongoCollection;
import de.bwaldvogel.mongo.MongoDatabase;
import de.bwaldvogel.mongo.backend.AbstractMongoBackend;
import de.bwaldvogel.mongo.backend.Cursor;
import de.bwaldvogel.mongo.backend.CursorRegistry;
import de.bwaldvogel.mongo.backend.aggregation.Aggregation;
import de.bwaldvogel.mongo.bson.BsonTimestamp;
import de.bwaldvogel.mongo.bson.Document;
import de.bwaldvogel.mongo.exception.MongoServerError;
import de.bwaldvogel.mongo.oplog.CollectionBackedOplog;

/**
 * The server's collection-backed oplog, indexed, whose change streams are a replica set's.
 * <p>
 * The library still writes the entries (handleInsert/Update/Delete/DropCollection), through {@link #view}:
 * a proxy of the oplog collection that also keeps every entry in a map sorted by timestamp, so a change
 * stream reads only the entries after its position (the library scans and sorts the whole oplog on every
 * getMore), and that completes each update entry as it is written ({@link UpdateEntries}). The library's
 * own change stream cursor is not used: {@link ChangeStreamCursor} turns entries into events of a replica
 * set's shape ({@link ChangeEvents}) before the stream's pipeline sees them, so a $match on ns or
 * operationType (Debezium's) matches as it would on a replica set.
 * <p>
 * Also refuses, as a replica set does (ChangeStreamHistoryLost, code 286), to resume from a
 * position whose following entries were trimmed away, instead of silently skipping them.
 * <p>
 * On disk, only the newest entries stay in memory as documents ({@link #hotEntries}); the map keeps the
 * older ones' keys and a stream that far behind (a relay catching up) reads them back from the store.
 * With every entry in memory (~1.9 KB of heap each), an oplog of 200,000 entries (the benchmarks') filled the
 * default 512 MB heap, and the collector stopped the stand-in for 0.7-1.1 s at a time, every write and change
 * stream waiting (measured at 1,000 inserts/s; docs/benchmarks.md, "The stand-in on disk").
 */
final class IndexedOplog extends CollectionBackedOplog {

    // Where AbstractMongoBackend keeps the oplog once enableOplog() is called.
    static final String DATABASE = "local";
    static final String COLLECTION = "oplog.rs";
    private static final String TRIM_STATE = "oplog.trimmed"; // in the local database, next to oplog.rs
    // Ten seconds of history at 1,000 writes/s: what a stream a little behind reads without a lookup.
    static final int HOT_ENTRIES = 10_000;
    // The value of an entry that is only in the store (a ConcurrentSkipListMap holds no nulls).
    static final Document IN_STORE = new Document();

    final ConcurrentSkipListMap<Long, Document> index;
    final MongoCollection<Document> store;
    private final MongoBackend backend;
    private final MongoCollection<Document> trimState;
    private final CursorRegistry cursors;
    // the newest key ever trimmed away: a resume point before it has lost history
    private volatile long trimmedThrough;
    // the newest entry change streams may read: all of them, unless the store hides what is not in its file yet
    private volatile long visibleThrough = Long.MAX_VALUE;
    private volatile Runnable newEntries = () -> { }; // told when entries become readable (AwaitData)
    // The entries of the insert command running on this thread, held back until it is known which it inserted.
    private final ThreadLocal<List<Inserts.Held>> heldInserts = new ThreadLocal<>();

    private IndexedOplog(MongoBackend backend, MongoCollection<Document> view, MongoCollection<Document> store,
                         ConcurrentSkipListMap<Long, Document> index, MongoCollection<Document> trimState,
                         CursorRegistry cursors) {
        super(backend, view, cursors);
        this.backend = backend;
        this.store = store;
        this.index = index;
        this.trimState = trimState;
        this.cursors = cursors;
        this.trimmedThrough = loadTrimmedThrough(trimState);
    }

    @SuppressWarnings("unchecked")
    static IndexedOplog create(AbstractMongoBackend backend, CursorRegistry cursors, int hotEntries) {
        MongoDatabase local = backend.resolveDatabase(DATABASE);
        MongoCollection<Document> store = (MongoCollection<Document>) collection(local, COLLECTION);
        MongoCollection<Document> trimState = (MongoCollection<Document>) collection(local, TRIM_STATE);
        ConcurrentSkipListMap<Long, Document> index = new ConcurrentSkipListMap<>();
        HotEntries hot = new HotEntries(index, hotEntries);
        store.queryAllAsStream().forEach(hot::add);
        UnaryOperator<Document> complete = entry -> UpdateEntries.complete(backend, entry);
        return new IndexedOplog(backend, view(store, hot, complete), store, index, trimState, cursors);
    }

    private static MongoCollection<?> collection(MongoDatabase database, String name) {
        MongoCollection<?> collection = database.resolveCollection(name, false);
        return collection != null ? collection : database.createCollectionOrThrowIfExists(name);
    }

    @SuppressWarnings("unchecked")
    private static MongoCollection<Document> view(MongoCollection<Document> store, HotEntries hot,
                                                  UnaryOperator<Document> complete) {
        Consumer<Document> add = written -> {
            Document entry = complete.apply(written);
            // The library gives each entry a random _id: stored by its time instead, the entries are
            // appended to the store's B-tree rather than scattered over it (5x fewer pages to write).
            entry.putIfAbsent("_id", entry.get("ts"));
            store.addDocument(entry);
            hot.add(entry);
        };
        return (MongoCollection<Document>) Proxy.newProxyInstance(MongoLauncher.class.getClassLoader(),
            new Class<?>[] {MongoCollection.class}, (proxy, method, args) -> {
                if (method.getName().equals("addDocument") && args.length == 1) {
                    add.accept((Document) args[0]);
                    return null;
                }
                if (method.getName().equals("addDocuments") && args.length == 1) {
                    ((Stream<Document>) args[0]).forEachOrdered(add);
                    return null;
                }
                if (method.getName().equals("queryAllAsStream") && (args == null || args.length == 0)) {
                    return store.queryAllAsStream();
                }
                try {
                    return method.invoke(store, args);
                } catch (InvocationTargetException e) {
                    throw e.getCause();
                }
            });
    }

    /** Runs {@code command} with the inserts it records on this thread held in {@code held} ({@link Inserts}). */
    <T> T holdingInserts(List<Inserts.Held> held, Supplier<T> command) {
        heldInserts.set(held);
        try {
            return command.get();
        } finally {
            heldInserts.remove();
        }
    }

    @Override
    public void handleInsert(String namespace, List<Document> documents) {
        List<Inserts.Held> held = heldInserts.get();
        if (held != null) {
            held.add(new Inserts.Held(namespace, documents));
        } else {
            record(namespace, documents);
        }
    }

    // Writes take one lock: timestamps are handed out and entries indexed in the same order, so every
    // entry is appended after all the others, and a reader that saw an entry has seen all older ones.
    private synchronized void record(String namespace, List<Document> documents) {
        super.handleInsert(namespace, documents);
        if (visibleThrough == Long.MAX_VALUE) { // readable at once (in memory)
            newEntries.run();
        }
    }

    @Override
    public synchronized void handleUpdate(String namespace, Document selector, Document query, List<Object> ids) {
        super.handleUpdate(namespace, selector, query, ids);
        if (visibleThrough == Long.MAX_VALUE) { // readable at once (in memory)
            newEntries.run();
        }
    }

    @Override
    public synchronized void handleDelete(String namespace, Document query, List<Object> ids) {
        super.handleDelete(namespace, query, ids);
        if (visibleThrough == Long.MAX_VALUE) { // readable at once (in memory)
            newEntries.run();
        }
    }

    @Override
    public synchronized void handleDropCollection(String namespace) {
        super.handleDropCollection(namespace);
    }

    /** What a replica set reports as operationTime: the newest readable entry's time (the clock's second if none). */
    BsonTimestamp operationTime() {
        Map.Entry<Long, Document> newest = index.floorEntry(visibleThrough);
        return newest != null ? timestamp(newest.getKey()) : new BsonTimestamp(backend.getClock().instant(), 0);
    }

    /** The key of the newest entry written, readable or not. */
    long lastKey() {
        Map.Entry<Long, Document> newest = index.lastEntry();
        return newest != null ? newest.getKey() : Long.MIN_VALUE;
    }

    /** The key of the newest readable entry; every entry up to it is in the index. */
    long endKey() {
        return Math.min(lastKey(), visibleThrough);
    }

    /** From now on an entry is readable only once {@link #showThrough} says so (what is written so far is). */
    void hideUnstored() {
        visibleThrough = lastKey();
    }

    /** Makes the entries up to {@code key} readable. */
    void showThrough(long key) {
        if (key > visibleThrough) {
            visibleThrough = key;
            newEntries.run();
        }
    }

    /** {@code listener} runs (briefly: on the writing thread) whenever new entries become readable. */
    void onNewEntries(Runnable listener) {
        newEntries = listener;
    }

    @Override
    public Cursor createCursor(Document changeStream, String namespace, Aggregation aggregation) {
        Document token = (Document) changeStream.getOrDefault("startAfter", changeStream.get("resumeAfter"));
        BsonTimestamp startAt = (BsonTimestamp) changeStream.get("startAtOperationTime");
        String resumeFailed = "Resume of change stream was not possible, as the resume point may no longer be "
            + "in the oplog: ";
        long after; // the key of the newest entry the stream has passed
        if (token != null) {
            BsonTimestamp resumeAfter = ResumeToken.timestamp(token);
            after = key(resumeAfter);
            ensureKept(after, resumeFailed + "resume token at " + describe(resumeAfter));
        } else if (startAt != null) { // inclusive: from just before it (no entry has time (0, 0))
            after = key(startAt) == Long.MIN_VALUE ? Long.MIN_VALUE : key(startAt) - 1;
            ensureKept(after, resumeFailed + "operation time " + describe(startAt));
        } else {
            after = endKey(); // from now on: what is already written is not in the stream
        }
        ChangeStreamCursor cursor = new ChangeStreamCursor(cursors.generateCursorId(), this, after,
            entry -> ChangeEvents.concerns(entry, namespace),
            entry -> ChangeEvents.of(backend, entry, changeStream), aggregation);
        cursors.add(cursor);
        return cursor;
    }

    /** The entries after {@code after}, through {@code end}, oldest first. */
    Stream<Document> readable(long after, long end) {
        return after >= end ? Stream.empty() : index.subMap(after, false, end, true).entrySet().stream()
            .map(this::document).filter(Objects::nonNull);
    }

    /** The entry's document, read back from the store if it is no longer in memory (null: trimmed meanwhile). */
    private Document document(Map.Entry<Long, Document> entry) {
        if (entry.getValue() != IN_STORE) {
            return entry.getValue();
        }
        BsonTimestamp id = timestamp(entry.getKey());
        if (store instanceof DocumentsById) {
            return ((DocumentsById) store).byId(id);
        }
        for (Document stored : store.handleQuery(new Document("_id", id))) {
            return stored;
        }
        return null;
    }

    /** Refuses a position that entries newer than it were trimmed from: a stream from it would skip them. */
    void ensureKept(long after, String what) {
        long trimmed = trimmedThrough;
        if (trimmed > after) {
            throw new MongoServerError(286, "ChangeStreamHistoryLost", what
                + " is older than the oldest kept entry (entries through " + describe(timestamp(trimmed))
                + " were trimmed). Start a new stream from the current time (and resync what was missed), "
                + "or keep more history with a larger --oplog-max-entries");
        }
    }

    /** Drops the oldest entries beyond maxEntries, oldest first; returns how many. */
    int trim(int maxEntries, java.util.function.BooleanSupplier stopped) {
        int removed = 0;
        while (index.size() > maxEntries && !stopped.getAsBoolean()) {
            Map.Entry<Long, Document> oldest = index.firstEntry();
            // the mark moves first: a stream opened meanwhile at this entry is refused, never skips it
            trimmedThrough = Math.max(trimmedThrough, oldest.getKey());
            Document stored = document(oldest);
            index.remove(oldest.getKey());
            if (stored != null) {
                store.removeDocument(stored);
            }
            removed++;
        }
        if (removed > 0) {
            saveTrimmedThrough();
        }
        return removed;
    }

    private void saveTrimmedThrough() {
        for (Document old : trimState.handleQuery(new Document("_id", TRIM_STATE))) {
            trimState.removeDocument(old);
        }
        trimState.addDocument(new Document("_id", TRIM_STATE).append("through", trimmedThrough));
    }

    private static long loadTrimmedThrough(MongoCollection<Document> trimState) {
        for (Document state : trimState.handleQuery(new Document("_id", TRIM_STATE))) {
            return ((Number) state.get("through")).longValue();
        }
        return Long.MIN_VALUE; // nothing trimmed yet
    }

    // A sort key: BsonTimestamp orders its value as unsigned, and flipping the sign bit gives
    // that order to plain signed comparisons (it matters from 2038 on).
    static long key(BsonTimestamp ts) {
        return ts.getValue() ^ Long.MIN_VALUE;
    }

    static long key(Document entry) {
        return key((BsonTimestamp) entry.get("ts"));
    }

    /** The entries kept in memory for an oplog of {@code maxEntries}: a twentieth, at most {@link #HOT_ENTRIES}. */
    static int hotEntries(int maxEntries) {
        return Math.min(HOT_ENTRIES, Math.max(1, maxEntries / 20));
    }

    static BsonTimestamp timestamp(long key) {
        return new BsonTimestamp(key ^ Long.MIN_VALUE);
    }

    static String describe(BsonTimestamp ts) {
        return Instant.ofEpochSecond(Integer.toUnsignedLong(ts.getTime())) + " (Timestamp("
            + Integer.toUnsignedLong(ts.getTime()) + ", " + ts.getInc() + "))";
    }
}

/**
 * A collection that finds a document by its _id without a query. Trimming reads back every entry it removes
 * (its index keys and size come from the document), and a query for each (planned, looked up in the _id index,
 * matched, copied) was half of the trimming's CPU at 10,000 inserts/s.
 */
interface DocumentsById {

    /** The document whose _id is {@code id}, or null. */
    Document byId(Object id);
}

/**
 * The oplog's map of entries by key, appended in order (under the oplog's write lock, or at start): the newest
 * {@code kept} as documents, the older ones as {@link IndexedOplog#IN_STORE}.
 */
final class HotEntries {

    private final ConcurrentSkipListMap<Long, Document> index;
    private final int kept;
    private final ArrayDeque<Long> inMemory = new ArrayDeque<>();

    HotEntries(ConcurrentSkipListMap<Long, Document> index, int kept) {
        this.index = index;
        this.kept = kept;
    }

    void add(Document entry) {
        long key = IndexedOplog.key(entry);
        index.put(key, entry);
        inMemory.addLast(key);
        while (inMemory.size() > kept) {
            // replace, not put: an entry trimmed meanwhile stays gone
            index.replace(inMemory.removeFirst(), IndexedOplog.IN_STORE);
        }
    }
}

/** Keeps the oplog at most maxEntries long, as a capped oplog would: the oldest go first. */
final class OplogTrimmer implements Runnable {

    private static final Logger log = LoggerFactory.getLogger(OplogTrimmer.class);

    private final IndexedOplog oplog;
    private final int maxEntries;
    // Stop between entries rather than interrupt: an interrupt during file IO closes the MVStore.
    private volatile boolean stopped;

    OplogTrimmer(IndexedOplog oplog, int maxEntries) {
        this.oplog = oplog;
        this.maxEntries = maxEntries;
    }

    void stop() {
        stopped = true;
    }

    @Override
    public void run() {
        try {
            long started = System.nanoTime();
            int removed = oplog.trim(maxEntries, () -> stopped);
            if (removed > 0) {
                log.debug("trimmed {} oplog entries in {} ms", removed, (System.nanoTime() - started) / 1_000_000);
            }
        } catch (Throwable e) { // an escaping exception would silently cancel the schedule
            log.warn("oplog trim failed", e);
        }
    }
}
