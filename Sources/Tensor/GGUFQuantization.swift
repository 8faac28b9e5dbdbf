import CKernels
import Foundation

// Dequantisation of ggml tensor data to float32, bit-exact with ggml's reference `dequantize_row_*` in
// ggml-quants.c (and gguf-py's `gguf.quants.dequantize`). Block layouts, from ggml-common.h (all little-endian,
// `ggml_half` = IEEE binary16):
//
//     block_q4_0 { ggml_half d; uint8_t qs[16]; }              18 bytes, 32 elements: x = (q - 8) * d
//     block_q4_1 { ggml_half d; ggml_half m; uint8_t qs[16]; } 20 bytes, 32 elements: x = q * d + m
//     block_q8_0 { ggml_half d; int8_t qs[32]; }               34 bytes, 32 elements: x = q * d
//
// Q5_0, Q5_1 and the K-quants (Q2_K … Q6_K, 256-element super-blocks) are decoded in C: layouts and rounding in
// Sources/CKernels/kquants.c.
//
// In the 4-bit formats byte j holds element j in its low nibble and element j + 16 in its high nibble. The
// products and sums are rounded separately (never fused), as in the C reference compiled without contraction and
// in numpy.

enum GGUFDequantizer {
    /// Elements per parallel work item; smaller tensors are converted on the calling thread.
    static let chunkElements = 1 << 15

    /// Converts `raw` (a whole tensor of `type`, rows of `rowLength` elements) into `out`.
    ///
    /// `type` must be one of ``GGMLType/dequantizable`` and `raw` exactly the tensor's bytes (checked at open).
    static func dequantize(_ raw: UnsafeRawBufferPointer, type: GGMLType, rowLength: Int,
                           into out: UnsafeMutableBufferPointer<Float>) {
        guard out.count > 0, let src = raw.baseAddress, let dst = out.baseAddress else { return }
        let blockSize = type.blockSize!, blockBytes = type.blockBytes!
        precondition(rowLength > 0 && out.count % rowLength == 0 && rowLength % blockSize == 0
                     && raw.count == out.count / blockSize * blockBytes,
                     "GGUF dequantise: \(raw.count) bytes of \(type) do not match \(out.count) elements")
        let kernel: (UnsafeRawPointer, UnsafeMutablePointer<Float>, Int) -> Void
        switch type {
        case .f32: kernel = copyF32
        case .f16: kernel = convertF16
        case .bf16: kernel = convertBF16
        case .q8_0: kernel = dequantizeQ8_0
        case .q4_0: kernel = dequantizeQ4_0
        case .q4_1: kernel = dequantizeQ4_1
        default:
            // Q5_0, Q5_1 and the K-quants: C block decoders (Sources/CKernels/kquants.c), bit-exact on every path.
            let t = Int32(type.rawValue)
            precondition(ck_quant_block_elements(t) == blockSize, "GGUF dequantise: \(type) is not supported")
            kernel = { src, dst, blocks in _ = ck_quant_dequantize(t, src, dst, blocks) }
        }
        // Work items are whole rows (a block never spans two rows), about `chunkElements` elements each.
        let rows = out.count / rowLength
        let rowsPerChunk = max(1, chunkElements / rowLength)
        let chunks = (rows + rowsPerChunk - 1) / rowsPerChunk
        let rowBlocks = rowLength / blockSize
        parallelFor(chunks) { c in
            let first = c * rowsPerChunk
            let count = min(rowsPerChunk, rows - first)
            kernel(src + first * rowBlocks * blockBytes, dst + first * rowLength, count * rowBlocks)
        }
    }

    // MARK: Kernels: `blocks` blocks from `src` to `dst`

    private static func copyF32(_ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, _ blocks: Int) {
        UnsafeMutableRawPointer(dst).copyMemory(from: src, byteCount: blocks * 4)
    }

    private static func convertF16(_ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, _ blocks: Int) {
        for i in 0..<blocks { dst[i] = halfToFloat(src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)) }
    }

    private static func convertBF16(_ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, _ blocks: Int) {
        for i in 0..<blocks {
            dst[i] = Float(bitPattern: UInt32(src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)) << 16)
        }
    }

    private static func dequantizeQ8_0(_ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, _ blocks: Int) {
        for b in 0..<blocks {
            let block = src + b * 34
            let d = halfToFloat(block.loadUnaligned(as: UInt16.self))
            let qs = block + 2
            let y = dst + b * 32
            for j in 0..<32 { y[j] = Float(qs.load(fromByteOffset: j, as: Int8.self)) * d }
        }
    }

    private static func dequantizeQ4_0(_ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, _ blocks: Int) {
        for b in 0..<blocks {
            let block = src + b * 18
            let d = halfToFloat(block.loadUnaligned(as: UInt16.self))
            let qs = block + 2
            let y = dst + b * 32
            for j in 0..<16 {
                let q = qs.load(fromByteOffset: j, as: UInt8.self)
                y[j] = Float(Int32(q & 0x0F) - 8) * d
                y[j + 16] = Float(Int32(q >> 4) - 8) * d
            }
        }
    }

    private static func dequantizeQ4_1(_ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, _ blocks: Int) {
        for b in 0..<blocks {
            let block = src + b * 20
            let d = halfToFloat(block.loadUnaligned(as: UInt16.self))
            let m = halfToFloat(block.loadUnaligned(fromByteOffset: 2, as: UInt16.self))
            let qs = block + 4
            let y = dst + b * 32
            for j in 0..<16 {
                let q = qs.load(fromByteOffset: j, as: UInt8.self)
                let lo = Float(q & 0x0F) * d
                let hi = Float(q >> 4) * d
                y[j] = lo + m
                y[j + 16] = hi + m
            }
        }
    }

}
