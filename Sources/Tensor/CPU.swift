import CBLAS
import CKernels
import Foundation

/// What the CPU offers and which of the engine's kernel paths runs on it (`Sources/CKernels/cpu_features.c`).
///
/// Features are detected once (CPUID, and XGETBV to check that the OS saves the wide registers). Every dispatched C
/// kernel follows ``kernelPath``: the best path the CPU supports, lowered by `TRANSFORMER_KERNELS=avx512|avx2|portable`
/// or by assigning ``kernelPath`` (tests pin each path the machine supports in turn).
public enum CPU {
    /// A vector instruction-set level of the C kernels. Each level may use every instruction of the levels below.
    public enum KernelPath: Int, Comparable, CaseIterable, Sendable, CustomStringConvertible {
        case portable = 0, avx2 = 1, avx512 = 2
        public static func < (a: KernelPath, b: KernelPath) -> Bool { a.rawValue < b.rawValue }
        public var description: String { String(cString: ck_kernel_path_name(Int32(rawValue))) }
    }

    /// Feature names the CPU has and the OS enables, in a fixed order (`avx2 fma avx512f …`).
    public static var features: [String] {
        let bits = ck_cpu_features()
        return (0..<32).compactMap { bit in
            guard bits & (1 << UInt32(bit)) != 0, let name = ck_feature_name(Int32(bit)) else { return nil }
            return String(cString: name)
        }
    }

    /// The best kernel path this CPU supports.
    public static var bestKernelPath: KernelPath { KernelPath(rawValue: Int(ck_best_kernel_path())) ?? .portable }

    /// The kernel path in use. Setting it pins every dispatched kernel to that path (clamped to ``bestKernelPath``).
    public static var kernelPath: KernelPath {
        get { KernelPath(rawValue: Int(ck_kernel_path())) ?? .portable }
        set { _ = ck_set_kernel_path(Int32(newValue.rawValue)) }
    }

    /// The paths this machine can run, portable first (what tests iterate over).
    public static var supportedKernelPaths: [KernelPath] { KernelPath.allCases.filter { $0 <= bestKernelPath } }

    /// Runs `body` with the kernel path pinned to `path`, then restores the previous one.
    public static func withKernelPath<R>(_ path: KernelPath, _ body: () throws -> R) rethrows -> R {
        let saved = kernelPath
        kernelPath = path
        defer { kernelPath = saved }
        return try body()
    }

    /// Whether the C kernels were compiled with optimisation. SwiftPM compiles C at -O0 in debug builds (unless
    /// `-Xcc -O2` is given, as `scripts/test.sh` does); the GEMM rule then prefers OpenBLAS.
    public static var kernelsOptimized: Bool { ck_kernels_optimized() != 0 }

    /// The CPU's model name (`/proc/cpuinfo`), or "unknown".
    public static var modelName: String {
        guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else { return "unknown" }
        for line in text.split(separator: "\n") where line.hasPrefix("model name") {
            if let colon = line.firstIndex(of: ":") { return line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces) }
        }
        return "unknown"
    }

    /// The OpenBLAS kernel table in use (`openblas_get_corename`, e.g. "Haswell", "Prescott"), after the core switch.
    public static var blasCore: String {
        Threading.ensureBLASPolicy()
        return String(cString: openblas_get_corename())
    }

    /// What the OpenBLAS core switch did (`Sources/CKernels/openblas_core.c`), or nil when nothing needed doing: when
    /// `OPENBLAS_CORETYPE` is not set and OpenBLAS fell back to a generic table (Prescott, Nehalem, Barcelona…) on a
    /// CPU it does not know, the best table the CPU supports is adopted after an sgemm self-check; a set
    /// `OPENBLAS_CORETYPE` is never overridden (`TRANSFORMER_OPENBLAS_SWITCH=0` turns the switch off). Runs once, on
    /// first BLAS use, and prints its line on stderr.
    public static let blasCoreSwitch: String? = {
        var buffer = [CChar](repeating: 0, count: 512)
        let result = ck_openblas_adopt_best_core(&buffer, buffer.count)
        let line = String(cString: buffer)
        guard result != 0, !line.isEmpty else { return nil }
        FileHandle.standardError.write(("transformer: " + line + "\n").data(using: .utf8)!)
        return line
    }()

    /// One line for benchmark headers and `info`: CPU, features, our kernel path, OpenBLAS core, threads.
    public static var summary: String {
        let env = ProcessInfo.processInfo.environment
        let forced = env["OPENBLAS_CORETYPE"].map { " (OPENBLAS_CORETYPE=\($0))" } ?? ""
        return "cpu: \(modelName) · features: \(features.joined(separator: " ")) · kernels: \(kernelPath)"
            + (kernelsOptimized ? "" : " (C at -O0: debug build)")
            + " · OpenBLAS core: \(blasCore)\(forced) · threads: \(Threading.workers)"
    }
}
