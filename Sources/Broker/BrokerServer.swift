import CNetShim
import EventLoop
import Glibc
import LuaBridge
import WebSocketProtocol

/// The broker: accepts clients, keeps the client and room tables, carries out
/// the script's deliveries and reloads the script. Everything runs on one
/// event-loop thread, Lua handlers included: while a handler runs, I/O waits
/// (the handler time budget bounds how long), and no state needs a lock.
public final class BrokerServer {
    public let configuration: BrokerConfiguration
    public let logger: Logger
    let loop: EventLoop
    /// The script; replaced in place by reloads, never while a handler runs.
    private(set) var script: ScriptHost!
    private var listener: TCPListener?
    private var listenerHandler: ListenerHandler?
    private var signals: SignalSource?
    private var watcher: DirectoryWatcher?
    private var pendingReload: TimerID?
    private let scriptDelegate = ScriptDelegate()

    /// All sockets, upgraded or not, for the periodic timer sweep.
    private var connections: [ObjectIdentifier: Connection] = [:]
    /// Accepted clients by id, for private delivery.
    private var clients: [String: Connection] = [:]
    /// Rooms by id; a room exists while it has members.
    private var rooms: [String: Room] = [:]
    /// Connections with bytes queued during this loop iteration.
    private var dirty: [Connection] = []
    /// The other of two alternating flush lists, so a flush allocates nothing.
    private var spareDirty: [Connection] = []
    /// Connections that outgrew their send queue during a handler; closed after it returns.
    private var overflowing: [Connection] = []
    private var shuttingDown = false
    /// Sockets past the connection limit, being told 503; they do not count against it.
    private var refusingCount = 0
    /// The connection limit in force: configured, or derived from the open-file limit in `start()`.
    public private(set) var connectionLimit = Int.max
    /// At most this many refusals in flight; beyond it a socket is closed at once,
    /// so a flood cannot spend the descriptors the limit keeps in reserve.
    private var refusingLimit = 0
    private var lastRefusalLog = -Double.infinity

    /// One read buffer for every socket: idle connections then cost no buffer at all.
    let readBuffer: UnsafeMutableRawBufferPointer
    private let ioVectors: UnsafeMutablePointer<iovec>
    private static let maxIOVectors = 64

    /// The port actually listened on, once `start()` returned.
    public var port: Int { listener?.port ?? configuration.port }

    /// Loads the script (throwing its error if it cannot) and prepares the loop; nothing listens yet.
    public init(scriptPath: String, configuration: BrokerConfiguration, logger: Logger) throws {
        self.configuration = configuration
        self.logger = logger
        loop = try EventLoop()
        readBuffer = .allocate(byteCount: 64 * 1024, alignment: 16)
        ioVectors = .allocate(capacity: Self.maxIOVectors)
        script = try ScriptHost(scriptPath: scriptPath, limits: configuration.scriptLimits, delegate: scriptDelegate)
        scriptDelegate.broker = self
        logger.info("script loaded: \(scriptPath)")
    }

    deinit {
        readBuffer.deallocate()
        ioVectors.deallocate()
    }

    /// Binds the port and installs the script watcher, and with `handlingSignals`
    /// the signal handling (SIGHUP reloads, SIGTERM and SIGINT shut down). An
    /// embedder that owns signals (a test) passes false and calls `requestShutdown()`.
    public func start(handlingSignals: Bool = true) throws {
        ignoreSIGPIPE()
        let limit = raiseFileDescriptorLimit()
        // The reserve covers the listener, epoll, signal, watch and script files,
        // and the sockets being refused with 503.
        let reserve = min(512, limit / 4)
        let automatic = max(1, limit - reserve)
        connectionLimit = configuration.maxConnections ?? automatic
        refusingLimit = max(8, reserve / 2)
        if connectionLimit > automatic {
            logger.warn("--max-connections \(connectionLimit) is above what the open file limit (\(limit)) allows; accepts may fail with EMFILE")
        }
        let listener = try TCPListener(host: configuration.host, port: configuration.port)
        self.listener = listener
        let handler = ListenerHandler(broker: self, listener: listener)
        listenerHandler = handler
        try loop.register(fd: listener.fd, interest: .readable, handler: handler)
        if handlingSignals { try installSignalHandling() }
        if configuration.watchScript {
            watcher = try DirectoryWatcher(directory: script.scriptDirectory, suffix: ".lua", loop: loop) { [unowned self] in
                scheduleReload()
            }
        }
        loop.afterIteration = { [unowned self] in endOfIteration() }
        scheduleSweep()
        let host = configuration.host.contains(":") ? "[\(configuration.host)]" : configuration.host
        logger.info("listening on ws://\(host):\(listener.port)/ (max connections \(connectionLimit), open file limit \(limit))")
    }

    private func installSignalHandling() throws {
        signals = try SignalSource(signals: [SIGHUP, SIGTERM, SIGINT], loop: loop) { [unowned self] signal in
            switch signal {
            case SIGHUP:
                logger.info("SIGHUP: reloading \(script.scriptPath)")
                reloadScript()
            default:
                logger.info("\(signal == SIGINT ? "SIGINT" : "SIGTERM"): shutting down")
                shutdown()
            }
        }
    }

    /// Asks the loop to shut down; safe from any thread.
    public func requestShutdown() {
        loop.execute { [unowned self] in shutdown() }
    }

    /// Serves until shutdown completes.
    public func run() { loop.run() }

    // MARK: client and room tables

    func accept(_ socket: AcceptedSocket) {
        let admitted = connections.count - refusingCount < connectionLimit
        guard !shuttingDown, admitted || refusingCount < refusingLimit else {
            _ = lsnet_close(socket.fd)
            return
        }
        let connection = Connection(socket: socket, broker: self)
        do {
            try loop.register(fd: socket.fd, interest: .readable, handler: connection)
        } catch {
            logger.error("cannot watch a new connection: \(error)")
            _ = lsnet_close(socket.fd)
            return
        }
        connections[ObjectIdentifier(connection)] = connection
        if !admitted {
            refusingCount += 1
            connection.refuse(status: 503, why: "the broker is at its limit of \(connectionLimit) connections")
            let now = loop.iterationTime
            if now - lastRefusalLog > 1 {
                lastRefusalLog = now
                logger.warn("at the connection limit (\(connectionLimit), --max-connections): refusing new clients with 503")
            }
        }
    }

    func register(_ connection: Connection, context: ScriptContext) {
        clients[context.clientID] = connection
        let room: Room
        if let existing = rooms[context.roomID] {
            room = existing
        } else {
            room = Room()
            rooms[context.roomID] = room
        }
        connection.roomSlot = room.members.count
        room.members.append(connection)
        connection.isRegistered = true
    }

    /// Takes the client out of the tables and runs `on_disconnect`: exactly once per accepted client.
    func unregister(_ connection: Connection) {
        guard connection.isRegistered, let context = connection.context else { return }
        connection.isRegistered = false
        clients[context.clientID] = nil
        if let room = rooms[context.roomID] {
            let slot = connection.roomSlot
            let last = room.members.removeLast()
            if last !== connection {
                room.members[slot] = last
                last.roomSlot = slot
            }
            if room.members.isEmpty { rooms[context.roomID] = nil }
        }
        connection.roomSlot = -1
        script.disconnect(context)
    }

    func forget(_ connection: Connection) {
        connections[ObjectIdentifier(connection)] = nil
        if connection.isRefusal { refusingCount -= 1 }
    }

    /// Stops accepting for a moment: out of descriptors, a level-triggered
    /// listener would otherwise wake the loop in a busy spin until one frees.
    func pauseAccepting(for seconds: Double) {
        guard let listener else { return }
        loop.modify(fd: listener.fd, interest: [])
        loop.schedule(after: seconds) { [unowned self] in
            guard !shuttingDown, let listener = self.listener else { return }
            loop.modify(fd: listener.fd, interest: .readable)
        }
    }

    func markDirty(_ connection: Connection) { dirty.append(connection) }

    func overflowed(_ connection: Connection) { overflowing.append(connection) }

    /// Lends the shared iovec array filled from a connection's queue.
    func withIOVectors(for queue: [OutboundFrame], firstOffset: Int, _ body: (UnsafePointer<iovec>, Int) -> Int) -> Int {
        let count = min(queue.count, Self.maxIOVectors)
        // The frames stay alive in `queue` for the whole call, so their element pointers stay valid.
        for index in 0..<count {
            let frame = queue[index]
            let offset = index == 0 ? firstOffset : 0
            let base = frame.withUnsafeMutablePointerToElements { UnsafeMutableRawPointer($0) }
            ioVectors[index] = iovec(iov_base: base + offset, iov_len: frame.count - offset)
        }
        return withExtendedLifetime(queue) { body(ioVectors, count) }
    }

    // MARK: deliveries (called by the script)

    func sendToClient(_ clientID: String, _ payload: UnsafeRawBufferPointer, binary: Bool) throws(ScriptSendError) -> Int {
        if !binary { try requireText(payload) }
        guard let connection = clients[clientID], connection.isOpenForMessages else { return 0 }
        connection.enqueue(scriptFrame(payload, binary: binary))
        return 1
    }

    func sendToRoom(_ roomID: String, _ payload: UnsafeRawBufferPointer, binary: Bool) throws(ScriptSendError) -> Int {
        if !binary { try requireText(payload) }
        guard let room = rooms[roomID] else { return 0 }
        return deliver(scriptFrame(payload, binary: binary), to: room.members)
    }

    func broadcast(_ payload: UnsafeRawBufferPointer, binary: Bool) throws(ScriptSendError) -> Int {
        if !binary { try requireText(payload) }
        guard !rooms.isEmpty else { return 0 }
        let frame = scriptFrame(payload, binary: binary)
        var count = 0
        for room in rooms.values { count += deliver(frame, to: room.members) }
        return count
    }

    /// A text frame that is not UTF-8 would make every recipient fail the
    /// connection (1007), so the script hears about it instead.
    private func requireText(_ payload: UnsafeRawBufferPointer) throws(ScriptSendError) {
        guard UTF8Validator.isValid(payload) else {
            throw ScriptSendError("message is not valid UTF-8 text; send bytes with { binary = true }")
        }
    }

    /// The frame of a script's message, encoded once for all its recipients.
    private func scriptFrame(_ payload: UnsafeRawBufferPointer, binary: Bool) -> OutboundFrame {
        .encode(binary ? .binary : .text, payload: payload)
    }

    private func deliver(_ frame: OutboundFrame, to members: [Connection]) -> Int {
        var count = 0
        for member in members where member.isOpenForMessages {
            member.enqueue(frame)
            count += 1
        }
        return count
    }

    // MARK: the loop's housekeeping

    private func endOfIteration() {
        if !overflowing.isEmpty {
            let slow = overflowing
            overflowing.removeAll()
            for connection in slow where connection.isRegistered {
                logger.warn("client \(connection.context?.clientID ?? "-") is not reading: \(connection.queuedBytes) bytes queued; closing it with 1008")
                connection.closeAsTooSlow()
            }
        }
        flushPendingWrites()
        if shuttingDown && connections.isEmpty { loop.stop() }
    }

    /// Writes every queue that grew since the last flush. Not during a
    /// handler: the connections it sends to may be dropped by a failed write,
    /// and that must not re-enter Lua.
    func flushPendingWrites() {
        guard !dirty.isEmpty else { return }
        // Swapped out: a failed write drops its peer and runs on_disconnect,
        // which may queue frames for others while this list is walked.
        var batch = dirty
        dirty = spareDirty
        for connection in batch {
            connection.isDirty = false
            connection.flush()
        }
        batch.removeAll(keepingCapacity: true)
        spareDirty = batch
    }

    private func scheduleSweep() {
        loop.schedule(after: 1.0) { [unowned self] in
            let now = monotonicSeconds()
            for connection in Array(connections.values) { connection.checkTimers(now: now) }
            // Also while shutting down: the close and drain deadlines still apply.
            scheduleSweep()
        }
    }

    // MARK: reload and shutdown

    private func scheduleReload() {
        if let pending = pendingReload { loop.cancel(pending) }
        pendingReload = loop.schedule(after: configuration.reloadDebounce) { [unowned self] in
            pendingReload = nil
            reloadScript()
        }
    }

    /// Builds a fresh Lua state from the script and swaps it in; on failure the old one keeps serving.
    public func reloadScript() {
        if let error = script.reload() {
            logger.error("reload failed, keeping the previous script: \(error)")
        } else {
            logger.info("script loaded: \(script.scriptPath)")
        }
    }

    /// Stops accepting, closes every client with 1001 (running `on_disconnect`
    /// for each), lets queued bytes drain, and stops the loop when all sockets
    /// are gone or `shutdownTimeout` has passed.
    public func shutdown() {
        guard !shuttingDown else { return }
        shuttingDown = true
        if let listener {
            loop.unregister(fd: listener.fd)
            listener.close()
            self.listener = nil
        }
        for connection in Array(connections.values) {
            if connection.phase == .webSocket {
                connection.startClose(code: 1001, reason: "server shutting down")
            } else if connection.phase == .handshake {
                connection.destroy()
            }
        }
        loop.schedule(after: configuration.shutdownTimeout) { [unowned self] in
            if !connections.isEmpty {
                logger.warn("\(connections.count) clients did not finish closing in \(configuration.shutdownTimeout) s; dropping them")
            }
            for connection in Array(connections.values) { connection.destroy() }
            loop.stop()
        }
    }
}

/// The members of one room, in an array: fan-out walks it without hashing.
final class Room {
    var members: [Connection] = []
}

/// Accepts every pending connection when the listening socket is readable.
private final class ListenerHandler: IOHandler {
    unowned let broker: BrokerServer
    let listener: TCPListener
    private var lastErrorLog = 0.0

    init(broker: BrokerServer, listener: TCPListener) {
        self.broker = broker
        self.listener = listener
    }

    func handleReadiness(_ readiness: IOReadiness) {
        // Bounded, so a connection storm cannot starve clients already connected.
        for _ in 0..<128 {
            do {
                guard let socket = try listener.accept() else { return }
                broker.accept(socket)
            } catch {
                // Say so at most once a second instead of once per attempt.
                let now = monotonicSeconds()
                if now - lastErrorLog > 1 {
                    lastErrorLog = now
                    broker.logger.error("cannot accept: \(error)")
                }
                if let error = error as? SystemError, [EMFILE, ENFILE, ENOBUFS, ENOMEM].contains(error.errno) {
                    broker.pauseAccepting(for: 0.1)
                }
                return
            }
        }
    }
}

/// Adapts the script's requests to the broker; weak so the two do not keep each other alive.
private final class ScriptDelegate: ScriptHostDelegate {
    weak var broker: BrokerServer?

    func scriptSendToRoom(_ roomID: String, _ payload: UnsafeRawBufferPointer, binary: Bool) throws(ScriptSendError) -> Int {
        try broker?.sendToRoom(roomID, payload, binary: binary) ?? 0
    }

    func scriptSendToClient(_ clientID: String, _ payload: UnsafeRawBufferPointer, binary: Bool) throws(ScriptSendError) -> Int {
        try broker?.sendToClient(clientID, payload, binary: binary) ?? 0
    }

    func scriptBroadcast(_ payload: UnsafeRawBufferPointer, binary: Bool) throws(ScriptSendError) -> Int {
        try broker?.broadcast(payload, binary: binary) ?? 0
    }

    func scriptLog(_ level: ScriptLogLevel, _ message: String) {
        guard let logger = broker?.logger else {
            // Before the broker exists (the first load), still say it.
            Logger.writeToStandardError("script: \(Logger.singleLine(message))\n")
            return
        }
        switch level {
        case .info: logger.info("script: \(message)")
        case .warn: logger.warn("script: \(message)")
        case .error: logger.error("script: \(message)")
        }
    }
}
