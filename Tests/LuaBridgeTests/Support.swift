import Foundation
@testable import LuaBridge

/// Records everything the script does through the delegate.
final class Recorder: ScriptHostDelegate {
    struct Sent: Equatable {
        var kind: String
        var target: String
        var payload: String
        var binary: Bool
    }
    var sent: [Sent] = []
    var logs: [(level: ScriptLogLevel, message: String)] = []
    var sendResult = 7

    func scriptSendToRoom(_ roomID: String, _ payload: UnsafeRawBufferPointer, binary: Bool) -> Int {
        sent.append(Sent(kind: "room", target: roomID, payload: String(decoding: payload, as: UTF8.self), binary: binary))
        return sendResult
    }
    func scriptSendToClient(_ clientID: String, _ payload: UnsafeRawBufferPointer, binary: Bool) -> Int {
        sent.append(Sent(kind: "client", target: clientID, payload: String(decoding: payload, as: UTF8.self), binary: binary))
        return sendResult
    }
    func scriptBroadcast(_ payload: UnsafeRawBufferPointer, binary: Bool) -> Int {
        sent.append(Sent(kind: "broadcast", target: "", payload: String(decoding: payload, as: UTF8.self), binary: binary))
        return sendResult
    }
    func scriptLog(_ level: ScriptLogLevel, _ message: String) {
        logs.append((level, message))
    }

    /// Payloads the script sent privately to `target`.
    func reports(_ target: String) -> [String] {
        sent.filter { $0.kind == "client" && $0.target == target }.map(\.payload)
    }
    func errors() -> [String] { logs.filter { $0.level == .error }.map(\.message) }
    func warnings() -> [String] { logs.filter { $0.level == .warn }.map(\.message) }
}

/// A fresh folder in the temporary directory holding the given files.
struct ScriptDir {
    let url: URL
    init(_ files: [String: String] = [:]) {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("luabridge-\(UUID().uuidString)")
        try! FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        for (name, text) in files { write(name, text) }
    }
    func write(_ name: String, _ text: String) {
        let file = url.appendingPathComponent(name)
        try! FileManager.default.createDirectory(at: file.deletingLastPathComponent(), withIntermediateDirectories: true)
        try! text.write(to: file, atomically: true, encoding: .utf8)
    }
    func path(_ name: String = "main.lua") -> String { url.appendingPathComponent(name).path }
}

/// Host on a script written to main.lua; the recorder is kept alive by the caller.
func makeHost(_ script: String, limits: ScriptLimits = .init(), files: [String: String] = [:]) throws -> (ScriptHost, Recorder, ScriptDir) {
    var all = files
    all["main.lua"] = script
    let dir = ScriptDir(all)
    let rec = Recorder()
    let host = try ScriptHost(scriptPath: dir.path(), limits: limits, delegate: rec)
    return (host, rec, dir)
}

func send(_ host: ScriptHost, _ text: String, binary: Bool = false, _ ctx: ScriptContext) {
    var bytes = Array(text.utf8)
    bytes.withUnsafeMutableBytes { host.message(UnsafeRawBufferPointer($0), binary: binary, context: ctx) }
}

/// Decodes a JSON report sent by a script (via strands.json.encode).
func json(_ text: String) -> [String: Any] {
    (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any] ?? [:]
}
