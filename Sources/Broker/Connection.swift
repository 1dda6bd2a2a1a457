import CNetShim
import EventLoop
import Glibc
import LuaBridge
import WebSocketProtocol

/// One client socket, from the first byte of its upgrade request to the
/// close. It turns readiness into protocol input, and the protocol's events
/// and actions into script calls and queued bytes; it holds no buffer of its
/// own while idle (reads go through the broker's shared buffer).
final class Connection: IOHandler {
    enum Phase {
        /// Reading the HTTP upgrade request.
        case handshake
        /// Upgraded; frames flow (our close may have been sent, see `closeHandshake`).
        case webSocket
        /// We are done sending; the queue drains, then we discard input until the peer hangs up.
        case draining
        /// The socket is closed.
        case closed
    }

    unowned let broker: BrokerServer
    let fd: Int32
    let remoteAddress: String
    let remotePort: Int
    private(set) var phase = Phase.handshake
    /// Set once the script accepted it; nil for connections never accepted.
    private(set) var context: ScriptContext?
    /// In the broker's client and room tables, so `on_disconnect` is still owed.
    var isRegistered = false
    /// Accepted past the connection limit only to be told so; not counted against it.
    private(set) var isRefusal = false
    /// This connection's slot in its room's member array (for O(1) removal).
    var roomSlot = -1

    private var headParser: HTTPHeadParser?
    private var reader: WebSocketReader
    private var closeHandshake = CloseHandshake()

    private var queue: [OutboundFrame] = []
    private var queueOffset = 0
    private(set) var queuedBytes = 0
    private var waitingForWritable = false
    /// Past the send-queue bound and about to be closed: further frames are dropped.
    private var isOverflowing = false
    /// Listed in the broker's flush list for this loop iteration.
    var isDirty = false
    /// After the queue drains: half-close, then wait for the peer to hang up.
    private var closeWhenFlushed = false

    /// Monotonic seconds of the last byte received.
    private(set) var lastActivity: Double
    private var pingSent = false
    /// When the current phase gives up: the handshake timeout, or the close/drain timeout.
    private var deadline: Double

    init(socket: AcceptedSocket, broker: BrokerServer) {
        self.broker = broker
        fd = socket.fd
        remoteAddress = socket.address
        remotePort = socket.port
        headParser = HTTPHeadParser(maxHeadSize: broker.configuration.maxHeadSize)
        reader = WebSocketReader(maxMessageSize: broker.configuration.maxMessageSize)
        let now = monotonicSeconds()
        lastActivity = now
        deadline = now + broker.configuration.handshakeTimeout
    }

    var isOpenForMessages: Bool { phase == .webSocket && closeHandshake.state == .open }

    // MARK: readiness

    func handleReadiness(_ readiness: IOReadiness) {
        if readiness.isWritable && phase != .closed { flush() }
        if readiness.isReadable && phase != .closed { readAvailable() }
    }

    private func readAvailable() {
        let buffer = broker.readBuffer
        let count = lsnet_read(fd, buffer.baseAddress, buffer.count)
        if count > 0 {
            lastActivity = broker.loop.iterationTime
            pingSent = false
            received(UnsafeMutableRawBufferPointer(rebasing: buffer[0..<count]))
            // Send what this input produced now rather than after the whole
            // epoll batch: peers waiting on a reply get it while the loop goes
            // on with the next socket, and the frames one handler queued for a
            // peer still leave together.
            broker.flushPendingWrites()
        } else if count == 0 {
            peerHungUp(reason: "the client closed the connection")
        } else if -count != EAGAIN && -count != EINTR {
            peerHungUp(reason: "read failed: \(SystemError("read", errno: Int32(-count)))")
        }
    }

    private func received(_ bytes: UnsafeMutableRawBufferPointer) {
        switch phase {
        case .handshake:
            guard var parser = headParser else { return }
            let result = parser.feed(UnsafeRawBufferPointer(bytes))
            headParser = parser
            switch result {
            case .needMoreData:
                return
            case .failed(let error):
                headParser = nil
                rejectBeforeUpgrade(Handshake.errorResponse(for: error), status: error.httpStatus, why: error.reason)
            case .complete(let head, let consumed):
                headParser = nil
                upgrade(head)
                if consumed < bytes.count && phase == .webSocket {
                    received(UnsafeMutableRawBufferPointer(rebasing: bytes[consumed...]))
                }
            }
        case .webSocket:
            let result = reader.receive(bytes) { event in self.handle(event) }
            if case .failed(let error) = result, phase == .webSocket { fail(error) }
        case .draining, .closed:
            return
        }
    }

    // MARK: the upgrade

    private func upgrade(_ head: HTTPRequestHead) {
        let key: String
        switch Handshake.validate(head) {
        case .failure(let error):
            rejectBeforeUpgrade(Handshake.errorResponse(for: error, method: head.method), status: error.httpStatus, why: error.reason)
            return
        case .success(let value):
            key = value
        }
        let target = RequestTarget(head.target)
        var roomID = target.path
        if roomID.hasPrefix("/") { roomID.removeFirst() }
        let context = ScriptContext(clientID: ClientID.make(), roomID: roomID)
        let request = ConnectionRequest(
            headers: head.headers, url: head.target, path: target.path, query: target.query,
            remoteAddress: remoteAddress, remotePort: remotePort)
        let decision = broker.script.connectionRequest(request, context: context)
        switch decision {
        case .accept:
            enqueue(.raw(Handshake.switchingProtocolsResponse(acceptValue: Handshake.acceptValue(forKey: key))))
            phase = .webSocket
            self.context = context
            broker.register(self, context: context)
            broker.logger.debug("client \(context.clientID) from \(remoteAddress):\(remotePort) joined room \"\(context.roomID)\"")
            broker.script.newConnection(context)
        case .rejectHTTP(let status):
            rejectBeforeUpgrade(Handshake.errorResponse(status: status), status: status, why: "rejected by the script")
        case .rejectClose(let code, let reason):
            // Browsers cannot read an HTTP status, so the reason travels in a close frame after a real upgrade.
            enqueue(.raw(Handshake.switchingProtocolsResponse(acceptValue: Handshake.acceptValue(forKey: key))))
            phase = .webSocket
            broker.logger.debug("client from \(remoteAddress):\(remotePort) rejected with close \(code)")
            startClose(code: code, reason: reason)
        }
    }

    /// Answers with `status` without reading the request (the broker is full),
    /// then drains whatever the client sends until it hangs up.
    func refuse(status: Int, why: String) {
        isRefusal = true
        headParser = nil
        rejectBeforeUpgrade(Handshake.errorResponse(status: status), status: status, why: why)
    }

    private func rejectBeforeUpgrade(_ response: [UInt8], status: Int, why: String) {
        broker.logger.debug("upgrade from \(remoteAddress):\(remotePort) refused with \(status): \(why)")
        enqueue(.raw(response))
        finishSending()
    }

    // MARK: protocol events

    private func handle(_ event: InboundEvent) {
        guard phase == .webSocket else { return }
        switch event {
        case .text(let payload):
            deliver(payload, binary: false)
        case .binary(let payload):
            deliver(payload, binary: true)
        case .ping(let payload):
            if closeHandshake.receivedPing() == .sendPong { enqueue(.encode(.pong, payload: payload)) }
        case .pong:
            break
        case .close(let code, _):
            perform(closeHandshake.receivedClose(code: code))
        }
    }

    private func deliver(_ payload: UnsafeRawBufferPointer, binary: Bool) {
        guard closeHandshake.receivedMessage() == .deliver, let context, isRegistered else { return }
        broker.script.message(payload, binary: binary, context: context)
    }

    /// Carries out what the close handshake decided.
    private func perform(_ action: CloseHandshake.Action) {
        switch action {
        case .sendClose(let code, let reason, let thenCloseTransport):
            let payload = FrameEncoder.closePayload(code: code, reason: reason)
            enqueue(payload.withUnsafeBytes { OutboundFrame.encode(.close, payload: $0) })
            broker.unregister(self)
            if thenCloseTransport {
                finishSending()
            } else {
                deadline = monotonicSeconds() + broker.configuration.closeTimeout
            }
        case .closeTransport:
            broker.unregister(self)
            finishSending()
        case .sendPong, .deliver, .ignore:
            break
        }
    }

    /// Starts a close we initiate (shutdown, idle, rejection): on_disconnect runs now,
    /// the socket stays until the peer answers or `closeTimeout` passes.
    func startClose(code: UInt16, reason: String) {
        guard phase == .webSocket else { return }
        perform(closeHandshake.close(code: code, reason: reason))
    }

    private func fail(_ error: ProtocolError) {
        broker.logger.debug("client \(context?.clientID ?? "-") violated the protocol: \(error.reason) (close \(error.closeCode))")
        tellScriptWhyItGoes("client closed for a protocol error: \(error.reason) (close code \(error.closeCode))")
        perform(closeHandshake.failed(error))
    }

    // MARK: sending

    /// Queues bytes; they leave at the end of this loop iteration together
    /// with whatever else was queued for this peer meanwhile.
    func enqueue(_ frame: OutboundFrame) {
        guard phase == .handshake || phase == .webSocket, !isOverflowing else { return }
        // Judged on what was already waiting, so one message larger than the
        // limit still goes to a client that keeps up.
        if queuedBytes > broker.configuration.maxSendQueueBytes && isRegistered {
            // Dropped from here on, so one handler looping over sends cannot grow the queue without bound.
            isOverflowing = true
            broker.overflowed(self)
            return
        }
        queue.append(frame)
        queuedBytes += frame.count
        scheduleFlush()
    }

    /// Puts this connection on the broker's flush list once per turn.
    private func scheduleFlush() {
        guard !isDirty else { return }
        isDirty = true
        broker.markDirty(self)
    }

    /// Writes as much of the queue as the socket takes, in one writev for up to 64 frames.
    func flush() {
        while !queue.isEmpty {
            let written: Int
            if queue.count == 1 {
                // The common case (one reply, one fan-out frame): send() skips writev's iovec import.
                let frame = queue[0]
                written = frame.withUnsafeMutablePointerToElements { lsnet_write(fd, $0 + queueOffset, frame.count - queueOffset) }
            } else {
                written = broker.withIOVectors(for: queue, firstOffset: queueOffset) { vectors, count in
                    lsnet_writev(fd, vectors, Int32(count))
                }
            }
            if written < 0 {
                if -written == EAGAIN || -written == EINTR {
                    if !waitingForWritable {
                        waitingForWritable = true
                        broker.loop.modify(fd: fd, interest: [.readable, .writable])
                    }
                    return
                }
                peerHungUp(reason: "write failed: \(SystemError("write", errno: Int32(-written)))")
                return
            }
            consume(written)
        }
        if waitingForWritable {
            waitingForWritable = false
            broker.loop.modify(fd: fd, interest: .readable)
        }
        if closeWhenFlushed && phase != .closed { halfClose() }
    }

    private func consume(_ written: Int) {
        var remaining = written
        queuedBytes -= written
        var dropped = 0
        while remaining > 0 && dropped < queue.count {
            let available = queue[dropped].count - queueOffset
            if remaining >= available {
                remaining -= available
                queueOffset = 0
                dropped += 1
            } else {
                queueOffset += remaining
                remaining = 0
            }
        }
        if dropped == queue.count {
            // Keep the array's storage only if it is small: idle connections must stay cheap.
            queue.removeAll(keepingCapacity: queue.capacity <= 16)
        } else if dropped > 0 {
            queue.removeFirst(dropped)
        }
    }

    /// Nothing more will be queued: flush, then half-close.
    private func finishSending() {
        closeWhenFlushed = true
        scheduleFlush()
    }

    /// Our side is done: the peer sees end of stream, and we read until it hangs
    /// up too, so it receives everything we sent instead of a reset.
    private func halfClose() {
        phase = .draining
        _ = lsnet_shutdown_write(fd)
        deadline = monotonicSeconds() + broker.configuration.closeTimeout
    }

    // MARK: endings

    /// The socket is gone (end of stream, reset, write error): release everything now.
    func peerHungUp(reason: String) {
        if isRegistered {
            broker.logger.debug("client \(context?.clientID ?? "-") disconnected: \(reason)")
        }
        destroy()
    }

    /// Closes the socket and forgets the connection. `on_disconnect` runs here if still owed.
    func destroy() {
        guard phase != .closed else { return }
        phase = .closed
        broker.unregister(self)
        broker.loop.unregister(fd: fd)
        _ = lsnet_close(fd)
        queue.removeAll()
        queuedBytes = 0
        broker.forget(self)
    }

    /// The client stopped reading and its queue passed `maxSendQueueBytes`.
    /// The frames it has not started to receive are dropped, so memory stays
    /// bounded, and it is closed with 1008 (policy violation) rather than 1013
    /// (try again later): the broker is not overloaded, this client is too slow,
    /// and it would be again. The close frame reaches it only if it reads again
    /// within `closeTimeout`; otherwise the socket is dropped then.
    func closeAsTooSlow() {
        tellScriptWhyItGoes("send queue overflow: the client is not reading fast enough (close code 1008)")
        // A frame partly written must be finished, or the stream is corrupt.
        let keep = queueOffset > 0 ? 1 : 0
        if queue.count > keep {
            queue.removeSubrange(keep...)
            queuedBytes = keep == 1 ? queue[0].count - queueOffset : 0
        }
        isOverflowing = false
        startClose(code: 1008, reason: "send queue overflow: not reading fast enough")
    }

    /// Reports to `on_error` why the broker is dropping an accepted client,
    /// before its `on_disconnect` runs.
    func tellScriptWhyItGoes(_ why: String) {
        guard isRegistered, let context else { return }
        broker.script.reportError(why, context: context)
    }

    /// Called about once a second: pings quiet clients and enforces the deadlines.
    func checkTimers(now: Double) {
        switch phase {
        case .handshake:
            if now > deadline {
                broker.logger.debug("upgrade from \(remoteAddress):\(remotePort) timed out")
                rejectBeforeUpgrade(Handshake.errorResponse(status: 408), status: 408, why: "handshake timeout")
            }
        case .webSocket:
            if closeHandshake.state != .open {
                if now > deadline { destroy() }
                return
            }
            let quiet = now - lastActivity
            // Only a client that left our ping unanswered for a whole sweep is closed. Without
            // `pingSent` here, a pong landing just after a sweep let the next-but-one sweep see
            // `quiet > idleTimeout` with no ping outstanding when the timeout is short (2 s):
            // a live client was closed. Such a client is pinged now instead.
            if quiet > broker.configuration.idleTimeout && pingSent {
                tellScriptWhyItGoes("client closed after \(Int(quiet)) s without a message or a pong (idle timeout)")
                startClose(code: 1001, reason: "idle timeout")
            } else if quiet > broker.configuration.idleTimeout / 2 && !pingSent {
                pingSent = true
                enqueue(.encode(.ping, payload: UnsafeRawBufferPointer(start: nil, count: 0)))
            }
        case .draining:
            if now > deadline { destroy() }
        case .closed:
            break
        }
    }
}
