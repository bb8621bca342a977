import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// A fake Kubernetes API server for tests and benchmarks, speaking the real API's JSON over HTTP/1.1
/// (optionally TLS): paginated LIST with `limit`/`continue` and a collection `resourceVersion`, chunked
/// WATCH streams from a resource version with bookmarks and `timeoutSeconds`, `410 Gone` for versions
/// older than its history (as an HTTP status or an `ERROR` event), and bearer-token auth answering with
/// the real 401/403 Status bodies. Scripted changes reach every open watch at once.
///
/// Serves `endpointslices` (discovery.k8s.io/v1) and `services` (v1), cluster-wide or per namespace.
public final class FakeKubernetesAPI: @unchecked Sendable {
    public enum Resource: String, Sendable, CaseIterable {
        case endpointslices, services
    }

    public struct Options: Sendable {
        public var tls: TestCertificates?
        /// Accepted bearer tokens; empty = no auth.
        public var tokens: Set<String> = []
        /// Tokens that authenticate but may not list or watch (403).
        public var forbiddenTokens: Set<String> = []
        /// Answer a too-old watch version with an ERROR event in a 200 stream instead of HTTP 410.
        public var expiredAsEvent = false
        public init() {}
    }

    private struct Event {
        var resourceVersion: Int
        var resource: Resource
        var namespace: String
        var line: [UInt8]
    }

    private final class Watcher: Sendable {
        let channel: any Channel
        let resource: Resource
        let namespace: String?
        let bookmarks: Bool
        init(channel: any Channel, resource: Resource, namespace: String?, bookmarks: Bool) {
            self.channel = channel
            self.resource = resource
            self.namespace = namespace
            self.bookmarks = bookmarks
        }
    }

    public let options: Options
    public private(set) var port = 0
    private let lock = NSLock()
    private var objects: [Resource: [String: [String: Any]]] = [:]  // "ns/name" → object
    private var encoded: [Resource: [String: [UInt8]]] = [:]  // "ns/name" → its JSON, for fast lists
    private var history: [Event] = []
    private var oldestRetained = 0  // versions before this are compacted
    private var revision = 100
    private var watchers: [ObjectIdentifier: Watcher] = [:]
    /// Connections and requests as they came, for `requests` and a failing test's message: when, the
    /// request's URI (nil for a connection's events), and what happened.
    private var timeline: [(at: ContinuousClock.Instant, uri: String?, line: String)] = []
    private let started = ContinuousClock.now
    private var serverChannel: (any Channel)?
    private var partitioned = false

    public init(_ options: Options = Options()) async throws {
        self.options = options
        let sslContext = try options.tls.map { certificates in
            try NIOSSLContext(
                configuration: .makeServerConfiguration(
                    certificateChain: try NIOSSLCertificate.fromPEMFile(certificates.serverCertificate).map { .certificate($0) },
                    privateKey: .privateKey(try NIOSSLPrivateKey(file: certificates.serverKey, format: .pem))))
        }
        let bootstrap = ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let sslContext {
                        try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: sslContext))
                    }
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(Handler(api: self))
                }
            }
        let channel = try await bootstrap.bind(host: "127.0.0.1", port: 0).get()
        serverChannel = channel
        port = channel.localAddress?.port ?? 0
    }

    deinit { serverChannel?.close(promise: nil) }

    /// `https://localhost:<port>` with TLS, `http://127.0.0.1:<port>` without.
    public var baseURL: String { options.tls == nil ? "http://127.0.0.1:\(port)" : "https://localhost:\(port)" }

    /// Every request line received, in order (`GET /api/v1/services?limit=2 HTTP/1.1` → path and query).
    public var requests: [String] { lock.withLock { timeline.compactMap(\.uri) } }

    /// The last `count` lines of the request timeline: milliseconds since start, what arrived, and how it
    /// was answered ("→ 200 watch, 3 events", "→ 410", "→ closed"), for a failing test's message.
    public func timeline(last count: Int = 40) -> String {
        lock.withLock {
            timeline.suffix(count).map { entry in
                let elapsed = (entry.at - started).components
                return "+\(elapsed.seconds * 1000 + elapsed.attoseconds / 1_000_000_000_000_000) ms \(entry.line)"
            }.joined(separator: "\n")
        }
    }

    fileprivate func note(_ line: String, uri: String? = nil) {
        lock.withLock { timeline.append((ContinuousClock.now, uri, line)) }
    }

    /// The current resource version.
    public var resourceVersion: Int { lock.withLock { revision } }

    /// Number of open watch streams.
    public var openWatches: Int { lock.withLock { watchers.count } }

    public func shutdown() async {
        try? await serverChannel?.close()
        let open = lock.withLock { Array(watchers.values) }
        for watcher in open { try? await watcher.channel.close() }
    }

    // MARK: Scripting

    /// Adds or replaces an object (JSON as the API serves it); open watches get ADDED or MODIFIED.
    @discardableResult
    public func apply(_ resource: Resource, json: Data) throws -> Int {
        guard var object = try JSONSerialization.jsonObject(with: json) as? [String: Any],
            var metadata = object["metadata"] as? [String: Any], let name = metadata["name"] as? String
        else { throw TestSupportError("not a Kubernetes object") }
        let namespace = metadata["namespace"] as? String ?? "default"
        metadata["namespace"] = namespace
        return try lock.withLock {
            revision += 1
            metadata["resourceVersion"] = String(revision)
            object["metadata"] = metadata
            let key = "\(namespace)/\(name)"
            let type = objects[resource]?[key] == nil ? "ADDED" : "MODIFIED"
            objects[resource, default: [:]][key] = object
            encoded[resource, default: [:]][key] = Array(try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]))
            try record(type, object, resource: resource, namespace: namespace)
            return revision
        }
    }

    /// Deletes an object; open watches get DELETED with its last state.
    public func delete(_ resource: Resource, namespace: String, name: String) throws {
        try lock.withLock {
            guard var object = objects[resource]?.removeValue(forKey: "\(namespace)/\(name)") else { return }
            encoded[resource]?["\(namespace)/\(name)"] = nil
            revision += 1
            var metadata = object["metadata"] as? [String: Any] ?? [:]
            metadata["resourceVersion"] = String(revision)
            object["metadata"] = metadata
            try record("DELETED", object, resource: resource, namespace: namespace)
        }
    }

    /// Forgets the event history, as etcd compaction does: watches from older versions get 410.
    public func compact() {
        lock.withLock {
            history = []
            oldestRetained = revision + 1
        }
    }

    /// Sends a BOOKMARK at the current version to every watch that asked for bookmarks.
    public func sendBookmarks() {
        let (targets, version) = lock.withLock { (Array(watchers.values), revision) }
        for watcher in targets where watcher.bookmarks {
            let kind = watcher.resource == .services ? "Service" : "EndpointSlice"
            let line =
                #"{"type":"BOOKMARK","object":{"kind":"\#(kind)","apiVersion":"v1","metadata":{"resourceVersion":"\#(version)"}}}"# + "\n"
            write(Array(line.utf8), to: watcher)
        }
    }

    /// Writes raw bytes into every open watch of `resource` (garbage, partial lines, huge lines).
    public func injectIntoWatches(_ resource: Resource, bytes: [UInt8]) {
        let targets = lock.withLock { watchers.values.filter { $0.resource == resource } }
        for watcher in targets { write(bytes, to: watcher) }
    }

    /// Sends an ERROR event (410 Expired) into every open watch of `resource`, as a real server does.
    public func expireWatches(_ resource: Resource) {
        let line =
            #"{"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"too old resource version","reason":"Expired","code":410}}"#
            + "\n"
        injectIntoWatches(resource, bytes: Array(line.utf8))
    }

    /// Cuts the network path, as a partition does: open watches end and every request from now on is
    /// answered 503 (as a load balancer with no backend left), until `heal()`. Scripted changes are
    /// still recorded.
    public func partition() {
        let targets = lock.withLock { () -> [Watcher] in
            partitioned = true
            defer { watchers = [:] }
            return Array(watchers.values)
        }
        for watcher in targets { Self.end(watcher.channel) }
    }

    /// Ends a partition: requests are answered again.
    public func heal() {
        lock.withLock { partitioned = false }
    }

    /// Ends every open watch cleanly (as the server's watch timeout does).
    public func closeWatches() {
        let targets = lock.withLock { () -> [Watcher] in
            defer { watchers = [:] }
            return Array(watchers.values)
        }
        for watcher in targets { Self.end(watcher.channel) }
    }

    /// Ends a watch response and closes its connection. Its watcher is already unregistered, so no
    /// event is written after the end.
    fileprivate static func end(_ channel: any Channel) {
        channel.eventLoop.execute {
            channel.writeAndFlush(HTTPServerResponsePart.end(nil)).whenComplete { _ in channel.close(promise: nil) }
        }
    }

    fileprivate func unregister(_ channel: any Channel) {
        lock.withLock { _ = watchers.removeValue(forKey: ObjectIdentifier(channel)) }
    }

    // MARK: Internals

    /// Call with the lock held.
    private func record(_ type: String, _ object: [String: Any], resource: Resource, namespace: String) throws {
        let event: [String: Any] = ["type": type, "object": object]
        let line = Array(try JSONSerialization.data(withJSONObject: event, options: [.sortedKeys])) + [UInt8(ascii: "\n")]
        history.append(Event(resourceVersion: revision, resource: resource, namespace: namespace, line: line))
        for watcher in watchers.values where watcher.resource == resource && (watcher.namespace == nil || watcher.namespace == namespace) {
            write(line, to: watcher)
        }
    }

    private func write(_ bytes: [UInt8], to watcher: Watcher) {
        watcher.channel.eventLoop.execute {
            var buffer = watcher.channel.allocator.buffer(capacity: bytes.count)
            buffer.writeBytes(bytes)
            watcher.channel.writeAndFlush(HTTPServerResponsePart.body(.byteBuffer(buffer)), promise: nil)
        }
    }

    fileprivate enum Answer {
        case json(HTTPResponseStatus, [UInt8])
        /// A watch stream: its backlog, then (unless `timeout` is 0) every event recorded later. The
        /// watcher is registered under the same lock that read the backlog, so no event falls between.
        case watch(initial: [[UInt8]], timeout: Int?)
        /// The path is cut (`partition()`): 503 and the connection closed, as a load balancer with no
        /// backend left answers. (Dropping the connection without an answer was seen to leave a client
        /// waiting in CI.)
        case partitioned
    }

    fileprivate func answer(_ head: HTTPRequestHead, channel: any Channel) -> Answer {
        if lock.withLock({ partitioned }) { return .partitioned }
        if !options.tokens.isEmpty || !options.forbiddenTokens.isEmpty {
            let token = head.headers.first(name: "authorization").flatMap { $0.hasPrefix("Bearer ") ? String($0.dropFirst(7)) : nil }
            if let token, options.forbiddenTokens.contains(token) {
                return .json(.forbidden, fixture("status-403-forbidden-list-endpoints-captured.json"))
            }
            guard let token, options.tokens.contains(token) else {
                return .json(.unauthorized, fixture("status-401-unauthorized.json"))
            }
        }
        let components = URLComponents(string: head.uri)
        let query = Dictionary((components?.queryItems ?? []).map { ($0.name, $0.value ?? "") }, uniquingKeysWith: { $1 })
        guard let (resource, namespace) = route(components?.path ?? "") else {
            return .json(
                .notFound,
                Array(
                    #"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"the server could not find the requested resource","reason":"NotFound","code":404}"#
                        .utf8))
        }
        if query["watch"] == "true" || query["watch"] == "1" {
            return watch(resource, namespace: namespace, query: query, channel: channel)
        }
        return list(resource, namespace: namespace, query: query)
    }

    private func route(_ path: String) -> (Resource, String?)? {
        let parts = path.split(separator: "/").map(String.init)
        switch parts {
        case ["apis", "discovery.k8s.io", "v1", "endpointslices"]: return (.endpointslices, nil)
        case let p where p.count == 6 && p[0...2] == ["apis", "discovery.k8s.io", "v1"] && p[3] == "namespaces" && p[5] == "endpointslices":
            return (.endpointslices, p[4])
        case ["api", "v1", "services"]: return (.services, nil)
        case let p where p.count == 5 && p[0...1] == ["api", "v1"] && p[2] == "namespaces" && p[4] == "services": return (.services, p[3])
        default: return nil
        }
    }

    private func list(_ resource: Resource, namespace: String?, query: [String: String]) -> Answer {
        lock.withLock {
            var listVersion = revision
            var offset = 0
            if let token = query["continue"], !token.isEmpty {
                let parts = token.split(separator: ":").compactMap { Int($0) }
                guard parts.count == 2 else {
                    return .json(
                        .badRequest, Array(#"{"kind":"Status","code":400,"reason":"BadRequest","message":"invalid continue token"}"#.utf8))
                }
                guard parts[1] >= oldestRetained - 1 else {
                    return .json(.gone, fixture("status-410-expired-continue-constructed.json"))
                }
                (offset, listVersion) = (parts[0], parts[1])
            }
            let all = (encoded[resource] ?? [:]).filter { namespace == nil || $0.key.hasPrefix(namespace! + "/") }
                .sorted { $0.key < $1.key }.map(\.value)
            let limit = Int(query["limit"] ?? "") ?? 0
            let page = limit > 0 ? Array(all.dropFirst(offset).prefix(limit)) : all
            var metadata = #"{"resourceVersion":"\#(listVersion)""#
            if limit > 0, offset + limit < all.count { metadata += #","continue":"\#(offset + limit):\#(listVersion)""# }
            metadata += "}"
            let kind = resource == .services ? "ServiceList" : "EndpointSliceList"
            let apiVersion = resource == .services ? "v1" : "discovery.k8s.io/v1"
            // Sized first: a 12 MB page grown append by append cost the fake ~50 ms, on the same cores
            // as the client it serves.
            let head = Array(#"{"kind":"\#(kind)","apiVersion":"\#(apiVersion)","metadata":\#(metadata),"items":["#.utf8)
            var body: [UInt8] = []
            body.reserveCapacity(head.count + page.reduce(0) { $0 + $1.count + 1 } + 2)
            body += head
            for (index, item) in page.enumerated() {
                if index > 0 { body.append(UInt8(ascii: ",")) }
                body += item
            }
            body += Array("]}".utf8)
            return .json(.ok, body)
        }
    }

    private func watch(_ resource: Resource, namespace: String?, query: [String: String], channel: any Channel) -> Answer {
        lock.withLock {
            // Checked again under the lock `partition()` takes: a watch whose request arrived just before
            // the cut would otherwise register after it, and stay open and silent.
            if partitioned { return .partitioned }
            let from = Int(query["resourceVersion"] ?? "") ?? revision
            if from + 1 < oldestRetained {
                if options.expiredAsEvent {
                    return .watch(
                        initial: [
                            Array(
                                (String(decoding: fixture("watch-error-410-captured.jsonl"), as: UTF8.self).trimmingCharacters(
                                    in: .newlines) + "\n").utf8)
                        ], timeout: 0)
                }
                return .json(.gone, fixture("status-410-expired-watch.json"))
            }
            let backlog = history.filter {
                $0.resource == resource && $0.resourceVersion > from && (namespace == nil || $0.namespace == namespace)
            }.map(\.line)
            // Registered now, under the lock that read the backlog: an event recorded from here on is
            // written by a task queued on the channel's event loop, so after this answer's head and
            // backlog (this runs inside the channel's read). Registering after the backlog was written
            // lost the events recorded in between.
            let watcher = Watcher(
                channel: channel, resource: resource, namespace: namespace, bookmarks: query["allowWatchBookmarks"] == "true")
            watchers[ObjectIdentifier(channel)] = watcher
            channel.closeFuture.whenComplete { [weak self] _ in
                guard let self else { return }
                self.lock.withLock { _ = self.watchers.removeValue(forKey: ObjectIdentifier(channel)) }
            }
            return .watch(initial: backlog, timeout: Int(query["timeoutSeconds"] ?? ""))
        }
    }

    private func fixture(_ name: String) -> [UInt8] {
        (try? Array(KubeFixtures.data(name))) ?? Array(#"{"kind":"Status","code":500}"#.utf8)
    }

    private final class Handler: ChannelInboundHandler, RemovableChannelHandler {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart
        let api: FakeKubernetesAPI
        init(api: FakeKubernetesAPI) { self.api = api }

        func channelActive(context: ChannelHandlerContext) {
            api.note("connection from client port \(context.channel.remoteAddress?.port ?? 0) accepted")
            context.fireChannelActive()
        }

        func channelInactive(context: ChannelHandlerContext) {
            api.note("connection from client port \(context.channel.remoteAddress?.port ?? 0) closed")
            context.fireChannelInactive()
        }

        static let partitionedStatus = Array(
            #"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"partitioned","reason":"ServiceUnavailable","code":503}"#
                .utf8)

        /// A whole JSON response; `closing`: then the connection is closed.
        private func respond(
            _ status: HTTPResponseStatus, _ body: [UInt8], closing: Bool, head: HTTPRequestHead, context: ChannelHandlerContext
        ) {
            var headers = HTTPHeaders([("Content-Type", "application/json"), ("Content-Length", String(body.count))])
            headers.add(name: "Cache-Control", value: "no-cache, private")
            if closing { headers.add(name: "Connection", value: "close") }
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: status, headers: headers))), promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: body)))), promise: nil)
            let channel = context.channel
            context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in if closing { channel.close(promise: nil) } }
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            guard case .head(let head) = unwrapInboundIn(data) else { return }
            let connection = context.channel.remoteAddress?.port.map { "client port \($0)" } ?? "client ?"
            let answer = api.answer(head, channel: context.channel)
            let outcome =
                switch answer {
                case .json(let status, _): "\(status.code)"
                case .watch(let initial, _): "200 watch, \(initial.count) events"
                case .partitioned: "503 partitioned"
                }
            api.note("\(head.method) \(head.uri) (\(connection)) → \(outcome)", uri: head.uri)
            switch answer {
            case .json(let status, let body):
                respond(status, body, closing: false, head: head, context: context)
            case .partitioned:
                respond(.serviceUnavailable, Self.partitionedStatus, closing: true, head: head, context: context)
            case .watch(let initial, let timeout):
                let headers = HTTPHeaders([("Content-Type", "application/json"), ("Transfer-Encoding", "chunked")])
                context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: .ok, headers: headers))), promise: nil)
                for line in initial {
                    context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: line)))), promise: nil)
                }
                context.flush()
                if timeout == 0 {
                    context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
                    return
                }
                if let timeout {
                    let channel = context.channel
                    let api = self.api
                    context.eventLoop.scheduleTask(in: .seconds(Int64(timeout))) {
                        api.unregister(channel)
                        FakeKubernetesAPI.end(channel)
                    }
                }
            }
        }
    }
}
