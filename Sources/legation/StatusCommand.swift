import ArgumentParser
import AsyncHTTPClient
import Foundation
import NIOCore
import Server

/// `legation status`: what every connected sidecar holds, from an xds-server's `/debug/clients`
/// (like `istioctl proxy-status`). SYNCED: the client ACKed the current version of everything it holds.
struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show each connected client of an xds-server: node, subscriptions, versions, NACKs.")

    @Option(help: ArgumentHelp("The xds-server's debug address (its debug.address; the demo prints its own).", valueName: "host:port"))
    var debug = "127.0.0.1:9092"
    @Option(help: ArgumentHelp("A file holding the bearer token the debug endpoints require, if any.", valueName: "path")) var tokenFile:
        String?
    @Flag(help: "Print the raw JSON.") var json = false

    func run() async throws {
        var token: String?
        if let tokenFile {
            guard let text = try? String(contentsOfFile: tokenFile, encoding: .utf8) else {
                throw ValidationError("cannot read --token-file \(tokenFile)")
            }
            token = text.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        let body = try await Self.fetch("http://\(debug)/debug/clients", token: token)
        if json {
            print(String(decoding: body, as: UTF8.self), terminator: "")
            return
        }
        let clients = try JSONDecoder().decode([DebugViews.ClientView].self, from: Data(body))
        print(Self.render(clients), terminator: "")
    }

    static func fetch(_ url: String, token: String? = nil) async throws -> [UInt8] {
        var request = HTTPClientRequest(url: url)
        request.method = .GET
        if let token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
        let response: HTTPClientResponse
        do {
            response = try await HTTPClient.shared.execute(request, timeout: .seconds(5))
        } catch {
            throw CommandFailure("cannot reach \(url): \(error)")
        }
        let body = try await response.body.collect(upTo: 64 << 20)
        guard response.status == .ok else {
            // The server's own words, when it gave any (the xDS port says what it is).
            let said =
                String(decoding: body.readableBytesView.prefix(300), as: UTF8.self)
                .split(separator: "\n").first.map { ": \($0)" } ?? ""
            throw CommandFailure("\(url) answered \(response.status)\(said)")
        }
        return Array(buffer: body)
    }

    /// One line per client and type: NODE, STREAM, TYPE, SUBSCRIBED, STATE, ACKED VERSION, NACKS, LAST NACK.
    static func render(_ clients: [DebugViews.ClientView]) -> String {
        var rows = [["NODE", "STREAM", "TYPE", "SUBSCRIBED", "STATE", "ACKED VERSION", "NACKS", "LAST NACK"]]
        for client in clients {
            let node = client.node.map { $0.id.isEmpty ? "(no id)" : $0.id } ?? "(no request yet)"
            if client.types.isEmpty { rows.append([node, "\(client.stream) \(client.kind)", "-", "-", "CONNECTED", "-", "0", ""]) }
            for type in client.types {
                let state: String
                if type.pendingNonce != nil {
                    state = "SENT"
                } else if type.outOfSync > 0 {
                    state = "STALE"
                } else {
                    state = type.lastNack != nil && type.ackedVersion != type.sentVersion ? "NACKED" : "SYNCED"
                }
                rows.append([
                    node, "\(client.stream) \(client.kind)", type.type, type.wildcard ? "*" : "\(type.subscribedCount)", state,
                    type.ackedVersion.isEmpty ? "-" : type.ackedVersion, "\(type.nacks)", String((type.lastNack ?? "").prefix(60))
                ])
            }
        }
        let widths = (0..<rows[0].count).map { column in rows.map { $0[column].count }.max() ?? 0 }
        var text = ""
        for row in rows {
            text +=
                zip(row, widths).map { $0.padding(toLength: $1, withPad: " ", startingAt: 0) }.joined(separator: "  ")
                .replacingOccurrences(of: "\\s+$", with: "", options: .regularExpression) + "\n"
        }
        if clients.isEmpty { text += "(no clients connected)\n" }
        return text
    }
}
