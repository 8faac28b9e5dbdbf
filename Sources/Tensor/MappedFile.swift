import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A whole file mapped read-only into memory (`mmap(PROT_READ, MAP_PRIVATE)`), unmapped when the last reference goes.
///
/// Opening costs a system call, not a read: pages are faulted in from the page cache as they are first touched, and
/// the kernel may drop clean ones under memory pressure (they are re-read on demand). What a model file's tensors
/// borrow from the mapping (``QuantizedMatrix`` views of its blocks) keeps this object, and so the mapping, alive.
/// Writing through ``bytes`` would fault: the pages are read-only.
public final class MappedFile: @unchecked Sendable {
    /// The file's bytes.
    public let bytes: UnsafeRawBufferPointer
    /// Whether `bytes` is an `mmap`ed region (false for an in-memory copy or an empty file).
    public let isMapped: Bool

    /// A failure to open, stat or map the file.
    public struct Error: Swift.Error, CustomStringConvertible, Sendable {
        public let description: String
    }

    /// Maps the file at `path`.
    ///
    /// - Throws: ``Error`` naming the path and the system's reason.
    public init(path: String) throws {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw Error(description: "cannot open \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw Error(description: "cannot stat \(path): \(String(cString: strerror(errno)))") }
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw Error(description: "\(path) is not a regular file") }
        let size = Int(st.st_size)
        if size == 0 {
            bytes = UnsafeRawBufferPointer(start: nil, count: 0)
            isMapped = false
            return
        }
        let p = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0)
        guard let p, p != MAP_FAILED else {
            throw Error(description: "cannot map \(path) (\(size) bytes): \(String(cString: strerror(errno)))")
        }
        bytes = UnsafeRawBufferPointer(start: p, count: size)
        isMapped = true
    }

    /// An owned, 64-byte-aligned copy of `data` behind the same interface (for files already in memory).
    public init(copying data: Data) {
        let p = UnsafeMutableRawBufferPointer.allocate(byteCount: max(data.count, 1), alignment: 64)
        data.withUnsafeBytes { if let src = $0.baseAddress { p.baseAddress!.copyMemory(from: src, byteCount: data.count) } }
        bytes = UnsafeRawBufferPointer(start: p.baseAddress, count: data.count)
        isMapped = false
    }

    /// Tells the kernel that `range` (byte offsets) will not be read again soon, so its pages may leave this process's
    /// resident set (`madvise(MADV_DONTNEED)`; a later read faults them back in from the file). For the bytes of a
    /// tensor that was copied elsewhere (reordered rows). Only whole pages inside the range are released.
    public func release(_ range: Range<Int>) {
        guard isMapped, let base = bytes.baseAddress else { return }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let start = (range.lowerBound + page - 1) / page * page, end = range.upperBound / page * page
        guard end > start else { return }
        _ = madvise(UnsafeMutableRawPointer(mutating: base + start), end - start, Int32(MADV_DONTNEED))
    }

    deinit {
        if isMapped {
            munmap(UnsafeMutableRawPointer(mutating: bytes.baseAddress), bytes.count)
        } else {
            bytes.baseAddress?.deallocate()  // nil for an empty file: nothing was allocated
        }
    }
}
