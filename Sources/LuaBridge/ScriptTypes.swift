/// Values that cross between Lua and Swift: nil, booleans, numbers, strings,
/// tables of these (keys: strings, numbers, booleans). Anything else
/// (functions, userdata, threads, cycles, depth > 64) is an error reported to
/// the script.
///
/// Strings are decoded as UTF-8 (invalid bytes become U+FFFD). Tables read
/// from Lua have their entries in a canonical order: numeric keys ascending,
/// then booleans (false first), then strings (by UTF-8 bytes).
public enum LuaValue: Equatable {
    case `nil`
    case bool(Bool)
    case integer(Int64)
    case number(Double)
    case string(String)
    case table([LuaTableEntry])
}

public struct LuaTableEntry: Equatable {
    public var key: LuaValue
    public var value: LuaValue
    public init(key: LuaValue, value: LuaValue) {
        self.key = key
        self.value = value
    }
}

extension LuaValue {
    /// Looks up a key in a `.table` (linear search); nil for other cases.
    public subscript(key: String) -> LuaValue? {
        guard case .table(let entries) = self else { return nil }
        return entries.first(where: { $0.key == .string(key) })?.value
    }
}

public struct ScriptLimits {
    /// Wall-clock budget of one handler call (and of the script's top level), seconds.
    public var handlerBudget: Double = 1.0
    /// Cap of the Lua heap in bytes, enforced while Lua code runs.
    public var memoryLimit: Int = 64 << 20
    public init(handlerBudget: Double = 1.0, memoryLimit: Int = 64 << 20) {
        self.handlerBudget = handlerBudget
        self.memoryLimit = memoryLimit
    }
}

/// The one error type of the module.
public enum ScriptError: Error, Equatable, CustomStringConvertible {
    /// syntax error / error at top level / handler not a function / file unreadable
    case load(String)
    /// a handler raised; message with traceback
    case runtime(String)
    /// budget exceeded
    case timeout(String)
    case outOfMemory(String)
    /// a value that cannot cross into Swift
    case badValue(String)

    public var message: String {
        switch self {
        case .load(let m), .runtime(let m), .timeout(let m), .outOfMemory(let m), .badValue(let m):
            return m
        }
    }

    public var description: String {
        switch self {
        case .load(let m): return "load error: \(m)"
        case .runtime(let m): return "runtime error: \(m)"
        case .timeout(let m): return "timeout: \(m)"
        case .outOfMemory(let m): return "out of memory: \(m)"
        case .badValue(let m): return "bad value: \(m)"
        }
    }
}

public enum ScriptLogLevel: Equatable {
    case info, warn, error
}

/// Implemented by the broker. Payload pointers are valid only during the
/// call (they point into the Lua string, no copy). The host keeps a strong
/// reference to its delegate.
///
/// A send that the delegate refuses (a text message that is not UTF-8, say)
/// throws `ScriptSendError`; the script sees a Lua error with its message.
public protocol ScriptHostDelegate: AnyObject {
    func scriptSendToRoom(_ roomID: String, _ payload: UnsafeRawBufferPointer, binary: Bool) throws(ScriptSendError) -> Int
    func scriptSendToClient(_ clientID: String, _ payload: UnsafeRawBufferPointer, binary: Bool) throws(ScriptSendError) -> Int
    func scriptBroadcast(_ payload: UnsafeRawBufferPointer, binary: Bool) throws(ScriptSendError) -> Int
    func scriptLog(_ level: ScriptLogLevel, _ message: String)
}

/// Why a delegate refused a send; raised in the script as a Lua error.
public struct ScriptSendError: Error, Equatable {
    public let message: String
    public init(_ message: String) { self.message = message }
}

/// Per-client state, owned by the broker (Swift), survives every reload.
/// Scripts see it as `context` = { client_id, room_id, metadata }.
///
/// The Lua table is cached per runtime generation; changes a handler makes to
/// `context` after on_connection_request are visible to later handlers of the
/// same script instance at most, and are not persisted by the broker (a
/// reload rebuilds the table from roomID/metadata).
public final class ScriptContext {
    public let clientID: String
    public internal(set) var roomID: String
    /// as on_connection_request left it; `.table([])` by default
    public internal(set) var metadata: LuaValue

    /// registry ref of the cached Lua context table, valid in `luaGeneration` only
    var luaRef: Int32 = -2  // LUA_NOREF
    var luaGeneration: UInt64 = 0

    public init(clientID: String, roomID: String) {
        self.clientID = clientID
        self.roomID = roomID
        self.metadata = .table([])
    }
}

/// What the broker needs to know about an upgrade request.
public struct ConnectionRequest {
    /// names already lower-cased, in order
    public var headers: [(name: String, value: String)]
    /// target as sent: "/chat?token=abc"
    public var url: String
    /// "/chat"
    public var path: String
    /// already decoded
    public var query: [(name: String, value: String)]
    /// "127.0.0.1" / "::1", no port
    public var remoteAddress: String
    public var remotePort: Int

    public init(headers: [(name: String, value: String)] = [], url: String = "/", path: String = "/",
                query: [(name: String, value: String)] = [], remoteAddress: String = "", remotePort: Int = 0) {
        self.headers = headers
        self.url = url
        self.path = path
        self.query = query
        self.remoteAddress = remoteAddress
        self.remotePort = remotePort
    }
}

public enum ConnectionDecision: Equatable {
    /// context.roomID / metadata updated from request.context
    case accept
    /// 403 default; 400..599 allowed; script error/timeout -> 500 (fail closed)
    case rejectHTTP(status: Int)
    /// code 4000...4999: upgrade then close. The reason is passed on as the
    /// script gave it (the broker must cut it to 123 bytes for a close frame).
    case rejectClose(code: UInt16, reason: String)
}
