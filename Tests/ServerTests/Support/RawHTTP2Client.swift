import Foundation
import LegationTestSupport
import NIOCore
import NIOHPACK

@testable import Server

#if canImport(Glibc)
    import Glibc
#endif

/// A client that writes HTTP/2 bytes as it is told, right or wrong, and reads frames back: for the
/// listener's answers to what no well-behaved client sends. Blocking, on a loopback socket; every
/// read has a deadline.
final class RawHTTP2Client {
    struct Frame: CustomStringConvertible {
        var type: UInt8
        var flags: UInt8
        var streamID: UInt32
        var payload: [UInt8]

        /// A GOAWAY's error code and debug text.
        var goAway: (code: UInt32, reason: String)? {
            guard type == HTTP2Wire.FrameType.goAway.rawValue, payload.count >= 8 else { return nil }
            let code = payload[4..<8].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
            return (code, String(decoding: payload.dropFirst(8), as: UTF8.self))
        }

        var description: String { "frame type \(type) flags \(flags) stream \(streamID), \(payload.count) bytes" }
    }

    private let fd: Int32
    private var received: [UInt8] = []
    /// The peer closed the connection.
    private(set) var closed = false

    /// `receiveBuffer`: the socket's SO_RCVBUF, so that the kernel holds little of what this client does not read.
    init(port: Int, receiveBuffer: Int32? = nil) throws {
        guard let fd = connectToLoopback(port: port) else { throw TestSupportError("cannot connect to 127.0.0.1:\(port)") }
        self.fd = fd
        if var size = receiveBuffer {
            _ = setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        }
    }

    deinit { Glibc.close(fd) }

    func send(_ bytes: [UInt8]) {
        var offset = 0
        while offset < bytes.count {
            let sent = bytes[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard sent > 0 else { return }
            offset += sent
        }
    }

    /// The preface and an empty SETTINGS, or `settings`.
    func greet(settings: [(HTTP2Wire.Setting, UInt32)] = []) {
        send(HTTP2Wire.clientPreface)
        send(Self.frame(.settings, payload: settings.flatMap { Self.bytes(UInt32($0.0.rawValue), width: 2) + Self.bytes($0.1, width: 4) }))
    }

    /// Opens `stream` with a gRPC request's headers for `path`.
    func open(stream: UInt32, path: String, endStream: Bool = false) {
        let headers: HPACKHeaders = [
            ":method": "POST", ":scheme": "http", ":path": path, ":authority": "localhost", "content-type": "application/grpc",
            "te": "trailers"
        ]
        var block = ByteBuffer()
        HTTP2Wire.headerBlock(headers, into: &block)
        let flags = HTTP2Wire.Flag.endHeaders | (endStream ? HTTP2Wire.Flag.endStream : 0)
        send(Self.frame(.headers, flags: flags, stream: stream, payload: Array(buffer: block)))
    }

    /// One gRPC message in one DATA frame.
    func sendMessage(_ message: [UInt8], stream: UInt32, endStream: Bool = false) {
        let payload = [0] + Self.bytes(UInt32(message.count), width: 4) + message
        send(Self.frame(.data, flags: endStream ? HTTP2Wire.Flag.endStream : 0, stream: stream, payload: payload))
    }

    static func frame(_ type: HTTP2Wire.FrameType, flags: UInt8 = 0, stream: UInt32 = 0, payload: [UInt8] = []) -> [UInt8] {
        frame(type: type.rawValue, flags: flags, stream: stream, payload: payload)
    }

    static func frame(type: UInt8, flags: UInt8 = 0, stream: UInt32 = 0, payload: [UInt8] = [], length: Int? = nil) -> [UInt8] {
        bytes(UInt32(length ?? payload.count), width: 3) + [type, flags] + bytes(stream, width: 4) + payload
    }

    static func bytes(_ value: UInt32, width: Int) -> [UInt8] {
        (0..<width).reversed().map { UInt8(truncatingIfNeeded: value >> (8 * UInt32($0))) }
    }

    /// The next frame, or nil when the connection closed or nothing came within `timeout`.
    func next(timeout: Duration = .seconds(5)) -> Frame? {
        let deadline = ContinuousClock.now + timeout
        while true {
            if received.count >= 9 {
                let length = Int(received[0]) << 16 | Int(received[1]) << 8 | Int(received[2])
                if received.count >= 9 + length {
                    let id = received[5..<9].reduce(UInt32(0)) { $0 << 8 | UInt32($1) } & 0x7fff_ffff
                    let frame = Frame(type: received[3], flags: received[4], streamID: id, payload: Array(received[9..<(9 + length)]))
                    received.removeFirst(9 + length)
                    return frame
                }
            }
            guard fill(until: deadline) else { return nil }
        }
    }

    /// Frames until one matches `condition` (returned last), the connection closes, or `timeout`.
    func frames(until condition: (Frame) -> Bool, timeout: Duration = .seconds(5)) -> [Frame] {
        let deadline = ContinuousClock.now + timeout
        var frames: [Frame] = []
        while ContinuousClock.now < deadline, let frame = next(timeout: deadline - ContinuousClock.now) {
            frames.append(frame)
            if condition(frame) { break }
        }
        return frames
    }

    /// Reads until the peer closes (true) or `timeout` passes (false), dropping what arrives.
    func waitForClose(timeout: Duration = .seconds(5)) -> Bool {
        let deadline = ContinuousClock.now + timeout
        while !closed, fill(until: deadline) { received.removeAll() }
        return closed
    }

    /// Everything until the peer closes, as text.
    func readAll(timeout: Duration = .seconds(5)) -> String {
        let deadline = ContinuousClock.now + timeout
        while fill(until: deadline) {}
        return String(decoding: received, as: UTF8.self)
    }

    /// Reads what is there. - Returns: false on close or at the deadline.
    private func fill(until deadline: ContinuousClock.Instant) -> Bool {
        guard !closed else { return false }
        let left = deadline - ContinuousClock.now
        guard left > .zero else { return false }
        var poll = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        let milliseconds = Int32(left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000)
        guard Glibc.poll(&poll, 1, max(1, milliseconds)) > 0 else { return false }
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        let count = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        guard count > 0 else {
            closed = true
            return false
        }
        received += chunk.prefix(count)
        return true
    }
}
