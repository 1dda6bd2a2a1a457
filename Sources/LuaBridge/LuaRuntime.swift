import CLua
import CLuaShim

/// The one Swift owner of a `lua_State` (single-threaded use). A ScriptHost
/// has one current runtime; a reload builds a new one and drops the old one,
/// which closes its state.
///
/// Rules kept here:
/// - every call into Lua goes through `lshim_call` (lua_pcall + traceback
///   handler + time budget + memory cap);
/// - Swift only pushes/reads values with functions that cannot raise except
///   for memory errors, and the memory cap is suspended while Swift runs (see
///   shim.c), so no Lua error can longjmp through a Swift frame;
/// - only raw table access (lua_rawget/rawset/next) from Swift: no metamethods;
/// - the stack is balanced after every public operation.
final class LuaRuntime {
    let L: OpaquePointer
    let generation: UInt64
    let scriptPath: String
    let scriptDirectory: String
    let limits: ScriptLimits
    let delegate: ScriptHostDelegate?

    // registry refs of the handlers, resolved once per load
    private(set) var onConnectionRequest: Int32 = LUA_NOREF
    private(set) var onNewConnection: Int32 = LUA_NOREF
    private(set) var onMessage: Int32 = LUA_NOREF
    private(set) var onDisconnect: Int32 = LUA_NOREF
    private(set) var onError: Int32 = LUA_NOREF

    nonisolated(unsafe) private static var lastGeneration: UInt64 = 0

    static let handlerNames = ["on_connection_request", "on_new_connection", "on_message", "on_disconnect", "on_error"]

    /// Creates the state, installs the API and runs the script.
    init(scriptPath: String, scriptDirectory: String, limits: ScriptLimits, delegate: ScriptHostDelegate?) throws {
        guard let L = lshim_newstate(max(0, limits.memoryLimit), limits.handlerBudget) else {
            throw ScriptError.load("\(scriptPath): cannot create a Lua state (out of memory)")
        }
        LuaRuntime.lastGeneration &+= 1
        self.L = L
        self.generation = LuaRuntime.lastGeneration
        self.scriptPath = scriptPath
        self.scriptDirectory = scriptDirectory
        self.limits = limits
        self.delegate = delegate
        // From here on deinit closes the state if we throw.
        try load()
    }

    deinit {
        lshim_close(L)
    }

    private func load() throws {
        let owner = Unmanaged.passUnretained(self).toOpaque()
        var status: Int32 = 0
        scriptDirectory.withCString { dir in
            var info = lshim_setup_info(
                script_dir: dir, owner: owner,
                send_room: LuaRuntime.sendRoomFn, send_client: LuaRuntime.sendClientFn,
                broadcast: LuaRuntime.broadcastFn, log: LuaRuntime.logFn)
            status = lshim_setup(L, &info)
        }
        if status != LUA_OK {
            throw ScriptError.load("\(scriptPath): setting up the Lua state failed: \(popMessage())")
        }
        status = lshim_run_script(L, scriptPath)
        if status != LUA_OK {
            throw ScriptError.load(popMessage())
        }
        for (i, name) in LuaRuntime.handlerNames.enumerated() {
            let t = lshim_rawgetglobal(L, name)
            if t == LUA_TNIL {
                lua_settop(L, -2)
                continue
            }
            if t != LUA_TFUNCTION {
                let typeName = String(cString: lua_typename(L, t))
                lua_settop(L, -2)
                lshim_push_assignment_site(L, name)
                let site = lua_type(L, -1) == LUA_TSTRING
                    ? LuaRuntime.expandTruncatedPaths(string(at: -1), directory: scriptDirectory) : scriptPath
                lua_settop(L, -2)
                throw ScriptError.load("\(site): global '\(name)' must be a function or nil, got a \(typeName) value")
            }
            let ref = lshim_ref(L)
            switch i {
            case 0: onConnectionRequest = ref
            case 1: onNewConnection = ref
            case 2: onMessage = ref
            case 3: onDisconnect = ref
            default: onError = ref
            }
        }
    }

    // MARK: - calling

    /// Calls the function below `nargs` arguments; maps a failure to a
    /// ScriptError (the message is popped). Results stay on the stack on success.
    func call(nargs: Int32, nresults: Int32) -> ScriptError? {
        let status = lshim_call(L, nargs, nresults)
        if status == LUA_OK { return nil }
        let msg = popMessage()
        switch status {
        case LSHIM_TIMEOUT:
            return .timeout(msg)
        case LUA_ERRMEM:
            lshim_collect_garbage(L)
            return .outOfMemory("\(msg) (memory limit \(limits.memoryLimit) bytes)")
        default:
            return .runtime(msg)
        }
    }

    /// Loads (does not run) a chunk; for tests. Returns the lua status.
    func loadString(_ code: String, name: String = "=test") -> Int32 {
        var code = code
        return code.withUTF8 { buf in
            luaL_loadbufferx(L, UnsafeRawPointer(buf.baseAddress!).assumingMemoryBound(to: CChar.self), buf.count, name, "t")
        }
    }

    /// Pushes a global (raw); for tests.
    @discardableResult
    func pushGlobal(_ name: String) -> Int32 { lshim_rawgetglobal(L, name) }

    func setTop(_ n: Int32) { lua_settop(L, n) }

    func popMessage() -> String {
        let s: String
        if lua_type(L, -1) == LUA_TSTRING || lua_type(L, -1) == LUA_TNUMBER {
            s = string(at: -1)
        } else {
            s = "(error object is a \(String(cString: lua_typename(L, lua_type(L, -1)))) value)"
        }
        lua_settop(L, -2)
        return LuaRuntime.expandTruncatedPaths(s, directory: scriptDirectory)
    }

    /// Lua shortens chunk names to LUA_IDSIZE (60) bytes: "@/a/long/path.lua"
    /// shows as "..." + its last 56 bytes. Puts the full path back for files
    /// in the script's folder (the script and its modules).
    static func expandTruncatedPaths(_ message: String, directory: String) -> String {
        let tailLength = 56
        guard message.contains("...") else { return message }
        let dir = Array((directory.hasSuffix("/") ? directory : directory + "/").utf8)
        let b = Array(message.utf8)
        let dot = UInt8(ascii: "."), colon = UInt8(ascii: ":")
        var out: [UInt8] = []
        out.reserveCapacity(b.count + 64)
        var i = 0
        outer: while i < b.count {
            let end = i + 3 + tailLength
            if b[i] == dot, end < b.count, b[i + 1] == dot, b[i + 2] == dot, b[end] == colon {
                let tail = b[(i + 3)..<end]
                var k = min(dir.count, tailLength - 1)
                while k > 0 {
                    if dir[(dir.count - k)...].elementsEqual(tail.prefix(k)) {
                        out += dir
                        out += tail.dropFirst(k)
                        i = end
                        continue outer
                    }
                    k -= 1
                }
            }
            out.append(b[i])
            i += 1
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The string (or number, converted in place) at idx.
    func string(at idx: Int32) -> String {
        var len = 0
        guard let p = lua_tolstring(L, idx, &len) else { return "" }
        return String(decoding: UnsafeRawBufferPointer(start: p, count: len), as: UTF8.self)
    }

    func push(_ s: String) {
        var s = s
        s.withUTF8 { buf in
            _ = lua_pushlstring(L, buf.baseAddress.map { UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self) }, buf.count)
        }
    }

    /// t[name] = value on top (raw), for the table at absolute index t.
    func rawSetField(_ t: Int32, _ name: StaticString) {
        name.withUTF8Buffer { buf in
            _ = lua_pushlstring(L, UnsafeRawPointer(buf.baseAddress!).assumingMemoryBound(to: CChar.self), buf.count)
        }
        lua_rotate(L, -2, 1)
        lua_rawset(L, t)
    }

    /// Pushes t[name] (raw) for the table at absolute index t; returns its type.
    @discardableResult
    func rawGetField(_ t: Int32, _ name: StaticString) -> Int32 {
        name.withUTF8Buffer { buf in
            _ = lua_pushlstring(L, UnsafeRawPointer(buf.baseAddress!).assumingMemoryBound(to: CChar.self), buf.count)
        }
        return lua_rawget(L, t)
    }

    // MARK: - values

    func push(_ value: LuaValue) {
        switch value {
        case .nil: lua_pushnil(L)
        case .bool(let b): lua_pushboolean(L, b ? 1 : 0)
        case .integer(let i): lua_pushinteger(L, lua_Integer(i))
        case .number(let d): lua_pushnumber(L, d)
        case .string(let s): push(s)
        case .table(let entries):
            _ = lua_checkstack(L, 4)
            var narr: Int32 = 0
            for e in entries { if case .integer = e.key { narr += 1 } }
            lua_createtable(L, narr, Int32(clamping: entries.count) - narr)
            let t = lua_gettop(L)
            for e in entries {
                switch e.key {
                case .nil: continue          // not a valid key
                case .number(let d) where d.isNaN: continue
                default: break
                }
                push(e.key)
                push(e.value)
                lua_rawset(L, t)
            }
        }
    }

    /// Converts the value at idx; the stack is unchanged on every path.
    func value(at idx: Int32) -> Result<LuaValue, ScriptError> {
        let top = lua_gettop(L)
        let abs = lua_absindex(L, idx)
        var visited = Set<UnsafeRawPointer>()
        do {
            let v = try convert(abs, depth: 0, visited: &visited)
            return .success(v)
        } catch let e as ScriptError {
            lua_settop(L, top)
            return .failure(e)
        } catch {
            lua_settop(L, top)
            return .failure(.badValue("\(error)"))
        }
    }

    private func typeName(_ idx: Int32) -> String {
        String(cString: lua_typename(L, lua_type(L, idx)))
    }

    private func convert(_ idx: Int32, depth: Int, visited: inout Set<UnsafeRawPointer>) throws -> LuaValue {
        switch lua_type(L, idx) {
        case LUA_TNIL, LUA_TNONE: return .nil
        case LUA_TBOOLEAN: return .bool(lua_toboolean(L, idx) != 0)
        case LUA_TNUMBER:
            if lua_isinteger(L, idx) != 0 { return .integer(Int64(lua_tointegerx(L, idx, nil))) }
            return .number(lua_tonumberx(L, idx, nil))
        case LUA_TSTRING: return .string(string(at: idx))
        case LUA_TTABLE:
            if depth >= 64 { throw ScriptError.badValue("table nested deeper than 64 levels") }
            guard let ptr = lua_topointer(L, idx) else { return .table([]) }
            if visited.contains(ptr) { throw ScriptError.badValue("table with a cycle") }
            visited.insert(ptr)
            defer { visited.remove(ptr) }
            _ = lua_checkstack(L, 4)
            var entries: [LuaTableEntry] = []
            lua_pushnil(L)
            while lua_next(L, idx) != 0 {
                let kt = lua_type(L, -2)
                guard kt == LUA_TSTRING || kt == LUA_TNUMBER || kt == LUA_TBOOLEAN else {
                    throw ScriptError.badValue("table key of type \(typeName(-2))")
                }
                let k = try convert(lua_gettop(L) - 1, depth: depth + 1, visited: &visited)
                let v = try convert(lua_gettop(L), depth: depth + 1, visited: &visited)
                entries.append(LuaTableEntry(key: k, value: v))
                lua_settop(L, -2)
            }
            entries.sort(by: LuaRuntime.keyOrder)
            return .table(entries)
        default:
            throw ScriptError.badValue("a \(typeName(idx)) value cannot be passed to the broker")
        }
    }

    private static func keyRank(_ v: LuaValue) -> Int {
        switch v {
        case .integer, .number: return 0
        case .bool: return 1
        default: return 2
        }
    }

    static func keyOrder(_ a: LuaTableEntry, _ b: LuaTableEntry) -> Bool {
        let ra = keyRank(a.key), rb = keyRank(b.key)
        if ra != rb { return ra < rb }
        switch (a.key, b.key) {
        case (.integer(let x), .integer(let y)): return x < y
        case (.integer(let x), .number(let y)): return Double(x) < y
        case (.number(let x), .integer(let y)): return x < Double(y)
        case (.number(let x), .number(let y)): return x < y
        case (.bool(let x), .bool(let y)): return !x && y
        case (.string(let x), .string(let y)): return x.utf8.lexicographicallyPrecedes(y.utf8)
        default: return false
        }
    }

    // MARK: - Swift functions called from Lua (through the shim's trampoline)

    static func owner(_ L: OpaquePointer?) -> LuaRuntime {
        Unmanaged<LuaRuntime>.fromOpaque(lshim_owner(L)!).takeUnretainedValue()
    }

    enum SendKind { case room, client, broadcast }

    static let sendRoomFn: lshim_swift_fn = { L in owner(L).send(.room) }
    static let sendClientFn: lshim_swift_fn = { L in owner(L).send(.client) }
    static let broadcastFn: lshim_swift_fn = { L in owner(L).send(.broadcast) }
    static let logFn: lshim_swift_fn = { L in owner(L).log() }

    /// Pushes a luaL_argerror-style message ("file:line: bad argument #n to
    /// 'f' (...)") and returns -1 so the trampoline raises it.
    private func argError(_ arg: Int32, _ function: String, _ expected: String) -> Int32 {
        let got = lua_type(L, arg) == LUA_TNONE ? "no value" : typeName(arg)
        luaL_where(L, 1)
        push("bad argument #\(arg) to '\(function)' (\(expected) expected, got \(got))")
        lua_concat(L, 2)
        return -1
    }

    private func isStringArg(_ idx: Int32) -> Bool {
        let t = lua_type(L, idx)
        return t == LUA_TSTRING || t == LUA_TNUMBER
    }

    private func send(_ kind: SendKind) -> Int32 {
        let fname: String
        switch kind {
        case .room: fname = "send_room_message"
        case .client: fname = "send_private_message"
        case .broadcast: fname = "broadcast_message"
        }
        var target = ""
        var msgIndex: Int32 = 1
        if kind != .broadcast {
            guard isStringArg(1) else { return argError(1, fname, "string") }
            target = string(at: 1)
            msgIndex = 2
        }
        guard isStringArg(msgIndex) else { return argError(msgIndex, fname, "string") }
        let optsIndex = msgIndex + 1
        var binary = false
        switch lua_type(L, optsIndex) {
        case LUA_TNIL, LUA_TNONE: break
        case LUA_TTABLE:
            rawGetField(optsIndex, "binary")
            binary = lua_toboolean(L, -1) != 0
            lua_settop(L, -2)
        default:
            return argError(optsIndex, fname, "table")
        }
        var len = 0
        let p = lua_tolstring(L, msgIndex, &len)
        let payload = UnsafeRawBufferPointer(start: p.map { UnsafeRawPointer($0) }, count: len)
        let n: Int
        do {
            switch kind {
            case .room: n = try delegate?.scriptSendToRoom(target, payload, binary: binary) ?? 0
            case .client: n = try delegate?.scriptSendToClient(target, payload, binary: binary) ?? 0
            case .broadcast: n = try delegate?.scriptBroadcast(payload, binary: binary) ?? 0
            }
        } catch {
            luaL_where(L, 1)
            push("\(fname): \(error.message)")
            lua_concat(L, 2)
            return -1
        }
        lua_pushinteger(L, lua_Integer(n))
        return 1
    }

    /// The trampoline has already joined the arguments into one string.
    private func log() -> Int32 {
        let level: ScriptLogLevel
        switch lshim_upvalue_integer(L) {
        case 1: level = .warn
        case 2: level = .error
        default: level = .info
        }
        delegate?.scriptLog(level, string(at: 1))
        return 0
    }
}
