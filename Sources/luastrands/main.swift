import Broker
import Foundation
import Glibc
import LuaBridge

/// Resolves a script path given on the command line to an absolute one, so
/// reloads and `require` keep working whatever the working directory.
func absolutePath(_ path: String) -> String {
    if path.hasPrefix("/") { return path }
    return FileManager.default.currentDirectoryPath + "/" + path
}

func printError(_ message: String) {
    Logger.writeToStandardError("luastrands: \(message)\n")
}

let command: Command
do {
    command = try parseCommandLine(Array(CommandLine.arguments.dropFirst()), environment: ProcessInfo.processInfo.environment)
} catch let error as UsageError {
    printError(error.message)
    printError("run 'luastrands --help' for usage")
    exit(2)
}

switch command {
case .help:
    print(usage)
case .version:
    print("luastrands \(luastrandsVersion) (Lua 5.4)")
case .check(let script):
    if let error = ScriptHost.check(scriptPath: absolutePath(script)) {
        printError("\(error)")
        exit(1)
    }
    print("\(script): OK")
case .serve(let script, let configuration, let logLevel):
    let logger = Logger(level: logLevel)
    let broker: BrokerServer
    do {
        broker = try BrokerServer(scriptPath: absolutePath(script), configuration: configuration, logger: logger)
        try broker.start()
    } catch {
        logger.error("cannot start: \(error)")
        exit(1)
    }
    broker.run()
    logger.info("stopped")
    exit(0)
}
