/// IEEE binary16 bits → `Float`, exactly: normals rebiased, subnormals scaled, infinities kept, NaNs quieted as the
/// x86 F16C conversion does. Bit-identical to `Float(Float16(bitPattern:))` for all 65 536 inputs, but several times
/// faster on x86_64 Linux, where `Float16` conversion is a library call per element. Used by the safetensors (F16)
/// and GGUF (F16, and the scales of quantised blocks) readers.
@inline(__always)
func halfToFloat(_ half: UInt16) -> Float {
    let sign = UInt32(half & 0x8000) << 16
    let exponent = UInt32(half >> 10) & 0x1F
    let mantissa = UInt32(half & 0x3FF)
    let magnitude: UInt32
    switch exponent {
    case 0: magnitude = (Float(mantissa) * 0x1p-24).bitPattern                               // zero, subnormal
    case 0x1F: magnitude = 0x7F80_0000 | mantissa << 13 | (mantissa != 0 ? 0x40_0000 : 0)  // inf, NaN
    default: magnitude = (exponent + (127 - 15)) << 23 | mantissa << 13                   // normal: rebias
    }
    return Float(bitPattern: sign | magnitude)
}
