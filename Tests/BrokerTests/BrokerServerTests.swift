import Foundation
import Testing
@testable import Broker

/// Hands the broker to the loop thread.
private final class LoopOwned: @unchecked Sendable {
    let server: BrokerServer
    init(server: BrokerServer) { self.server = server }
}

/// Runs a broker on its own thread with a script, on a free port.
final class RunningBroker {
    let server: BrokerServer
    let directory: URL
    private let thread: Thread
    private let finished = DispatchSemaphore(value: 0)

    init(script: String, configure: (inout BrokerConfiguration) -> Void = { _ in }) throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("broker-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let path = directory.appendingPathComponent("script.lua")
        try script.write(to: path, atomically: true, encoding: .utf8)
        var configuration = BrokerConfiguration()
        configuration.port = 0
        configuration.watchScript = false
        configure(&configuration)
        server = try BrokerServer(scriptPath: path.path, configuration: configuration, logger: Logger(level: .error))
        try server.start(handlingSignals: false)
        // The loop thread owns the broker from here on; this thread only calls
        // requestShutdown(), the one method that is safe from any thread.
        let owned = LoopOwned(server: server)
        let finished = self.finished
        thread = Thread {
            owned.server.run()
            finished.signal()
        }
        thread.start()
    }

    var port: Int { server.port }

    /// Shuts the broker down and waits for its loop to return.
    func stop() -> Bool {
        server.requestShutdown()
        let stopped = finished.wait(timeout: .now() + 10) == .success
        try? FileManager.default.removeItem(at: directory)
        return stopped
    }
}

@Suite("BrokerServer", .serialized)
struct BrokerServerTests {
    static let echo = """
        function on_message(message, context, is_binary)
          strands.send_private_message(context.client_id, message, { binary = is_binary })
        end
        """

    @Test func echoesTextAndBinaryFrames() throws {
        let broker = try RunningBroker(script: Self.echo)
        defer { #expect(broker.stop()) }
        let client = try TestClient(port: broker.port)
        #expect(try client.upgrade(path: "/room") == 101)
        #expect(client.responseHead.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo="))
        try client.sendText("hello")
        #expect(try client.receiveText() == "hello")
        try client.send(TestClient.frame(opcode: 2, payload: [0, 1, 2, 255]))
        let reply = try client.receiveFrame()
        #expect(reply.opcode == 2)
        #expect(reply.payload == [0, 1, 2, 255])
    }

    @Test func framesSentWithTheUpgradeRequestAreProcessed() throws {
        let broker = try RunningBroker(script: Self.echo)
        defer { #expect(broker.stop()) }
        let client = try TestClient(port: broker.port)
        let eager = TestClient.frame(opcode: 1, payload: Array("early".utf8)) + TestClient.frame(opcode: 1, payload: Array("bird".utf8))
        #expect(try client.upgrade(extra: eager) == 101)
        #expect(try client.receiveText() == "early")
        #expect(try client.receiveText() == "bird")
    }

    @Test func roomDeliveryReachesOnlyThatRoomAndReportsTheCount() throws {
        let broker = try RunningBroker(script: """
            function on_message(message, context)
              local count = strands.send_room_message(context.room_id, message)
              strands.send_private_message(context.client_id, "count=" .. count)
            end
            """)
        defer { #expect(broker.stop()) }
        let alice = try TestClient(port: broker.port)
        let bob = try TestClient(port: broker.port)
        let carol = try TestClient(port: broker.port, timeout: 0.5)
        #expect(try alice.upgrade(path: "/blue") == 101)
        #expect(try bob.upgrade(path: "/blue") == 101)
        #expect(try carol.upgrade(path: "/red") == 101)
        try alice.sendText("hi blue")
        #expect(try alice.receiveText() == "hi blue")
        #expect(try alice.receiveText() == "count=2")
        #expect(try bob.receiveText() == "hi blue")
        #expect(throws: TestClient.Failure.self) { try carol.receiveFrame() }
    }

    @Test func disconnectRunsOnceWhenTheClientDropsTheConnection() throws {
        let broker = try RunningBroker(script: """
            local gone = 0
            function on_disconnect(context)
              gone = gone + 1
              strands.send_room_message("observer", "gone " .. context.room_id .. " " .. gone)
            end
            """)
        defer { #expect(broker.stop()) }
        let observer = try TestClient(port: broker.port)
        #expect(try observer.upgrade(path: "/observer") == 101)
        do {
            let leaving = try TestClient(port: broker.port)
            #expect(try leaving.upgrade(path: "/leaving") == 101)
        }  // deinit closes the socket without a close frame
        #expect(try observer.receiveText() == "gone leaving 1")
    }

    @Test func shutdownClosesClientsWithGoingAway() throws {
        let broker = try RunningBroker(script: Self.echo)
        do {
            let client = try TestClient(port: broker.port)
            #expect(try client.upgrade() == 101)
            broker.server.requestShutdown()
            let frame = try client.receiveFrame()
            #expect(frame.opcode == 8)
            #expect(frame.payload.count >= 2 && (Int(frame.payload[0]) << 8 | Int(frame.payload[1])) == 1001)
            try client.send(TestClient.frame(opcode: 8, payload: frame.payload))
            #expect(client.waitForEndOfStream())
        }  // the client hangs up, as a real one does after the server's end of stream
        #expect(broker.stop())
    }

    @Test func clientsPastTheConnectionLimitGet503UntilAPlaceFrees() throws {
        let broker = try RunningBroker(script: Self.echo) { $0.maxConnections = 2 }
        defer { #expect(broker.stop()) }
        var first: TestClient? = try TestClient(port: broker.port)
        #expect(try first?.upgrade() == 101)
        let second = try TestClient(port: broker.port)
        #expect(try second.upgrade() == 101)
        let third = try TestClient(port: broker.port)
        #expect(try third.upgrade() == 503)
        #expect(third.responseHead.contains("Retry-After: 1"))
        #expect(third.waitForEndOfStream())
        first = nil  // hangs up: its place frees once the broker has seen the end of stream
        var status = 0
        for _ in 0..<100 {
            let next = try TestClient(port: broker.port)
            status = try next.upgrade()
            if status == 101 { break }
            Thread.sleep(forTimeInterval: 0.05)
        }
        #expect(status == 101)
        _ = first
    }

    @Test func aClientThatStopsReadingIsClosedWith1008AndItsBacklogDropped() throws {
        let broker = try RunningBroker(script: """
            local blob = string.rep("y", 65536)
            function on_message(message, context)
              for i = 1, 64 do strands.send_private_message(context.client_id, blob) end
            end
            """) { $0.maxSendQueueBytes = 256 << 10 }
        defer { #expect(broker.stop()) }
        let client = try TestClient(port: broker.port)
        #expect(try client.upgrade() == 101)
        try client.sendText("4 MiB, please")  // far past 256 KiB; the client reads nothing until the broker gives up on it
        Thread.sleep(forTimeInterval: 0.5)
        var dataFrames = 0
        var closeCode = -1
        while closeCode < 0 {
            let frame = try client.receiveFrame()
            if frame.opcode == 8 {
                closeCode = Int(frame.payload[0]) << 8 | Int(frame.payload[1])
            } else {
                #expect(frame.opcode == 1 && frame.payload.count == 65536)
                dataFrames += 1
            }
        }
        #expect(closeCode == 1008)
        #expect(dataFrames < 64)
    }

    @Test func rejectedUpgradeGetsTheScriptsStatus() throws {
        let broker = try RunningBroker(script: "function on_connection_request(r) return false, 401 end")
        defer { #expect(broker.stop()) }
        let client = try TestClient(port: broker.port)
        #expect(try client.upgrade() == 401)
        #expect(client.waitForEndOfStream())
    }

    @Test func invalidUTF8TextSendIsAnErrorForTheScript() throws {
        let broker = try RunningBroker(script: """
            function on_message(message, context)
              local ok, err = pcall(strands.send_private_message, context.client_id, "\\xff\\xfe")
              strands.send_private_message(context.client_id, tostring(ok) .. " " .. tostring(err))
              strands.send_private_message(context.client_id, "\\xff", { binary = true })
            end
            """)
        defer { #expect(broker.stop()) }
        let client = try TestClient(port: broker.port)
        #expect(try client.upgrade() == 101)
        try client.sendText("go")
        let reply = try client.receiveText()
        #expect(reply.hasPrefix("false "))
        #expect(reply.contains("not valid UTF-8"))
        let binary = try client.receiveFrame()
        #expect(binary.opcode == 2 && binary.payload == [0xFF])
    }

    @Test func protocolErrorsAreReportedToOnErrorBeforeOnDisconnect() throws {
        let broker = try RunningBroker(script: """
            function on_error(err, context)
              strands.send_room_message("observer", "error " .. context.room_id .. ": " .. err)
            end
            function on_disconnect(context)
              strands.send_room_message("observer", "gone " .. context.room_id)
            end
            """) { $0.maxMessageSize = 100 }
        defer { #expect(broker.stop()) }
        let observer = try TestClient(port: broker.port)
        #expect(try observer.upgrade(path: "/observer") == 101)
        let offender = try TestClient(port: broker.port)
        #expect(try offender.upgrade(path: "/big") == 101)
        try offender.sendText(String(repeating: "x", count: 101))
        let close = try offender.receiveFrame()
        #expect(close.opcode == 8 && close.payload.count >= 2 && (Int(close.payload[0]) << 8 | Int(close.payload[1])) == 1009)
        let report = try observer.receiveText()
        #expect(report.hasPrefix("error big: "))
        #expect(report.contains("1009"))
        #expect(try observer.receiveText() == "gone big")
    }

    @Test func clientIDsAreLowerCaseVersion4UUIDs() {
        let pattern = #/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/#
        var seen = Set<String>()
        for _ in 0..<1000 {
            let id = ClientID.make()
            #expect(id.wholeMatch(of: pattern) != nil, "\(id)")
            seen.insert(id)
        }
        #expect(seen.count == 1000)
    }
}

@Suite("Logger")
struct LoggerTests {
    @Test func multiLineMessagesBecomeOneLine() {
        let traceback = "x.lua:3: boom\nstack traceback:\n\t[C]: in ?\n\tx.lua:3: in main chunk"
        #expect(Logger.singleLine(traceback) == "x.lua:3: boom | stack traceback: | [C]: in ? | x.lua:3: in main chunk")
        #expect(Logger.singleLine("plain") == "plain")
    }
}
