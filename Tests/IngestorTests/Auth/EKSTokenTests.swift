import Foundation
import Testing

@testable import Ingestor

@Suite struct EKSTokenTests {
    /// aws-iam-authenticator's own test vector (non-real credentials), from shared/fixtures/kube/eks-token-format.md.
    @Test func reproducesTheAuthenticatorsSampleTokenExactly() {
        let credentials = AWSCredentials(accessKeyID: "ASIAR2TG44V6AS3ZZE7C", secretAccessKey: "4KD5cntGcVmLWRdF5wvNRuzNL5Qxmp6OKVY6Fz/Q")
        let token = EKSToken.make(
            cluster: "test-cluster", region: "us-west-2", credentials: credentials, date: Date(timeIntervalSince1970: 1_682_640_000))
        #expect(
            token
                == "k8s-aws-v1.aHR0cHM6Ly9zdHMudXMtd2VzdC0yLmFtYXpvbmF3cy5jb20vP0FjdGlvbj1HZXRDYWxsZXJJZGVudGl0eSZWZXJzaW9uPTIwMTEtMDYtMTUmWC1BbXotQWxnb3JpdGhtPUFXUzQtSE1BQy1TSEEyNTYmWC1BbXotQ3JlZGVudGlhbD1BU0lBUjJURzQ0VjZBUzNaWkU3QyUyRjIwMjMwNDI4JTJGdXMtd2VzdC0yJTJGc3RzJTJGYXdzNF9yZXF1ZXN0JlgtQW16LURhdGU9MjAyMzA0MjhUMDAwMDAwWiZYLUFtei1FeHBpcmVzPTYwJlgtQW16LVNpZ25lZEhlYWRlcnM9aG9zdCUzQngtazhzLWF3cy1pZCZYLUFtei1TaWduYXR1cmU9ZTIxMWRiYTc3YWJhOWRjNDRiMGI2YmUzOGI4ZWFhZDA5MjU5OWM1MTU3ZjYzMTQ0NDRjNWI5ZDg1NzQ3ZjVjZQ"
        )
        #expect(token.count == 493)
        #expect(!token.contains("="))
    }

    @Test func sessionCredentialsAddTheSecurityToken() {
        let credentials = AWSCredentials(accessKeyID: "AKID", secretAccessKey: "secret", sessionToken: "tok/en+=")
        let token = EKSToken.make(cluster: "c", region: "eu-west-1", credentials: credentials, date: Date(timeIntervalSince1970: 0))
        var body = String(token.dropFirst("k8s-aws-v1.".count)).replacingOccurrences(of: "-", with: "+").replacingOccurrences(
            of: "_", with: "/")
        body += String(repeating: "=", count: (4 - body.count % 4) % 4)
        let url = String(decoding: Data(base64Encoded: body) ?? Data(), as: UTF8.self)
        #expect(url.hasPrefix("https://sts.eu-west-1.amazonaws.com/?Action=GetCallerIdentity"))
        #expect(url.contains("X-Amz-Security-Token=tok%2Fen%2B%3D"))
        #expect(url.contains("X-Amz-SignedHeaders=host%3Bx-k8s-aws-id"))
    }
}
