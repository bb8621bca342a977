import NIOCore

/// A server connection's inbound HTTP/2, from bytes to frames: the client's preface, then frames read
/// in place from the socket's buffers, with HEADERS and their CONTINUATION frames joined into whole
/// header blocks. What breaks framing (RFC 9113 §4–§6) is thrown as the connection error it is; what a
/// frame means is the connection's business. Socket-free.
struct HTTP2FrameReader {
    enum Item {
        /// A frame other than HEADERS and CONTINUATION; its payload as sent (padding included).
        case frame(HTTP2Wire.FrameHeader, ByteBuffer)
        /// A whole header block (padding and priority removed) and whether it ends its stream.
        case headerBlock(streamID: UInt32, endStream: Bool, ByteBuffer)
        /// The bytes do not start with the client preface: not HTTP/2. The first few are given.
        case notHTTP2(prefix: [UInt8])
    }

    private enum Stage {
        case awaitingPreface
        case awaitingSettings
        case framing
    }

    /// A header block that continues in CONTINUATION frames.
    private struct PartialBlock {
        var streamID: UInt32
        var endStream: Bool
        var bytes: ByteBuffer
    }

    let maximumHeaderBlockBytes: Int
    private var stage = Stage.awaitingPreface
    /// Bytes read and not yet taken; nil when there are none (an idle connection holds no buffer).
    private var buffered: ByteBuffer?
    private var partial: PartialBlock?

    init(maximumHeaderBlockBytes: Int) {
        self.maximumHeaderBlockBytes = maximumHeaderBlockBytes
    }

    /// The client's preface has arrived (the server sends its own then).
    var sawPreface: Bool { stage != .awaitingPreface }

    mutating func append(_ bytes: ByteBuffer) {
        buffered.append(bytes)
    }

    /// The next item, or nil until more bytes arrive.
    mutating func next() throws(HTTP2Wire.ConnectionError) -> Item? {
        while var buffer = buffered {
            // Taken out while it is read, so that compacting it copies nothing.
            buffered = nil
            if stage == .awaitingPreface {
                let expected = HTTP2Wire.clientPreface
                let seen = buffer.getBytes(at: buffer.readerIndex, length: min(buffer.readableBytes, expected.count)) ?? []
                guard seen.elementsEqual(expected.prefix(seen.count)) else { return .notHTTP2(prefix: seen) }
                guard seen.count == expected.count else {
                    buffered = buffer
                    return nil
                }
                buffer.moveReaderIndex(forwardBy: expected.count)
                stage = .awaitingSettings
            }
            guard let header = HTTP2Wire.FrameHeader.peek(buffer) else {
                buffered = buffer.readableBytes > 0 ? buffer : nil
                return nil
            }
            guard header.length <= HTTP2Wire.defaultMaximumFrameBytes else {
                throw .init(.frameSizeError, "a frame of \(header.length) bytes, above the 16,384 this server allows")
            }
            guard buffer.readableBytes >= HTTP2Wire.frameHeaderBytes + header.length else {
                // The rest of the frame has not arrived.
                if buffer.readerIndex > 0 { buffer.discardReadBytes() }
                buffered = buffer
                return nil
            }
            buffer.moveReaderIndex(forwardBy: HTTP2Wire.frameHeaderBytes)
            let payload = buffer.readSlice(length: header.length)!
            buffered = buffer.readableBytes > 0 ? buffer : nil
            if stage == .awaitingSettings {
                guard header.type == HTTP2Wire.FrameType.settings.rawValue, !header.has(HTTP2Wire.Flag.ack) else {
                    throw .init(.protocolError, "the client's first frame was not SETTINGS")
                }
                stage = .framing
            }
            if let item = try item(header, payload) { return item }
        }
        return nil
    }

    /// A frame as an item; nil for a header block that continues.
    private mutating func item(_ header: HTTP2Wire.FrameHeader, _ payload: ByteBuffer) throws(HTTP2Wire.ConnectionError) -> Item? {
        if var block = partial {
            guard header.type == HTTP2Wire.FrameType.continuation.rawValue, header.streamID == block.streamID else {
                throw .init(.protocolError, "a header block was interrupted by another frame")
            }
            guard block.bytes.readableBytes + payload.readableBytes <= maximumHeaderBlockBytes else {
                throw .init(.enhanceYourCalm, "a header block above \(maximumHeaderBlockBytes) bytes")
            }
            var payload = payload
            block.bytes.writeBuffer(&payload)
            guard header.has(HTTP2Wire.Flag.endHeaders) else {
                partial = block
                return nil
            }
            partial = nil
            return .headerBlock(streamID: block.streamID, endStream: block.endStream, block.bytes)
        }
        switch HTTP2Wire.FrameType(rawValue: header.type) {
        case .headers:
            guard header.streamID != 0 else { throw .init(.protocolError, "HEADERS on stream 0") }
            var fragment = payload
            var padding = 0
            if header.has(HTTP2Wire.Flag.padded) {
                guard let length = fragment.readInteger(as: UInt8.self) else { throw .init(.frameSizeError, "HEADERS too short") }
                padding = Int(length)
            }
            if header.has(HTTP2Wire.Flag.priority) {
                guard fragment.readSlice(length: 5) != nil else { throw .init(.frameSizeError, "HEADERS too short") }
            }
            guard padding <= fragment.readableBytes else { throw .init(.protocolError, "HEADERS padding longer than the frame") }
            fragment = fragment.getSlice(at: fragment.readerIndex, length: fragment.readableBytes - padding)!
            let endStream = header.has(HTTP2Wire.Flag.endStream)
            guard header.has(HTTP2Wire.Flag.endHeaders) else {
                partial = PartialBlock(streamID: header.streamID, endStream: endStream, bytes: fragment)
                return nil
            }
            return .headerBlock(streamID: header.streamID, endStream: endStream, fragment)
        case .continuation:
            throw .init(.protocolError, "CONTINUATION without a header block to continue")
        default:
            return .frame(header, payload)
        }
    }
}
