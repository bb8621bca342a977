import Crypto
import Foundation

/// Makes EKS bearer tokens natively, as `aws eks get-token` does: `k8s-aws-v1.` + unpadded base64url of
/// a SigV4-presigned STS `GetCallerIdentity` URL whose signed headers carry `x-k8s-aws-id: <cluster>`.
public enum EKSToken {
    /// Tokens are accepted for 15 minutes after signing; clients treat them as valid for 14.
    public static let lifetime: TimeInterval = 14 * 60

    public static func make(cluster: String, region: String, credentials: AWSCredentials, date: Date, stsHost: String? = nil) -> String {
        let url = AWSSigV4.presign(
            host: stsHost ?? "sts.\(region).amazonaws.com",
            query: [("Action", "GetCallerIdentity"), ("Version", "2011-06-15")],
            headers: ["x-k8s-aws-id": cluster], region: region, service: "sts", credentials: credentials, date: date, expires: 60)
        let body = Data(url.utf8).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
        return "k8s-aws-v1." + body
    }
}
