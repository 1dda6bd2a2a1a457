import Testing
@testable import LuaBridge

@Suite struct ValueTests {
    @Test func valuesRoundTripThroughLua() throws {
        let (host, _, _) = try makeHost("")
        let rt = host.runtime
        let v: LuaValue = .table([
            LuaTableEntry(key: .integer(1), value: .string("one")),
            LuaTableEntry(key: .integer(2), value: .number(2.5)),
            LuaTableEntry(key: .number(3.5), value: .integer(-7)),
            LuaTableEntry(key: .bool(false), value: .bool(true)),
            LuaTableEntry(key: .string("nested"), value: .table([LuaTableEntry(key: .string("x"), value: .table([]))])),
        ])
        rt.push(v)
        #expect(try rt.value(at: -1).get() == v)
        rt.setTop(0)
        #expect(host.stackTop == 0)
    }

    @Test func valuesThatCannotCross() throws {
        let (host, _, _) = try makeHost("""
        fn = { f = print }
        cyc = { } cyc.me = { up = cyc }
        deep = {} local c = deep for i = 1, 70 do c.n = {} c = c.n end
        okdeep = {} c = okdeep for i = 1, 60 do c.n = {} c = c.n end
        tkey = { [{}] = 1 }
        """)
        let rt = host.runtime
        for (name, fragment) in [("fn", "function"), ("cyc", "cycle"), ("deep", "64"), ("tkey", "key of type table")] {
            rt.pushGlobal(name)
            switch rt.value(at: -1) {
            case .success(let v): Issue.record("\(name) converted to \(v)")
            case .failure(let e):
                guard case .badValue(let m) = e else { Issue.record("\(e)"); break }
                #expect(m.contains(fragment), "\(m)")
            }
            #expect(host.stackTop == 1)
            rt.setTop(0)
        }
        rt.pushGlobal("okdeep")
        #expect((try? rt.value(at: -1).get()) != nil)
        rt.setTop(0)
    }

    @Test func truncatedChunkNamesAreExpanded() {
        let dir = "/very/long/directory/name/that/does/not/fit/into/lua/chunk/ids"
        let full = dir + "/main.lua"
        let shown = "..." + String(full.suffix(56))
        let msg = "\(shown):3: boom\nstack traceback:\n\t\(shown):3: in main chunk"
        #expect(LuaRuntime.expandTruncatedPaths(msg, directory: dir) == "\(full):3: boom\nstack traceback:\n\t\(full):3: in main chunk")
        #expect(LuaRuntime.expandTruncatedPaths("a...b:1: x", directory: dir) == "a...b:1: x")
        #expect(ScriptHost.directory(of: "main.lua") == ".")
        #expect(ScriptHost.directory(of: "/main.lua") == "/")
        #expect(ScriptHost.directory(of: "a/b/main.lua") == "a/b")
    }
}
