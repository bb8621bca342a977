import NIOCore
import NIOHPACK

/// What an xDS connection sends, and when (RFC 9113 §6.9): frames gathered by `writer` and written once
/// per flush; a stream's DATA sent as far as its window, the connection's window and the socket's high
/// watermark allow, the rest waiting in the stream's `pending` (slices of the shared bytes), its
/// trailers after it. `XDSConnection` gives incoming frames their meaning; this paces what goes out.
/// Socket-free: bytes go to the `write` each call is given.
///
/// A class, not a struct the connection holds: `write` can re-enter the connection (NIO reports the
/// socket crossing its watermark from inside a write), which sets `socketWritable` while a send is
/// under way.
final class HTTP2Sender {
    /// What became of a stream's data after a send.
    enum Outcome {
        /// Sent, or nothing to send.
        case sent
        /// Some of it waits for a window or for the socket.
        case waiting
        /// What waited has gone: the stream can take a snapshot again.
        case drained
        /// Its trailers went: this side has ended the stream.
        case ended
    }

    var writer: HTTP2FrameWriter
    /// What the client lets this side send on the connection.
    private(set) var window = HTTP2Wire.defaultWindow
    /// The socket is under its high watermark (kept from writability events: reading the channel's
    /// costs more, and streams ask on every snapshot).
    var socketWritable = true
    private let allocator: ByteBufferAllocator

    init(allocator: ByteBufferAllocator) {
        self.allocator = allocator
        self.writer = HTTP2FrameWriter(allocator: allocator)
    }

    /// The client granted more on the connection. - Returns: false when the window passed 2^31-1.
    func grow(by increment: Int) -> Bool {
        window += increment
        return window <= HTTP2Wire.maximumWindow
    }

    /// Whether a stream can take more to send: nothing of it waits, and the socket is under its watermark.
    func isWritable(_ stream: XDSStream) -> Bool {
        stream.pending.isEmpty && socketWritable
    }

    /// A DATA payload of `stream`, as far as the windows allow; the rest waits.
    func send(data: ByteBuffer, on stream: XDSStream, write: (ByteBuffer) -> Void) -> Outcome {
        guard data.readableBytes > 0 else { return .sent }
        if fitsNow(data.readableBytes, on: stream) {
            // The usual case, one frame now: no queue.
            writer.data(data, stream: stream.id, write: write)
            spend(data.readableBytes, on: stream)
            return .sent
        }
        stream.pending.append(data)
        return pump(stream, write: write)
    }

    /// One gRPC message of `length` bytes that `body` appends: framed straight into the write buffer when
    /// it fits one frame and the windows, else through `send(data:on:write:)`.
    func sendMessage(length: Int, on stream: XDSStream, write: (ByteBuffer) -> Void, _ body: (inout ByteBuffer) -> Void) -> Outcome {
        guard fitsNow(5 + length, on: stream) else {
            var message = allocator.buffer(capacity: 5 + length)
            message.writeMultipleIntegers(UInt8(0), UInt32(length))
            body(&message)
            return send(data: message, on: stream, write: write)
        }
        writer.message(length: length, stream: stream.id, body: body)
        spend(5 + length, on: stream)
        return .sent
    }

    /// Headers now, or trailers (`endStream`) once the stream's waiting data has gone.
    func send(headers: HPACKHeaders, endStream: Bool, on stream: XDSStream) -> Outcome {
        if endStream, !stream.pending.isEmpty {
            stream.pending.trailers = headers
            return .waiting
        }
        writer.headers(headers, endStream: endStream, stream: stream.id)
        return endStream ? .ended : .sent
    }

    /// A stream's waiting DATA, as far as both windows allow and the socket is under its high watermark,
    /// then its trailers if they wait. What stays waits as slices of the shared bytes: a client that opens
    /// large windows (Envoy's are 256 MB) does not move a storm's answers into NIO's write queue at once.
    func pump(_ stream: XDSStream, write: (ByteBuffer) -> Void) -> Outcome {
        let waited = !stream.pending.isEmpty
        while socketWritable, let chunk = stream.pending.take(upTo: min(stream.sendWindow, window, writer.maximumFrameBytes)) {
            writer.data(chunk, stream: stream.id, write: write)
            spend(chunk.readableBytes, on: stream)
        }
        guard stream.pending.isEmpty else { return .waiting }
        if let trailers = stream.pending.trailers {
            stream.pending.trailers = nil
            writer.headers(trailers, endStream: true, stream: stream.id)
            return .ended
        }
        return waited && socketWritable ? .drained : .sent
    }

    /// `count` bytes of `stream` can go now, in one frame, ahead of nothing.
    private func fitsNow(_ count: Int, on stream: XDSStream) -> Bool {
        stream.pending.isEmpty && count <= min(stream.sendWindow, window, writer.maximumFrameBytes)
    }

    private func spend(_ count: Int, on stream: XDSStream) {
        stream.sendWindow -= count
        window -= count
    }
}
