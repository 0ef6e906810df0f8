/*
 * The local MongoDB stand-in: mongo-java-server (de.bwaldvogel) with change streams switched on.
 *
 * Run in single-file source mode on the `mongo` classpath of pom.xml:
 *   java -Xmx512m -cp "$CP" stack/mongo/MongoLauncher.java --port 27517 --data-dir DIR
 *        [--memory] [--oplog-max-entries 20000]
 *
 *   --port N                 listen on 127.0.0.1:N only (0 picks a free port)
 *   --data-dir DIR           H2 MVStore file DIR/mongo.mv.db, created if missing; required unless --memory
 *   --memory                 keep everything in memory instead (nothing survives a restart)
 *   --oplog-max-entries N    keep at most N oplog entries (default 20000), oldest trimmed every second
 *
 * On top of the library: the oplog is indexed by timestamp, so a change stream's getMore costs what it
 * returns, not a scan of the whole oplog (IndexedOplog); a change stream from a position whose following
 * entries were trimmed away fails as on a replica set, ChangeStreamHistoryLost (code 286), instead of
 * silently skipping them; and findAndModify writes (findOneAndUpdate/Replace/Delete, upserts) are
 * recorded in the oplog like plain writes (FindAndModify).
 *
 * Prints exactly one line to stdout, "READY port=<port>", once it accepts connections; everything
 * else goes to stderr. Exit codes: 2 bad arguments, 3 port unavailable, 1 any other startup failure.
 * SIGTERM shuts down cleanly (H2 file closed); after a kill -9 the file still opens, minus the
 * writes of roughly the last second (MVStore auto-commits about once a second).
 *
 * What the server does and does not do is written up in /work/shared/notes/mongo-stand-in.md.
 */

import java.lang.reflect.Field;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Proxy;
import java.net.BindException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Clock;
import java.time.Instant;
import java.time.ZoneId;
import java.time.ZoneOffset;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentSkipListMap;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Function;
import java.util.function.UnaryOperator;
import java.util.stream.Stream;

import org.h2.mvstore.MVStore;
import org.h2.mvstore.MVStoreException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import de.bwaldvogel.mongo.MongoBackend;
import de.bwaldvogel.mongo.MongoCollection;
import de.bwaldvogel.mongo.MongoServer;
import de.bwaldvogel.mongo.MongoVersion;
import de.bwaldvogel.mongo.MongoDatabase;
import de.bwaldvogel.mongo.backend.AbstractMongoBackend;
import de.bwaldvogel.mongo.backend.Cursor;
import de.bwaldvogel.mongo.backend.CursorRegistry;
import de.bwaldvogel.mongo.backend.aggregation.Aggregation;
import de.bwaldvogel.mongo.backend.h2.H2Backend;
import de.bwaldvogel.mongo.backend.memory.MemoryBackend;
import de.bwaldvogel.mongo.bson.BsonTimestamp;
import de.bwaldvogel.mongo.bson.Document;
import de.bwaldvogel.mongo.exception.MongoServerError;
import de.bwaldvogel.mongo.oplog.CollectionBackedOplog;
import de.bwaldvogel.mongo.oplog.Oplog;
import de.bwaldvogel.mongo.oplog.OplogCursor;
import de.bwaldvogel.mongo.oplog.OplogPosition;
import io.netty.channel.Channel;

public class MongoLauncher {

    private static final String HOST = "127.0.0.1";
    private static final String USAGE =
        "usage: MongoLauncher --port N (--data-dir DIR | --memory) [--oplog-max-entries N]";

    // Where AbstractMongoBackend keeps the oplog once enableOplog() is called.
    private static final String OPLOG_DB = "local";
    private static final String OPLOG_COLLECTION = "oplog.rs";

    private static Logger log;

    public static void main(String[] args) {
        Options options;
        try {
            options = Options.parse(args);
        } catch (IllegalArgumentException e) {
            System.err.println("MongoLauncher: " + e.getMessage());
            System.err.println(USAGE);
            System.exit(2);
            return;
        }
        if (options == null) {
            System.out.println(USAGE);
            return;
        }

        // Per-connection open/close lines at INFO would drown the stack's logs; -D still overrides.
        defaultProperty("org.slf4j.simpleLogger.log.de.bwaldvogel.mongo.wire.MongoWireProtocolHandler", "warn");
        defaultProperty("org.slf4j.simpleLogger.showDateTime", "true");
        defaultProperty("org.slf4j.simpleLogger.dateTimeFormat", "yyyy-MM-dd'T'HH:mm:ss.SSSZ");
        log = LoggerFactory.getLogger(MongoLauncher.class);

        MonotonicClock clock = new MonotonicClock();
        MongoBackend backend;
        try {
            backend = options.memory ? new IndexedMemoryBackend(clock) : openH2(options.dataDir, clock);
        } catch (Exception e) {
            String reason = e instanceof MVStoreException ? e.getMessage() : e.toString();
            fail(1, "cannot open the data store under " + options.dataDir + ": " + reason, e);
            return;
        }

        // pymongo >= 4.18 refuses the wire version 8 that ServerVersion.MONGO_5_0 reports;
        // 13 is what a real 5.0 reports and is enough for pymongo 4.20.
        backend.version(new MongoVersion() {
            @Override
            public List<Integer> getVersionArray() {
                return List.of(5, 0, 0);
            }

            @Override
            public int getWireVersion() {
                return 13;
            }
        });

        // Oplog timestamps are (wall-clock second, per-process counter). The counter restarts at 1,
        // so a restart within the second of the last stored entry (or a clock stepped back) would
        // stamp new events *before* old ones and resume tokens would skip them.
        BsonTimestamp newest = newestOplogTimestamp(backend);
        if (newest != null) {
            clock.advancePast(Integer.toUnsignedLong(newest.getTime()));
        }

        MongoServer server = new MongoServer(backend);
        server.enableOplog();
        try {
            server.bind(HOST, options.port);
        } catch (Exception e) { // netty rethrows the checked BindException undeclared
            // bind() has already shut the server down and closed the backend
            boolean inUse = hasCause(e, BindException.class);
            fail(inUse ? 3 : 1, "cannot listen on " + HOST + ":" + options.port + ": " + e.getMessage(), e);
            return;
        }

        ScheduledExecutorService scheduler = Executors.newSingleThreadScheduledExecutor(r -> {
            Thread thread = new Thread(r, "oplog-trimmer");
            thread.setDaemon(true);
            return thread;
        });
        OplogTrimmer oplogTrimmer = new OplogTrimmer(((IndexedBackend) backend).indexedOplog(), options.oplogMaxEntries);
        scheduler.scheduleWithFixedDelay(oplogTrimmer, 1, 1, TimeUnit.SECONDS);

        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            log.info("shutting down");
            // a trim in flight must be out of the store before it closes
            oplogTrimmer.stop();
            scheduler.shutdown();
            try {
                scheduler.awaitTermination(10, TimeUnit.SECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            server.shutdownNow(); // closes clients, then backend.close() closes the MVStore
        }, "shutdown"));

        int port = server.getLocalAddress().getPort();
        log.info("listening on {}:{}, {}, oplog capped at {} entries", HOST, port,
            options.memory ? "in memory" : backend, options.oplogMaxEntries);
        System.out.println("READY port=" + port);
        System.out.flush();
    }

    private static H2Backend openH2(Path dataDir, Clock clock) throws Exception {
        Files.createDirectories(dataDir);
        String file = dataDir.resolve("mongo.mv.db").toString();
        // MVStore locks the file, so a second launcher on the same directory fails here, not later.
        MVStore store = new MVStore.Builder().fileName(file).open();
        return new IndexedH2Backend(store, clock);
    }

    private static BsonTimestamp newestOplogTimestamp(MongoBackend backend) {
        MongoCollection<?> oplog = backend.resolveDatabase(OPLOG_DB).resolveCollection(OPLOG_COLLECTION, false);
        if (oplog == null) {
            return null;
        }
        // A plain scan: the server's own sort (orderby) is far slower than this on a full oplog.
        BsonTimestamp newest = null;
        for (Document entry : oplog.handleQuery(new Document(), 0, 0)) {
            BsonTimestamp ts = (BsonTimestamp) entry.get("ts");
            if (newest == null || ts.compareTo(newest) > 0) {
                newest = ts;
            }
        }
        return newest;
    }

    private static void defaultProperty(String key, String value) {
        if (System.getProperty(key) == null) {
            System.setProperty(key, value);
        }
    }

    private static boolean hasCause(Throwable e, Class<? extends Throwable> type) {
        for (Throwable t = e; t != null; t = t.getCause()) {
            if (type.isInstance(t)) {
                return true;
            }
        }
        return false;
    }

    private static void fail(int exitCode, String message, Throwable e) {
        System.err.println("MongoLauncher: " + message);
        if (e != null && log != null) {
            log.debug("startup failure", e);
        }
        System.exit(exitCode);
    }

    /** A backend whose oplog is an {@link IndexedOplog} and whose findAndModify writes reach it. */
    interface IndexedBackend {
        IndexedOplog indexedOplog();
    }

    static final class IndexedMemoryBackend extends MemoryBackend implements IndexedBackend {
        private IndexedOplog indexed;

        IndexedMemoryBackend(Clock clock) {
            super(clock);
        }

        @Override
        protected Oplog createOplog() {
            indexed = IndexedOplog.create(this, getCursorRegistry());
            return indexed;
        }

        @Override
        public IndexedOplog indexedOplog() {
            return indexed;
        }

        @Override
        public Document handleCommand(Channel channel, String database, String command, Document query) {
            return FindAndModify.run(this, oplog, database, command, query,
                sent -> super.handleCommand(channel, database, command, sent));
        }
    }

    static final class IndexedH2Backend extends H2Backend implements IndexedBackend {
        private IndexedOplog indexed;

        IndexedH2Backend(MVStore store, Clock clock) {
            super(store, clock);
        }

        @Override
        protected Oplog createOplog() {
            indexed = IndexedOplog.create(this, getCursorRegistry());
            return indexed;
        }

        @Override
        public IndexedOplog indexedOplog() {
            return indexed;
        }

        @Override
        public Document handleCommand(Channel channel, String database, String command, Document query) {
            return FindAndModify.run(this, oplog, database, command, query,
                sent -> super.handleCommand(channel, database, command, sent));
        }
    }

    /**
     * The server records insert/update/delete commands in its oplog but not findAndModify (mongosh's
     * findOneAndUpdate, pymongo's find_one_and_*): a user's edit would never reach a change stream.
     * This records a successful one after the fact, as the plain write of the same effect would be.
     */
    static final class FindAndModify {

        /** Runs the command through {@code execute}; a findAndModify that wrote is recorded in the oplog. */
        static Document run(MongoBackend backend, Oplog oplog, String database, String command, Document query,
                            UnaryOperator<Document> execute) {
            if (!"findAndModify".equalsIgnoreCase(command) || oplog == null) {
                return execute.apply(query);
            }
            String collection = String.valueOf(query.get(command));
            String namespace = database + "." + collection;
            Document selector = query.get("query") instanceof Document ? (Document) query.get("query") : new Document();
            // The response says nothing of what happened (no lastErrorObject): an upsert is a write where
            // nothing matched beforehand, and its new document is asked for to learn its _id.
            boolean inserts = truthy(query.get("upsert")) && !matches(backend, database, collection, selector);
            boolean wantsNew = truthy(query.get("new"));
            Document sent = query;
            if (inserts && !wantsNew) {
                sent = new Document().appendAll(query).append("new", true);
            }
            Document response = execute.apply(sent);
            Object value = response == null ? null : response.get("value");
            Object id = value instanceof Document ? ((Document) value).get("_id") : null;
            if (!isOk(response) || id == null) {
                return response; // nothing matched (or a projection hid the _id: nothing to name the document by)
            }
            if (inserts) {
                Document inserted = lookUp(backend, database, collection, id);
                oplog.handleInsert(namespace, List.of(inserted != null ? inserted : (Document) value));
                if (!wantsNew) {
                    response.put("value", null); // what the client asked for: the (absent) document before
                }
            } else if (truthy(query.get("remove"))) {
                oplog.handleDelete(namespace, selector, List.of(id));
            } else if (query.get("update") instanceof Document) {
                oplog.handleUpdate(namespace, selector, (Document) query.get("update"), List.of(id));
            }
            return response;
        }

        private static boolean truthy(Object flag) {
            return Boolean.TRUE.equals(flag) || flag instanceof Number && ((Number) flag).doubleValue() != 0;
        }

        private static boolean matches(MongoBackend backend, String database, String collection, Document selector) {
            MongoCollection<?> target = backend.resolveDatabase(database).resolveCollection(collection, false);
            return target != null && target.handleQuery(selector).iterator().hasNext();
        }

        private static boolean isOk(Document response) {
            Object ok = response == null ? null : response.get("ok");
            return ok instanceof Number && ((Number) ok).doubleValue() == 1.0;
        }

        private static Document lookUp(MongoBackend backend, String database, String collection, Object id) {
            MongoCollection<?> target = backend.resolveDatabase(database).resolveCollection(collection, false);
            if (target == null) {
                return null;
            }
            for (Document document : target.handleQuery(new Document("_id", id))) {
                return document.cloneDeeply();
            }
            return null;
        }
    }

    /**
     * The server's collection-backed oplog with an index: every entry also sits in a sorted map keyed by
     * its timestamp, so a change stream's getMore reads only the entries after its position (the
     * library scans and sorts the whole oplog on every call). The library still does everything
     * else: it reads the oplog through {@link #view}, a proxy of the collection whose
     * queryAllAsStream() is the map's tail from the position of the getMore being served.
     * <p>
     * Also refuses, as a replica set does (ChangeStreamHistoryLost, code 286), to resume from a
     * position whose following entries were trimmed away, instead of silently skipping them.
     */
    static final class IndexedOplog extends CollectionBackedOplog {

        private static final ThreadLocal<Long> READ_FROM = new ThreadLocal<>();
        private static final String TRIM_STATE = "oplog.trimmed"; // in the local database, next to oplog.rs

        final ConcurrentSkipListMap<Long, Document> index;
        final MongoCollection<Document> store;
        private final MongoCollection<Document> trimState;
        private final CursorRegistry cursors;
        // the newest key ever trimmed away: a resume point before it has lost history
        private volatile long trimmedThrough;

        private IndexedOplog(MongoBackend backend, MongoCollection<Document> view, MongoCollection<Document> store,
                             ConcurrentSkipListMap<Long, Document> index, MongoCollection<Document> trimState,
                             CursorRegistry cursors) {
            super(backend, view, cursors);
            this.store = store;
            this.index = index;
            this.trimState = trimState;
            this.cursors = cursors;
            this.trimmedThrough = loadTrimmedThrough(trimState);
        }

        @SuppressWarnings("unchecked")
        static IndexedOplog create(AbstractMongoBackend backend, CursorRegistry cursors) {
            MongoDatabase local = backend.resolveDatabase(OPLOG_DB);
            MongoCollection<Document> store = (MongoCollection<Document>) collection(local, OPLOG_COLLECTION);
            MongoCollection<Document> trimState = (MongoCollection<Document>) collection(local, TRIM_STATE);
            ConcurrentSkipListMap<Long, Document> index = new ConcurrentSkipListMap<>();
            store.queryAllAsStream().forEach(entry -> index.put(key(entry), entry));
            return new IndexedOplog(backend, view(store, index), store, index, trimState, cursors);
        }

        private static MongoCollection<?> collection(MongoDatabase database, String name) {
            MongoCollection<?> collection = database.resolveCollection(name, false);
            return collection != null ? collection : database.createCollectionOrThrowIfExists(name);
        }

        @SuppressWarnings("unchecked")
        private static MongoCollection<Document> view(MongoCollection<Document> store, Map<Long, Document> index) {
            ConcurrentSkipListMap<Long, Document> sorted = (ConcurrentSkipListMap<Long, Document>) index;
            return (MongoCollection<Document>) Proxy.newProxyInstance(MongoLauncher.class.getClassLoader(),
                new Class<?>[] {MongoCollection.class}, (proxy, method, args) -> {
                    if (method.getName().equals("addDocument") && args.length == 1) {
                        Document entry = (Document) args[0];
                        store.addDocument(entry);
                        sorted.put(key(entry), entry);
                        return null;
                    }
                    if (method.getName().equals("addDocuments") && args.length == 1) {
                        ((Stream<Document>) args[0]).forEachOrdered(entry -> {
                            store.addDocument(entry);
                            sorted.put(key(entry), entry);
                        });
                        return null;
                    }
                    if (method.getName().equals("queryAllAsStream") && (args == null || args.length == 0)) {
                        Long from = READ_FROM.get();
                        return (from == null ? sorted : sorted.tailMap(from, true)).values().stream();
                    }
                    try {
                        return method.invoke(store, args);
                    } catch (InvocationTargetException e) {
                        throw e.getCause();
                    }
                });
        }

        // Writes take one lock: timestamps are handed out and entries indexed in the same order, so
        // a getMore can never see a newer entry before an older one and skip the older one.
        @Override
        public synchronized void handleInsert(String namespace, List<Document> documents) {
            super.handleInsert(namespace, documents);
        }

        @Override
        public synchronized void handleUpdate(String namespace, Document selector, Document query, List<Object> ids) {
            super.handleUpdate(namespace, selector, query, ids);
        }

        @Override
        public synchronized void handleDelete(String namespace, Document query, List<Object> ids) {
            super.handleDelete(namespace, query, ids);
        }

        @Override
        public synchronized void handleDropCollection(String namespace) {
            super.handleDropCollection(namespace);
        }

        @Override
        public Cursor createCursor(Document changeStream, String namespace, Aggregation aggregation) {
            checkHistory(changeStream);
            Cursor cursor = super.createCursor(changeStream, namespace, aggregation);
            if (!(cursor instanceof OplogCursor)) {
                return cursor; // an invalidate cursor: it reads nothing
            }
            Function<OplogPosition, Stream<Document>> scan = field(cursor, "oplogStream");
            Function<OplogPosition, Stream<Document>> seek = position -> {
                READ_FROM.set(key(IndexedOplog.<BsonTimestamp>field(position, "timestamp")));
                try {
                    return scan.apply(position); // the library's filter, sort and mapping, on the tail only
                } finally {
                    READ_FROM.remove();
                }
            };
            OplogCursor indexed = new OplogCursor(cursor.getId(), seek, field(cursor, "position"));
            cursors.remove(cursor);
            cursors.add(indexed);
            return indexed;
        }

        private void checkHistory(Document changeStream) {
            Document token = (Document) changeStream.getOrDefault("startAfter", changeStream.get("resumeAfter"));
            BsonTimestamp startAt = (BsonTimestamp) changeStream.get("startAtOperationTime");
            long trimmed = trimmedThrough;
            boolean lost;
            String from;
            if (token != null) { // resumes after the token's entry: lost if anything newer was trimmed
                BsonTimestamp after = field(OplogPosition.fromDocument(token), "timestamp");
                lost = trimmed > key(after);
                from = "resume token at " + describe(after);
            } else if (startAt != null) { // starts at and includes startAt
                lost = trimmed >= key(startAt);
                from = "operation time " + describe(startAt);
            } else {
                return;
            }
            if (lost) {
                throw new MongoServerError(286, "ChangeStreamHistoryLost",
                    "Resume of change stream was not possible, as the resume point may no longer be in the oplog: "
                    + from + " is older than the oldest kept entry (entries through "
                    + describe(new BsonTimestamp(trimmed ^ Long.MIN_VALUE)) + " were trimmed). Start a new "
                    + "stream from the current time (and resync what was missed), or keep more history "
                    + "with a larger --oplog-max-entries");
            }
        }

        /** Drops the oldest entries beyond maxEntries, oldest first; returns how many. */
        int trim(int maxEntries, java.util.function.BooleanSupplier stopped) {
            int removed = 0;
            while (index.size() > maxEntries && !stopped.getAsBoolean()) {
                Map.Entry<Long, Document> oldest = index.firstEntry();
                // the mark moves first: a stream opened meanwhile at this entry is refused, never skips it
                trimmedThrough = Math.max(trimmedThrough, oldest.getKey());
                index.remove(oldest.getKey());
                store.removeDocument(oldest.getValue());
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

        private static String describe(BsonTimestamp ts) {
            return Instant.ofEpochSecond(Integer.toUnsignedLong(ts.getTime())) + " (Timestamp("
                + Integer.toUnsignedLong(ts.getTime()) + ", " + ts.getInc() + "))";
        }

        @SuppressWarnings("unchecked")
        private static <T> T field(Object target, String name) {
            try {
                Field field = target.getClass().getDeclaredField(name);
                field.setAccessible(true);
                return (T) field.get(target);
            } catch (ReflectiveOperationException e) {
                throw new IllegalStateException("mongo-java-server changed: " + target.getClass().getName()
                    + " has no field " + name + "; MongoLauncher's IndexedOplog needs updating", e);
            }
        }
    }

    /** Keeps the oplog at most maxEntries long, as a capped oplog would: the oldest go first. */
    static final class OplogTrimmer implements Runnable {

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

    /** The backend's clock, which the oplog stamps entries with: never goes back. */
    static final class MonotonicClock extends Clock {

        private final Clock wall = Clock.systemUTC();
        private final AtomicLong lastMillis = new AtomicLong();

        void advancePast(long epochSecond) {
            lastMillis.accumulateAndGet((epochSecond + 1) * 1000, Math::max);
        }

        @Override
        public Instant instant() {
            return Instant.ofEpochMilli(millis());
        }

        @Override
        public long millis() {
            return lastMillis.accumulateAndGet(wall.millis(), Math::max);
        }

        @Override
        public ZoneId getZone() {
            return ZoneOffset.UTC;
        }

        @Override
        public Clock withZone(ZoneId zone) {
            throw new UnsupportedOperationException("fixed to UTC");
        }
    }

    static final class Options {
        int port = -1;
        Path dataDir;
        boolean memory;
        int oplogMaxEntries = 20_000;

        /** @return null when help was asked for */
        static Options parse(String[] args) {
            Options o = new Options();
            for (int i = 0; i < args.length; i++) {
                String arg = args[i];
                switch (arg) {
                    case "-h":
                    case "--help":
                        return null;
                    case "--memory":
                        o.memory = true;
                        break;
                    case "--port":
                        o.port = intValue(arg, value(args, ++i, arg), 0, 65535);
                        break;
                    case "--data-dir":
                        o.dataDir = Path.of(value(args, ++i, arg)).toAbsolutePath();
                        break;
                    case "--oplog-max-entries":
                        o.oplogMaxEntries = intValue(arg, value(args, ++i, arg), 1, Integer.MAX_VALUE);
                        break;
                    default:
                        throw new IllegalArgumentException("unknown argument '" + arg + "'");
                }
            }
            if (o.port < 0) {
                throw new IllegalArgumentException("--port is required");
            }
            if (o.dataDir == null && !o.memory) {
                throw new IllegalArgumentException("--data-dir is required unless --memory is given");
            }
            return o;
        }

        private static String value(String[] args, int i, String option) {
            if (i >= args.length || args[i].startsWith("--")) {
                throw new IllegalArgumentException(option + " needs a value");
            }
            return args[i];
        }

        private static int intValue(String option, String value, int min, int max) {
            try {
                int n = Integer.parseInt(value);
                if (n >= min && n <= max) {
                    return n;
                }
            } catch (NumberFormatException e) {
                // reported below
            }
            throw new IllegalArgumentException(option + " must be an integer in [" + min + ", " + max + "], got '" + value + "'");
        }
    }
}
