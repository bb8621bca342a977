import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOSSL

/// A thin, faithful client for the two calls the ingestor makes: a paginated LIST and a chunked WATCH,
/// on AsyncHTTPClient. Watch streams are read incrementally (`JSONObjectFramer`), so memory stays
/// bounded; the read timeout is the longest silence tolerated on a watch (bookmarks keep it alive).
public final class KubernetesClient: Sendable {
    public let connection: KubernetesConnection
    private let http: HTTPClient
    private let maximumEventBytes: Int
    private let maximumListBytes: Int
    private let responseTimeout: Duration

    /// - Parameters:
    ///   - readTimeout: the longest silence on an open response (a watch's bookmarks keep it alive).
    ///   - responseTimeout: the longest wait for a response's head: a server that accepts connections
    ///     but never answers (hung, or a proxy with no backend) fails the request after this, and the
    ///     source turns unreachable then, not after `readTimeout`.
    /// - Throws: `IngestorError` if the TLS material cannot be loaded.
    public init(
        _ connection: KubernetesConnection, readTimeout: Duration = .seconds(330), connectTimeout: Duration = .seconds(10),
        responseTimeout: Duration = .seconds(30), maximumEventBytes: Int = 16 << 20, maximumListBytes: Int = 512 << 20
    ) throws {
        var tls = TLSConfiguration.makeClientConfiguration()
        do {
            if let ca = connection.certificateAuthority {
                tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMBytes(ca))
            }
            if let certificate = connection.clientCertificate, let key = connection.clientKey {
                tls.certificateChain = try NIOSSLCertificate.fromPEMBytes(certificate).map { .certificate($0) }
                tls.privateKey = .privateKey(try NIOSSLPrivateKey(bytes: key, format: .pem))
            }
        } catch {
            throw IngestorError(.configuration, "cannot load the TLS material for \(connection.server): \(error)")
        }
        if connection.insecureSkipTLSVerify { tls.certificateVerification = .none }
        var configuration = HTTPClient.Configuration(tlsConfiguration: tls)
        configuration.timeout = .init(
            connect: .milliseconds(connectTimeout.milliseconds), read: .milliseconds(readTimeout.milliseconds))
        configuration.decompression = .enabled(limit: .ratio(50))
        self.http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        self.connection = connection
        self.maximumEventBytes = maximumEventBytes
        self.maximumListBytes = maximumListBytes
        self.responseTimeout = responseTimeout
    }

    public func shutdown() async {
        try? await http.shutdown()
    }

    /// Lists everything at `path` in pages of `pageSize`. A `continue` token that expired (410) starts
    /// the list over, as client-go does.
    public func list<Item: KubernetesReadable>(_ type: Item.Type, path: String, pageSize: Int = 500) async throws
        -> (items: [Item], resourceVersion: String)
    {
        var restarts = 0
        restart: while true {
            var items: [Item] = []
            var token: String?
            repeat {
                var query = "limit=\(pageSize)"
                if let token { query += "&continue=\(Self.escape(token))" }
                let body: JSONObjectFramer.Framed
                do {
                    body = try await get(path: path, query: query)
                } catch let error as IngestorError where error.isExpired && token != nil && restarts < 3 {
                    restarts += 1
                    continue restart
                }
                let page: ListPage<Item>
                do {
                    page = try ListPage(json: body.bytes, objectEnds: body.objectEnds)
                } catch {
                    throw IngestorError(.malformed, "cannot decode the list of \(path): \(error)")
                }
                items += page.items
                token = page.continue.flatMap { $0.isEmpty ? nil : $0 }
                if token == nil {
                    guard let version = page.resourceVersion, !version.isEmpty else {
                        throw IngestorError(.malformed, "list of \(path) has no resourceVersion")
                    }
                    return (items, version)
                }
            } while true
        }
    }

    /// Watches `path` from `resourceVersion`. Each element holds the events that arrived in one read
    /// from the connection, in order (one when events trickle in, dozens in a burst: the caller can hand
    /// a burst on at once); each is an event or the decoding failure of one (skipped by the caller,
    /// counted; the stream goes on). The stream finishes when the server ends the watch, and throws
    /// `IngestorError` when it fails (410 included).
    public func watch<Object: KubernetesReadable>(
        _ type: Object.Type, path: String, resourceVersion: String, timeoutSeconds: Int = 300,
        onOpen: (@Sendable () -> Void)? = nil
    ) -> AsyncThrowingStream<[Result<WatchEvent<Object>, IngestorError>], any Error> {
        let query = "watch=true&allowWatchBookmarks=true&resourceVersion=\(Self.escape(resourceVersion))&timeoutSeconds=\(timeoutSeconds)"
        let (stream, continuation) = AsyncThrowingStream<[Result<WatchEvent<Object>, IngestorError>], any Error>.makeStream()
        let task = Task {
            do {
                let response = try await execute(path: path, query: query, deadline: .seconds(Int64(timeoutSeconds) + 30))
                guard response.status == .ok else {
                    throw await Self.failure(response, path: path, limit: 1 << 20)
                }
                onOpen?()
                var framer = JSONObjectFramer(maximumObjectBytes: maximumEventBytes)
                let memo = ReadMemo()
                for try await buffer in response.body {
                    let objects: [[UInt8]]
                    do {
                        objects = try framer.feed(buffer.readableBytesView)
                    } catch {
                        throw IngestorError(.unreachable, "watch of \(path) broke: \(error)")
                    }
                    guard !objects.isEmpty else { continue }
                    continuation.yield(
                        objects.map { object in
                            do throws(JSONReader.Failure) {
                                return .success(try WatchEvent<Object>(json: object, memo: memo))
                            } catch {
                                return .failure(IngestorError(.malformed, "malformed watch event skipped: \(error)"))
                            }
                        })
                }
                continuation.finish()
            } catch let error as IngestorError {
                continuation.finish(throwing: error)
            } catch {
                continuation.finish(throwing: IngestorError(.unreachable, "watch of \(path) failed: \(error)"))
            }
        }
        continuation.onTermination = { _ in task.cancel() }
        return stream
    }

    /// A list page's one JSON object, framed as its bytes arrive: the scan that finds where each item
    /// ends runs while the rest of the page is still on the wire, and the page is copied once.
    private func get(path: String, query: String) async throws -> JSONObjectFramer.Framed {
        let response = try await execute(path: path, query: query, deadline: .seconds(120))
        guard response.status == .ok else { throw await Self.failure(response, path: path, limit: 1 << 20) }
        var framer = JSONObjectFramer(maximumObjectBytes: maximumListBytes, indexing: true)
        if let length = response.headers.first(name: "Content-Length").flatMap(Int.init), length > 0 { framer.reserveCapacity(length) }
        var objects: [JSONObjectFramer.Framed] = []
        do {
            for try await buffer in response.body {
                objects += try framer.feedIndexed(buffer.readableBytesView)
                guard objects.count <= 1 else { break }
            }
        } catch {
            throw IngestorError(.malformed, "cannot read the list of \(path): \(error)")
        }
        guard objects.count == 1, let page = objects.first, framer.pendingBytes == 0 else {
            throw IngestorError(
                .malformed, "the list of \(path) is not one JSON object (\(objects.count) framed, \(framer.pendingBytes) bytes unfinished)")
        }
        return page
    }

    private func execute(path: String, query: String, deadline: Duration) async throws -> HTTPClientResponse {
        var request = HTTPClientRequest(url: "\(connection.server)\(path)?\(query)")
        request.headers.add(name: "Accept", value: "application/json")
        request.headers.add(name: "User-Agent", value: "legation-ingestor")
        switch connection.credentials {
        case .none: break
        case .token(let token): request.headers.add(name: "Authorization", value: "Bearer \(token)")
        case .tokenFile(let file):
            guard let token = try? String(contentsOfFile: file, encoding: .utf8) else {
                throw IngestorError(.authentication, "cannot read the token file \(file)")
            }
            request.headers.add(name: "Authorization", value: "Bearer \(token.trimmingCharacters(in: .whitespacesAndNewlines))")
        case .provider(let provider):
            let token: String
            do { token = try await provider.token() } catch { throw IngestorError(.authentication, "cannot get a token: \(error)") }
            request.headers.add(name: "Authorization", value: "Bearer \(token)")
        }
        let response: HTTPClientResponse
        do {
            let (http, request, responseTimeout) = (http, request, responseTimeout)
            response = try await withThrowingTaskGroup(of: HTTPClientResponse.self) { group in
                group.addTask { try await http.execute(request, timeout: .milliseconds(deadline.milliseconds)) }
                group.addTask {
                    try await Task.sleep(for: responseTimeout)
                    throw IngestorError(.unreachable, "no response within \(responseTimeout)")
                }
                defer { group.cancelAll() }
                guard let first = try await group.next() else { throw CancellationError() }
                return first
            }
        } catch {
            throw IngestorError(.unreachable, "cannot reach \(connection.server)\(path): \(error)")
        }
        if response.status == .unauthorized, case .provider(let provider) = connection.credentials {
            await provider.invalidate()
        }
        return response
    }

    private static func failure(_ response: HTTPClientResponse, path: String, limit: Int) async -> IngestorError {
        let body = (try? await response.body.collect(upTo: limit)).map { Array($0.readableBytesView) } ?? []
        let status = try? StatusObject(json: body)
        return IngestorError(.refused, "\(path) answered \(response.status.code)", status: status, httpStatus: Int(response.status.code))
    }

    private static func escape(_ value: String) -> String {
        value.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "-._~"))) ?? value
    }
}
