import WSTapCore

/// Gives up root after the capture device is open, as `tcpdump -Z` does.
public enum PrivilegeDrop {
    /// Switches to `user`'s uid, gid and groups; throws if any step fails or root could be regained.
    public static func switchUser(to user: String) throws(CaptureError) {
        if let reason = SystemCalls.switchUser(to: user) { throw .privilegeDropFailed(user: user, reason: reason) }
    }
}
