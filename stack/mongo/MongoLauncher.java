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
 * Prints exactly one line to stdout, "READY port=<port>", once it accepts connections; everything
 * else goes to stderr. Exit codes: 2 bad arguments, 3 port unavailable, 1 any other startup failure.
 * SIGTERM shuts down cleanly (H2 file closed); after a kill -9 the file still opens, minus the
 * writes of roughly the last second (MVStore auto-commits about once a second).
 *
 * What the server does and does not do is written up in /work/shared/notes/mongo-stand-in.md.
 */

import java.net.BindException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Clock;
import java.time.Instant;
import java.time.ZoneId;
import java.time.ZoneOffset;
import java.util.ArrayList;
import java.util.Comparator;
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
import de.bwaldvogel.mongo.backend.h2.H2Backend;
import de.bwaldvogel.mongo.backend.memory.MemoryBackend;
import de.bwaldvogel.mongo.bson.BsonTimestamp;
import de.bwaldvogel.mongo.bson.Document;

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
            backend = options.memory ? new MemoryBackend(clock) : openH2(options.dataDir, clock);
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
        OplogTrimmer oplogTrimmer = new OplogTrimmer(backend, options.oplogMaxEntries);
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
        return new H2Backend(store, clock);
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

    /**
     * Makes the oplog behave like a capped collection. The server scans its whole oplog on every
     * change-stream getMore and never trims it, so without this getMore slows down without bound.
     * <p>
     * Everything goes through the oplog collection's own synchronized methods, the lock its
     * inserts take. Timestamps are handed out under that lock too, so an entry added after the
     * snapshot below is newer than the cutoff and cannot be removed by mistake.
     */
    static final class OplogTrimmer implements Runnable {

        private final MongoBackend backend;
        private final int maxEntries;
        // Stop between entries rather than interrupt: an interrupt during file IO closes the MVStore.
        private volatile boolean stopped;

        OplogTrimmer(MongoBackend backend, int maxEntries) {
            this.backend = backend;
            this.maxEntries = maxEntries;
        }

        void stop() {
            stopped = true;
        }

        @Override
        public void run() {
            try {
                trim();
            } catch (Throwable e) { // an escaping exception would silently cancel the schedule
                log.warn("oplog trim failed", e);
            }
        }

        private void trim() {
            MongoCollection<?> oplog = backend.resolveDatabase(OPLOG_DB).resolveCollection(OPLOG_COLLECTION, false);
            if (stopped || oplog == null || oplog.count() <= maxEntries) {
                return;
            }
            long started = System.nanoTime();
            // Sorted here, outside the lock: the server's own sort (orderby) compares documents
            // at ~1 µs a time, which at 20k entries would stall every writer for a third of a second.
            List<Document> entries = oplog.handleQuery(new Document(), 0, 0).collectDocuments();
            int surplus = entries.size() - maxEntries;
            if (surplus <= 0) {
                return;
            }
            long[] stamps = entries.stream().mapToLong(OplogTrimmer::timestamp).sorted().toArray();
            long cutoff = stamps[surplus - 1];
            List<Document> oldest = new ArrayList<>(surplus);
            for (Document entry : entries) {
                if (timestamp(entry) <= cutoff) {
                    oldest.add(entry);
                }
            }
            // Oldest first, so a change stream reading meanwhile never sees a hole in the middle;
            // one short lock per entry, so writers and getMores interleave with a large trim.
            oldest.sort(Comparator.comparingLong(OplogTrimmer::timestamp));
            int removed = 0;
            for (Document entry : oldest) {
                if (stopped) {
                    break;
                }
                oplog.removeDocument(entry);
                removed++;
            }
            log.debug("trimmed {} oplog entries in {} ms", removed, (System.nanoTime() - started) / 1_000_000);
        }

        // A sort key: BsonTimestamp orders its value as unsigned, and flipping the sign bit gives
        // that order to plain signed comparisons (it matters from 2038 on).
        private static long timestamp(Document entry) {
            return ((BsonTimestamp) entry.get("ts")).getValue() ^ Long.MIN_VALUE;
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
