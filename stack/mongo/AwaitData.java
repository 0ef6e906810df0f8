import java.lang.reflect.Field;
import java.lang.reflect.Method;
import java.net.SocketAddress;
import java.util.List;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ThreadFactory;
import java.util.concurrent.TimeUnit;
import java.util.function.LongPredicate;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import de.bwaldvogel.mongo.MongoBackend;
import de.bwaldvogel.mongo.MongoServer;
import de.bwaldvogel.mongo.bson.Document;
import de.bwaldvogel.mongo.wire.MongoDatabaseHandler;
import de.bwaldvogel.mongo.wire.MongoExceptionHandler;
import de.bwaldvogel.mongo.wire.MongoWireMessageEncoder;
import de.bwaldvogel.mongo.wire.MongoWireProtocolHandler;
import de.bwaldvogel.mongo.wire.MongoWireReplyEncoder;
import de.bwaldvogel.mongo.wire.message.ClientRequest;
import de.bwaldvogel.mongo.wire.message.MongoMessage;
import io.netty.bootstrap.ServerBootstrap;
import io.netty.channel.Channel;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.ChannelOption;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.group.ChannelGroup;
import io.netty.channel.group.DefaultChannelGroup;
import io.netty.channel.nio.NioEventLoopGroup;
import io.netty.channel.socket.SocketChannel;
import io.netty.channel.socket.nio.NioServerSocketChannel;

/**
 * A change stream's getMore that waits for the next write, as MongoDB's does (awaitData): an idle stream
 * answers after {@code maxTimeMS} (1 s if the driver sent none) or as soon as a new oplog entry is readable,
 * instead of at once. Without it a CDC reader polls: at 1,000 trades/s the relay and the stand-in spent
 * about half a core answering empty getMores.
 *
 * The library answers each command on the Netty thread that read it, and that thread serves other
 * connections too (one of them may be the very insert the getMore waits for): so an empty reply is held
 * back, not waited for. The same command runs again on a thread of this class when the oplog moves or the
 * time is up, and its reply is written then. A driver sends one command at a time on a connection, so the
 * held reply reorders nothing.
 */
final class AwaitData {

    private static final Logger log = LoggerFactory.getLogger(AwaitData.class);
    private static final long DEFAULT_AWAIT_MS = 1000; // MongoDB's, for a tailable awaitData cursor

    private final ConcurrentLinkedQueue<Waiter> waiting = new ConcurrentLinkedQueue<>();
    private final ScheduledExecutorService threads = Executors.newScheduledThreadPool(2, r -> {
        Thread thread = new Thread(r, "await-data");
        thread.setDaemon(true);
        return thread;
    });
    private final IndexedOplog oplog;
    private final LongPredicate isChangeStream;

    AwaitData(IndexedOplog oplog, LongPredicate isChangeStream) {
        this.oplog = oplog;
        this.isChangeStream = isChangeStream;
        oplog.onNewEntries(this::wakeAll);
    }

    /** Binds {@code server} with this class answering its commands; shut down with {@code server.shutdown()}. */
    void bind(MongoServer server, MongoBackend backend, SocketAddress address) {
        EventLoopGroup boss = new NioEventLoopGroup(0, (ThreadFactory) r -> new Thread(r, "mongo-server-boss"));
        EventLoopGroup workers = new NioEventLoopGroup(0, (ThreadFactory) r -> new Thread(r, "mongo-server-worker"));
        ChannelGroup clients = new DefaultChannelGroup("mongodb-channels", workers.next());
        Channel channel = new ServerBootstrap()
            .group(boss, workers)
            .channel(NioServerSocketChannel.class)
            .option(ChannelOption.SO_BACKLOG, 100)
            .localAddress(address)
            .childOption(ChannelOption.TCP_NODELAY, Boolean.TRUE)
            .childHandler(new ChannelInitializer<SocketChannel>() {
                @Override
                public void initChannel(SocketChannel ch) {
                    ch.pipeline().addLast(new MongoWireReplyEncoder());
                    ch.pipeline().addLast(new MongoWireMessageEncoder());
                    ch.pipeline().addLast(new MongoWireProtocolHandler());
                    ch.pipeline().addLast(new Handler(backend, clients));
                    ch.pipeline().addLast(new MongoExceptionHandler());
                }
            })
            .bind().syncUninterruptibly().channel();
        // The server's own fields, so that its shutdown and toString() cover what was bound here.
        set(server, "bossGroup", boss);
        set(server, "workerGroup", workers);
        set(server, "channelGroup", clients);
        set(server, "channel", channel);
    }

    private void wakeAll() {
        Waiter waiter;
        while ((waiter = waiting.poll()) != null) {
            Waiter woken = waiter;
            threads.execute(() -> woken.answer(false));
        }
    }

    private final class Handler extends MongoDatabaseHandler {
        private final Method handleMessage;

        Handler(MongoBackend backend, ChannelGroup clients) {
            super(backend, clients);
            handleMessage = Reflection.method(MongoDatabaseHandler.class, "handleMessage", MongoMessage.class);
        }

        @Override
        protected void channelRead0(ChannelHandlerContext ctx, ClientRequest request) {
            if (!(request instanceof MongoMessage) || !isAwaitable(((MongoMessage) request).getDocument())) {
                super.channelRead0(ctx, request);
                return;
            }
            Document command = ((MongoMessage) request).getDocument();
            Object maxTime = command.get("maxTimeMS");
            long awaitMs = maxTime instanceof Number ? ((Number) maxTime).longValue() : DEFAULT_AWAIT_MS;
            new Waiter(this, ctx.channel(), (MongoMessage) request, System.nanoTime() + awaitMs * 1_000_000)
                .answer(false);
        }

        private boolean isAwaitable(Document command) {
            Object cursorId = command.get("getMore");
            return cursorId instanceof Number && isChangeStream.test(((Number) cursorId).longValue());
        }

        MongoMessage handle(MongoMessage request) {
            return (MongoMessage) Reflection.invoke(handleMessage, this, request);
        }
    }

    /** One held getMore: run again until it has events, its cursor is gone, or its time is up. */
    private final class Waiter {
        private final Handler handler;
        private final Channel channel;
        private final MongoMessage request;
        private final long deadline;

        Waiter(Handler handler, Channel channel, MongoMessage request, long deadline) {
            this.handler = handler;
            this.channel = channel;
            this.request = request;
            this.deadline = deadline;
        }

        void answer(boolean lastTime) {
            long before = oplog.endKey(); // an entry readable after this is one the command may not have seen
            MongoMessage reply = handler.handle(request);
            long left = deadline - System.nanoTime();
            if (lastTime || left <= 0 || !channel.isActive() || !isEmptyBatch(reply.getDocument())) {
                channel.writeAndFlush(reply);
                return;
            }
            waiting.add(this);
            if (oplog.endKey() != before) { // moved while the command ran: it may have missed the wake-up
                wakeAll();
            }
            threads.schedule(() -> {
                if (waiting.remove(this)) {
                    answer(true);
                }
            }, left, TimeUnit.NANOSECONDS);
        }
    }

    private static boolean isEmptyBatch(Document reply) {
        Object cursor = reply.get("cursor");
        if (!(cursor instanceof Document)) {
            return false; // an error: answered at once
        }
        Object batch = ((Document) cursor).get("nextBatch");
        Object id = ((Document) cursor).get("id");
        return batch instanceof List && ((List<?>) batch).isEmpty() && id instanceof Number
            && ((Number) id).longValue() != 0;
    }

    private static void set(Object target, String name, Object value) {
        try {
            Field field = MongoServer.class.getDeclaredField(name);
            field.setAccessible(true);
            field.set(target, value);
        } catch (ReflectiveOperationException e) {
            log.warn("cannot set MongoServer.{}: its shutdown may leave threads behind", name, e);
        }
    }
}
