import Foundation

/// This process's memory as the kernel counts it (`/proc/self/status`; Linux only, nil elsewhere).
///
/// The resident set includes the pages of memory-mapped files that have been touched (a GGUF's weights read in
/// place), so it is the number to compare with a model file's size.
public enum ProcessMemory {
    /// `VmRSS`: bytes resident now.
    public static var residentBytes: Int? { statusField("VmRSS") }
    /// `VmHWM`: the peak resident bytes so far.
    public static var peakResidentBytes: Int? { statusField("VmHWM") }

    /// A `kB` field of /proc/self/status, in bytes.
    static func statusField(_ name: String) -> Int? {
        guard let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix(name + ":") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count >= 2, let kb = Int(fields[1]) else { return nil }
            return kb * 1024
        }
        return nil
    }
}
