// The MongoDB stand-in (see MongoLauncher.java): an update that fails part-way records what it wrote.

import java.util.ArrayList;
import java.util.List;
import java.util.function.Supplier;
import org.h2.mvstore.MVMap;
import de.bwaldvogel.mongo.MongoDatabase;
import de.bwaldvogel.mongo.backend.ArrayFilters;
import de.bwaldvogel.mongo.backend.CollectionOptions;
import de.bwaldvogel.mongo.backend.CursorRegistry;
import de.bwaldvogel.mongo.backend.Missing;
import de.bwaldvogel.mongo.backend.h2.H2Collection;
import de.bwaldvogel.mongo.backend.memory.MemoryCollection;
import de.bwaldvogel.mongo.backend.memory.MemoryDatabase;
import de.bwaldvogel.mongo.bson.Document;
import de.bwaldvogel.mongo.exception.MongoServerException;
import de.bwaldvogel.mongo.oplog.Oplog;

/**
 * The library records a multi-document update in its oplog once every matched document is updated: an update that
 * fails part-way (a unique index refusing the third document, say) recorded nothing, while the documents before it
 * stayed updated. A change stream then never heard of them (probed 2026-11-27: update_many over two documents, the
 * second refused; the first changed, no event). A replica set records each document it updated. Here the
 * collections note each document they write during an update, and a failed one records those before it fails.
 */
final class PartialUpdates {

    // The _ids written by the update running on this thread (under its collection's lock).
    private static final ThreadLocal<List<Object>> WRITTEN = new ThreadLocal<>();

    private PartialUpdates() {
    }

    static Document run(String namespace, Document selector, Document update, Oplog oplog, Supplier<Document> updates) {
        List<Object> written = new ArrayList<>();
        WRITTEN.set(written);
        try {
            return updates.get();
        } catch (MongoServerException e) {
            if (!written.isEmpty()) {
                oplog.handleUpdate(namespace, selector, update, written);
            }
            throw e;
        } finally {
            WRITTEN.remove();
        }
    }

    /** Called by a collection for each document an update writes. */
    static void written(Document newDocument) {
        List<Object> written = WRITTEN.get();
        if (written != null) {
            written.add(newDocument.get("_id"));
        }
    }
}

/** The H2 backend's collection, its partly failed updates recorded ({@link PartialUpdates}), found by _id directly. */
final class RecordedH2Collection extends H2Collection implements DocumentsById {

    RecordedH2Collection(MongoDatabase database, String name, CollectionOptions options, MVMap<Object, Document> data,
                         MVMap<String, Object> meta, CursorRegistry cursors) {
        super(database, name, options, data, meta, cursors);
    }

    @Override
    public synchronized Document updateDocuments(Document selector, Document update, ArrayFilters filters,
                                                 boolean multi, boolean upsert, Oplog oplog) {
        return PartialUpdates.run(getFullName(), selector, update, oplog,
            () -> super.updateDocuments(selector, update, filters, multi, upsert, oplog));
    }

    @Override
    protected void handleUpdate(Object position, Document oldDocument, Document newDocument) {
        super.handleUpdate(position, oldDocument, newDocument);
        PartialUpdates.written(newDocument);
    }

    @Override
    public Document byId(Object id) {
        return getDocument(Missing.ofNullable(id)); // H2Collection keys each document by its _id
    }
}

/** The memory backend's collection, its partly failed updates recorded ({@link PartialUpdates}). */
final class RecordedMemoryCollection extends MemoryCollection {

    RecordedMemoryCollection(MongoDatabase database, String name, CollectionOptions options, CursorRegistry cursors) {
        super(database, name, options, cursors);
    }

    @Override
    public synchronized Document updateDocuments(Document selector, Document update, ArrayFilters filters,
                                                 boolean multi, boolean upsert, Oplog oplog) {
        return PartialUpdates.run(getFullName(), selector, update, oplog,
            () -> super.updateDocuments(selector, update, filters, multi, upsert, oplog));
    }

    @Override
    protected void handleUpdate(Integer position, Document oldDocument, Document newDocument) {
        super.handleUpdate(position, oldDocument, newDocument);
        PartialUpdates.written(newDocument);
    }
}

/** The memory backend's database, opening {@link RecordedMemoryCollection}s. */
final class RecordedMemoryDatabase extends MemoryDatabase {

    RecordedMemoryDatabase(String name, CursorRegistry cursors) {
        super(name, cursors);
    }

    @Override
    protected MemoryCollection openOrCreateCollection(String name, CollectionOptions options) {
        return new RecordedMemoryCollection(this, name, options, cursorRegistry);
    }
}
