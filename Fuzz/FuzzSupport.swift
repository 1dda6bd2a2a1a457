// What both fuzz targets share: the trap on a broken invariant, and the split of one input
// into pieces (with SplitMix64 from Tests/WebSocketProtocolTests/SplitMix64.swift).
// scripts/fuzz.sh compiles both files into each target.

@inline(never)
func check(_ condition: Bool, _ message: @autoclosure () -> String) {
    if !condition { fatalError("invariant violated: \(message())") }
}

/// Piece boundaries (ascending; repeats mean empty feeds, or reads) for `n` bytes.
func cuts(count n: Int, mode: UInt8, parameter: UInt8, empties: Bool) -> [Int] {
    var out: [Int] = []
    switch mode {
    case 0:  // byte by byte
        out = n > 1 ? Array(1..<n) : []
    case 1:  // random pieces
        var rng = SplitMix64(seed: UInt64(parameter) << 32 | UInt64(n))
        let k = rng.below(min(n, 24) + 1)
        out = (0..<k).map { _ in rng.below(n + 1) }.sorted()
    case 2:  // two pieces
        out = [Int(parameter) % (n + 1)]
    default:  // fixed-size pieces
        let step = Int(parameter % 16) + 1
        out = Array(stride(from: step, to: n, by: step))
    }
    if empties {
        var rng = SplitMix64(seed: UInt64(parameter) ^ 0xE3)
        out += (0..<3).map { _ in rng.below(n + 1) }
        out.sort()
    }
    return out
}
