// The MongoDB stand-in (see MongoLauncher.java): findAndModify writes recorded in the oplog, and an
// indexed look-up of a document by _id.

import java.util.List;
import java.util.function.UnaryOperator;
import de.bwaldvogel.mongo.MongoBackend;
import de.bwaldvogel.mongo.MongoCollection;
import de.bwaldvogel.mongo.bson.Document;
import de.bwaldvogel.mongo.oplog.Oplog;

/**
 * The server records insert/update/delete commands in its oplog but not findAndModify (mongosh's
 * findOneAndUpdate, pymongo's find_one_and_*): a user's edit would never reach a change stream.
 * This records a successful one after the fact, as the plain write of the same effect would be.
 */
final class FindAndModify {

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
            Document inserted = Documents.lookUp(backend, database, collection, id);
            oplog.handleInsert(namespace, List.of(inserted != null ? inserted : (Document) value));
            if (!wantsNew) {
                response.put("value", null); // what the client asked for: the (absent) document before
            }
        } else if (truthy(query.get("remove"))) {
            oplog.handleDelete(namespace, selector, List.of(id));
        } else if (query.get("update") instanceof Document) {
            // Under the collection's lock, as the library's own updates are recorded: the oplog looks the
            // updated document up while it records it, so the locks are always taken collection first.
            MongoCollection<?> target = backend.resolveDatabase(database).resolveCollection(collection, false);
            synchronized (target != null ? target : oplog) {
                oplog.handleUpdate(namespace, selector, (Document) query.get("update"), List.of(id));
            }
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
}

final class Documents {

    private Documents() {
    }

    /** The document with this _id as it is now (a copy), or null; an indexed lookup. */
    static Document lookUp(MongoBackend backend, String database, String collection, Object id) {
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
