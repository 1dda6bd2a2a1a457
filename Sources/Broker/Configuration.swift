import LuaBridge

/// Everything an operator can tune, with the defaults a production broker
/// should start from. The CLI fills it from flags and environment variables.
public struct BrokerConfiguration {
    /// Address to listen on. Loopback by default: exposing a broker is a decision.
    public var host = "127.0.0.1"
    /// TCP port; 0 picks a free one (the log says which).
    public var port = 8080
    /// Largest message (after reassembly) a client may send; beyond it the connection closes with 1009.
    public var maxMessageSize = 1 << 20
    /// Largest HTTP upgrade request head; beyond it the answer is 431.
    public var maxHeadSize = 16 * 1024
    /// Seconds a client has to complete its upgrade request.
    public var handshakeTimeout = 10.0
    /// Seconds of silence after which a client is closed; it is pinged at half this time.
    public var idleTimeout = 60.0
    /// Seconds to wait for the peer's close frame, or for it to hang up, after ours.
    public var closeTimeout = 5.0
    /// Bytes that may wait in one client's send queue; past that the client is
    /// too slow to keep up: what it has not started receiving is dropped and it
    /// is closed with 1008 (policy violation).
    public var maxSendQueueBytes = 16 << 20
    /// Most sockets served at once, upgraded or still in their upgrade; past it
    /// a new socket gets 503 before the upgrade. nil: the open-file limit less
    /// a reserve, so the limit is reached before the descriptors run out.
    public var maxConnections: Int?
    /// Seconds `shutdown` waits for clients to answer the close before it drops them.
    public var shutdownTimeout = 5.0
    /// Watch the script's folder and reload on change.
    public var watchScript = true
    /// Seconds to wait after the last change before reloading: editors save in several steps.
    public var reloadDebounce = 0.1
    /// The Lua time budget and memory cap.
    public var scriptLimits = ScriptLimits()

    public init() {}
}
