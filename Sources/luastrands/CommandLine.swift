import Broker
import Foundation
import Glibc
import LuaBridge

/// The version `--version` prints.
let luastrandsVersion = "0.1.0"

let usage = """
luastrands \(luastrandsVersion): a WebSocket broker whose logic is a Lua 5.4 script

Usage:
  luastrands serve SCRIPT [options]   serve WebSocket clients, run SCRIPT's handlers
  luastrands check SCRIPT             load SCRIPT and report errors (exit status 1 on failure)
  luastrands --help | --version

Clients connect to ws://HOST:PORT/<any path>; the path (without its "/") is the
default room. The script decides who may connect and what each message does:
see README.md for the Lua API (on_connection_request, on_message, strands.*).

The script and the .lua modules in its folder are watched: an edit is loaded
into a fresh Lua state and swapped in without dropping a connection. If the
new code fails to load, the old code keeps serving and the error is logged.
SIGHUP reloads too; SIGTERM or SIGINT close every client (1001) and exit.

Options (each also read from the environment variable shown):
  --host ADDR              address to listen on               LUASTRANDS_HOST (127.0.0.1;
                           use 0.0.0.0 or :: to accept remote clients)
  --port N                 TCP port, 0 picks a free one       LUASTRANDS_PORT (8080)
  --max-message-size SIZE  largest client message; larger     LUASTRANDS_MAX_MESSAGE_SIZE (1M)
                           ones close the connection with 1009
  --max-head-size SIZE     largest upgrade request head (431) LUASTRANDS_MAX_HEAD_SIZE (16K)
  --max-send-queue SIZE    bytes queued for one client before LUASTRANDS_MAX_SEND_QUEUE (16M)
                           it counts as too slow: its backlog is
                           dropped and it is closed with 1008
  --max-connections N      sockets served at once; past it    LUASTRANDS_MAX_CONNECTIONS
                           new ones get 503 before upgrading  (open file limit - 512)
  --handshake-timeout SEC  time to send the upgrade request   LUASTRANDS_HANDSHAKE_TIMEOUT (10)
  --idle-timeout SEC       silence before a client is closed; LUASTRANDS_IDLE_TIMEOUT (60)
                           it is pinged at half this time
  --shutdown-timeout SEC   on SIGTERM/SIGINT, how long to let LUASTRANDS_SHUTDOWN_TIMEOUT (5)
                           clients answer close 1001 and take
                           what was queued before exiting
  --handler-budget SEC     longest a Lua handler may run      LUASTRANDS_HANDLER_BUDGET (1)
  --memory-limit SIZE      memory cap of the Lua state        LUASTRANDS_MEMORY_LIMIT (64M)
  --no-watch               do not watch the script's folder   LUASTRANDS_NO_WATCH=1
  --reload-debounce MS     quiet time before a reload         LUASTRANDS_RELOAD_DEBOUNCE (100)
  --log-level LEVEL        debug, info, warn or error         LUASTRANDS_LOG_LEVEL (info)

SIZE is a number of bytes with an optional K, M or G suffix (powers of 1024).

Exit status: 0 after a clean shutdown, 1 if the script cannot be loaded or the
port cannot be bound, 2 on a usage error.
"""

/// A usage mistake, reported with the usage hint and exit status 2.
struct UsageError: Error {
    let message: String
}

/// What the command line asked for.
enum Command {
    case serve(script: String, configuration: BrokerConfiguration, logLevel: LogLevel)
    case check(script: String)
    case help
    case version
}

/// Parses arguments, with environment variables as the defaults that flags override.
func parseCommandLine(_ arguments: [String], environment: [String: String]) throws -> Command {
    var configuration = BrokerConfiguration()
    var logLevel = LogLevel.info
    var positional: [String] = []

    func apply(_ name: String, _ value: String, from source: String) throws {
        func fail(_ expected: String) -> UsageError {
            UsageError(message: "\(source): expected \(expected), got \"\(value)\"")
        }
        /// A finite number of seconds: "inf" would turn a timeout off unnoticed.
        func seconds(allowingZero: Bool = false) throws -> Double {
            guard let seconds = Double(value), seconds.isFinite, allowingZero ? seconds >= 0 : seconds > 0 else {
                throw fail(allowingZero ? "seconds, 0 or more" : "seconds greater than 0")
            }
            return seconds
        }
        switch name {
        case "host":
            configuration.host = value
        case "port":
            guard let port = Int(value), (0...65535).contains(port) else { throw fail("a port from 0 to 65535") }
            configuration.port = port
        case "max-message-size":
            guard let size = parseSize(value), size > 0 else { throw fail("a size such as 1048576 or 1M") }
            configuration.maxMessageSize = size
        case "max-head-size":
            guard let size = parseSize(value), size >= 256 else { throw fail("a size of at least 256 bytes") }
            configuration.maxHeadSize = size
        case "max-send-queue":
            guard let size = parseSize(value), size > 0 else { throw fail("a size such as 16M") }
            configuration.maxSendQueueBytes = size
        case "max-connections":
            guard let count = Int(value), count > 0 else { throw fail("a number of connections greater than 0") }
            configuration.maxConnections = count
        case "shutdown-timeout":
            configuration.shutdownTimeout = try seconds(allowingZero: true)
        case "handshake-timeout":
            configuration.handshakeTimeout = try seconds()
        case "idle-timeout":
            configuration.idleTimeout = try seconds()
        case "handler-budget":
            configuration.scriptLimits.handlerBudget = try seconds()
        case "memory-limit":
            guard let size = parseSize(value), size >= 1 << 20 else { throw fail("a size of at least 1M") }
            configuration.scriptLimits.memoryLimit = size
        case "reload-debounce":
            guard let millis = Double(value), millis >= 0 else { throw fail("milliseconds") }
            configuration.reloadDebounce = millis / 1000
        case "log-level":
            guard let level = LogLevel(name: value) else { throw fail("debug, info, warn or error") }
            logLevel = level
        case "no-watch":
            switch value.lowercased() {
            case "1", "true", "yes", "": configuration.watchScript = false
            case "0", "false", "no": configuration.watchScript = true
            default: throw fail("1 or 0")
            }
        default:
            throw UsageError(message: "unknown option --\(name)")
        }
    }

    let valueOptions: Set = [
        "host", "port", "max-message-size", "max-head-size", "max-send-queue", "max-connections",
        "shutdown-timeout", "handshake-timeout",
        "idle-timeout", "handler-budget", "memory-limit", "reload-debounce", "log-level",
    ]
    for name in valueOptions.union(["no-watch"]).sorted() {
        let variable = "LUASTRANDS_" + name.uppercased().replacingOccurrences(of: "-", with: "_")
        if let value = environment[variable] { try apply(name, value, from: variable) }
    }

    var index = 0
    while index < arguments.count {
        let argument = arguments[index]
        index += 1
        if argument == "--help" || argument == "-h" { return .help }
        if argument == "--version" || argument == "-V" { return .version }
        if argument == "--" {
            positional.append(contentsOf: arguments[index...])
            break
        }
        guard argument.hasPrefix("--") else {
            positional.append(argument)
            continue
        }
        var name = String(argument.dropFirst(2))
        var inlineValue: String?
        if let equals = name.firstIndex(of: "=") {
            inlineValue = String(name[name.index(after: equals)...])
            name = String(name[..<equals])
        }
        if name == "no-watch" {
            try apply(name, inlineValue ?? "1", from: "--no-watch")
            continue
        }
        guard valueOptions.contains(name) else { throw UsageError(message: "unknown option --\(name)") }
        let value: String
        if let inlineValue {
            value = inlineValue
        } else {
            guard index < arguments.count else { throw UsageError(message: "--\(name) needs a value") }
            value = arguments[index]
            index += 1
        }
        try apply(name, value, from: "--\(name)")
    }

    guard let verb = positional.first else { return .help }
    switch verb {
    case "help":
        return .help
    case "version":
        return .version
    case "serve", "check":
        guard positional.count == 2 else {
            throw UsageError(message: "\(verb) takes exactly one SCRIPT argument")
        }
        let script = positional[1]
        return verb == "serve"
            ? .serve(script: script, configuration: configuration, logLevel: logLevel)
            : .check(script: script)
    default:
        throw UsageError(message: "unknown command \"\(verb)\" (expected serve or check)")
    }
}

/// "1048576", "64K", "1M", "2G" -> bytes.
func parseSize(_ text: String) -> Int? {
    guard let last = text.last else { return nil }
    let multipliers: [Character: Int] = ["k": 1 << 10, "K": 1 << 10, "m": 1 << 20, "M": 1 << 20, "g": 1 << 30, "G": 1 << 30]
    if let multiplier = multipliers[last] {
        guard let number = Int(text.dropLast()) else { return nil }
        let (product, overflow) = number.multipliedReportingOverflow(by: multiplier)
        return overflow ? nil : product
    }
    return Int(text)
}
