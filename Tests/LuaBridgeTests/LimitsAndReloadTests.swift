import Foundation
import Testing
@testable import LuaBridge

@Suite struct LimitsTests {
    @Test func infiniteLoopIsStoppedWithinTheBudget() throws {
        let (host, rec, _) = try makeHost("""
        function on_message(m)
          if m == "loop" then while true do end end
          if m == "pcall" then while true do pcall(function() while true do end end) end end
          strands.send_private_message("t", "ok " .. m)
        end
        function on_error(err) strands.send_private_message("e", err) end
        """, limits: .init(handlerBudget: 0.25))
        let ctx = ScriptContext(clientID: "c", roomID: "r")
        for mode in ["loop", "pcall"] {
            let start = Date()
            send(host, mode, ctx)
            let elapsed = Date().timeIntervalSince(start)
            #expect(elapsed >= 0.2 && elapsed < 2.0, "\(mode): \(elapsed)")
        }
        #expect(rec.errors().count == 2)
        #expect(rec.errors().allSatisfy { $0.contains("handler exceeded its time budget of 0.25 s") })
        #expect(rec.reports("e").count == 2)
        send(host, "after", ctx)
        #expect(rec.reports("t") == ["ok after"])
        #expect(host.stackTop == 0)
    }

    @Test func topLevelLoopIsALoadError() throws {
        let dir = ScriptDir(["main.lua": "while true do end"])
        let err = ScriptHost.check(scriptPath: dir.path(), limits: .init(handlerBudget: 0.1))
        guard case .load(let msg)? = err else { Issue.record("expected load error, got \(String(describing: err))"); return }
        #expect(msg.contains("time budget"))
        #expect(msg.contains("\(dir.path()):1:"))
    }

    @Test func memoryCapStopsTheHandlerAndTheHostKeepsWorking() throws {
        let (host, rec, _) = try makeHost("""
        function on_message(m)
          if m == "hog" then
            local t = {} while true do t[#t+1] = string.rep("x", 1e6) end
          end
          strands.send_private_message("t", "ok " .. m)
        end
        """, limits: .init(memoryLimit: 16 << 20))
        let ctx = ScriptContext(clientID: "c", roomID: "r")
        send(host, "hog", ctx)
        #expect(rec.errors().count == 1)
        #expect(rec.errors()[0].contains("not enough memory"))
        #expect(host.memoryInUse < 16 << 20)
        send(host, "after", ctx)
        send(host, "hog", ctx)
        send(host, "again", ctx)
        #expect(rec.reports("t") == ["ok after", "ok again"])
        #expect(host.stackTop == 0)
    }

    @Test func memoryErrorIsReportedAsOutOfMemoryByTheRuntime() throws {
        let (host, _, _) = try makeHost("function on_message() end", limits: .init(memoryLimit: 8 << 20))
        let rt = host.runtime
        let script = "local t = {} while true do t[#t+1] = string.rep('y', 1e6) end"
        #expect(rt.loadString(script) == 0)
        let err = rt.call(nargs: 0, nresults: 0)
        guard case .outOfMemory(let msg)? = err else { Issue.record("got \(String(describing: err))"); return }
        #expect(msg.contains("not enough memory"))
        #expect(host.stackTop == 0)
    }

    @Test func stackIsBalancedAfterEveryPublicCall() throws {
        let (host, _, _) = try makeHost("""
        function on_connection_request(r) r.context.metadata = { a = 1 }; return true end
        function on_new_connection(ctx) end
        function on_message(m, ctx) if m == "err" then error("x") end return 1, 2, 3 end
        function on_disconnect(ctx) error("d") end
        function on_error(err, ctx) return "ignored" end
        """)
        let ctx = ScriptContext(clientID: "c", roomID: "r")
        #expect(host.stackTop == 0)
        _ = host.connectionRequest(ConnectionRequest(), context: ctx)
        #expect(host.stackTop == 0)
        host.newConnection(ctx)
        #expect(host.stackTop == 0)
        send(host, "ok", ctx)
        #expect(host.stackTop == 0)
        send(host, "err", ctx)
        #expect(host.stackTop == 0)
        host.reportError("x", context: ctx)
        #expect(host.stackTop == 0)
        host.disconnect(ctx)
        #expect(host.stackTop == 0)
        #expect(host.reload() == nil)
        #expect(host.stackTop == 0)
        send(host, "ok", ctx)
        #expect(host.stackTop == 0)
    }
}

@Suite struct ReloadTests {
    @Test func failedReloadsKeepTheOldScript() throws {
        let (host, rec, dir) = try makeHost("""
        function on_message(m) strands.send_private_message("t", "v1 " .. m) end
        """)
        let ctx = ScriptContext(clientID: "c", roomID: "r")
        let gen = host.generation
        let path = dir.path()
        let cases: [(String, String)] = [
            ("function on_message(m)\n  strands.send(\nend\n", "\(path):3:"),          // syntax error
            ("local x = 1\nerror('top level failure')\n", "\(path):2: top level failure"),
            ("function on_error() end\non_message = 5\n", "\(path):2: global 'on_message' must be a function"),
            ("local t = {}\non_disconnect = t\n", "\(path):2: global 'on_disconnect' must be a function"),
        ]
        for (text, expected) in cases {
            dir.write("main.lua", text)
            let err = host.reload()
            guard case .load(let msg)? = err else { Issue.record("expected load error, got \(String(describing: err))"); continue }
            #expect(msg.contains(expected), "\(msg)")
            #expect(ScriptHost.check(scriptPath: path) == err)
            send(host, "x", ctx)
            #expect(rec.reports("t").last == "v1 x")
            #expect(host.generation == gen)
            #expect(host.stackTop == 0)
        }
        #expect(rec.reports("t").count == cases.count)
        try FileManager.default.removeItem(atPath: path)
        guard case .load(let msg)? = host.reload() else { Issue.record("missing file must fail"); return }
        #expect(msg.contains("cannot open"))
        #expect(host.hasMessageHandler)
    }

    @Test func successfulReloadSwapsBehaviour() throws {
        let (host, rec, dir) = try makeHost("""
        counter = 0
        function on_message(m) counter = counter + 1; strands.send_private_message("t", "v1 " .. counter) end
        """)
        let ctx = ScriptContext(clientID: "c", roomID: "r")
        send(host, "x", ctx); send(host, "x", ctx)
        let gen = host.generation
        dir.write("main.lua", """
        function on_message(m, ctx) strands.send_private_message("t", "v2 " .. tostring(counter) .. " " .. ctx.client_id) end
        function on_error() end
        """)
        #expect(host.reload() == nil)
        #expect(host.generation != gen)
        #expect(host.hasErrorHandler)
        send(host, "x", ctx)
        #expect(rec.reports("t") == ["v1 1", "v1 2", "v2 nil c"])
        dir.write("main.lua", "function on_new_connection() end")
        #expect(host.reload() == nil)
        #expect(!host.hasMessageHandler)
        send(host, "x", ctx)  // skipped
        #expect(rec.reports("t").count == 3)
    }

    @Test func initThrowsLoadErrors() throws {
        let dir = ScriptDir(["main.lua": "x = = 1"])
        #expect(throws: ScriptError.self) { _ = try ScriptHost(scriptPath: dir.path(), delegate: Recorder()) }
        do {
            _ = try ScriptHost(scriptPath: dir.path(), delegate: Recorder())
        } catch let e as ScriptError {
            guard case .load(let m) = e else { Issue.record("\(e)"); return }
            #expect(m.contains("\(dir.path()):1:"))
        }
        #expect(ScriptHost.check(scriptPath: dir.path("nope.lua")) != nil)
        dir.write("ok.lua", "function on_message() end")
        #expect(ScriptHost.check(scriptPath: dir.path("ok.lua")) == nil)
    }

    @Test func runtimeErrorsInRequiredModulesNameTheModuleFile() throws {
        let (host, rec, dir) = try makeHost("""
        local m = require("mod")
        function on_message() m.fail() end
        """, files: ["mod.lua": "local M = {}\nfunction M.fail()\n  error('inside module')\nend\nreturn M\n"])
        send(host, "x", ScriptContext(clientID: "c", roomID: "r"))
        #expect(rec.errors().first?.contains("\(dir.path("mod.lua")):3: inside module") == true)
    }
}
