// The MongoDB stand-in (see MongoLauncher.java): an insert command records in the oplog only the documents
// it inserted.

import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.function.UnaryOperator;
import de.bwaldvogel.mongo.bson.Document;

/**
 * The library records every document an insert command sent in its oplog, the refused ones too, and
 * replies that it inserted them all: a second insert of an existing _id (a client's retry, or a forged
 * trade) was refused with a duplicate key error, yet a change stream reported it as inserted, so the
 * dashboard counted a trade MongoDB does not hold and could take its price for NAV. Probed 2026-11-27 on
 * both backends: insert_one of a duplicate _id, and insert_many [new, duplicate, new] (ordered), whose
 * third document was not inserted either, gave three insert events and a reply of n = 3.
 * <p>
 * Here the command's entries are held back while it runs, and only the documents it inserted are recorded,
 * as a replica set's oplog holds only what was written: every document before the first refused one of an
 * ordered insert, every one not refused of an unordered insert. The reply's n counts them.
 */
final class Inserts {

    private Inserts() {
    }

    /** One handleInsert call of the library: a namespace and the documents the command sent. */
    static final class Held {
        final String namespace;
        final List<Document> documents;

        Held(String namespace, List<Document> documents) {
            this.namespace = namespace;
            this.documents = documents;
        }
    }

    static Document run(IndexedOplog oplog, String command, Document query, UnaryOperator<Document> execute) {
        if (!"insert".equalsIgnoreCase(command) || oplog == null) {
            return execute.apply(query);
        }
        query.putIfAbsent("ordered", true); // MongoDB's default; the library's is unordered
        Object flag = query.get("ordered");
        boolean ordered = Boolean.TRUE.equals(flag) || flag instanceof Number && ((Number) flag).doubleValue() != 0;
        List<Held> held = new ArrayList<>();
        Document reply = oplog.holdingInserts(held, () -> execute.apply(query));
        int inserted = 0;
        for (Held entries : held) {
            List<Document> written = written(entries.documents, reply, ordered);
            if (!written.isEmpty()) {
                oplog.handleInsert(entries.namespace, written);
            }
            inserted += written.size();
        }
        if (reply != null && reply.containsKey("n")) {
            reply.put("n", inserted);
        }
        return reply;
    }

    /** The documents the command inserted: those its reply names no write error for, up to the first error
     * if it was ordered (the library stops there). */
    private static List<Document> written(List<Document> sent, Document reply, boolean ordered) {
        Set<Integer> refused = new HashSet<>();
        Object errors = reply == null ? null : reply.get("writeErrors");
        if (errors instanceof List) {
            for (Object error : (List<?>) errors) {
                Object index = error instanceof Document ? ((Document) error).get("index") : null;
                if (index instanceof Number) {
                    refused.add(((Number) index).intValue());
                }
            }
        }
        List<Document> written = new ArrayList<>(sent.size());
        for (int i = 0; i < sent.size(); i++) {
            if (refused.contains(i)) {
                if (ordered) {
                    break;
                }
            } else {
                written.add(sent.get(i));
            }
        }
        return written;
    }
}
