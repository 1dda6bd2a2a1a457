import Testing
@testable import LuaBridge

@Suite struct ConnectionRequestTests {
    static let decisionScript = """
    function on_connection_request(r)
      local m = r.query.mode
      if m == "true" then return true
      elseif m == "false" then return false
      elseif m == "nil" then return nil
      elseif m == "notaccepted" then r.accepted = false
      elseif m == "404" then return false, 404
      elseif m == "599" then return false, 599
      elseif m == "close" then return false, 4001, "why"
      elseif m == "closenoreason" then return false, 4999
      elseif m == "200" then return false, 200
      elseif m == "3999" then return false, 3999, "x"
      elseif m == "closebadreason" then return false, 4000, {}
      elseif m == "string" then return "yes"
      elseif m == "float" then return false, 404.5
      elseif m == "error" then error("boom")
      elseif m == "loop" then while true do end
      elseif m == "badroom" then r.context.room_id = 5
      elseif m == "badmeta" then r.context.metadata = { f = print }
      elseif m == "cycle" then local t = {}; t.t = t; r.context.metadata = t
      end
    end
    function on_error(err, ctx) strands.send_private_message("onerror", ctx.client_id) end
    """

    func decide(_ host: ScriptHost, _ mode: String) -> ConnectionDecision {
        let before = host.stackTop
        let d = host.connectionRequest(ConnectionRequest(url: "/?mode=\(mode)", query: [("mode", mode)]),
                                       context: ScriptContext(clientID: "c-\(mode)", roomID: "r"))
        #expect(host.stackTop == before)
        return d
    }

    @Test func everyDecisionForm() throws {
        let (host, rec, _) = try makeHost(Self.decisionScript, limits: .init(handlerBudget: 0.2))
        #expect(decide(host, "true") == .accept)
        #expect(decide(host, "nil") == .accept)
        #expect(decide(host, "false") == .rejectHTTP(status: 403))
        #expect(decide(host, "notaccepted") == .rejectHTTP(status: 403))
        #expect(decide(host, "404") == .rejectHTTP(status: 404))
        #expect(decide(host, "599") == .rejectHTTP(status: 599))
        #expect(decide(host, "close") == .rejectClose(code: 4001, reason: "why"))
        #expect(decide(host, "closenoreason") == .rejectClose(code: 4999, reason: ""))
        #expect(rec.warnings().isEmpty)
        #expect(rec.errors().isEmpty)
        for bad in ["200", "3999", "closebadreason", "string", "float"] {
            #expect(decide(host, bad) == .rejectHTTP(status: 403), "\(bad)")
        }
        #expect(rec.warnings().count == 5)
        #expect(rec.reports("onerror").isEmpty)
        for failing in ["error", "loop", "badroom", "badmeta", "cycle"] {
            #expect(decide(host, failing) == .rejectHTTP(status: 500), "\(failing)")
        }
        #expect(rec.errors().count == 5)
        #expect(rec.errors()[0].hasPrefix("handler on_connection_request failed for client c-error:"))
        #expect(rec.errors()[0].contains("boom"))
        #expect(rec.errors()[1].contains("time budget"))
        #expect(rec.errors()[2].contains("room_id must be a string"))
        #expect(rec.errors()[3].contains("function"))
        #expect(rec.errors()[4].contains("cycle"))
        #expect(rec.reports("onerror") == ["c-error", "c-loop", "c-badroom", "c-badmeta", "c-cycle"])
        // still fine afterwards
        #expect(decide(host, "true") == .accept)
    }

    @Test func missingHandlerAccepts() throws {
        let (host, _, _) = try makeHost("function on_message() end")
        #expect(host.connectionRequest(ConnectionRequest(), context: ScriptContext(clientID: "c", roomID: "r")) == .accept)
    }

    @Test func requestTableShape() throws {
        let (host, rec, _) = try makeHost("""
        function on_connection_request(r)
          local h = r.headers
          local out = {
            host = h.host, multi = h["x-multi"], auth1 = h["Authorization"], auth2 = h.AUTHORIZATION,
            auth3 = h.authorization, missing = h["X-Missing"] == nil,
            url = r.url, path = r.path, q = r.query.q, tags = r.query.tag,
            addr = r.remote_addr, port = r.remote_port, port_type = math.type(r.remote_port),
            client = r.context.client_id, room = r.context.room_id,
            meta_type = type(r.context.metadata), meta_empty = next(r.context.metadata) == nil,
            accepted = r.accepted,
          }
          strands.send_private_message("t", strands.json.encode(out))
          return true
        end
        """)
        let req = ConnectionRequest(
            headers: [("host", "example.org"), ("x-multi", "a"), ("authorization", "Bearer t"), ("x-multi", "b"), ("x-multi", "c")],
            url: "/chat?q=1&tag=x&tag=y", path: "/chat",
            query: [("q", "1"), ("tag", "x"), ("tag", "y")],
            remoteAddress: "::1", remotePort: 54321)
        let ctx = ScriptContext(clientID: "client-1", roomID: "/chat")
        #expect(host.connectionRequest(req, context: ctx) == .accept)
        let r = json(rec.reports("t").first ?? "")
        #expect(r["host"] as? String == "example.org")
        #expect(r["multi"] as? [String] == ["a", "b", "c"])
        #expect(r["auth1"] as? String == "Bearer t")
        #expect(r["auth2"] as? String == "Bearer t")
        #expect(r["auth3"] as? String == "Bearer t")
        #expect(r["missing"] as? Bool == true)
        #expect(r["url"] as? String == "/chat?q=1&tag=x&tag=y")
        #expect(r["path"] as? String == "/chat")
        #expect(r["q"] as? String == "1")
        #expect(r["tags"] as? [String] == ["x", "y"])
        #expect(r["addr"] as? String == "::1")
        #expect(r["port"] as? Int == 54321)
        #expect(r["port_type"] as? String == "integer")
        #expect(r["client"] as? String == "client-1")
        #expect(r["room"] as? String == "/chat")
        #expect(r["meta_type"] as? String == "table")
        #expect(r["meta_empty"] as? Bool == true)
        #expect(r["accepted"] as? Bool == true)
        #expect(host.stackTop == 0)
    }

    @Test func metadataRoundTripsIntoLaterHandlersAndSurvivesReload() throws {
        let script = """
        function on_connection_request(r)
          r.context.room_id = "room-" .. r.query.room
          r.context.metadata = { user = "ann", level = 3, score = 2.5, tags = { "a", "b" }, nested = { deep = { ok = true } } }
          return true
        end
        function on_message(m, ctx)
          local md = ctx.metadata
          strands.send_private_message("t", table.concat({ ctx.room_id, md.user, math.type(md.level), md.level,
            math.type(md.score), md.score, md.tags[1], md.tags[2], tostring(md.nested.deep.ok), VERSION or "v1" }, " "))
        end
        """
        let (host, rec, dir) = try makeHost(script)
        let ctx = ScriptContext(clientID: "c", roomID: "/")
        #expect(host.connectionRequest(ConnectionRequest(query: [("room", "9")]), context: ctx) == .accept)
        #expect(ctx.roomID == "room-9")
        #expect(ctx.metadata == .table([
            LuaTableEntry(key: .string("level"), value: .integer(3)),
            LuaTableEntry(key: .string("nested"), value: .table([
                LuaTableEntry(key: .string("deep"), value: .table([LuaTableEntry(key: .string("ok"), value: .bool(true))])),
            ])),
            LuaTableEntry(key: .string("score"), value: .number(2.5)),
            LuaTableEntry(key: .string("tags"), value: .table([
                LuaTableEntry(key: .integer(1), value: .string("a")),
                LuaTableEntry(key: .integer(2), value: .string("b")),
            ])),
            LuaTableEntry(key: .string("user"), value: .string("ann")),
        ]))
        host.newConnection(ctx)
        send(host, "x", ctx)
        #expect(rec.reports("t") == ["room-9 ann integer 3 float 2.5 a b true v1"])
        let before = ctx.metadata
        dir.write("main.lua", "VERSION = 'v2'\n" + script)
        #expect(host.reload() == nil)
        send(host, "x", ctx)
        #expect(rec.reports("t").last == "room-9 ann integer 3 float 2.5 a b true v2")
        #expect(ctx.metadata == before)
        #expect(ctx.roomID == "room-9")
        #expect(host.stackTop == 0)
    }

    @Test func metadataMayBeAnyValueAndRejectionLeavesContextAlone() throws {
        let (host, _, _) = try makeHost("""
        function on_connection_request(r)
          r.context.metadata = r.query.v == "s" and "plain" or nil
          r.context.room_id = "changed"
          return r.query.v == "s"
        end
        """)
        let a = ScriptContext(clientID: "a", roomID: "r")
        #expect(host.connectionRequest(ConnectionRequest(query: [("v", "s")]), context: a) == .accept)
        #expect(a.metadata == .string("plain"))
        let b = ScriptContext(clientID: "b", roomID: "r")
        #expect(host.connectionRequest(ConnectionRequest(query: [("v", "n")]), context: b) == .rejectHTTP(status: 403))
        #expect(b.roomID == "r")
        #expect(b.metadata == .table([]))
    }
}
