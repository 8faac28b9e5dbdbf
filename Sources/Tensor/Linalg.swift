import CBLAS

/// A LAPACK routine reported failure (its `info` code).
public struct LinearAlgebraError: Error, CustomStringConvertible {
    public let routine: String
    public let info: Int32
    public var description: String { "\(routine) failed with info = \(info)" }
}

extension Tensor {
    /// Thin SVD of a 2-D `[m, n]` matrix via LAPACKE `sgesdd`: `self = U · diag(S) · Vt`, with `U` `[m, k]`,
    /// `S` `[k]` descending, `Vt` `[k, n]`, k = min(m, n). Used for low-rank (MHA → MLA) factorisations.
    public func svd() throws -> (u: Tensor, s: Tensor, vt: Tensor) {
        precondition(rank == 2, "svd needs a matrix, got shape \(shape)")
        let (m, n) = (shape[0], shape[1])
        let k = Swift.min(m, n)
        var a = self  // sgesdd overwrites its input
        var u = Tensor(uninitializedShape: [m, k]), s = Tensor(uninitializedShape: [k]), vt = Tensor(uninitializedShape: [k, n])
        let info = a.withUnsafeMutableBufferPointer { pa in
            u.withUnsafeMutableBufferPointer { pu in
                s.withUnsafeMutableBufferPointer { ps in
                    vt.withUnsafeMutableBufferPointer { pv in
                        LAPACKE_sgesdd(LAPACK_ROW_MAJOR, Int8(UInt8(ascii: "S")), Int32(m), Int32(n), pa.baseAddress, Int32(n),
                                       ps.baseAddress, pu.baseAddress, Int32(k), pv.baseAddress, Int32(n))
                    }
                }
            }
        }
        guard info == 0 else { throw LinearAlgebraError(routine: "sgesdd", info: info) }
        return (u, s, vt)
    }

    /// Thin QR of a 2-D `[m, n]` matrix via LAPACKE `sgeqrf` + `sorgqr`: `self = Q · R`, `Q` `[m, k]` with
    /// orthonormal columns, `R` `[k, n]` upper triangular, k = min(m, n).
    public func qr() throws -> (q: Tensor, r: Tensor) {
        precondition(rank == 2, "qr needs a matrix, got shape \(shape)")
        let (m, n) = (shape[0], shape[1])
        let k = Swift.min(m, n)
        var a = self
        var tau = [Float](repeating: 0, count: Swift.max(k, 1))
        var info = a.withUnsafeMutableBufferPointer { pa in
            LAPACKE_sgeqrf(LAPACK_ROW_MAJOR, Int32(m), Int32(n), pa.baseAddress, Int32(n), &tau)
        }
        guard info == 0 else { throw LinearAlgebraError(routine: "sgeqrf", info: info) }
        var r = Tensor.zeros([k, n])
        a.withUnsafeBufferPointer { pa in
            r.withUnsafeMutableBufferPointer { pr in
                for i in 0..<k { for j in i..<n { pr[i * n + j] = pa[i * n + j] } }
            }
        }
        // Q: the first k columns of the reflector product.
        var q = a.sliced(axis: 1, 0..<k)
        info = q.withUnsafeMutableBufferPointer { pq in
            LAPACKE_sorgqr(LAPACK_ROW_MAJOR, Int32(m), Int32(k), Int32(k), pq.baseAddress, Int32(k), &tau)
        }
        guard info == 0 else { throw LinearAlgebraError(routine: "sorgqr", info: info) }
        return (q, r)
    }
}
