import WSTapCore

/// A problem found in the HTTP/1.1 part of a connection.
public enum HTTPViolation: Error, Hashable, Sendable {
    case malformedHead(HTTPHeadError)
    case headTooLarge(limit: Int)
    case invalidContentLength(String)
    case invalidChunkedBody
    /// `Upgrade` sent without `upgrade` in `Connection` (RFC 9110 §7.8): not a valid offer.
    case upgradeWithoutConnectionToken
    /// A response arrived when no request was waiting for one.
    case responseWithoutRequest(status: Int)
    /// A 101 answered a request that offered no upgrade.
    case unsolicitedSwitch
    /// A 101 named no protocol in its `Upgrade` header.
    case switchWithoutUpgradeHeader
    /// A 101 switched to a protocol the request did not offer.
    /// The names, as `TokenList.listing` writes them (one report for all of them).
    case switchToUnofferedProtocol(String)
    /// Bytes were lost where HTTP framing needs them; the direction is no longer parsed.
    case streamGap(bytes: UInt64)
    /// A message head was cut by missing bytes; its complete lines were parsed.
    case headCut(bytes: UInt64)
    /// The client sent more than the hold limit while waiting for the answer to an upgrade.
    case heldBytesOverflow(limit: Int)
    /// The connection ended inside a message head: its bytes are not a request or response.
    case headUnfinished(bytes: Int)
    /// More requests than the limit waited for responses; the oldest were forgotten.
    case tooManyUnansweredRequests(limit: Int, byteLimit: Int)
}
