import Testing
@testable import LuaBridge

@Suite struct JSONTests {
    /// Runs `code` as the body of on_message and returns what it reported.
    func run(_ code: String) throws -> [String] {
        let (host, rec, _) = try makeHost("""
        local json = strands.json
        local function report(...) local t = {} for i = 1, select("#", ...) do t[#t+1] = tostring((select(i, ...))) end
          strands.send_private_message("t", table.concat(t, "|")) end
        function on_message()
        \(code)
        end
        """)
        send(host, "x", ScriptContext(clientID: "c", roomID: "r"))
        #expect(rec.errors().isEmpty, "\(rec.errors())")
        #expect(host.stackTop == 0)
        return rec.reports("t")
    }

    @Test func encodesValues() throws {
        let r = try run("""
        report(json.encode({1, 2, "three", true, false}))
        report(json.encode({}))
        report(json.encode({a = {b = {}}}))
        report(json.encode("q\\"b\\\\s/\\n\\t\\1\\127é"))
        report(json.encode(1.0), json.encode(0.1), json.encode(-3), json.encode(1e300), json.encode(2^53))
        report(json.encode(nil), json.encode(math.maxinteger))
        report(json.encode({[1] = "a", [3] = "c"}))
        """)
        #expect(r[0] == "[1,2,\"three\",true,false]")
        #expect(r[1] == "{}")
        #expect(r[2] == "{\"a\":{\"b\":{}}}")
        #expect(r[3] == "\"q\\\"b\\\\s/\\n\\t\\u0001\u{7f}é\"")
        #expect(r[4] == "1.0|0.1|-3|1e+300|9007199254740992.0")
        #expect(r[5] == "null|9223372036854775807")
        #expect(r[6] == "{\"1\":\"a\",\"3\":\"c\"}" || r[6] == "{\"3\":\"c\",\"1\":\"a\"}")
    }

    @Test func encodeErrorsReturnNilAndMessage() throws {
        let r = try run("""
        local cyc = {} cyc.self = cyc
        report(json.encode(0/0))
        report(json.encode({x = math.huge}))
        report(json.encode({f = print}))
        report(json.encode(cyc))
        report(json.encode({[true] = 1}))
        local deep = {} local cur = deep for i = 1, 200 do cur.n = {} cur = cur.n end
        report(json.encode(deep))
        """)
        #expect(r[0] == "nil|json.encode: cannot encode a non-finite number")
        #expect(r[1] == "nil|json.encode: cannot encode a non-finite number")
        #expect(r[2] == "nil|json.encode: cannot encode a function value")
        #expect(r[3] == "nil|json.encode: cannot encode a table with a cycle")
        #expect(r[4] == "nil|json.encode: cannot encode a table key of type boolean")
        #expect(r[5].hasPrefix("nil|json.encode: nesting deeper than"))
    }

    @Test func decodesValues() throws {
        let r = try run("""
        local v = json.decode(' {"a": [1, 2.5, "x", true, false, null, {"b": null}], "n": -0.5e1, "big": 12345678901234567890, "i": 42} ')
        report(math.type(v.a[1]), v.a[2], v.a[3], v.a[4], v.a[5], v.a[6], next(v.a[7]), v.n, math.type(v.big), math.type(v.i), v.i)
        report(json.decode('"\\\\u00e9\\\\ud83d\\\\ude00\\\\n\\\\"\\\\/"'))
        report(json.decode("null"), json.decode("[]")[1], json.decode("{}") ~= nil)
        local src = {list = {1, 2, {3, "four"}}, s = "line\\nbreak \\0 nul", f = 0.25, t = true}
        local back = json.decode(json.encode(src))
        report(back.list[3][2], back.s == src.s, back.f, back.t, #back.list, math.type(back.list[1]))
        """)
        #expect(r[0] == "integer|2.5|x|true|false|nil|nil|-5.0|float|integer|42")
        #expect(r[1] == "é😀\n\"/")
        #expect(r[2] == "nil|nil|true")
        #expect(r[3] == "four|true|0.25|true|3|integer")
    }

    @Test func decodeErrorsReturnNilAndMessage() throws {
        let r = try run("""
        for _, s in ipairs({ "", "[1,", "{\\"a\\" 1}", "[1] x", "tru", "01", "1.", "\\"\\\\ud800\\"", "\\"\\\\udc00\\"",
                             "\\"a\\nb\\"", "{1:2}", "\\"\\\\x\\"", string.rep("[", 300) }) do
          local v, err = json.decode(s)
          report(tostring(v) .. " " .. tostring(err))
        end
        local ok, err = pcall(json.decode, {})
        report(tostring(ok), err)
        """)
        #expect(r.count == 14)
        for line in r.prefix(13) {
            #expect(line.hasPrefix("nil json.decode: "), "\(line)")
            #expect(line.contains("at position"), "\(line)")
        }
        #expect(r[0].contains("unexpected end of input"))
        #expect(r[3].contains("trailing characters"))
        #expect(r[7].contains("surrogate"))
        #expect(r[8].contains("surrogate"))
        #expect(r[12].contains("nesting too deep"))
        #expect(r[13].hasPrefix("false|bad argument #1 to 'decode'") || r[13].contains("bad argument #1"))
    }
}
