import CLua
import CLuaShim

/// The script and its handlers; dispatch is independent of any transport.
///
/// Script contract (version 1): globals `on_connection_request(request)`,
/// `on_new_connection(context)`, `on_message(message, context, is_binary)`,
/// `on_disconnect(context)`, `on_error(err, context)`; a missing handler is
/// skipped (missing on_connection_request = accept). The `strands` global
/// (also `require("strands")`) offers send_room_message, send_private_message,
/// broadcast_message, log.info/warn/error, now, json.encode/decode; `print`
/// logs at info level; `os.exit` raises; the other standard libraries are
/// available. Single-threaded: call from one thread only.
public final class ScriptHost {
    public let scriptPath: String
    public let limits: ScriptLimits
    private let delegate: ScriptHostDelegate
    private(set) var runtime: LuaRuntime

    public var scriptDirectory: String { ScriptHost.directory(of: scriptPath) }

    /// Throws `ScriptError.load` if the first load fails.
    public init(scriptPath: String, limits: ScriptLimits = .init(), delegate: ScriptHostDelegate) throws {
        self.scriptPath = scriptPath
        self.limits = limits
        self.delegate = delegate
        self.runtime = try ScriptHost.makeRuntime(scriptPath, limits, delegate)
    }

    static func directory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        if slash == path.startIndex { return "/" }
        return String(path[..<slash])
    }

    private static func makeRuntime(_ path: String, _ limits: ScriptLimits, _ delegate: ScriptHostDelegate?) throws -> LuaRuntime {
        do {
            return try LuaRuntime(scriptPath: path, scriptDirectory: directory(of: path), limits: limits, delegate: delegate)
        } catch let e as ScriptError {
            throw e
        } catch {
            throw ScriptError.load("\(error)")
        }
    }

    /// Builds a fresh lua_State, loads the script, checks handlers; on success
    /// swaps it in (old state closed once no call is running on it), on
    /// failure keeps the old one and returns the error.
    @discardableResult
    public func reload() -> ScriptError? {
        do {
            runtime = try ScriptHost.makeRuntime(scriptPath, limits, delegate)
            return nil
        } catch let e as ScriptError {
            return e
        } catch {
            return .load("\(error)")
        }
    }

    /// Loads a script in a throwaway state and reports the first error.
    public static func check(scriptPath: String, limits: ScriptLimits = .init()) -> ScriptError? {
        do {
            _ = try makeRuntime(scriptPath, limits, nil)
            return nil
        } catch let e as ScriptError {
            return e
        } catch {
            return .load("\(error)")
        }
    }

    public var hasConnectionRequestHandler: Bool { runtime.onConnectionRequest != LUA_NOREF }
    public var hasNewConnectionHandler: Bool { runtime.onNewConnection != LUA_NOREF }
    public var hasMessageHandler: Bool { runtime.onMessage != LUA_NOREF }
    public var hasDisconnectHandler: Bool { runtime.onDisconnect != LUA_NOREF }
    public var hasErrorHandler: Bool { runtime.onError != LUA_NOREF }
    /// Bytes the current Lua state holds.
    public var memoryInUse: Int { Int(lshim_memory_used(runtime.L)) }
    /// Changes with every successful (re)load.
    public var generation: UInt64 { runtime.generation }

    /// For tests: the Lua stack top of the current state (0 between calls).
    var stackTop: Int32 { lua_gettop(runtime.L) }

    // MARK: - context tables

    /// Pushes the cached context table, building it if this runtime has none.
    private func pushContext(_ rt: LuaRuntime, _ context: ScriptContext) {
        let L = rt.L
        if context.luaGeneration == rt.generation && context.luaRef != LUA_NOREF {
            lshim_getref(L, context.luaRef)
            return
        }
        pushFreshContext(rt, context)
        lua_pushvalue(L, -1)
        context.luaRef = lshim_ref(L)
        context.luaGeneration = rt.generation
    }

    private func pushFreshContext(_ rt: LuaRuntime, _ context: ScriptContext) {
        let L = rt.L
        lua_createtable(L, 0, 3)
        let t = lua_gettop(L)
        rt.push(context.clientID)
        rt.rawSetField(t, "client_id")
        rt.push(context.roomID)
        rt.rawSetField(t, "room_id")
        rt.push(context.metadata)
        rt.rawSetField(t, "metadata")
    }

    private func releaseContext(_ rt: LuaRuntime, _ context: ScriptContext) {
        if context.luaGeneration == rt.generation && context.luaRef != LUA_NOREF {
            lshim_unref(rt.L, context.luaRef)
        }
        context.luaRef = LUA_NOREF
        context.luaGeneration = 0
    }

    // MARK: - failures

    private func log(_ level: ScriptLogLevel, _ message: String) {
        delegate.scriptLog(level, message)
    }

    /// Logs a handler failure and calls on_error(err, context) with the
    /// context table at absolute index `ctx` (or the cached one if 0).
    private func handlerFailed(_ rt: LuaRuntime, _ handler: String, _ error: ScriptError,
                               _ context: ScriptContext, contextIndex ctx: Int32 = 0) {
        log(.error, "handler \(handler) failed for client \(context.clientID): \(error.message)")
        callOnError(rt, error.message, context, contextIndex: ctx)
    }

    private func callOnError(_ rt: LuaRuntime, _ message: String, _ context: ScriptContext, contextIndex ctx: Int32 = 0) {
        guard rt.onError != LUA_NOREF else { return }
        let L = rt.L
        lshim_getref(L, rt.onError)
        rt.push(message)
        if ctx != 0 { lua_pushvalue(L, ctx) } else { pushContext(rt, context) }
        if let err = rt.call(nargs: 2, nresults: 0) {
            log(.error, "handler on_error failed for client \(context.clientID): \(err.message)")
        }
    }

    // MARK: - dispatch

    public func connectionRequest(_ request: ConnectionRequest, context: ScriptContext) -> ConnectionDecision {
        let rt = runtime
        guard rt.onConnectionRequest != LUA_NOREF else { return .accept }
        let L = rt.L
        let top = lua_gettop(L)
        defer { lua_settop(L, top) }

        // request.context: a fresh table, not the cache, since the handler may change it
        pushFreshContext(rt, context)
        let ctx = lua_gettop(L)

        // request
        lua_createtable(L, 0, 9)
        let req = lua_gettop(L)
        pushMultiMap(rt, request.headers)
        lshim_set_headers_metatable(L, -1)
        rt.rawSetField(req, "headers")
        rt.push(request.url)
        rt.rawSetField(req, "url")
        rt.push(request.path)
        rt.rawSetField(req, "path")
        pushMultiMap(rt, request.query)
        rt.rawSetField(req, "query")
        rt.push(request.remoteAddress)
        rt.rawSetField(req, "remote_addr")
        lua_pushinteger(L, lua_Integer(request.remotePort))
        rt.rawSetField(req, "remote_port")
        lua_pushvalue(L, ctx)
        rt.rawSetField(req, "context")
        lua_pushboolean(L, 1)
        rt.rawSetField(req, "accepted")

        lshim_getref(L, rt.onConnectionRequest)
        lua_pushvalue(L, req)
        if let err = rt.call(nargs: 1, nresults: 3) {
            handlerFailed(rt, "on_connection_request", err, context, contextIndex: ctx)
            return .rejectHTTP(status: 500)
        }
        let r1 = req + 1, r2 = req + 2, r3 = req + 3
        let decision: ConnectionDecision
        switch lua_type(L, r1) {
        case LUA_TNIL:
            rt.rawGetField(req, "accepted")
            decision = lua_toboolean(L, -1) != 0 ? .accept : .rejectHTTP(status: 403)
        case LUA_TBOOLEAN where lua_toboolean(L, r1) != 0:
            decision = .accept
        case LUA_TBOOLEAN:
            decision = rejection(rt, r2, r3, context)
        default:
            log(.warn, "on_connection_request for client \(context.clientID) returned a \(String(cString: lua_typename(L, lua_type(L, r1)))) value (expected true, false or nil); rejecting with 403")
            decision = .rejectHTTP(status: 403)
        }
        guard decision == .accept else { return decision }

        // read back room_id and metadata (raw access)
        let roomType = rt.rawGetField(ctx, "room_id")
        guard roomType == LUA_TSTRING else {
            let got = String(cString: lua_typename(L, roomType))
            handlerFailed(rt, "on_connection_request",
                          .badValue("context.room_id must be a string, got a \(got) value"), context, contextIndex: ctx)
            return .rejectHTTP(status: 500)
        }
        let room = rt.string(at: -1)
        lua_settop(L, -2)
        rt.rawGetField(ctx, "metadata")
        switch rt.value(at: -1) {
        case .success(let meta):
            lua_settop(L, -2)
            releaseContext(rt, context)  // the cached table (if any) is stale now
            context.roomID = room
            context.metadata = meta
            return .accept
        case .failure(let err):
            lua_settop(L, -2)
            handlerFailed(rt, "on_connection_request",
                          .badValue("context.metadata: \(err.message)"), context, contextIndex: ctx)
            return .rejectHTTP(status: 500)
        }
    }

    /// `return false [, status | code, reason]`
    private func rejection(_ rt: LuaRuntime, _ r2: Int32, _ r3: Int32, _ context: ScriptContext) -> ConnectionDecision {
        let L = rt.L
        if lua_type(L, r2) == LUA_TNIL { return .rejectHTTP(status: 403) }
        var isInt: Int32 = 0
        let code = lua_type(L, r2) == LUA_TNUMBER ? lua_tointegerx(L, r2, &isInt) : 0
        if isInt != 0 {
            if (400...599).contains(code) { return .rejectHTTP(status: Int(code)) }
            if (4000...4999).contains(code) {
                switch lua_type(L, r3) {
                case LUA_TNIL, LUA_TNONE: return .rejectClose(code: UInt16(code), reason: "")
                case LUA_TSTRING: return .rejectClose(code: UInt16(code), reason: rt.string(at: r3))
                default: break
                }
            }
        }
        log(.warn, "on_connection_request for client \(context.clientID) returned false with an invalid status/close code or reason (expected 400..599, or 4000..4999 and a string); rejecting with 403")
        return .rejectHTTP(status: 403)
    }

    /// A table name -> string, or name -> array of strings for repeated names.
    private func pushMultiMap(_ rt: LuaRuntime, _ pairs: [(name: String, value: String)]) {
        let L = rt.L
        lua_createtable(L, 0, Int32(clamping: pairs.count))
        let t = lua_gettop(L)
        for (name, value) in pairs {
            rt.push(name)
            lua_pushvalue(L, -1)
            switch lua_rawget(L, t) {
            case LUA_TSTRING:  // second occurrence: make it an array
                lua_createtable(L, 2, 0)
                lua_rotate(L, -2, 1)
                lua_rawseti(L, -2, 1)
                rt.push(value)
                lua_rawseti(L, -2, 2)
                lua_rawset(L, t)
            case LUA_TTABLE:
                rt.push(value)
                lua_rawseti(L, -2, lua_Integer(lua_rawlen(L, -2)) + 1)
                lua_settop(L, -3)
            default:
                lua_settop(L, -2)
                rt.push(value)
                lua_rawset(L, t)
            }
        }
    }

    public func newConnection(_ context: ScriptContext) {
        let rt = runtime
        guard rt.onNewConnection != LUA_NOREF else { return }
        lshim_getref(rt.L, rt.onNewConnection)
        pushContext(rt, context)
        if let err = rt.call(nargs: 1, nresults: 0) {
            handlerFailed(rt, "on_new_connection", err, context)
        }
    }

    /// Hot path: two registry lookups, one string push, one protected call.
    public func message(_ payload: UnsafeRawBufferPointer, binary: Bool, context: ScriptContext) {
        let rt = runtime
        guard rt.onMessage != LUA_NOREF else { return }
        let L = rt.L
        lshim_getref(L, rt.onMessage)
        _ = lua_pushlstring(L, payload.baseAddress?.assumingMemoryBound(to: CChar.self), payload.count)
        pushContext(rt, context)
        lua_pushboolean(L, binary ? 1 : 0)
        if let err = rt.call(nargs: 3, nresults: 0) {
            handlerFailed(rt, "on_message", err, context)
        }
    }

    /// Calls on_disconnect, then releases the context's cached Lua table.
    public func disconnect(_ context: ScriptContext) {
        let rt = runtime
        if rt.onDisconnect != LUA_NOREF {
            lshim_getref(rt.L, rt.onDisconnect)
            pushContext(rt, context)
            if let err = rt.call(nargs: 1, nresults: 0) {
                handlerFailed(rt, "on_disconnect", err, context)
            }
        }
        releaseContext(rt, context)
    }

    /// A broker-side problem -> on_error(err, context).
    public func reportError(_ message: String, context: ScriptContext) {
        callOnError(runtime, message, context)
    }
}
