// swift-tools-version:6.0
// The targets are the boxes of the design:
//   WebSocketProtocol  sans-I/O RFC 6455: HTTP upgrade, frames, messages, close handshake
//   EventLoop          epoll, non-blocking sockets, timers, signals, inotify
//   LuaBridge          one owner per lua_State, protected calls, budgets, the `strands` API
//   Broker             connections, rooms, deliveries, hot reload; joins the three above
//   luastrands         the command-line interface
// C shims wrap what Swift cannot call directly; each has its own prefix
// (lshim_ for Lua, lsnet_ for the kernel interfaces).
import PackageDescription

let package = Package(
    name: "LuaStrands",
    products: [
        .executable(name: "luastrands", targets: ["luastrands"]),
    ],
    targets: [
        .systemLibrary(
            name: "CLua",
            pkgConfig: "lua5.4",
            providers: [.apt(["liblua5.4-dev"])]
        ),
        .systemLibrary(
            name: "CCrypto",
            pkgConfig: "libcrypto",
            providers: [.apt(["libssl-dev"])]
        ),
        .target(name: "CLuaShim", dependencies: ["CLua"]),
        .target(name: "CNetShim"),
        .target(name: "WebSocketProtocol", dependencies: ["CCrypto"]),
        .target(name: "EventLoop", dependencies: ["CNetShim"]),
        .target(name: "LuaBridge", dependencies: ["CLua", "CLuaShim", "CCrypto"]),
        .target(name: "Broker", dependencies: ["WebSocketProtocol", "EventLoop", "LuaBridge", "CCrypto"]),
        .executableTarget(name: "luastrands", dependencies: ["Broker"]),
        .testTarget(name: "WebSocketProtocolTests", dependencies: ["WebSocketProtocol"]),
        .testTarget(name: "LuaBridgeTests", dependencies: ["LuaBridge"]),
        .testTarget(name: "BrokerTests", dependencies: ["Broker"]),
    ],
    swiftLanguageModes: [.v6]
)
