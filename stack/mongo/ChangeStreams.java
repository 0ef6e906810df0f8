// The MongoDB stand-in (see MongoLauncher.java): change streams as a replica set's: cursors, events,
// resume tokens and update descriptions.

import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.function.Function;
import java.util.function.Predicate;
import java.util.stream.Collectors;
import java.util.stream.Stream;
import de.bwaldvogel.mongo.MongoBackend;
import de.bwaldvogel.mongo.backend.AbstractCursor;
import de.bwaldvogel.mongo.backend.Utils;
import de.bwaldvogel.mongo.backend.aggregation.Aggregation;
import de.bwaldvogel.mongo.bson.BsonTimestamp;
import de.bwaldvogel.mongo.bson.Document;
import de.bwaldvogel.mongo.exception.MongoServerError;

/**
 * A change stream's cursor: the entries after its position, as events, through the stream's pipeline.
 * Each batch leaves its postBatchResumeToken for the reply ({@link Commands}; the library's reply has no
 * room for it): the last event's token, or, when the batch took everything there was, the oplog's end,
 * so that the resume point of a consumer whose collection is idle keeps up with the oplog (and is not
 * trimmed away under it). A cursor that fell so far behind that entries it had not read were trimmed
 * fails with ChangeStreamHistoryLost, as on a replica set, instead of silently skipping them.
 */
final class ChangeStreamCursor extends AbstractCursor {

    // Commands run on the netty thread that took them, start to end: the batch's token for its reply.
    private static final ThreadLocal<Document> POST_BATCH_RESUME_TOKEN = new ThreadLocal<>();

    private final IndexedOplog oplog;
    private final Predicate<Document> concerns;
    private final Function<Document, Document> toEvent;
    private final Aggregation pipeline;
    private long after; // the key of the newest entry passed; getMores on one cursor come one at a time

    ChangeStreamCursor(long id, IndexedOplog oplog, long after, Predicate<Document> concerns,
                       Function<Document, Document> toEvent, Aggregation pipeline) {
        super(id);
        this.oplog = oplog;
        this.after = after;
        this.concerns = concerns;
        this.toEvent = toEvent;
        this.pipeline = pipeline;
    }

    @Override
    public boolean isEmpty() {
        return false; // a change stream stays open
    }

    @Override
    public synchronized List<Document> takeDocuments(int numberToReturn) {
        long end = oplog.endKey(); // read first: entries are appended in order, so all up to it are there
        Stream<Document> events = pipeline.runStagesAsStream(oplog.readable(after, end)
            .filter(concerns)
            .map(toEvent));
        if (numberToReturn > 0) {
            events = events.limit(numberToReturn);
        }
        List<Document> batch = events.collect(Collectors.toList());
        // after reading: a trim during the read may have taken entries it had not reached
        oplog.ensureKept(after, "The change stream fell behind the oplog: its position "
            + IndexedOplog.describe(IndexedOplog.timestamp(after)));
        if (!batch.isEmpty()) {
            Object token = batch.get(batch.size() - 1).get("_id");
            if (!(token instanceof Document)) {
                throw new MongoServerError(280, "ChangeStreamFatalError", "Encountered an event whose _id "
                    + "field, which contains the resume token, was modified by the pipeline. Modifying the _id "
                    + "field of an event makes it impossible to resume the stream from that point.");
            }
            after = Math.max(after, IndexedOplog.key(ResumeToken.timestamp((Document) token)));
        }
        if (numberToReturn <= 0 || batch.size() < numberToReturn) {
            after = Math.max(after, end); // nothing up to the end was left out
        }
        POST_BATCH_RESUME_TOKEN.set(ResumeToken.of(IndexedOplog.timestamp(after)));
        return batch;
    }

    /** The postBatchResumeToken of the batch this thread's command took, if it took one; cleared. */
    static Document takePostBatchResumeToken() {
        Document token = POST_BATCH_RESUME_TOKEN.get();
        POST_BATCH_RESUME_TOKEN.remove();
        return token;
    }
}

/**
 * Resume tokens in a replica set's layout, hex "82" (a KeyString timestamp) + the entry's time and
 * increment (big-endian) + "04" (the end): Debezium reads the time out of that layout
 * (ResumeTokens.getTimestamp), the relay reads it for its messages. Tokens of earlier launchers, the
 * bare hex timestamp, are still accepted, so a stored position survives the upgrade.
 */
final class ResumeToken {

    static Document of(BsonTimestamp ts) {
        return new Document("_data", String.format("82%016X04", ts.getValue()));
    }

    static BsonTimestamp timestamp(Document token) {
        Object data = token.get("_data");
        if (data instanceof String) {
            String hex = (String) data;
            try {
                if (hex.length() <= 16) {
                    return new BsonTimestamp(Long.parseUnsignedLong(hex, 16));
                }
                if (hex.startsWith("82") && hex.length() >= 18) {
                    return new BsonTimestamp(Long.parseUnsignedLong(hex.substring(2, 18), 16));
                }
            } catch (NumberFormatException e) {
                // reported below
            }
        }
        throw new MongoServerError(2, "BadValue", "not a resume token of this server: " + token
            + "; use a token from an event or a postBatchResumeToken it returned");
    }
}

/**
 * Completes an update entry as it is written, with what a replica set's oplog entry says and the
 * library's does not: a replacement's entry holds the new document (as a replica set's does); a
 * $-operator update's gets the change event's updateDescription, computed here because only now is the
 * document after the update at hand (the library records the update spec alone). Runs under the oplog's
 * lock and the updated collection's (taken in that order by every writer: collection, then oplog).
 */
final class UpdateEntries {

    static final String UPDATE_DESCRIPTION = "updateDescription"; // the stand-in's own field

    static Document complete(MongoBackend backend, Document entry) {
        if (!"u".equals(entry.get("op")) || !(entry.get("o2") instanceof Document)) {
            return entry;
        }
        String namespace = (String) entry.get("ns");
        Object id = ((Document) entry.get("o2")).get("_id");
        Document after = Documents.lookUp(backend, Utils.getDatabaseNameFromFullName(namespace),
            Utils.getCollectionNameFromFullName(namespace), id);
        Document spec = (Document) entry.get("o");
        if (ChangeEvents.isReplacement(spec)) {
            if (after != null) {
                entry.put("o", after);
            }
        } else {
            entry.put(UPDATE_DESCRIPTION, describe(spec, after));
        }
        return entry;
    }

    /**
     * updatedFields and removedFields of a $-operator update: every path it names, with its value after the
     * update, or as removed if it has none. Exact for $set, $unset, $inc, $mul, $min, $max, $rename,
     * $currentDate; array operators ($push, $pull, positional paths) report the whole array, not its
     * changed elements; a $set to the value a field already had is reported (a replica set omits it).
     */
    static Document describe(Document spec, Document after) {
        Document updated = new Document();
        List<String> removed = new ArrayList<>();
        for (Map.Entry<String, Object> operator : spec.entrySet()) {
            if (!(operator.getValue() instanceof Document) || operator.getKey().equals("$setOnInsert")) {
                continue; // $setOnInsert changes nothing unless it inserts, which is an insert event
            }
            for (Map.Entry<String, Object> field : ((Document) operator.getValue()).entrySet()) {
                note(field.getKey(), after, updated, removed);
                if (operator.getKey().equals("$rename")) {
                    note(String.valueOf(field.getValue()), after, updated, removed);
                }
            }
        }
        return new Document("updatedFields", updated).append("removedFields", removed)
            .append("truncatedArrays", new ArrayList<>());
    }

    private static void note(String path, Document after, Document updated, List<String> removed) {
        String field = beforePositional(path);
        Object value = valueAt(after, field);
        if (value == MISSING) {
            if (!removed.contains(field)) {
                removed.add(field);
            }
        } else {
            updated.put(field, value);
        }
    }

    private static final Object MISSING = new Object();

    // "a.$.b", "a.$[].b", "a.$[x]" -> "a": the whole array, as the element changed is not known here
    private static String beforePositional(String path) {
        int positional = path.indexOf(".$");
        return positional < 0 ? path : path.substring(0, positional);
    }

    private static Object valueAt(Document document, String path) {
        Object value = document;
        for (String part : path.split("\\.")) {
            if (value instanceof Document && ((Document) value).containsKey(part)) {
                value = ((Document) value).get(part);
            } else if (value instanceof List && part.chars().allMatch(Character::isDigit) && !part.isEmpty()
                       && Integer.parseInt(part) < ((List<?>) value).size()) {
                value = ((List<?>) value).get(Integer.parseInt(part));
            } else {
                return MISSING;
            }
        }
        return value;
    }
}

/**
 * Change events as a replica set (5.0/6.0) sends them, from oplog entries: _id (the resume token),
 * operationType, clusterTime, wallTime, fullDocument, ns {db, coll}, documentKey {_id}, and for a
 * $-operator update its updateDescription. A replacement is "replace" with the new document; an update's
 * fullDocument is there when the stream asked for it (updateLookup, and whenAvailable/required, which
 * here mean the same: the document as it is when the event is read, null once deleted).
 */
final class ChangeEvents {

    /** Whether the entry belongs to the stream on {@code namespace}: its writes, and its drop. */
    static boolean concerns(Document entry, String namespace) {
        String ns = (String) entry.get("ns");
        if (namespace.equals(ns)) {
            return true;
        }
        if (!"c".equals(entry.get("op")) || !(entry.get("o") instanceof Document)) {
            return false;
        }
        String database = Utils.getDatabaseNameFromFullName(namespace);
        return ns.equals(database + ".$cmd")
            && Utils.getCollectionNameFromFullName(namespace).equals(((Document) entry.get("o")).get("drop"));
    }

    static boolean isReplacement(Document spec) {
        return spec.keySet().stream().noneMatch(key -> key.startsWith("$"));
    }

    static Document of(MongoBackend backend, Document entry, Document changeStream) {
        BsonTimestamp ts = (BsonTimestamp) entry.get("ts");
        String namespace = (String) entry.get("ns");
        String database = Utils.getDatabaseNameFromFullName(namespace);
        String collection = Utils.getCollectionNameFromFullName(namespace);
        Document o = (Document) entry.get("o");
        Object wall = entry.get("wall");
        Document event = new Document("_id", ResumeToken.of(ts));
        Object id;
        String type;
        Document fullDocument = null;
        boolean hasFullDocument;
        switch (String.valueOf(entry.get("op"))) {
            case "i":
                type = "insert";
                id = o.get("_id");
                fullDocument = o.cloneDeeply();
                hasFullDocument = true;
                break;
            case "u":
                id = ((Document) entry.get("o2")).get("_id");
                type = isReplacement(o) ? "replace" : "update";
                hasFullDocument = type.equals("replace") || looksUp(changeStream);
                if (type.equals("replace")) {
                    fullDocument = new Document("_id", id).appendAll(o.cloneDeeply()); // _id first, as stored
                } else if (hasFullDocument) {
                    fullDocument = Documents.lookUp(backend, database, collection, id);
                }
                break;
            case "d":
                type = "delete";
                id = o.get("_id");
                hasFullDocument = false;
                break;
            default: // a command: the library records only drop
                String command = o.keySet().iterator().next();
                return event.append("operationType", command)
                    .append("clusterTime", ts)
                    .append("wallTime", wall != null ? wall : seconds(ts))
                    .append("ns", new Document("db", database).append("coll", String.valueOf(o.get(command))));
        }
        event.append("operationType", type)
            .append("clusterTime", ts)
            .append("wallTime", wall != null ? wall : seconds(ts));
        if (hasFullDocument) {
            event.append("fullDocument", fullDocument);
        }
        event.append("ns", new Document("db", database).append("coll", collection))
            .append("documentKey", new Document("_id", id));
        if (type.equals("update")) {
            Object description = entry.get(UpdateEntries.UPDATE_DESCRIPTION);
            event.append("updateDescription", description instanceof Document
                ? ((Document) description).cloneDeeply()
                // an entry written before the launcher completed them: from the document as it is now
                : UpdateEntries.describe(o, Documents.lookUp(backend, database, collection, id)));
        }
        return event;
    }

    private static boolean looksUp(Document changeStream) {
        Object mode = changeStream.get("fullDocument");
        return "updateLookup".equals(mode) || "whenAvailable".equals(mode) || "required".equals(mode);
    }

    private static Instant seconds(BsonTimestamp ts) {
        return Instant.ofEpochSecond(Integer.toUnsignedLong(ts.getTime()));
    }
}
