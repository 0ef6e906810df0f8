/*
 * The local MongoDB stand-in: mongo-java-server (de.bwaldvogel) with change streams switched on.
 *
 * The sources of this folder are compiled together on the `mongo` classpath of pom.xml (stack/jvm.py,
 * launcher_classpath: javac once per content, cached under .local/classes), then:
 *   java -Xmx512m -cp "$CLASSES:$CP" MongoLauncher --port 27517 --data-dir DIR
 *        [--memory] [--oplog-max-entries 20000]
 *
 *   --port N                 listen on 127.0.0.1:N only (0 picks a free port)
 *   --data-dir DIR           H2 MVStore file DIR/mongo.mv.db, created if missing; required unless --memory
 *   --memory                 keep everything in memory instead (nothing survives a restart)
 *   --oplog-max-entries N    keep at most N oplog entries (default 20000), oldest trimmed every second
 *
 * On top of the library, so that code written for a replica set runs unchanged against it:
 *  - it answers as the primary of a one-member replica set "rs0" (hello/isMaster, replSetGetStatus,
 *    replSetGetConfig; ReplicaSet), so mongodb://127.0.0.1:PORT/?replicaSet=rs0 works from every driver;
 *    replies carry operationTime and $clusterTime, sessions are advertised and their fields accepted
 *    (and ignored: one node needs no causal tokens), transactions are refused (Commands);
 *  - change events have a replica set's shape (ChangeEvents): ns, documentKey {_id} for every operation,
 *    wallTime, "replace" for replacements, updateDescription for $-operator updates (UpdateEntries), and
 *    resume tokens in a replica set's layout (ResumeToken); change stream batches carry their
 *    postBatchResumeToken, so a plain watch() works and an idle consumer's position keeps up
 *    (ChangeStreamCursor);
 *  - the oplog is indexed by timestamp, so a change stream's getMore costs what it returns, not a scan
 *    of the whole oplog (IndexedOplog); a change stream from a position whose following entries were
 *    trimmed away fails as on a replica set, ChangeStreamHistoryLost (code 286), instead of silently
 *    skipping them;
 *  - findAndModify writes (findOneAndUpdate/Replace/Delete, upserts) are recorded in the oplog like
 *    plain writes (FindAndModify);
 *  - the oplog holds what was written, and only that: an insert records the documents it inserted, not the
 *    refused ones (Inserts), and an update refused part-way the documents it updated before (PartialUpdates);
 *  - on disk, collections are stored as BSON with MongoDB-ordered indexes (5x the library's inserts/s),
 *    and a write is acknowledged once it is in the file, so a kill -9 loses no acknowledged write; change
 *    streams read only what is in the file (H2Storage: BsonH2Database, GroupCommit);
 *  - a change stream's empty getMore waits for the next write (maxTimeMS, 1 s by default), as MongoDB's
 *    awaitData does, without holding a Netty thread (AwaitData).
 * Files: MongoLauncher (start, options, backends), ReplicaSet (commands and topology replies),
 * ChangeStreams (events, tokens, cursors), IndexedOplog (oplog index, history, trimming), FindAndModify,
 * Inserts, PartialUpdates, H2Storage, AwaitData.
 * Not done: transactions, db.watch()/client.watch(), pre-images (fullDocumentBeforeChange).
 *
 * Prints exactly one line to stdout, "READY port=<port>", once it accepts connections; everything
 * else goes to stderr. Exit codes: 2 bad arguments, 3 port unavailable, 1 any other startup failure.
 * SIGTERM shuts down cleanly (H2 file closed); after a kill -9 the file opens with every acknowledged
 * write (GroupCommit).
 *
 * What the server does and does not do is written up in /work/shared/notes/mongo-stand-in.md.
 */

import java.net.BindException;
import java.net.InetSocketAddress;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Clock;
import java.time.Instant;
import java.time.ZoneId;
import java.time.ZoneOffset;
import java.util.List;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;

import org.h2.mvstore.MVStore;
import org.h2.mvstore.MVStoreException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import de.bwaldvogel.mongo.MongoBackend;
import de.bwaldvogel.mongo.MongoCollection;
import de.bwaldvogel.mongo.MongoServer;
import de.bwaldvogel.mongo.MongoVersion;
import de.bwaldvogel.mongo.MongoDatabase;
import de.bwaldvogel.mongo.backend.CursorRegistry;
import de.bwaldvogel.mongo.backend.h2.H2Backend;
import de.bwaldvogel.mongo.backend.memory.MemoryBackend;
import de.bwaldvogel.mongo.backend.memory.MemoryDatabase;
import de.bwaldvogel.mongo.bson.BsonTimestamp;
import de.bwaldvogel.mongo.bson.Document;
import de.bwaldvogel.mongo.exception.MongoServerException;
import de.bwaldvogel.mongo.oplog.Oplog;
import de.bwaldvogel.mongo.wire.MongoWireProtocolHandler;
import io.netty.channel.Channel;

public class MongoLauncher {

    static final String HOST = "127.0.0.1";
    // pymongo >= 4.18 refuses the wire version 8 that ServerVersion.MONGO_5_0 reports;
    // 13 is what a real 5.0 reports and is enough for pymongo 4.20.
    static final int WIRE_VERSION = 13;
    private static final String USAGE =
        "usage: MongoLauncher --port N (--data-dir DIR | --memory) [--oplog-max-entries N]";

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
            backend = options.memory ? new IndexedMemoryBackend(clock)
                : openH2(options.dataDir, clock, IndexedOplog.hotEntries(options.oplogMaxEntries));
        } catch (Exception e) {
            String reason = e instanceof MVStoreException ? e.getMessage() : e.toString();
            fail(1, "cannot open the data store under " + options.dataDir + ": " + reason, e);
            return;
        }

        backend.version(new MongoVersion() {
            @Override
            public List<Integer> getVersionArray() {
                return List.of(5, 0, 0);
            }

            @Override
            public int getWireVersion() {
                return WIRE_VERSION;
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
            new AwaitData(((IndexedBackend) backend).indexedOplog(), ((IndexedBackend) backend)::isChangeStream)
                .bind(server, backend, new InetSocketAddress(HOST, options.port));
        } catch (Exception e) { // netty rethrows the checked BindException undeclared
            // the process exits: nothing bound is left to shut down
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
        // A command that wrote without being one of GroupCommit.WRITES: stored (and readable) within a second.
        scheduler.scheduleWithFixedDelay(() -> {
            try {
                ((IndexedBackend) backend).storeWrites();
            } catch (Throwable e) { // an escaping exception would silently cancel the schedule
                log.warn("storing writes failed", e);
            }
        }, 1, 1, TimeUnit.SECONDS);

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

    private static H2Backend openH2(Path dataDir, Clock clock, int hotOplogEntries) throws Exception {
        Files.createDirectories(dataDir);
        String file = dataDir.resolve("mongo.mv.db").toString();
        // MVStore locks the file, so a second launcher on the same directory fails here, not later.
        MVStore store = new MVStore.Builder().fileName(file).open();
        return new IndexedH2Backend(store, clock, hotOplogEntries);
    }

    private static BsonTimestamp newestOplogTimestamp(MongoBackend backend) {
        MongoCollection<?> oplog = backend.resolveDatabase(IndexedOplog.DATABASE)
            .resolveCollection(IndexedOplog.COLLECTION, false);
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

    static boolean isChangeStream(CursorRegistry cursors, long cursorId) {
        try {
            return cursorId != 0 && cursors.getCursor(cursorId) instanceof ChangeStreamCursor;
        } catch (MongoServerException e) { // not found: the library's getMore says so
            return false;
        }
    }

    /** A backend whose oplog is an {@link IndexedOplog} and whose commands go through {@link Commands}. */
    interface IndexedBackend {
        IndexedOplog indexedOplog();

        /** Writes applied so far are stored (and their oplog entries readable) when this returns. */
        default void storeWrites() {
        }

        /** Whether the cursor is an open change stream (its getMore awaits data: {@link AwaitData}). */
        boolean isChangeStream(long cursorId);
    }

    static final class IndexedMemoryBackend extends MemoryBackend implements IndexedBackend {
        private IndexedOplog indexed;

        IndexedMemoryBackend(Clock clock) {
            super(clock);
        }

        @Override
        public MemoryDatabase openOrCreateDatabase(String databaseName) {
            return new RecordedMemoryDatabase(databaseName, getCursorRegistry());
        }

        @Override
        protected Oplog createOplog() {
            // every entry: the collection holds the same documents in memory anyway
            indexed = IndexedOplog.create(this, getCursorRegistry(), Integer.MAX_VALUE);
            return indexed;
        }

        @Override
        public IndexedOplog indexedOplog() {
            return indexed;
        }

        @Override
        public boolean isChangeStream(long cursorId) {
            return MongoLauncher.isChangeStream(getCursorRegistry(), cursorId);
        }

        @Override
        public Document handleCommand(Channel channel, String database, String command, Document query) {
            return Commands.handle(this, indexed, channel, database, command, query,
                sent -> super.handleCommand(channel, database, command, sent), () -> { });
        }
    }

    /** On disk: collections stored as BSON ({@link BsonH2Database}), writes acknowledged once in the file. */
    static final class IndexedH2Backend extends H2Backend implements IndexedBackend {
        private IndexedOplog indexed;
        private GroupCommit durability;
        private final int hotOplogEntries;

        IndexedH2Backend(MVStore store, Clock clock, int hotOplogEntries) {
            super(store, clock);
            this.hotOplogEntries = hotOplogEntries;
        }

        @Override
        protected MongoDatabase openOrCreateDatabase(String databaseName) {
            return new BsonH2Database(databaseName, getMvStore(), getCursorRegistry());
        }

        @Override
        protected Oplog createOplog() {
            indexed = IndexedOplog.create(this, getCursorRegistry(), hotOplogEntries);
            indexed.hideUnstored(); // an entry is readable once it is in the file: a crash cannot take it back
            durability = new GroupCommit(getMvStore(), indexed);
            return indexed;
        }

        @Override
        public IndexedOplog indexedOplog() {
            return indexed;
        }

        @Override
        public boolean isChangeStream(long cursorId) {
            return MongoLauncher.isChangeStream(getCursorRegistry(), cursorId);
        }

        @Override
        public void storeWrites() {
            durability.awaitCommitted();
        }

        @Override
        public Document handleCommand(Channel channel, String database, String command, Document query) {
            return Commands.handle(this, indexed, channel, database, command, query,
                sent -> super.handleCommand(channel, database, command, sent),
                GroupCommit.WRITES.contains(command) ? durability::awaitCommitted : () -> { });
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
