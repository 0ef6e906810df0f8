// The MongoDB stand-in (see MongoLauncher.java): every command on its way in, and the replies by which
// drivers learn the topology, as from the primary of a one-member replica set.

import java.net.InetSocketAddress;
import java.time.Instant;
import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.UnaryOperator;
import de.bwaldvogel.mongo.MongoBackend;
import de.bwaldvogel.mongo.bson.BinData;
import de.bwaldvogel.mongo.bson.BsonTimestamp;
import de.bwaldvogel.mongo.bson.Document;
import de.bwaldvogel.mongo.bson.ObjectId;
import de.bwaldvogel.mongo.exception.MongoServerError;
import de.bwaldvogel.mongo.wire.BsonConstants;
import de.bwaldvogel.mongo.wire.MongoWireProtocolHandler;
import io.netty.channel.Channel;
import io.netty.util.AttributeKey;

/**
 * Every command passes here on its way to the library, so that the server answers as a one-member
 * replica set does: the topology commands are answered here ({@link ReplicaSet}); the session fields
 * that drivers add once sessions are advertised are taken off before the library sees them, and
 * transactions, which it cannot undo, are refused;
 * findAndModify writes are recorded ({@link FindAndModify}); and every reply carries what a replica set's
 * carries: operationTime and $clusterTime, and a change stream's batches their postBatchResumeToken.
 */
final class Commands {

    // Sent by drivers on every command once logicalSessionTimeoutMinutes is advertised. The stand-in has
    // no sessions: causal consistency holds anyway (one node, reads see every acknowledged write), and a
    // retried write is applied again instead of being recognised by its txnNumber.
    private static final List<String> SESSION_FIELDS = List.of("lsid", "$clusterTime", "txnNumber");

    /** {@code store} runs after the command, before its reply: what it wrote is then stored. */
    static Document handle(MongoBackend backend, IndexedOplog oplog, Channel channel, String database,
                           String command, Document query, UnaryOperator<Document> execute, Runnable store) {
        Document reply = ReplicaSet.answer(channel, database, command, query, oplog);
        if (reply == null) {
            if (query.containsKey("startTransaction") || query.containsKey("autocommit")) {
                throw new MongoServerError(20, "IllegalOperation", "multi-document transactions are not "
                    + "supported by the MongoDB stand-in (mongo-java-server); write without a transaction, "
                    + "or use a real replica set");
            }
            SESSION_FIELDS.forEach(query::remove);
            ChangeStreamCursor.takePostBatchResumeToken(); // none left over from a failed command
            reply = FindAndModify.run(backend, oplog, database, command, query,
                sent -> Inserts.run(oplog, command, sent, execute));
            store.run();
            Document token = ChangeStreamCursor.takePostBatchResumeToken();
            if (token != null && reply != null && reply.get("cursor") instanceof Document) {
                ((Document) reply.get("cursor")).put("postBatchResumeToken", token);
            }
        }
        if (reply != null && oplog != null) {
            BsonTimestamp now = oplog.operationTime();
            reply.put("operationTime", now);
            reply.put("$clusterTime", ReplicaSet.clusterTime(now));
        }
        return reply;
    }
}

/**
 * The commands by which drivers and shells learn the topology, answered as by the primary of a one-member
 * replica set "rs0" whose only host is the address the client reached (so that ?replicaSet=rs0 works).
 * No topologyVersion is advertised: drivers then poll hello every few seconds instead of streaming it
 * (awaitable hello and the exhaustAllowed flag, which the library's wire decoder refuses).
 */
final class ReplicaSet {

    static final String NAME = "rs0";
    private static final long TERM = 1L; // the term the library stamps every oplog entry with ("t")
    private static final ObjectId ELECTION_ID = new ObjectId("7fffffff0000000000000001");
    private static final AttributeKey<Integer> CONNECTION_ID = AttributeKey.valueOf("stockdash.connectionId");
    private static final AtomicInteger CONNECTIONS = new AtomicInteger();
    private static final Instant STARTED = Instant.now();

    /** The reply to a topology command, or null when {@code command} is not one. */
    static Document answer(Channel channel, String database, String command, Document query, IndexedOplog oplog) {
        if (oplog == null) {
            return null;
        }
        switch (command.toLowerCase(java.util.Locale.ROOT)) {
            case "hello":
            case "ismaster":
                return hello(channel, command, query, oplog);
            case "replsetgetstatus":
                return "admin".equals(database) ? status(channel, oplog) : null;
            case "replsetgetconfig":
                return "admin".equals(database) ? new Document("config", config(channel)).append("ok", 1.0) : null;
            default:
                return null;
        }
    }

    static Document clusterTime(BsonTimestamp time) {
        // Drivers pass the signature back unread; a real one is an HMAC, all zeros when auth is off.
        return new Document("clusterTime", time)
            .append("signature", new Document("hash", new BinData(new byte[20])).append("keyId", 0L));
    }

    private static Document hello(Channel channel, String command, Document query, IndexedOplog oplog) {
        String me = address(channel);
        boolean legacy = !command.equals("hello");
        Document reply = new Document();
        if (legacy) {
            reply.append("ismaster", true);
        }
        if (!legacy || Boolean.TRUE.equals(query.get("helloOk"))) {
            reply.append("helloOk", true); // from now on the driver may use hello
        }
        BsonTimestamp last = oplog.operationTime();
        Instant lastDate = Instant.ofEpochSecond(Integer.toUnsignedLong(last.getTime()));
        Document opTime = new Document("ts", last).append("t", TERM);
        return reply
            .append("isWritablePrimary", true)
            .append("secondary", false)
            .append("setName", NAME)
            .append("setVersion", 1)
            .append("hosts", List.of(me))
            .append("primary", me)
            .append("me", me)
            .append("electionId", ELECTION_ID)
            .append("lastWrite", new Document("opTime", opTime).append("lastWriteDate", lastDate)
                .append("majorityOpTime", opTime).append("majorityWriteDate", lastDate))
            .append("maxBsonObjectSize", BsonConstants.MAX_BSON_OBJECT_SIZE)
            .append("maxMessageSizeBytes", MongoWireProtocolHandler.MAX_MESSAGE_SIZE_BYTES)
            .append("maxWriteBatchSize", MongoWireProtocolHandler.MAX_WRITE_BATCH_SIZE)
            .append("localTime", Instant.now())
            .append("logicalSessionTimeoutMinutes", 30)
            .append("connectionId", connectionId(channel))
            .append("minWireVersion", 0)
            .append("maxWireVersion", MongoLauncher.WIRE_VERSION)
            .append("readOnly", false)
            .append("ok", 1.0);
    }

    private static Document status(Channel channel, IndexedOplog oplog) {
        BsonTimestamp last = oplog.operationTime();
        Instant lastDate = Instant.ofEpochSecond(Integer.toUnsignedLong(last.getTime()));
        Document opTime = new Document("ts", last).append("t", TERM);
        Document member = new Document("_id", 0)
            .append("name", address(channel))
            .append("health", 1.0)
            .append("state", 1)
            .append("stateStr", "PRIMARY")
            .append("uptime", (int) Math.max(0, Instant.now().getEpochSecond() - STARTED.getEpochSecond()))
            .append("optime", opTime)
            .append("optimeDate", lastDate)
            .append("electionTime", new BsonTimestamp(STARTED, 1))
            .append("electionDate", STARTED)
            .append("configVersion", 1)
            .append("configTerm", TERM)
            .append("self", true);
        return new Document("set", NAME)
            .append("date", Instant.now())
            .append("myState", 1)
            .append("term", TERM)
            .append("heartbeatIntervalMillis", 2000L)
            .append("majorityVoteCount", 1)
            .append("writeMajorityCount", 1)
            .append("votingMembersCount", 1)
            .append("writableVotingMembersCount", 1)
            .append("optimes", new Document("lastCommittedOpTime", opTime).append("appliedOpTime", opTime)
                .append("durableOpTime", opTime).append("lastCommittedWallTime", lastDate))
            .append("members", List.of(member))
            .append("ok", 1.0);
    }

    private static Document config(Channel channel) {
        Document member = new Document("_id", 0).append("host", address(channel)).append("arbiterOnly", false)
            .append("buildIndexes", true).append("hidden", false).append("priority", 1.0)
            .append("tags", new Document()).append("secondaryDelaySecs", 0L).append("votes", 1);
        return new Document("_id", NAME).append("version", 1).append("term", TERM).append("protocolVersion", 1L)
            .append("writeConcernMajorityJournalDefault", true).append("members", List.of(member))
            .append("settings", new Document("chainingAllowed", true).append("heartbeatIntervalMillis", 2000)
                .append("electionTimeoutMillis", 10000).append("catchUpTimeoutMillis", -1));
    }

    // The address the client reached: the only member, so the driver's view of the set matches its seed.
    private static String address(Channel channel) {
        return MongoLauncher.HOST + ":" + ((InetSocketAddress) channel.localAddress()).getPort();
    }

    private static int connectionId(Channel channel) {
        Integer id = channel.attr(CONNECTION_ID).get();
        if (id == null) {
            channel.attr(CONNECTION_ID).setIfAbsent(CONNECTIONS.incrementAndGet());
            id = channel.attr(CONNECTION_ID).get();
        }
        return id;
    }
}
