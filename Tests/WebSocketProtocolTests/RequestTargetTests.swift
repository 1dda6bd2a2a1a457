import Testing
@testable import WebSocketProtocol

private func pairs(_ t: RequestTarget) -> [String] { t.query.map { "\($0.name)=\($0.value)" } }

@Suite struct RequestTargetTests {
    @Test func splitsPathAndQuery() {
        let t = RequestTarget("/chat?token=abc&room=lobby")
        #expect(t.path == "/chat")
        #expect(pairs(t) == ["token=abc", "room=lobby"])
        #expect(t.queryValue("room") == "lobby")
        #expect(t.queryValue("nope") == nil)
    }

    @Test func noQuery() {
        let t = RequestTarget("/chat/room%201")
        #expect(t.path == "/chat/room%201")  // the path is kept exactly as sent
        #expect(t.query.isEmpty)
        #expect(RequestTarget("/x?").query.isEmpty)
        #expect(RequestTarget("/x?").path == "/x")
    }

    @Test func percentAndPlusDecoding() {
        let t = RequestTarget("/p?name=J%C3%BCrgen+M%20x&a%2Bb=1%2B1&q=%3D%26")
        #expect(pairs(t) == ["name=Jürgen M x", "a+b=1+1", "q==&"])
        // '+' is only special in the query.
        #expect(RequestTarget("/a+b?x=1").path == "/a+b")
    }

    @Test func malformedEscapesStayLiteral() {
        #expect(pairs(RequestTarget("/p?a=%zz&b=%4&c=100%")) == ["a=%zz", "b=%4", "c=100%"])
    }

    @Test func repeatedKeysAndEmptyValues() {
        let t = RequestTarget("/p?tag=a&tag=b&empty=&flag&&=v")
        #expect(pairs(t) == ["tag=a", "tag=b", "empty=", "flag=", "=v"])
        #expect(t.query.filter { $0.name == "tag" }.map(\.value) == ["a", "b"])
        #expect(t.query[3].value == "")
    }

    @Test func valueMayContainEquals() {
        #expect(pairs(RequestTarget("/?k=a=b")) == ["k=a=b"])
    }

    @Test func equality() {
        #expect(RequestTarget("/a?x=1&y=2") == RequestTarget("/a?x=%31&y=2"))
        #expect(RequestTarget("/a?x=1&y=2") != RequestTarget("/a?y=2&x=1"))
    }
}
