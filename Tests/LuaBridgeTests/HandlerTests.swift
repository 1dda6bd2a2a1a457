import Testing
@testable import LuaBridge

@Suite struct HandlerTests {
    @Test func handlersReceiveTheirArguments() throws {
        let (host, rec, _) = try makeHost("""
        function on_new_connection(ctx)
          strands.send_private_message("t", "new " .. ctx.client_id .. " " .. ctx.room_id)
        end
        function on_message(msg, ctx, is_binary)
          strands.send_private_message("t", "msg " .. msg .. " " .. ctx.client_id .. " " .. tostring(is_binary) .. " " .. type(is_binary))
        end
        function on_disconnect(ctx)
          strands.send_private_message("t", "bye " .. ctx.client_id)
        end
        """)
        let ctx = ScriptContext(clientID: "c1", roomID: "lobby")
        host.newConnection(ctx)
        send(host, "hello", ctx)
        send(host, "bin\u{1}", binary: true, ctx)
        host.disconnect(ctx)
        #expect(rec.reports("t") == ["new c1 lobby", "msg hello c1 false boolean", "msg bin\u{1} c1 true boolean", "bye c1"])
        #expect(host.hasMessageHandler && host.hasNewConnectionHandler && host.hasDisconnectHandler)
        #expect(!host.hasErrorHandler && !host.hasConnectionRequestHandler)
        #expect(ctx.luaRef == -2)
    }

    @Test func messageBytesArePassedExactly() throws {
        let (host, rec, _) = try makeHost("""
        function on_message(msg, ctx, b) strands.send_private_message("t", tostring(#msg) .. ":" .. msg:byte(2)) end
        """)
        let ctx = ScriptContext(clientID: "c", roomID: "r")
        let bytes: [UInt8] = [0, 0xff, 0, 7]
        bytes.withUnsafeBytes { host.message($0, binary: true, context: ctx) }
        host.message(UnsafeRawBufferPointer(start: nil, count: 0), binary: false, context: ctx)
        #expect(rec.reports("t").first == "4:255")
        #expect(rec.errors().count == 1)  // the empty message: msg:byte(2) is nil -> concat error
    }

    @Test func sendFunctionsReachTheDelegate() throws {
        let (host, rec, _) = try makeHost("""
        function on_message(msg, ctx)
          local a = strands.send_room_message("room1", "r-" .. msg)
          local b = strands.send_private_message("c9", "p-" .. msg, { binary = true })
          local c = strands.broadcast_message("b-" .. msg, {})
          local d = strands.broadcast_message(42)
          strands.send_private_message("t", string.format("%s %s %s %s %s", math.type(a), a, b, c, d))
        end
        """)
        rec.sendResult = 3
        send(host, "x", ScriptContext(clientID: "c", roomID: "r"))
        #expect(Array(rec.sent.prefix(4)) == [
            .init(kind: "room", target: "room1", payload: "r-x", binary: false),
            .init(kind: "client", target: "c9", payload: "p-x", binary: true),
            .init(kind: "broadcast", target: "", payload: "b-x", binary: false),
            .init(kind: "broadcast", target: "", payload: "42", binary: false),
        ])
        #expect(rec.reports("t") == ["integer 3 3 3 3"])
    }

    @Test func sendArgumentErrorsAreLuaErrors() throws {
        let (host, rec, _) = try makeHost("""
        local function try(f, ...)
          local ok, err = pcall(f, ...)
          strands.send_private_message("t", tostring(ok) .. " " .. tostring(err))
        end
        function on_message()
          try(strands.send_room_message, nil, "x")
          try(strands.send_private_message, "c", {})
          try(strands.broadcast_message, "x", 5)
          try(strands.broadcast_message)
        end
        """)
        send(host, "x", ScriptContext(clientID: "c", roomID: "r"))
        let r = rec.reports("t")
        #expect(r.count == 4)
        #expect(r[0].hasSuffix("bad argument #1 to 'send_room_message' (string expected, got nil)"))
        #expect(r[1].hasSuffix("bad argument #2 to 'send_private_message' (string expected, got table)"))
        #expect(r[2].hasSuffix("bad argument #2 to 'broadcast_message' (table expected, got number)"))
        #expect(r[3].hasSuffix("bad argument #1 to 'broadcast_message' (string expected, got no value)"))
        #expect(r.allSatisfy { $0.hasPrefix("false ") })
        #expect(rec.sent.count == 4)  // only the reports
        #expect(host.stackTop == 0)
    }

    @Test func logAndPrintGoToTheDelegate() throws {
        let (host, rec, _) = try makeHost("""
        print("loaded", 1, nil, true)
        function on_message(m)
          strands.log.info("info", m)
          strands.log.warn("warn", 2.5)
          strands.log.error("error", {} ~= nil)
          strands.send_private_message("t", tostring(math.abs(strands.now() - os.time()) < 5) .. " " .. math.type(strands.now()))
        end
        """)
        send(host, "m", ScriptContext(clientID: "c", roomID: "r"))
        #expect(rec.logs.map(\.level) == [.info, .info, .warn, .error])
        #expect(rec.logs.map(\.message) == ["loaded 1 nil true", "info m", "warn 2.5", "error true"])
        #expect(rec.reports("t") == ["true float"])
    }

    @Test func handlerErrorsAreLoggedWithLocationAndTracebackAndGoToOnError() throws {
        let (host, rec, dir) = try makeHost("""
        local function inner()
          error("kaput")
        end
        function on_message(msg, ctx)
          inner()
        end
        function on_error(err, ctx)
          strands.send_private_message("t", ctx.client_id .. "|" .. err)
        end
        """)
        let ctx = ScriptContext(clientID: "c7", roomID: "r")
        send(host, "x", ctx)
        let path = dir.path()
        #expect(rec.errors().count == 1)
        let logged = rec.errors()[0]
        #expect(logged.hasPrefix("handler on_message failed for client c7: \(path):2: kaput"))
        #expect(logged.contains("stack traceback:"))
        #expect(logged.contains("in function 'on_message'") || logged.contains("in global 'on_message'"))
        let r = rec.reports("t")
        #expect(r.count == 1)
        #expect(r[0].hasPrefix("c7|\(path):2: kaput"))
        #expect(r[0].contains("stack traceback:"))
        #expect(host.stackTop == 0)
    }

    @Test func errorsInsideOnErrorAreOnlyLogged() throws {
        let (host, rec, _) = try makeHost("""
        local calls = 0
        function on_message() error("first") end
        function on_error(err) calls = calls + 1; error("second " .. calls) end
        """)
        send(host, "x", ScriptContext(clientID: "c", roomID: "r"))
        let errors = rec.errors()
        #expect(errors.count == 2)
        #expect(errors[0].contains("first"))
        #expect(errors[1].hasPrefix("handler on_error failed for client c:"))
        #expect(errors[1].contains("second 1"))
        #expect(host.stackTop == 0)
    }

    @Test func reportErrorCallsOnError() throws {
        let (host, rec, _) = try makeHost("""
        function on_error(err, ctx) strands.send_private_message("t", err .. "/" .. ctx.client_id .. "/" .. ctx.room_id) end
        """)
        host.reportError("send queue full", context: ScriptContext(clientID: "c3", roomID: "r3"))
        #expect(rec.reports("t") == ["send queue full/c3/r3"])
        #expect(host.stackTop == 0)
    }

    @Test func nonStringErrorObjects() throws {
        let (host, rec, _) = try makeHost("""
        function on_message(m)
          if m == "t" then error({}) end
          error(setmetatable({}, { __tostring = function() return "custom" end }))
        end
        """)
        let ctx = ScriptContext(clientID: "c", roomID: "r")
        send(host, "t", ctx)
        send(host, "m", ctx)
        #expect(rec.errors().count == 2)
        #expect(rec.errors()[0].contains("(error object is a table value)"))
        #expect(rec.errors()[1].contains("custom"))
        #expect(host.stackTop == 0)
    }

    @Test func contextIsCachedPerClientAndReleasedOnDisconnect() throws {
        let (host, rec, _) = try makeHost("""
        function on_message(m, ctx)
          ctx.count = (ctx.count or 0) + 1
          strands.send_private_message("t", ctx.client_id .. ctx.count)
        end
        """)
        let a = ScriptContext(clientID: "a", roomID: "r")
        let b = ScriptContext(clientID: "b", roomID: "r")
        send(host, "x", a); send(host, "x", a); send(host, "x", b)
        host.disconnect(a)
        send(host, "x", a)  // rebuilt
        #expect(rec.reports("t") == ["a1", "a2", "b1", "a1"])
    }

    @Test func osExitIsDisabled() throws {
        let (host, rec, _) = try makeHost("""
        function on_message()
          local ok, err = pcall(os.exit, 0)
          strands.send_private_message("t", tostring(ok) .. " " .. err)
          os.exit(1)
        end
        """)
        send(host, "x", ScriptContext(clientID: "c", roomID: "r"))
        #expect(rec.reports("t") == ["false os.exit is disabled in LuaStrands"])
        #expect(rec.errors().count == 1)
        #expect(rec.errors()[0].contains("os.exit is disabled in LuaStrands"))
        #expect(host.stackTop == 0)
    }

    @Test func requireFindsModulesNextToTheScriptAndStrands() throws {
        let (host, rec, dir) = try makeHost("""
        local util = require("util")
        local pkg = require("pkg")
        local s = require("strands")
        function on_message(m)
          strands.send_private_message("t", util.shout(m) .. " " .. pkg.name .. " " .. tostring(s == strands))
        end
        """, files: [
            "util.lua": "return { shout = function(s) return s:upper() end }",
            "pkg/init.lua": "return { name = 'pkg' }",
        ])
        send(host, "hi", ScriptContext(clientID: "c", roomID: "r"))
        #expect(rec.reports("t") == ["HI pkg true"])
        #expect(host.scriptDirectory == dir.url.path)
    }
}
