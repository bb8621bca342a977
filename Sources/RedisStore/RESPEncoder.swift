import CHiredis
import NIOCore

/// hiredis's RESP formatter: command arguments to wire bytes. Pure computation, no I/O.
enum RESPEncoder {
    /// Appends the RESP encoding of one command to `buffer`.
    static func encode(_ arguments: [RedisArgument], into buffer: inout ByteBuffer) {
        precondition(!arguments.isEmpty, "a Redis command needs a name")
        var flat: [UInt8] = []
        flat.reserveCapacity(arguments.reduce(0) { $0 + $1.bytes.count } + 1)
        for argument in arguments { flat.append(contentsOf: argument.bytes) }
        flat.append(0)  // never empty, so baseAddress exists
        let lengths = arguments.map(\.bytes.count)
        flat.withUnsafeBufferPointer { base in
            var pointers: [UnsafePointer<CChar>?] = []
            pointers.reserveCapacity(arguments.count)
            var offset = 0
            for length in lengths {
                pointers.append(UnsafeRawPointer(base.baseAddress! + offset).assumingMemoryBound(to: CChar.self))
                offset += length
            }
            var target: UnsafeMutablePointer<CChar>?
            let count = pointers.withUnsafeMutableBufferPointer { argv in
                lengths.withUnsafeBufferPointer { lengths in
                    redisFormatCommandArgv(&target, Int32(arguments.count), argv.baseAddress, lengths.baseAddress)
                }
            }
            guard count > 0, let target else { fatalError("hiredis could not allocate a command buffer") }
            buffer.writeBytes(UnsafeRawBufferPointer(start: target, count: Int(count)))
            redisFreeCommand(target)
        }
    }
}
