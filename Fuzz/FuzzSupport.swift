// What both fuzz targets share: the trap on a broken invariant, and the split of one input
// into pieces. scripts/fuzz.sh compiles this file into each target.

@inline(never)
func check(_ condition: Bool, _ message: @autoclosure () -> String) {
    if !condition { fatalError("invariant violated: \(message())") }
}

/// SplitMix64, so a split pattern is a pure function of the input.
struct Mix {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func below(_ n: Int) -> Int { n <= 0 ? 0 : Int(next() % UInt64(n)) }
}

/// Piece boundaries (ascending; repeats mean empty feeds, or reads) for `n` bytes.
func cuts(count n: Int, mode: UInt8, parameter: UInt8, empties: Bool) -> [Int] {
    var out: [Int] = []
    switch mode {
    case 0:  // byte by byte
        out = n > 1 ? Array(1..<n) : []
    case 1:  // random pieces
        var rng = Mix(state: UInt64(parameter) << 32 | UInt64(n))
        let k = rng.below(min(n, 24) + 1)
        out = (0..<k).map { _ in rng.below(n + 1) }.sorted()
    case 2:  // two pieces
        out = [Int(parameter) % (n + 1)]
    default:  // fixed-size pieces
        let step = Int(parameter % 16) + 1
        out = Array(stride(from: step, to: n, by: step))
    }
    if empties {
        var rng = Mix(state: UInt64(parameter) ^ 0xE3)
        out += (0..<3).map { _ in rng.below(n + 1) }
        out.sort()
    }
    return out
}
