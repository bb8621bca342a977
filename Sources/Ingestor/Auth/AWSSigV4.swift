import Crypto
import Foundation

/// Signature Version 4 query-string presigning (the part of SigV4 an EKS token needs).
enum AWSSigV4 {
    /// A presigned `GET https://host/?query` with `headers` signed besides `host`.
    static func presign(
        host: String, query: [(String, String)], headers: [String: String], region: String, service: String,
        credentials: AWSCredentials, date: Date, expires: Int
    ) -> String {
        let timestamp = format(date, "yyyyMMdd'T'HHmmss'Z'")
        let day = format(date, "yyyyMMdd")
        let scope = "\(day)/\(region)/\(service)/aws4_request"
        var allHeaders = headers.reduce(into: ["host": host]) { $0[$1.key.lowercased()] = $1.value.trimmingCharacters(in: .whitespaces) }
        allHeaders["host"] = host
        let signedHeaders = allHeaders.keys.sorted().joined(separator: ";")

        var parameters = query
        parameters += [
            ("X-Amz-Algorithm", "AWS4-HMAC-SHA256"),
            ("X-Amz-Credential", "\(credentials.accessKeyID)/\(scope)"),
            ("X-Amz-Date", timestamp),
            ("X-Amz-Expires", String(expires)),
            ("X-Amz-SignedHeaders", signedHeaders)
        ]
        if let token = credentials.sessionToken { parameters.append(("X-Amz-Security-Token", token)) }
        let canonicalQuery = parameters.map { (encode($0.0), encode($0.1)) }.sorted { $0 < $1 }
            .map { "\($0.0)=\($0.1)" }.joined(separator: "&")
        let canonicalHeaders = allHeaders.keys.sorted().map { "\($0):\(allHeaders[$0]!)\n" }.joined()
        let emptyPayload = hex(SHA256.hash(data: [UInt8]()))
        let canonicalRequest = ["GET", "/", canonicalQuery, canonicalHeaders, signedHeaders, emptyPayload].joined(separator: "\n")
        let stringToSign = ["AWS4-HMAC-SHA256", timestamp, scope, hex(SHA256.hash(data: Array(canonicalRequest.utf8)))]
            .joined(separator: "\n")

        var key = SymmetricKey(data: Array("AWS4\(credentials.secretAccessKey)".utf8))
        for part in [day, region, service, "aws4_request"] {
            key = SymmetricKey(data: Data(HMAC<SHA256>.authenticationCode(for: Array(part.utf8), using: key)))
        }
        let signature = hex(HMAC<SHA256>.authenticationCode(for: Array(stringToSign.utf8), using: key))
        return "https://\(host)/?\(canonicalQuery)&X-Amz-Signature=\(signature)"
    }

    /// RFC 3986 encoding as SigV4 wants it: unreserved characters kept, everything else %XX uppercase.
    static func encode(_ text: String) -> String {
        var result = ""
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: "~"):
                result.append(Character(Unicode.Scalar(byte)))
            default:
                result += String(format: "%%%02X", byte)
            }
        }
        return result
    }

    private static func hex<D: Sequence>(_ digest: D) -> String where D.Element == UInt8 {
        digest.map { String(format: "%02x", $0) }.joined()
    }

    private static func format(_ date: Date, _ pattern: String) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = pattern
        return formatter.string(from: date)
    }
}
